"""Prediction with a trained run, for any task: raw inputs in, one record per input out."""

from __future__ import annotations

import dataclasses

from lstmkit.run import Run


@dataclasses.dataclass
class Predictions:
    #: One JSON-able record per predicted input, in input order; ``"text"`` is its
    #: one-line rendering.
    records: list[dict]
    #: Inputs that could not be predicted (an unreadable file...), each with a reason.
    rejected: dict[str, str]


def predict_run(run: Run, items: list[str], options: dict | None = None) -> Predictions:
    """Predict ``items`` (command-line inputs: texts, file names...) with the best model
    of ``run``, as one pipeline: the task's ``preprocess``, the model, the task's
    ``postprocess``. ``options`` holds the values of the task's own predict options.
    Items the task refuses, and those whose outputs are not finite, are set aside with
    their reasons; the rest are still predicted."""
    task, options, model = run.task, options or {}, run.model
    prepared = task.preprocess(items, options)
    rejected, items = dict(prepared.rejected), prepared.items
    records = []
    if items:
        outputs = model.predict(prepared.inputs, verbose=0, batch_size=run.config.train.batch_size)
        finite = finite_rows(outputs)
        for item, ok in zip(items, finite):
            if not ok:  # a NaN forecast or probability is never printed as a result
                rejected[item] = NOT_FINITE
        if not all(finite):
            items = [item for item, ok in zip(items, finite) if ok]
            outputs = _rows(outputs, finite)
        if items:
            records = task.postprocess(items, outputs, options, prepared.notes)
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
