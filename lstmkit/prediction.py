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
        records = task.prediction_records(config, preprocessing, model, items, outputs)
    return Predictions(records, rejected)
