"""lstmkit.run.Run: a run folder opened once, as evaluate, predict, export and the rest see it."""

import json

import pytest

from lstmkit import config as config_lib
from lstmkit.errors import UserError
from lstmkit.registry import get_task
from lstmkit.run import Run


def write_run(folder, task, *, finished: bool, metrics=None):
    folder.mkdir(parents=True)
    config = task.tiny_config()
    (folder / "config.json").write_text(json.dumps(config_lib.to_dict(config)))
    (folder / "preprocessing.json").write_text(json.dumps(task.bind(config).placeholder_preprocessing().to_json()))
    (folder / "run.json").write_text(json.dumps({"task": task.name, "data": "some.csv", "seed": 7,
                                                 "train_fingerprint_sha256": "abc"}))
    if finished:
        (folder / "metrics.json").write_text(json.dumps(metrics))
        (folder / "history.csv").write_text("epoch,loss,val_loss\n0,1.5,1.25\n1,1.0,0.75\n")
    return folder


def test_a_finished_run_is_read_once_into_a_bound_task(tmp_path):
    task = get_task("forecasting")
    folder = write_run(tmp_path / "runs" / "forecasting" / "20261207-100000-abcd", task, finished=True,
                       metrics={"test": {"mase": 0.5}})
    run = Run.open(task, "latest", tmp_path / "runs")
    assert run.folder == folder and run.id == "20261207-100000-abcd" and run.runs_root == tmp_path / "runs"
    assert run.config == task.tiny_config() and run.task.config is run.config
    assert isinstance(run.preprocessing, task.preprocessing_class) and run.task.preprocessing is run.preprocessing
    assert run.data_source == "some.csv" and run.manifest["seed"] == 7
    assert run.finished and run.metrics == {"test": {"mase": 0.5}}
    assert [row["val_loss"] for row in run.history] == ["1.25", "0.75"]
    # Read when opened: a run in a folder that has since gone keeps its figures.
    (folder / "metrics.json").unlink()
    assert run.metrics == {"test": {"mase": 0.5}}
    run.require_finished()


def test_an_unfinished_run_names_the_command_that_finishes_it(tmp_path, monkeypatch):
    import sys

    monkeypatch.setattr(sys, "argv", ["lstmkit"])
    task = get_task("forecasting")
    folder = write_run(tmp_path / "forecasting" / "20261207-100000-abcd.partial", task, finished=False)
    run = Run.from_folder(task, folder)
    assert not run.finished and run.metrics is None and run.history == []
    hint = f"lstmkit train forecasting --resume 20261207-100000-abcd --runs-dir {tmp_path}"
    with pytest.raises(UserError, match="is unfinished; finish it first: " + hint):
        run.require_finished()
    with pytest.raises(UserError, match="has no best.keras yet; finish it with " + hint):
        run.model  # noqa: B018 (the property loads the model)


def test_a_run_of_another_task_is_refused_in_one_line(tmp_path):
    folder = write_run(tmp_path / "forecasting" / "20261207-100000-abcd", get_task("forecasting"), finished=True,
                       metrics={})
    with pytest.raises(UserError) as raised:
        Run.from_folder(get_task("textgen"), folder)
    assert "\n" not in str(raised.value)
