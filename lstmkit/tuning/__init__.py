"""Hyperparameter search with Keras Tuner, written once for every task.

- ``space``: helpers for a task's ``search_space(hp, config)`` (widths, rates, the
  learning rate...);
- ``search``: running a search (``tune``) in trial processes, resuming one, and
  retraining its best configuration;
- ``cluster``: Keras Tuner's distributed mode (a chief serving the oracle, workers
  running trials) for searches across processes and machines.
"""

from lstmkit.tuning.search import SearchSettings, TuneResult, tune

__all__ = ["SearchSettings", "TuneResult", "tune"]
