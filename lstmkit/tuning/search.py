"""Hyperparameter search with Keras Tuner, written once for every task.

A task's search space is its ``search_space(hp, config)``: it maps ``hp`` onto a copy
of the config, and the same ``build_model`` as training builds the model. Preprocessing
is adapted once on the training data before the search.

A search lives in ``runs/<task>/tune-<id>/`` (``.partial`` until it ends, so
``--resume`` can continue it): ``search.json`` (settings, data, config), Keras Tuner's
own state under ``search/``, TensorBoard HParams logs under ``tensorboard/``, and at the
end ``trials.json``, ``best_config.json`` and ``memory.json`` (resident memory of the
process that ran each trial).

Trials run in fresh processes, ``trials_per_process`` at a time (0: all in this
process). Keras Tuner clears the Keras session before each trial, yet a process that
fits model after model still grows by tens of MiB per model (a Keras/TensorFlow leak,
see BENCHMARKS.md); a process that exits gives all of it back. The processes are
workers of Keras Tuner's distributed mode against an oracle served on loopback by this
process (``lstmkit.tuning.cluster``), which also runs searches across machines.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import resource
import sys
from pathlib import Path

from lstmkit import config as config_lib
from lstmkit import data as data_lib
from lstmkit import hints, precision, runs
from lstmkit.errors import UserError
from lstmkit.task import PretrainsText, Task
from lstmkit.training.fit import compile_model, fit_datasets, progress_verbosity, training_callbacks
from lstmkit.training.setup import RunSetup

TUNERS = ("hyperband", "random", "bayesian")


def _hypermodel_class():
    import keras_tuner

    class TaskHyperModel(keras_tuner.HyperModel):
        """Builds and fits one trial: ``hp`` → task config → ``build_model``."""

        def __init__(self, task: Task, splits, seed: int):
            """``task``: bound to the search's base config and its preprocessing."""
            super().__init__(name=task.name)
            self.task, self.splits, self.seed = task, splits, seed

        def config(self, hp):
            return self.task.search_space(hp, self.task.config)

        def trial_task(self, hp) -> Task:
            return self.task.bind(self.config(hp))

        def build(self, hp):
            task = self.trial_task(hp)
            batches = task.batches(self.splits.train, training=True, seed=self.seed)
            steps_per_epoch = max(data_lib.count(batches), 1)
            with precision.dtype_policy(task.config.train.precision):
                model = task.build_model()
                compile_model(task, model, steps_per_epoch)
            return model

        def fit(self, hp, model, *args, **kwargs):
            # The batch size is a training choice, so batching happens per trial.
            task = self.trial_task(hp)
            train, validation, _ = fit_datasets(task, self.splits, self.seed)
            # Weight averaging and a plateau schedule are part of the trial's training.
            callbacks = training_callbacks(task.config.train, *task.objective)
            kwargs["callbacks"] = callbacks + list(kwargs.get("callbacks") or [])
            return model.fit(train, validation_data=validation, verbose=progress_verbosity(),
                             shuffle=False, **kwargs)

    return TaskHyperModel


class TrialBudgetSpent(Exception):
    """A trial process has run its share of trials."""


def recording_trials(tuner_class, memory_log: Path, budget: int | None = None):
    """``tuner_class`` that appends this process's memory after each trial to
    ``memory_log`` (JSON lines; several processes may share it) and, with ``budget``,
    raises ``TrialBudgetSpent`` once it has run that many trials."""

    class RecordingTuner(tuner_class):
        trials_run = 0

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            record = {"trial": trial.trial_id, "pid": os.getpid(), **memory_mb()}
            with open(memory_log, "a", encoding="utf-8") as log:
                log.write(json.dumps(record) + "\n")
            self.trials_run += 1
            if budget is not None and self.trials_run >= budget:
                raise TrialBudgetSpent

    RecordingTuner.__name__ = tuner_class.__name__
    return RecordingTuner


def read_memory_log(memory_log: Path) -> list[dict]:
    if not memory_log.is_file():
        return []
    return [json.loads(line) for line in memory_log.read_text(encoding="utf-8").splitlines() if line.strip()]


