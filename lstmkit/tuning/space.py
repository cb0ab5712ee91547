"""Search-space helpers for tasks' ``search_space(hp, config)``: each maps Keras Tuner's
``hp`` onto a copy of a config section, defaulting every hyperparameter to the value
the config already has (so a search's first trial is the config it started from)."""

from __future__ import annotations

import dataclasses


def choice(hp, name: str, values: list, current):
    """``hp.Choice`` whose default is the current config value when it is a choice."""
    return hp.Choice(name, values, default=current if current in values else None)


def rate(hp, name: str, current: float, high: float = 0.5, step: float = 0.05):
    """A dropout-like rate in [0, high], defaulting to the current value."""
    return hp.Float(name, 0.0, high, step=step, default=min(current, high))


def lstm_space(hp, lstm, units: list[int], layers: list[int], rates: tuple[str, ...], bidirectional: bool = True):
    """The searched copy of ``lstm`` (an ``LSTMStackConfig``): width, depth, direction
    (unless ``bidirectional`` is False: a language model reads left to right) and the
    dropout-like ``rates`` a task tunes, each named ``lstm.<key>``."""
    searched = {"units": choice(hp, "lstm.units", units, lstm.units),
                "layers": choice(hp, "lstm.layers", layers, lstm.layers)}
    if bidirectional:
        searched["bidirectional"] = hp.Boolean("lstm.bidirectional", default=lstm.bidirectional)
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
