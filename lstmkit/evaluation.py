"""Evaluating a trained run on data, for any task (the arithmetic of the metrics is in
``lstmkit.scoring`` and the tasks)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from lstmkit import config as config_lib
from lstmkit import runs
from lstmkit.errors import UserError
from lstmkit.run import Run
from lstmkit.task import encode_splits, whole_source


def evaluate_run(run: Run, data_source: str | None, split: str, data_overrides: list[str] = ()) -> tuple[dict, Path]:
    """Evaluate a run's best model on ``split`` of ``data_source`` (default: the data it
    was trained on); ``split="all"`` scores every example of the source (an outside test
    file of any size). ``data_overrides`` ("data.KEY=VALUE") say how to read a source
    that differs from the run's (other column names...). Writes
    ``evaluation-<split>[-<source>].json`` (one per outside source, so one does not
    overwrite another) and the figures the task's ``report.plots`` name beside it;
    returns the metrics and the JSON path."""
    from lstmkit import plots

    not_data = [item for item in data_overrides if not item.startswith("data.")]
    if not_data:
        raise UserError(f"{not_data[0]}: evaluation can change how data is read (data.* keys) but not the "
                        "trained model; train another run to change the rest")
    model = run.model
    config = config_lib.apply_overrides(run.config, list(data_overrides))
    trained_on = run.data_source
    source = data_source or trained_on
    if source != trained_on and getattr(getattr(config, "data", None), "test_source", "") and not any(
            item.startswith("data.test_source=") for item in data_overrides):
        # A run's separate test file (data.test_source) went with the data it trained on:
        # another source is split as usual, unless --set data.test_source=... names one again.
        config = config_lib.apply_overrides(config, ["data.test_source="])
    task = run.task.bind(config)
    if split == "all":
        dataset = task.encode_labels(whole_source(task, source))
    else:
        dataset = getattr(encode_splits(task, task.load_data(source)), split)
    metrics = task.evaluate(model, dataset)
    metrics["data"] = source
    metrics["split"] = split
    name = f"evaluation-{split}" if source == trained_on else f"evaluation-{split}-{source_slug(source)}"
    report = run.folder / f"{name}.json"
    runs.write_json(report, metrics)
    for plot in task.report.plots:
        plots.PLOTS[plot](metrics, run.folder / f"{name.replace('evaluation', plot, 1)}.png")
    return metrics, report


def source_slug(source: str) -> str:
    """A short file-name-safe name for a data source: its last path part and a hash of
    the whole (two files called test.csv in different folders get different names)."""
    last = re.sub(r"[^A-Za-z0-9._-]+", "_", source.rstrip("/").rsplit("/", 1)[-1])[:40].strip("._") or "data"
    return f"{last}-{hashlib.sha256(source.encode()).hexdigest()[:8]}"