def memory_mb() -> dict:
    """This process's resident memory now and its peak so far, in MiB (Linux; the
    peak is the kernel's VmHWM: ``ru_maxrss`` would carry a parent's peak across exec)."""
    fields = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    peak = fields.get("VmHWM", round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    return {"rss_mb": fields.get("VmRSS"), "peak_rss_mb": peak}


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """How a search runs; kept in ``search.json`` so that ``--resume`` repeats it."""

    tuner: str = "hyperband"
    # Random and Bayesian search run 10 unless told; Hyperband sizes itself from
    # max_epochs and stops early only when this is given.
    max_trials: int | None = None
    max_epochs: int | None = None  # default: the config's train.epochs
    executions_per_trial: int = 1
    objective: str | None = None  # default: the task's
    seed: int = 42
    # Trials each fresh process runs before it exits (bounds the memory a leak can
    # take); 0 runs every trial in the calling process.
    trials_per_process: int = 1

    def __post_init__(self):
        if self.tuner not in TUNERS:
            raise UserError(f"unknown tuner {self.tuner!r}; choose one of: {', '.join(TUNERS)}")
        for name in ("max_trials", "executions_per_trial"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_epochs is not None and self.max_epochs < 1:
            raise UserError(f"max_epochs must be at least 1, got {self.max_epochs}")
        if self.trials_per_process < 0:
            raise UserError(f"trials_per_process must be 0 (all in this process) or more, "
                            f"got {self.trials_per_process}")


def objectives(task: Task) -> dict[str, str]:
    """The objectives a search of ``task`` (bound to a config) can optimise, with their directions."""
    names = {task.objective.metric: task.objective.direction, "val_loss": "min"}
    for metric in task.metrics():
        name = metric if isinstance(metric, str) else metric.name
        names.setdefault(f"val_{name}", "min" if "loss" in name or "error" in name else "max")
    return names


def resolve_objective(task: Task, name: str | None) -> tuple[str, str]:
    known = objectives(task)
    name = name or task.objective.metric
    if name not in known:
        raise UserError(f"unknown objective {name!r} for {task.name}; choose one of: {', '.join(known)}")
    return name, known[name]


@dataclasses.dataclass
class TuneResult:
    directory: Path
    best_config: object
    trials: list[dict]
    memory_mb: list[dict]
    data_source: str
    settings: SearchSettings


def find_search(runs_root, task_name: str, search: str) -> Path:
    """An unfinished search folder: 'latest', its id, or its path."""
    task_root = Path(runs_root) / task_name
    if search != "latest":
        for candidate in (Path(search), task_root / search, task_root / f"{search}{runs.PARTIAL_SUFFIX}"):
            if (candidate / "search.json").is_file():
                return candidate
        raise UserError(f"no search {search!r} under {task_root}; pass 'latest', a tune-... id or folder")
    # A worker's folder only holds its trials' checkpoints: the chief's is the search.
    found = sorted(path for path in task_root.glob(f"tune-*{runs.PARTIAL_SUFFIX}")
                   if (path / "search.json").is_file() and "-worker-" not in path.name)
    if not found:
        raise UserError(f"no unfinished search under {task_root}; start one with "
                        f"{hints.start_search(task_name, runs_root)}")
    return found[-1]


def tune(
    task: Task,
    config,
    data_source: str,
    settings: SearchSettings = SearchSettings(),
    *,
    runs_root: str | Path = "runs",
    command: str = "",
    resume: str | None = None,
    cluster=None,
    trial_budget: int | None = None,
) -> TuneResult:
    """Search ``task``'s space starting from ``config``.

    ``max_trials`` bounds every tuner (Hyperband, without it, runs its brackets, sized
    by ``max_epochs``). With ``resume`` ('latest' or a
    search folder) an interrupted search continues with its own settings, config and
    data; trials that were running are run again. ``cluster`` (a
    ``cluster_lib.SearchCluster``) makes this process the chief or a worker of
    a distributed search; a worker with ``trial_budget`` raises ``TrialBudgetSpent``
    after that many trials.
    """

    from lstmkit.tuning import cluster as cluster_lib

    runs.require_folder(runs_root, "runs folder")
    directory = None
    if resume is not None:
        directory = find_search(runs_root, task.name, resume)
        saved = runs.read_json(directory / "search.json")
        settings = SearchSettings(**saved["settings"])
        config = config_lib.from_dict(task.config_class, saved["config"])
        data_source = saved["data"]
    resolve_objective(task.bind(config), settings.objective)  # an unknown one is refused before any data is read
    local = cluster is None and settings.trials_per_process > 0
    if local:
        # This process holds the oracle; trials run in worker processes it starts.
        from lstmkit.training.strategy import free_loopback_ports

        (port,) = free_loopback_ports(1)
        cluster = cluster_lib.SearchCluster("chief", "127.0.0.1", port)
    if cluster is not None:
        cluster_lib.configure(cluster)
    with cluster_lib.keras_tuner_environment(cluster):
        return _search(task, config, data_source, settings, directory=directory, runs_root=runs_root,
                       command=command, cluster=cluster, local=local, trial_budget=trial_budget)


def _search(task, config, data_source, settings, *, directory, runs_root, command, cluster, local,
            trial_budget) -> TuneResult:
    """Run this process's part of a search: all of it ("alone"), the oracle ("chief",
    with its trials in ``local`` processes or remote workers), or trials ("worker")."""
    from lstmkit.tuning import cluster as cluster_lib

    role = "alone" if cluster is None else cluster.role
    created = directory is None
    setup = RunSetup.prepare(task, config, data_source, settings.seed, resumed=directory)
    if isinstance(setup.task, PretrainsText) and setup.task.text_encoder().settings.epochs:
        # Trials build and fit their models directly: none would be pretrained.
        raise UserError("tune does not pretrain its trials' encoders; drop pretrain.epochs here and set it "
                        "when training the best config")
    if created:
        directory = setup.create_folder(runs_root, {
            "command.txt": command + "\n",
            "search.json": {"settings": dataclasses.asdict(settings), "data": data_source,
                            "config": config_lib.to_dict(config)},
        }, prefix="tune-", suffix=f"-{cluster.tuner_id}" if role == "worker" else "")
    memory_log = directory / "memory.jsonl"
    tuner, run_trials = _tuner(setup, settings, directory, memory_log, role, trial_budget)
    if role == "chief":
        local_workers = None
        if local:
            import multiprocessing

            # "spawn": a fresh interpreter, not a fork of this one's TensorFlow state.
            context = multiprocessing.get_context("spawn")
            local_workers = cluster_lib.LocalWorkers(lambda worker_id: context.Process(
                target=_trial_process, name=f"trial-{worker_id}",
                args=(pickle.dumps(task), str(directory), cluster.host, cluster.port, worker_id,
                      settings.trials_per_process, os.getpid())))
        tuner.save()
        cluster_lib.serve_oracle(tuner.oracle, cluster, workers=local_workers)
    elif role == "worker":
        with cluster_lib.chief_errors(cluster):
            run_trials()
        # A trial process shares its search's folder, which the search finishes.
        final = runs.finish_run_dir(directory) if created else directory
        return TuneResult(final, None, [], read_memory_log(memory_log), data_source, settings)
    else:
        run_trials()
    memory = read_memory_log(memory_log)
    runs.write_json(directory / "memory.json", sorted(memory, key=lambda record: record["trial"]))
    trials = trial_records(tuner.oracle)
    if not trials and cluster is not None:
        oracle = f"{cluster.host}:{cluster.port}"
        worker = hints.search_worker(task.name, oracle, runs_root)
        chief = hints.search_chief(task.name, oracle, resume=directory.name, runs_root=runs_root)
        raise UserError(f"the search ended with no trials: no worker called within the worker timeout "
                        f"({cluster.worker_timeout:g} s); start workers ({worker}), then resume the "
                        f"search on the chief ({chief})")
    best = [trial for trial in trials if trial["status"] == "COMPLETED"]
    if not best:
        raise UserError(f"no trial of the search in {directory} completed; see its trial folders for why")
    best_config = tuner.hypermodel.config(tuner.get_best_hyperparameters(1)[0])
    runs.write_json(directory / "best_config.json", config_lib.to_dict(best_config))
    runs.write_json(directory / "trials.json", trials)
    return TuneResult(runs.finish_run_dir(directory), best_config, trials, memory, data_source, settings)


def _tuner(setup: RunSetup, settings: SearchSettings, directory: Path, memory_log: Path, role: str,
           trial_budget: int | None):
    """Keras Tuner's tuner for the search in ``directory``, and a function that runs its
    trials in this process."""
    import keras
    import keras_tuner

    from lstmkit.tuning import cluster as cluster_lib

    task, config = setup.task, setup.config
    objective, direction = resolve_objective(task, settings.objective)
    max_epochs = settings.max_epochs or config.train.epochs
    hypermodel = _hypermodel_class()(task, setup.splits, settings.seed)
    tuner_class = {"hyperband": keras_tuner.Hyperband, "random": keras_tuner.RandomSearch,
                   "bayesian": keras_tuner.BayesianOptimization}[settings.tuner]
    if role == "worker":
        tuner_class = cluster_lib.with_heartbeat(tuner_class)
    tuner_class = recording_trials(tuner_class, memory_log, trial_budget)
    common = dict(objective=keras_tuner.Objective(objective, direction=direction), seed=settings.seed,
                  executions_per_trial=settings.executions_per_trial,
                  directory=str(directory), project_name="search", overwrite=False,
                  # A trial whose worker died is run once more, by another worker.
                  max_retries_per_trial=0 if role == "alone" else 1)
    if settings.tuner == "hyperband":
        tuner = tuner_class(hypermodel, max_epochs=max_epochs, factor=3, **common)
        # Hyperband's oracle takes no max_trials, but honours one like every oracle.
        tuner.oracle.max_trials = settings.max_trials
        search_kwargs = {}
    else:
        tuner = tuner_class(hypermodel, max_trials=settings.max_trials or 10, **common)
        search_kwargs = {"epochs": max_epochs}
    callbacks = [
        keras.callbacks.EarlyStopping(monitor=objective, mode=direction, patience=config.train.patience),
        # Keras Tuner gives each trial its own folder here and logs its hyperparameters
        # (TensorBoard's HParams dashboard).
        keras.callbacks.TensorBoard(str(directory / "tensorboard")),
    ]
    return tuner, lambda: tuner.search(callbacks=callbacks, **search_kwargs)


def trial_records(oracle) -> list[dict]:
    """Every trial of ``oracle``: the completed ones best first, then the rest."""
    trials = []
    for trial in oracle.get_best_trials(num_trials=len(oracle.trials)):
        trials.append({"trial": trial.trial_id, "score": trial.score, "status": trial.status,
                       "best_epoch": None if trial.best_step is None else int(trial.best_step) + 1,
                       "hyperparameters": trial.hyperparameters.values})
    listed = {row["trial"] for row in trials}
    trials += [{"trial": trial.trial_id, "score": None, "status": trial.status, "best_epoch": None,
                "hyperparameters": trial.hyperparameters.values}
               for trial in oracle.trials.values() if trial.status != "COMPLETED" and trial.trial_id not in listed]
    return trials


def retrain_best(task: Task, result: TuneResult, *, runs_root: str | Path = "runs", command: str = ""):
    """Train the best configuration of a finished search on train+validation for as many
    epochs as its best trial needed to reach its best score, and evaluate it once on
    test. Returns the run and the number of epochs."""
    from lstmkit.training import train

    epochs = next(trial["best_epoch"] for trial in result.trials if trial["status"] == "COMPLETED") or 1
    best = result.best_config
    best = dataclasses.replace(best, train=dataclasses.replace(best.train, epochs=epochs, patience=epochs))
    run = train(task, best, result.data_source, runs_root=runs_root, seed=result.settings.seed, command=command,
                merge_validation=True)
    return run, epochs


def _trial_process(pickled_task: bytes, directory: str, host: str, port: int, worker_id: str, budget: int,
                   parent_pid: int) -> None:
    """A local search's worker process (``multiprocessing`` target): runs ``budget``
    trials of the search in ``directory`` against the chief at ``host:port``. The task
    comes pickled: unpickling it imports its modules, and with them TensorFlow, which
    must happen after its start-up lines are muted."""
    from lstmkit.tuning import cluster as cluster_lib
    from lstmkit.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    task = pickle.loads(pickled_task)

    cluster_lib.die_with_parent(parent_pid)
    cluster = cluster_lib.SearchCluster("worker", host, port, worker_id)
    try:
        tune(task, None, "", resume=directory, cluster=cluster, trial_budget=budget)
    except TrialBudgetSpent:
        sys.exit(cluster_lib.EXIT_TRIAL_BUDGET_SPENT)
    except UserError as error:
        print(f"Error: {error}", file=sys.stderr)
        sys.exit(cluster_lib.EXIT_BAD_INPUT)
