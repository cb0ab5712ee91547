"""Training, written once for every task: ``train(task, config, data_source)``.

A run writes ``runs/<task>/<run-id>/``: ``config.json`` (resolved config),
``command.txt``, ``run.json`` (data source, seed, training-data fingerprint, library
versions), ``preprocessing.json`` (what was adapted on training data), ``history.csv``,
``tensorboard/``, ``best.keras`` (best checkpoint), ``metrics.json`` and
``training_curves.png``. Until it finishes it lives under ``<run-id>.partial`` with a
``backup/`` that ``--resume`` continues from.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import sys
from pathlib import Path

from lstmkit import config as config_lib
from lstmkit import data as data_lib
from lstmkit import runs
from lstmkit.errors import UserError
from lstmkit.task import Task


@dataclasses.dataclass
class RunResult:
    run_dir: Path
    metrics: dict


def seed_everything(seed: int) -> None:
    """Same seed, same machine, same result: seeds Python, NumPy and TensorFlow and
    asks TensorFlow for deterministic kernels."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def compile_model(task: Task, model, config, steps_per_epoch: int) -> None:
    """Adam with the config's learning-rate schedule, global-norm clipping and optional
    exponential moving average, and the task's loss and metrics."""
    import keras

    from lstmkit.callbacks import learning_rate

    settings = config.train
    optimizer = keras.optimizers.Adam(
        learning_rate=learning_rate(settings, steps_per_epoch),
        global_clipnorm=settings.global_clipnorm or None,
        use_ema=settings.ema_momentum > 0,
        ema_momentum=settings.ema_momentum or 0.99,
    )
    model.compile(optimizer=optimizer, loss=task.loss(config), metrics=task.metrics(config))


def fit_datasets(task: Task, splits, config, preprocessing: dict, seed: int):
    """Batched (train, validation) datasets for ``fit``, and the number of training
    batches per epoch; the task batches its training data (``training_batches``)."""
    train = task.training_batches(splits.train, config, preprocessing, seed)
    steps = data_lib.count(train)
    return train, task.evaluation_batches(splits.validation, config), max(steps, 1)


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


def progress_verbosity() -> int:
    """A live progress bar on a terminal, one line per epoch in logs and CI."""
    return 1 if sys.stdout.isatty() else 2


