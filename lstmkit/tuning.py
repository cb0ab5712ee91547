"""Hyperparameter search with Keras Tuner, written once for every task.

A task's search space is its ``search_space(hp, config)``: it maps ``hp`` onto a copy
of the config, and the same ``build_model`` as training builds the model. Preprocessing
is adapted once on the training data before the search.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from lstmkit import config as config_lib
from lstmkit import data as data_lib
from lstmkit import runs
from lstmkit.task import Task
from lstmkit.training import (
    compile_model,
    fit_datasets,
    progress_verbosity,
    seed_everything,
    training_callbacks,
)

TUNERS = ("hyperband", "random", "bayesian")


def choice(hp, name: str, values: list, current):
    """``hp.Choice`` whose default is the current config value when it is a choice."""
    return hp.Choice(name, values, default=current if current in values else None)


def rate(hp, name: str, current: float, high: float = 0.5, step: float = 0.05):
    """A dropout-like rate in [0, high], defaulting to the current value."""
    return hp.Float(name, 0.0, high, step=step, default=min(current, high))


def lstm_space(hp, lstm, units: list[int], layers: list[int], rates: tuple[str, ...]):
    """The searched copy of ``lstm`` (an ``LSTMStackConfig``): width, depth and the
    dropout-like ``rates`` a task tunes, each named ``lstm.<key>``."""
    searched = {"units": choice(hp, "lstm.units", units, lstm.units),
                "layers": choice(hp, "lstm.layers", layers, lstm.layers)}
    searched.update({name: rate(hp, f"lstm.{name}", getattr(lstm, name)) for name in rates})
    return dataclasses.replace(lstm, **searched)


def training_space(hp, train, learning_rates: tuple[float, float], batch_sizes: list[int]):
    """The searched copy of ``train``: a log-uniform learning rate and a batch size."""
    low, high = learning_rates
    return dataclasses.replace(
        train,
        learning_rate=hp.Float("train.learning_rate", low, high, sampling="log",
                               default=min(max(train.learning_rate, low), high)),
        batch_size=choice(hp, "train.batch_size", batch_sizes, train.batch_size),
    )


def dropout_multiplier(hp, lstm, current: float):
    """The one knob that scales every dropout rate (``dropout_multiplier``). Its top
    keeps the largest scaled rate of ``lstm`` (an ``LSTMStackConfig``) at 0.95 or below;
    searched rates stay <= 0.5, so 0.5 is the largest assumed for them."""
    largest = max(0.5, *(getattr(lstm, name) for name in lstm.RATES))
    top = max(round(0.95 / largest, 2), 0.5)
    return hp.Float("dropout_multiplier", 0.5, top, default=min(max(current, 0.5), top))


def _hypermodel_class():
    import keras_tuner

    class TaskHyperModel(keras_tuner.HyperModel):
        """Builds and fits one trial: ``hp`` → task config → ``build_model``."""

        def __init__(self, task: Task, base_config, preprocessing: dict, splits, seed: int):
            super().__init__(name=task.name)
            self.task, self.base_config = task, base_config
            self.preprocessing, self.splits, self.seed = preprocessing, splits, seed

        def config(self, hp):
            return self.task.search_space(hp, self.base_config)

        def build(self, hp):
            config = self.config(hp)
            model = self.task.build_model(config, self.preprocessing)
            batches = self.task.training_batches(self.splits.train, config, self.preprocessing, self.seed)
            steps_per_epoch = max(data_lib.count(batches), 1)
            compile_model(self.task, model, config, steps_per_epoch)
            return model

        def fit(self, hp, model, *args, **kwargs):
            # The batch size is a training choice, so batching happens per trial.
            config = self.config(hp)
            settings = config.train
            train, validation, _ = fit_datasets(self.task, self.splits, config, self.preprocessing, self.seed)
            # Weight averaging and a plateau schedule are part of the trial's training.
            callbacks = training_callbacks(settings, self.task.objective,
                                           self.task.objective_direction)
            kwargs["callbacks"] = callbacks + list(kwargs.get("callbacks") or [])
            return model.fit(train, validation_data=validation, verbose=progress_verbosity(),
                             shuffle=False, **kwargs)

    return TaskHyperModel


@dataclasses.dataclass
class TuneResult:
    directory: Path
    best_config: object
    trials: list[dict]


def tune(
    task: Task,
    config,
    data_source: str,
    *,
    tuner: str = "hyperband",
    max_trials: int = 10,
    max_epochs: int | None = None,
    runs_root: str | Path = "runs",
    seed: int = 42,
    command: str = "",
) -> TuneResult:
    """Search ``task``'s space starting from ``config``; write ``best_config.json``
    (accepted by ``train --config``) and ``trials.json`` into ``runs/<task>/tune-<id>/``.

    ``max_trials`` bounds random and Bayesian search; Hyperband's budget is set by
    ``max_epochs`` (default: the config's ``train.epochs``).
    """
    import keras
    import keras_tuner

    seed_everything(seed)
    splits = task.load_data(data_source, config)
    max_epochs = max_epochs or config.train.epochs
    directory = Path(runs_root) / task.name / f"tune-{runs.new_run_id()}"
    directory.mkdir(parents=True)
    (directory / "command.txt").write_text(command + "\n", encoding="utf-8")
    preprocessing = task.adapt(config, splits.train)
    runs.write_json(directory / "preprocessing.json", preprocessing)
    splits = task.encode_splits(splits, config, preprocessing)

    hypermodel = _hypermodel_class()(task, config, preprocessing, splits, seed)
    objective = keras_tuner.Objective(task.objective, direction=task.objective_direction)
    common = dict(objective=objective, seed=seed, directory=str(directory), project_name="search",
                  overwrite=False)
    if tuner == "hyperband":
        search = keras_tuner.Hyperband(hypermodel, max_epochs=max_epochs, factor=3, **common)
        search_kwargs = {}
    elif tuner == "random":
        search = keras_tuner.RandomSearch(hypermodel, max_trials=max_trials, **common)
        search_kwargs = {"epochs": max_epochs}
    else:
        search = keras_tuner.BayesianOptimization(hypermodel, max_trials=max_trials, **common)
        search_kwargs = {"epochs": max_epochs}
    early_stopping = keras.callbacks.EarlyStopping(
        monitor=task.objective, mode=task.objective_direction, patience=config.train.patience
    )
    search.search(callbacks=[early_stopping], **search_kwargs)

    trials = []
    for trial in search.oracle.get_best_trials(num_trials=len(search.oracle.trials)):
        trials.append({"trial": trial.trial_id, "score": trial.score, "status": trial.status,
                       "hyperparameters": trial.hyperparameters.values})
    best_config = hypermodel.config(search.get_best_hyperparameters(1)[0])
    runs.write_json(directory / "best_config.json", config_lib.to_dict(best_config))
    runs.write_json(directory / "trials.json", trials)
    return TuneResult(directory, best_config, trials)
