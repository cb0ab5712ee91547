"""Training, written once for every task: ``train(task, config, data_source)``.

A run writes ``runs/<task>/<run-id>/``: ``config.json`` (resolved config),
``command.txt``, ``run.json`` (data source, seed, training-data fingerprint, library
versions), ``preprocessing.json`` (what was adapted on training data), ``history.csv``,
``tensorboard/``, ``best.keras`` (best checkpoint), ``metrics.json`` and
``training_curves.png``. Until it finishes it lives under ``<run-id>.partial`` with a
``backup/`` that ``--resume`` continues from: from the last complete epoch, or, if
training had ended, from the final evaluation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import math
from pathlib import Path

from lstmkit import data as data_lib
from lstmkit import hints, precision, runs
from lstmkit.errors import UserError
from lstmkit.task import Calibrates, Task
from lstmkit.run import Run, read_config
from lstmkit.training.epochs import keep_history_epochs, progress_verbosity, skip_used_shuffles
from lstmkit.training.setup import RunSetup


def compile_model(task: Task, model, steps_per_epoch: int) -> None:
    """The task's optimizer (``configure_optimizer``: Adam with the config's schedule
    unless the task says otherwise), loss and metrics."""
    model.compile(optimizer=task.configure_optimizer(steps_per_epoch), loss=task.loss(), metrics=task.metrics())


def fit_datasets(task: Task, splits, seed: int):
    """Batched (train, validation) datasets for ``fit`` (validation None when it was
    merged into train), and the number of training batches per epoch, as the task
    (bound to its config and preprocessing) batches them."""
    train = task.batches(splits.train, training=True, seed=seed)
    steps = data_lib.count(train)
    validation = None if splits.validation is None else task.batches(splits.validation)
    return train, validation, max(steps, 1)


def training_callbacks(settings, monitor: str, direction: str) -> list:
    """The callbacks that shape optimisation: weight averaging and a plateau schedule.
    They go after BackupAndRestore and before early stopping and checkpoints."""
    import keras

    from lstmkit.callbacks import plateau_callback, weight_averaging_callback

    return [callback for callback in (
        keras.callbacks.SwapEMAWeights(swap_on_epoch=True) if settings.ema_momentum else None,
        weight_averaging_callback(settings, monitor, direction),
        plateau_callback(settings, monitor, direction),
    ) if callback is not None]


def best_logged_value(history_csv: Path, monitor: str, direction: str):
    """The best finite value of ``monitor`` in a CSVLogger file, or None."""
    best = runs.best_epoch(history_csv, monitor, direction)
    return None if best is None else best[1]


def train(
    task: Task,
    config,
    data_source: str,
    *,
    runs_root: str | Path = "runs",
    seed: int = 42,
    command: str = "",
    resume: str | None = None,
    strategy: str | None = None,
    merge_validation: bool = False,
    refuse_duplicate: bool = False,
) -> Run:
    """Train ``task`` with ``config`` on ``data_source`` and return the finished ``Run``.

    With ``resume`` (a run id, folder or 'latest'), continue an unfinished run from its
    last completed epoch, with that run's own config, data, seed and strategy.
    ``strategy`` is a ``lstmkit.training.strategy`` strategy name (default: "default");
    ``train.batch_size`` is per replica. With ``merge_validation`` the validation split
    joins the training data (a final fit after tuning): the run trains for
    ``train.epochs`` with no validation, keeps the weights of its lowest training loss,
    and reports test metrics only. With ``refuse_duplicate`` (the CLI's ``train``, unless
    ``--new-run``), a new run is refused where an unfinished one of the same task,
    config, seed and training data exists: the error names it and how to resume it, or
    says that it is being trained right now.

    The process holds the run's training lock (``runs.TrainingLock``) until it returns.
    """
    with contextlib.ExitStack() as held:
        def hold_lock(run_dir: Path) -> None:
            held.enter_context(runs.TrainingLock(run_dir))

        return _train(task, config, data_source, runs_root=runs_root, seed=seed, command=command, resume=resume,
                      strategy=strategy, merge_validation=merge_validation, refuse_duplicate=refuse_duplicate,
                      hold_lock=hold_lock)


def _train(task: Task, config, data_source: str, *, runs_root, seed, command, resume, strategy, merge_validation,
           refuse_duplicate, hold_lock) -> Run:
    from lstmkit.training import strategy as strategy_lib

    # A runs folder that cannot be a folder is refused before any data is read.
    runs.require_folder(runs_root, "runs folder")
    run_dir = None
    if resume is not None:
        run_dir = runs.find_run(runs_root, task.name, resume, partial=True)
        if not run_dir.name.endswith(runs.PARTIAL_SUFFIX):
            # (find_run takes any run by its id.) Resumed, a finished run would be trained
            # again in place and then renamed as if it ended in ".partial".
            raise UserError(f"run {run_dir.name} is finished; there is nothing to resume (evaluate it: "
                            f"{hints.evaluate_run(task.name, run_dir, runs_root)}"
                            ", or train a new run)")
        # Two processes training one folder would undo each other's epochs.
        hold_lock(run_dir)
        info = runs.read_json(run_dir / "run.json")
        config = read_config(task, run_dir)
        data_source, seed = info["data"], info["seed"]
        strategy = strategy or info.get("strategy")
        merge_validation = info.get("validation_merged_into_train", False)
    strategy_name = strategy or "default"
    # A bad TF_CONFIG is reported before any data is read.
    strategy = strategy_lib.make_strategy(strategy_name)
    replicas = strategy.num_replicas_in_sync

    # The workers of a multiworker cluster all run the same command at once, each with
    # a folder of its own: they are not duplicates of each other.
    check_fingerprint = None
    if refuse_duplicate and run_dir is None and strategy_name != "multiworker":
        # Only JSON files are read here; the training data is compared by the fingerprint
        # that every run computes anyway, so the check costs nothing measurable.
        alike = unfinished_runs_alike(task, config, runs_root, seed, strategy_name, merge_validation)
        if alike:
            check_fingerprint = functools.partial(refuse_unfinished_duplicate, task, config, runs_root, alike)

    # Everything that can fail on bad input (the data, the config, building the model)
    # happens before a run directory exists.
    setup = RunSetup.prepare(task, config, data_source, seed, resumed=run_dir, merge_validation=merge_validation,
                             check_fingerprint=check_fingerprint)
    if run_dir is not None and info["train_fingerprint_sha256"] != setup.train_fingerprint:
        raise UserError(
            f"the training data of {data_source} changed since run {run_dir.name} started; "
            "start a new run instead of resuming it"
        )
    splits, task = setup.splits, setup.task
    settings = config.train
    # Batches hold the global batch: each replica's share of it is train.batch_size.
    global_config = dataclasses.replace(config, train=dataclasses.replace(
        settings, batch_size=settings.batch_size * replicas))
    train_batches, validation_batches, steps_per_epoch = fit_datasets(task.bind(global_config), splits, seed)
    if strategy_name == "multiworker":
        train_batches = strategy_lib.shard_by_batch(train_batches)
        if validation_batches is not None:
            validation_batches = strategy_lib.shard_by_batch(validation_batches)
    with strategy.scope(), precision.dtype_policy(settings.precision) as policy:
        model = task.build_model()
        compile_model(task, model, steps_per_epoch)

    if run_dir is None:
        # The lock is taken before run.json makes the folder a run, so that no other
        # process ever sees this run without a live trainer.
        run_dir = setup.create_folder(runs_root, on_created=hold_lock, files={
            "command.txt": command + "\n",
            # Written last: a folder without run.json is not a run (find_run skips it).
            "run.json": {
                "task": task.name,
                "data": data_source,
                "data_description": splits.description,
                "seed": seed,
                "strategy": strategy_name,
                "precision": policy,
                "validation_merged_into_train": merge_validation,
                "replicas": replicas,
                "train_fingerprint_sha256": setup.train_fingerprint,
                "started": datetime.datetime.now().isoformat(timespec="seconds"),
                "versions": runs.library_versions(),
            },
        })
    from lstmkit.callbacks import RunBackup
    from lstmkit.training import pretrain

    try:
        # Once the task's own training has begun, its backup holds the weights.
        if not (run_dir / "backup" / RunBackup.STATE_FILE).exists():
            with strategy.scope():
                copied = pretrain.pretrain_encoder(task, model, splits, run_dir, seed)
            if copied:
                print(f"pretrained layers moved into the {task.name} model: {', '.join(copied)}", flush=True)
        return _fit_and_finish(task, model, splits, run_dir, train_batches, validation_batches)
    except Exception as error:
        if runs.is_out_of_space(error):
            raise UserError(f"out of disk space writing {run_dir}; free some space, then continue the run: "
                            f"{hints.resume_run(task.name, run_dir, runs_root)}") from None
        if resume is None and not any((run_dir / "backup" / folder / RunBackup.STATE_FILE).exists()
                                      for folder in ("", "pretrain")):
            # A new run that failed before it finished an epoch (a batch that cannot be
            # made, a step that does not fit in memory) has nothing to resume: leave nothing.
            runs.remove_quietly(run_dir)
        raise


def non_finite_metrics(metrics: dict, prefix: str = "") -> list[str]:
    """The names of the NaN or infinite numbers in a (nested) metrics dict."""
    found = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            found += non_finite_metrics(value, f"{prefix}{key}.")
        elif isinstance(value, float) and not math.isfinite(value):
            found.append(f"{prefix}{key}")
    return found


def _fit_and_finish(task: Task, model, splits, run_dir: Path, train_batches, validation_batches) -> Run:
    """Fit (or continue fitting) ``model`` in ``run_dir``, evaluate the best checkpoint
    and turn the folder into a finished run."""
    import keras

    from lstmkit.callbacks import BestCheckpoint, EpochTimer, RunBackup, save_model_atomically

    settings = task.config.train
    # With validation merged into train (a final fit), the lowest training loss decides.
    monitor, mode = ("loss", "min") if validation_batches is None else task.objective
    best_checkpoint = run_dir / "best.keras"
    history = run_dir / "history.csv"
    shaping = training_callbacks(settings, monitor, mode)
    early_stopping = keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=settings.patience)
    backup = RunBackup(run_dir / "backup", stateful_callbacks=[*shaping, early_stopping])
    # What a killed process was writing when it died (a checkpoint, a JSON file).
    for leftover in [*run_dir.glob(".*.tmp-*"), *run_dir.glob("backup/.*.tmp-*")]:
        runs.remove_quietly(leftover)
    if not backup.training_done:
        # Epochs past the backup's last complete one (killed before it was recorded)
        # are run again: forget what they logged.
        keep_history_epochs(history, backup.completed_epochs)
        skip_used_shuffles(train_batches, backup.completed_epochs)
        # Order matters: the backup copies the raw weights (and the EMA in the optimizer)
        # first; with averaging on, the averaged weights are then swapped in (at
        # validation's start, or the epoch's end), so that validation, early stopping and
        # the checkpoint see them. The backup's committer goes last: an epoch is done
        # once its checkpoint and history line are written.
        callbacks = [
            backup,
            *shaping,
            early_stopping,
            BestCheckpoint(best_checkpoint, monitor, mode,
                           # After --resume, only beat what the run already reached.
                           initial_best=best_logged_value(history, monitor, mode)),
            keras.callbacks.TerminateOnNaN(),
            EpochTimer(),
            keras.callbacks.TensorBoard(str(run_dir / "tensorboard")),
            keras.callbacks.CSVLogger(str(history), append=True),
            backup.committer,
        ]
        model.fit(
            train_batches,
            validation_data=validation_batches,
            epochs=settings.epochs,
            initial_epoch=backup.completed_epochs,
            callbacks=callbacks,
            verbose=progress_verbosity(),
            shuffle=False,  # the dataset is already shuffled, with the run's seed
        )
        backup.mark_training_done()
    if not best_checkpoint.exists():
        raise UserError(
            f"training never produced a finite {monitor} (the loss diverged?); "
            f"lower the config value train.learning_rate and start a new run. The unfinished run is in {run_dir}"
        )
    model.load_weights(str(best_checkpoint))
    calibration = None
    if isinstance(task, Calibrates) and splits.validation is not None:
        # After a kill here, a resumed run calibrates again from the same weights.
        calibration = task.calibrate(model, splits.validation)
        save_model_atomically(model, best_checkpoint)

    from lstmkit import plots

    metrics = {} if splits.validation is None else {
        "validation": task.evaluate(model, splits.validation)}
    if calibration:
        metrics["calibration"] = calibration
    metrics["test"] = task.evaluate(model, splits.test)
    diverged = non_finite_metrics(metrics)
    if diverged:
        # Not finished, so neither exported nor served; the folder stays for inspection.
        raise UserError(
            f"the trained model gives non-finite metrics ({', '.join(diverged)}): training diverged; "
            f"lower the config value train.learning_rate and start a new run. The unfinished run is in {run_dir}"
        )
    runs.write_json(run_dir / "metrics.json", metrics)
    plots.training_curves(history, run_dir / "training_curves.png")
    finished = runs.finish_run_dir(run_dir)
    # The backup has served its purpose; a kill before this line leaves it in a finished
    # run, where it only takes space.
    runs.remove_quietly(finished / "backup")
    runs.remove_quietly(finished / runs.LOCK_FILE)  # only an unfinished run needs to say who trains it
    return Run.from_folder(task, finished)


def unfinished_runs_alike(task: Task, config, runs_root, seed: int, strategy_name: str,
                          merge_validation: bool) -> list[tuple[Path, dict]]:
    """(folder, run.json) of the unfinished runs of ``task`` under ``runs_root`` that were
    started with ``config``, ``seed`` and the same strategy, newest first: what a
    resume of them would repeat, if their training data is this one too."""
    alike = []
    for folder in sorted((Path(runs_root) / task.name).glob(f"*{runs.PARTIAL_SUFFIX}"), reverse=True):
        try:
            info = runs.read_json(folder / "run.json")
            same = (info.get("seed") == seed and info.get("strategy", "default") == strategy_name
                    and info.get("validation_merged_into_train", False) == merge_validation
                    and read_config(task, folder) == config)
        except (OSError, ValueError, TypeError, KeyError, AttributeError, UserError):
            continue  # not a run (a search), or one being written or damaged: not this one
        if same:
            alike.append((folder, info))
    return alike


def refuse_unfinished_duplicate(task: Task, config, runs_root, alike: list[tuple[Path, dict]],
                                fingerprint: str) -> None:
    """Refuse to start a second run beside an unfinished one of the same config, seed and
    training data (``fingerprint``): name it and how to resume it, or, while it is
    trained right now, by which process."""
    # Still unfinished: one that finished while the data was read is no longer a duplicate.
    same = [folder for folder, info in alike
            if info.get("train_fingerprint_sha256") == fingerprint and (folder / "run.json").is_file()]
    if not same:
        return
    idle = [folder for folder in same if runs.training_process(folder) is None]
    if idle:
        folder = idle[0]
        raise UserError(f"an unfinished run with the same config, seed and training data exists: {folder} "
                        f"({progress_of(folder, config)}); continue it with: "
                        f"{hints.resume_run(task.name, folder, runs_root)} (or add --new-run to start a new "
                        "run beside it)")
    folder = same[0]
    raise UserError(f"a run with the same config, seed and training data is being trained right now by "
                    f"{runs.describe_owner(runs.training_process(folder))}: {folder}; wait for it to finish "
                    "(or add --new-run to train another beside it)")


def progress_of(run_dir: Path, config) -> str:
    """How far an unfinished run got, from its backup: "2 of 5 epochs done"."""
    from lstmkit.callbacks import RunBackup

    try:
        state = runs.read_json(run_dir / "backup" / RunBackup.STATE_FILE)
    except (OSError, ValueError):
        state = {}
    if state.get("training_done"):
        return "training ended; its final evaluation is left"
    epochs = state.get("epochs", 0)
    return f"{epochs} of {config.train.epochs} epoch{'s' if config.train.epochs != 1 else ''} done"
