"""What becomes a run folder, and what can be exported: nothing is left behind by a run
that fails before training, a run whose metrics are not finite stays unfinished, and
folder options that point under a file are one line."""

import json
import shutil

import pytest

from lstmkit.errors import UserError


def assert_one_line_error(code, out, err, *fragments):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def sentiment_task_class():
    from lstmkit.registry import get_task

    return type(get_task("sentiment"))


@pytest.mark.slow
def test_folder_options_under_a_regular_file_are_one_line(run_cli, tmp_path, tiny_run):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    for runs_dir in (a_file, a_file / "runs"):
        assert_one_line_error(*run_cli("train", "sentiment", "--preset", "tiny", "--runs-dir", runs_dir),
                              "runs folder", "a file", "choose a folder")
    for base_path in (a_file, a_file / "saved_models"):
        assert_one_line_error(*run_cli("export", "sentiment", "--run", tiny_run, "--base-path", base_path),
                              "export base path", "a file", "choose a folder")
    assert a_file.read_text() == "not a folder"


def test_a_model_that_cannot_be_built_leaves_no_run_folder(run_cli, tmp_path, shared_data, monkeypatch,
                                                           sentiment_task_class):
    def refuse(self):
        raise UserError("this model cannot be built")

    monkeypatch.setattr(sentiment_task_class, "build_model", refuse)
    runs = tmp_path / "runs"
    assert_one_line_error(*run_cli("train", "sentiment", "--preset", "tiny", "--data", shared_data / "mr_polarity",
                                   "--runs-dir", runs), "cannot be built")
    assert list(runs.rglob("*")) == []


@pytest.mark.slow
def test_a_run_with_non_finite_metrics_stays_unfinished_and_is_not_exported(run_cli, tmp_path, shared_data,
                                                                             monkeypatch, sentiment_task_class):
    evaluate = sentiment_task_class.evaluate

    def diverged(self, *args, **kwargs):
        return dict(evaluate(self, *args, **kwargs), loss=float("nan"))

    monkeypatch.setattr(sentiment_task_class, "evaluate", diverged)
    runs = tmp_path / "runs"
    assert_one_line_error(*run_cli("train", "sentiment", "--preset", "tiny", "--data", shared_data / "mr_polarity",
                                   "--runs-dir", runs, "--set", "train.epochs=1"),
                          "non-finite", "validation.loss", "train.learning_rate")
    (run_dir,) = (runs / "sentiment").iterdir()
    assert run_dir.name.endswith(".partial") and not (run_dir / "metrics.json").exists()
    base = tmp_path / "saved_models"
    assert_one_line_error(*run_cli("export", "sentiment", "--runs-dir", runs, "--base-path", base), "no finished run")
    assert_one_line_error(*run_cli("export", "sentiment", "--run", run_dir, "--base-path", base),
                          "unfinished", "--resume")
    assert not base.exists()


@pytest.mark.slow
def test_export_refuses_a_run_whose_metrics_are_not_finite(run_cli, tmp_path, tiny_run):
    copy = tmp_path / "runs" / "sentiment" / tiny_run.name
    shutil.copytree(tiny_run, copy)
    metrics = json.loads((copy / "metrics.json").read_text())
    metrics["test"]["loss"] = float("nan")
    (copy / "metrics.json").write_text(json.dumps(metrics))
    base = tmp_path / "saved_models"
    assert_one_line_error(*run_cli("export", "sentiment", "--run", copy, "--base-path", base),
                          "non-finite", "train.learning_rate")
    assert not base.exists()


def test_a_new_run_that_fails_before_its_first_epoch_ends_leaves_no_run_folder(run_cli, tmp_path, shared_data,
                                                                                monkeypatch):
    import keras

    def fails_in_the_first_epoch(self, *args, **kwargs):
        raise ValueError("a batch that cannot be made")

    monkeypatch.setattr(keras.Model, "fit", fails_in_the_first_epoch)
    runs = tmp_path / "runs"
    with pytest.raises(ValueError, match="a batch that cannot be made"):
        run_cli("train", "sentiment", "--preset", "tiny", "--data", shared_data / "mr_polarity", "--runs-dir", runs)
    assert list((runs / "sentiment").iterdir()) == []


def test_resuming_a_finished_run_is_refused_and_leaves_it_as_it_was(run_cli, tmp_path):
    """--resume with a finished run's id used to train it again in place, then cut
    '.partial' worth of characters off its name."""
    finished = tmp_path / "runs" / "sentiment" / "20250101-120000-abcd"
    finished.mkdir(parents=True)
    (finished / "run.json").write_text(json.dumps({"data": str(tmp_path / "gone.csv"), "seed": 1}))
    (finished / "config.json").write_text("{}")
    assert_one_line_error(*run_cli("train", "sentiment", "--resume", finished.name, "--runs-dir", tmp_path / "runs"),
                          "run 20250101-120000-abcd is finished", "nothing to resume", "evaluate sentiment --run")
    assert sorted(path.name for path in finished.iterdir()) == ["config.json", "run.json"]