def best_logged_value(history_csv: Path, monitor: str, direction: str):
    """The best value of ``monitor`` in a CSVLogger file, or None."""
    if not history_csv.is_file():
        return None
    with history_csv.open(newline="") as handle:
        values = [float(row[monitor]) for row in csv.DictReader(handle) if row.get(monitor)]
    if not values:
        return None
    return max(values) if direction == "max" else min(values)


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
) -> RunResult:
    """Train ``task`` with ``config`` on ``data_source`` and return the finished run.

    With ``resume`` (a run id, folder or 'latest'), continue an unfinished run from its
    last completed epoch, with that run's own config, data, seed and strategy.
    ``strategy`` is a ``lstmkit.distribute`` strategy name (default: "default");
    ``train.batch_size`` is per replica. With ``merge_validation`` the validation split
    joins the training data (a final fit after tuning): the run trains for
    ``train.epochs`` with no validation, keeps the weights of its lowest training loss,
    and reports test metrics only.
    """
    import keras

    from lstmkit import distribute
    from lstmkit.callbacks import EpochTimer

    run_dir = None
    if resume is not None:
        run_dir = runs.find_run(runs_root, task.name, resume, partial=True)
        info = runs.read_json(run_dir / "run.json")
        config = config_lib.from_dict(task.config_class, runs.read_json(run_dir / "config.json"))
        data_source, seed = info["data"], info["seed"]
        strategy = strategy or info.get("strategy")
        merge_validation = info.get("validation_merged_into_train", False)
    strategy_name = strategy or "default"
    # A bad TF_CONFIG is reported before any data is read.
    strategy = distribute.make_strategy(strategy_name)
    replicas = strategy.num_replicas_in_sync

    seed_everything(seed)
    # Everything that can fail on bad input happens before a run directory exists.
    splits = task.load_data(data_source, config)
    if merge_validation:
        splits = dataclasses.replace(splits, train=splits.train.concatenate(splits.validation),
                                     description=f"{splits.description}; validation merged into train")
    train_fingerprint = data_lib.fingerprint(splits.train)

    if run_dir is None:
        preprocessing = task.adapt(config, splits.train)
        run_dir = runs.new_run_dir(runs_root, task.name)
        runs.write_json(run_dir / "preprocessing.json", preprocessing)
        runs.write_json(run_dir / "config.json", config_lib.to_dict(config))
        (run_dir / "command.txt").write_text(command + "\n", encoding="utf-8")
        runs.write_json(run_dir / "run.json", {
            "task": task.name,
            "data": data_source,
            "data_description": splits.description,
            "seed": seed,
            "strategy": strategy_name,
            "validation_merged_into_train": merge_validation,
            "replicas": replicas,
            "train_fingerprint_sha256": train_fingerprint,
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "versions": runs.library_versions(),
        })
    elif info["train_fingerprint_sha256"] != train_fingerprint:
        raise UserError(
            f"the training data of {data_source} changed since run {run_dir.name} started; "
            "start a new run instead of --resume"
        )
    else:
        preprocessing = runs.read_json(run_dir / "preprocessing.json")

    splits = task.encode_splits(splits, config, preprocessing)
    settings = config.train
    # Batches hold the global batch: each replica's share of it is train.batch_size.
    global_config = dataclasses.replace(config, train=dataclasses.replace(
        settings, batch_size=settings.batch_size * replicas))
    train_batches, validation_batches, steps_per_epoch = fit_datasets(
        task, splits, global_config, preprocessing, seed)
    if strategy_name == "multiworker":
        train_batches = distribute.shard_by_batch(train_batches)
        validation_batches = distribute.shard_by_batch(validation_batches)
    with strategy.scope():
        model = task.build_model(config, preprocessing)
        compile_model(task, model, config, steps_per_epoch)
    monitor, mode = ("loss", "min") if merge_validation else (task.objective, task.objective_direction)
    best_checkpoint = run_dir / "best.keras"
    # Order matters: the backup holds the raw weights (and the EMA in the optimizer);
    # with averaging on, the averaged weights are swapped in at each epoch's end, before
    # early stopping and the checkpoint look at them.
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        *training_callbacks(settings, monitor, mode),
        keras.callbacks.EarlyStopping(
            monitor=monitor, mode=mode, patience=settings.patience, restore_best_weights=True
        ),
        keras.callbacks.ModelCheckpoint(
            str(best_checkpoint), monitor=monitor, mode=mode, save_best_only=True,
            # After --resume, only beat what the run already reached.
            initial_value_threshold=best_logged_value(run_dir / "history.csv", monitor, mode),
        ),
        keras.callbacks.TerminateOnNaN(),
        EpochTimer(),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard")),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
    ]
    model.fit(
        train_batches,
        validation_data=None if merge_validation else validation_batches,
        epochs=settings.epochs,
        callbacks=callbacks,
        verbose=progress_verbosity(),
        shuffle=False,  # the dataset is already shuffled, with the run's seed
    )
    if not best_checkpoint.exists():
        raise UserError(
            f"training never produced a finite {monitor} (the loss diverged?); "
            f"lower train.learning_rate with --set. The unfinished run is in {run_dir}"
        )
    model.load_weights(str(best_checkpoint))

    from lstmkit import plots

    metrics = {} if merge_validation else {
        "validation": task.evaluate(model, splits.validation, config, preprocessing)}
    metrics["test"] = task.evaluate(model, splits.test, config, preprocessing)
    runs.write_json(run_dir / "metrics.json", metrics)
    plots.training_curves(run_dir / "history.csv", run_dir / "training_curves.png")
    return RunResult(runs.finish_run_dir(run_dir), metrics)
