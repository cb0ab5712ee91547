"""Prediction with a trained run, for any task: raw inputs in, one record per input out."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from lstmkit.training.setup import saved_preprocessing

if TYPE_CHECKING:
    from lstmkit.task import Task


@dataclasses.dataclass
class Predictions:
    #: One JSON-able record per predicted input, in input order; ``"text"`` is its
    #: one-line rendering.
    records: list[dict]
    #: Inputs that could not be predicted (an unreadable file...), each with a reason.
    rejected: dict[str, str]


def predict_run(task: Task, run_dir: Path, items: list[str], options: dict | None = None) -> Predictions:
    """Predict ``items`` (command-line inputs: texts, file names...) with the best model
    of ``run_dir``; ``options`` holds the values of the task's ``predict_options``. Items
    the task refuses are set aside with their reasons and the rest are still predicted."""
    from lstmkit.evaluation import load_run

    config, model = load_run(task, run_dir)
    config = task.prediction_config(config, options or {})
    preprocessing = saved_preprocessing(task, run_dir)
    rejected = task.rejected_predict_inputs(config, preprocessing, items)
    items = [item for item in items if item not in rejected]
    records = []
    if items:
        outputs = model.predict(task.parse_predict_inputs(config, items), verbose=0,
                                batch_size=config.train.batch_size)
        finite = finite_rows(outputs)
        for item, ok in zip(items, finite):
            if not ok:  # a NaN forecast or probability is never printed as a result
                rejected[item] = NOT_FINITE
        if not all(finite):
            items = [item for item, ok in zip(items, finite) if ok]
            outputs = _rows(outputs, finite)
        if items:
            records = task.prediction_records(config, preprocessing, model, items, outputs)
    return Predictions(records, rejected)


NOT_FINITE = ("the model's output is not a finite number for this input (its values are likely too large for "
              "float32 arithmetic); send values of a smaller magnitude")


def _arrays(outputs) -> list:
    import numpy as np

    values = outputs.values() if isinstance(outputs, dict) else outputs if isinstance(outputs, (list, tuple)) \
        else [outputs]
    return [np.asarray(value) for value in values]


def finite_rows(outputs) -> list[bool]:
    """For each input row, whether every floating-point output of it is finite."""
    import numpy as np

    arrays = [array for array in _arrays(outputs) if array.ndim]
    finite = np.ones(len(arrays[0]) if arrays else 0, bool)
    for array in arrays:
        if array.dtype.kind == "f":
            finite &= np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    return finite.tolist()


def _rows(outputs, keep: list[bool]):
    """``outputs`` (an array, a list or a dict of arrays) with only the rows in ``keep``."""
    import numpy as np

    keep = np.asarray(keep)
    if isinstance(outputs, dict):
        return {name: np.asarray(value)[keep] for name, value in outputs.items()}
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(np.asarray(value)[keep] for value in outputs)
    return np.asarray(outputs)[keep]
