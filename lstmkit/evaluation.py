"""Loading a trained run and evaluating it on data, for any task (the arithmetic of
the metrics is in ``lstmkit.scoring``)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

from lstmkit import config as config_lib
from lstmkit import runs
from lstmkit.errors import UserError
from lstmkit.training.setup import saved_config, saved_preprocessing

if TYPE_CHECKING:
    from lstmkit.task import Task


def load_run(task: Task, run_dir: Path):
    """The config and best model of a finished run."""
    from lstmkit.saving import load_model

    checkpoint = run_dir / "best.keras"
    if not checkpoint.is_file():
        # A run folder is <runs root>/<task>/<run id>.
        raise UserError(f"run {run_dir} has no best.keras yet; finish it with "
                        f"{runs.resume_command(task.name, run_dir, run_dir.parent.parent)}, or pick another run")
    config = saved_config(task, run_dir)
    model = load_model(checkpoint)
    return config, model


def evaluate_run(task: Task, run_dir: Path, data_source: str | None, split: str,
                 data_overrides: list[str] = ()) -> tuple[dict, Path]:
    """Evaluate a run's best model on ``split`` of ``data_source`` (default: the data it
    was trained on); ``split="all"`` scores every example of the source (an outside test
    file of any size). ``data_overrides`` ("data.KEY=VALUE") say how to read a source
    that differs from the run's (other column names...). Writes
    ``evaluation-<split>[-<source>].json`` (one per outside source, so one does not
    overwrite another) and, for classifiers, a confusion-matrix PNG beside it (for
    forecasters, a forecast-with-intervals PNG); returns the metrics and the JSON path."""
    from lstmkit import plots

    config, model = load_run(task, run_dir)
    not_data = [item for item in data_overrides if not item.startswith("data.")]
    if not_data:
        raise UserError(f"{not_data[0]}: evaluation can change how data is read (data.* keys) but not the "
                        "trained model; train another run to change the rest")
    config = config_lib.apply_overrides(config, list(data_overrides))
    trained_on = runs.read_json(run_dir / "run.json")["data"]
    source = data_source or trained_on
    if source != trained_on and getattr(getattr(config, "data", None), "test_source", "") and not any(
            item.startswith("data.test_source=") for item in data_overrides):
        # A run's separate test file (data.test_source) went with the data it trained on:
        # another source is split as usual, unless --set data.test_source=... names one again.
        config = config_lib.apply_overrides(config, ["data.test_source="])
    preprocessing = saved_preprocessing(task, run_dir)
    if split == "all":
        dataset = task.encode_labels(task.load_all(source, config), config, preprocessing)
    else:
        dataset = getattr(task.encode_splits(task.load_data(source, config), config, preprocessing), split)
    metrics = task.evaluate(model, dataset, config, preprocessing)
    metrics["data"] = source
    metrics["split"] = split
    name = f"evaluation-{split}" if source == trained_on else f"evaluation-{split}-{source_slug(source)}"
    report = run_dir / f"{name}.json"
    runs.write_json(report, metrics)
    if "confusion_matrix" in metrics:
        plots.confusion_matrix(metrics["confusion_matrix"], metrics["labels"],
                               run_dir / f"{name.replace('evaluation', 'confusion_matrix', 1)}.png")
    if "forecast_plot" in metrics:
        plots.forecast(**metrics["forecast_plot"], output=run_dir / f"{name.replace('evaluation', 'forecast', 1)}.png")
    return metrics, report


def source_slug(source: str) -> str:
    """A short file-name-safe name for a data source: its last path part and a hash of
    the whole (two files called test.csv in different folders get different names)."""
    last = re.sub(r"[^A-Za-z0-9._-]+", "_", source.rstrip("/").rsplit("/", 1)[-1])[:40].strip("._") or "data"
    return f"{last}-{hashlib.sha256(source.encode()).hexdigest()[:8]}"
