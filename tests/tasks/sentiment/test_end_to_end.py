"""Train a tiny model on real MR sentences, then evaluate, predict, export and serve it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import ROOT

# Every test trains a model, tunes, or needs the session-trained run.
pytestmark = pytest.mark.slow


def test_run_folder_holds_everything_a_run_should(tiny_run):
    names = {path.name for path in tiny_run.iterdir()}
    assert {"config.json", "command.txt", "run.json", "preprocessing.json", "history.csv", "tensorboard",
            "best.keras", "metrics.json", "training_curves.png"} <= names
    assert "backup" not in names  # BackupAndRestore cleans up after a finished run
    run = json.loads((tiny_run / "run.json").read_text())
    assert run["seed"] == 7 and len(run["train_fingerprint_sha256"]) == 64
    assert "keras" in run["versions"] and "python" in run["versions"]
    assert json.loads((tiny_run / "config.json").read_text())["lstm"]["units"] == 8
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["test"]["examples"] == 1_066
    assert len((tiny_run / "history.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs
    assert (tiny_run / "training_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_same_seed_same_run(tiny_run, shared_data, tmp_path, run_cli):
    code, out, _ = run_cli("train", "sentiment", "--preset", "tiny", "--data", shared_data / "mr_polarity",
                           "--runs-dir", tmp_path, "--seed", "7")
    assert code == 0
    (again,) = (tmp_path / "sentiment").iterdir()
    first = json.loads((tiny_run / "metrics.json").read_text())["test"]
    second = json.loads((again / "metrics.json").read_text())["test"]
    assert first["loss"] == second["loss"] and first["confusion_matrix"] == second["confusion_matrix"]


def test_evaluate_prints_and_saves_metrics(tiny_run, run_cli):
    code, out, err = run_cli("evaluate", "sentiment", "--run", tiny_run)
    assert code == 0, err
    for word in ("accuracy", "precision", "recall", "f1", "confusion matrix"):
        assert word in out
    saved = json.loads((tiny_run / "evaluation-test.json").read_text())
    assert sum(map(sum, saved["confusion_matrix"])) == saved["examples"] == 1_066
    # The saved best checkpoint is the model whose test metrics training reported.
    reported = json.loads((tiny_run / "metrics.json").read_text())["test"]
    assert saved["confusion_matrix"] == reported["confusion_matrix"]
    assert (tiny_run / "confusion_matrix-test.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_a_whole_outside_file(tiny_run, run_cli, shared_data):
    code, out, err = run_cli("evaluate", "sentiment", "--run", tiny_run, "--split", "all",
                             "--data", shared_data / "sst2_glue" / "dev.tsv")
    assert code == 0, err
    (report,) = tiny_run.glob("evaluation-all-dev.tsv-*.json")
    saved = json.loads(report.read_text())
    # Every one of SST-2 dev's 872 rows: nothing held out, and the tiny preset's cap of
    # 400 training examples (a training setting) does not apply to scoring.
    assert saved["examples"] == 872 and saved["data"].endswith("dev.tsv")


def test_evaluate_scores_the_runs_test_source_and_splits_another_source_as_usual(tiny_run, run_cli, shared_data,
                                                                                 tmp_path):
    import shutil

    # The tiny run as if trained with data.test_source (evaluation reads the saved config).
    run = shutil.copytree(tiny_run, tmp_path / "runs" / "sentiment" / tiny_run.name)
    for report in run.glob("evaluation-*"):
        report.unlink()
    tests = tmp_path / "tests.csv"
    tests.write_text("text,label\na gripping film,1\ndull and long,0\nlovely,1\n")
    config = json.loads((run / "config.json").read_text())
    config["data"]["test_source"] = str(tests)
    (run / "config.json").write_text(json.dumps(config))
    code, out, err = run_cli("evaluate", "sentiment", "--run", run)
    assert code == 0 and "test split of" in out and ": 3 examples" in out, err
    # Another --data is split as usual (10% of SST-2 dev's 872), unless test_source is given again.
    dev = shared_data / "sst2_glue" / "dev.tsv"
    code, out, err = run_cli("evaluate", "sentiment", "--run", run, "--data", dev)
    assert code == 0 and ": 87 examples" in out, err
    code, out, err = run_cli("evaluate", "sentiment", "--run", run, "--data", dev, "--set",
                             f"data.test_source={tests}")
    assert code == 0 and ": 3 examples" in out, err


def test_predict_arguments_empty_and_huge_inputs(tiny_run, run_cli):
    huge = "good " * 20_000
    code, out, err = run_cli("predict", "sentiment", "--run", tiny_run, "--format", "json",
                             "a fine film", "", huge)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["input"] for row in rows] == ["a fine film", "", huge]
    for row in rows:
        assert row["label"] in ("negative", "positive")
        assert abs(sum(row["probabilities"].values()) - 1) < 1e-5


def test_predict_from_file_in_text_format(tiny_run, run_cli, tmp_path):
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("one\ntwo\n")
    code, out, _ = run_cli("predict", "sentiment", "--run", tiny_run, "--file", inputs)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].split("\t")[2] == "one"
    assert lines[0].split("\t")[0] in ("negative", "positive") and 0.5 <= float(lines[0].split("\t")[1]) <= 1
    inputs.write_bytes(b"caf\xe9\n")
    code, _, err = run_cli("predict", "sentiment", "--run", tiny_run, "--file", inputs)
    assert code == 2 and "is not UTF-8" in err and len(err.strip().splitlines()) == 1


def test_export_round_trip_matches_the_in_memory_model(tiny_run, run_cli, tmp_path):
    import keras

    import lstmkit.layers  # noqa: F401

    base = tmp_path / "saved_models"
    for expected_version in (1, 2):
        code, out, err = run_cli("export", "sentiment", "--run", tiny_run, "--base-path", base)
        assert code == 0, err
        assert out.strip().endswith(str(base / "sentiment" / str(expected_version)))
    assert sorted(path.name for path in (base / "sentiment").iterdir()) == ["1", "2"]
    served = tf.saved_model.load(str(base / "sentiment" / "2")).signatures["serving_default"]
    model = keras.saving.load_model(tiny_run / "best.keras")
    texts = ["a gorgeous , witty film", "tedious and flat", "", "the plot is thin but the acting is great"]
    for batch in (texts[:1], texts):
        outputs = served(text=tf.constant(batch))
        expected = model.predict(tf.constant(batch), verbose=0)
        np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-6)
        labels = [label.decode() for label in outputs["label"].numpy()]
        assert labels == [("negative", "positive")[i] for i in expected.argmax(-1)]
    extra = json.loads((base / "sentiment" / "2" / "assets.extra" / "lstmkit.json").read_text())
    assert extra["labels"] == ["negative", "positive"] and extra["metrics"]["test"]["examples"] == 1_066


def test_tune_writes_a_best_config_that_train_accepts(shared_data, tmp_path, run_cli):
    data = shared_data / "mr_polarity"
    code, out, err = run_cli("tune", "sentiment", "--preset", "tiny", "--data", data, "--tuner", "random",
                             "--max-trials", "2", "--max-epochs", "1", "--runs-dir", tmp_path,
                             "--set", "data.max_train_examples=100")
    assert code == 0, err
    (tune_dir,) = (tmp_path / "sentiment").glob("tune-*")
    trials = json.loads((tune_dir / "trials.json").read_text())
    assert len(trials) == 2 and all(trial["status"] == "COMPLETED" for trial in trials)
    best = tune_dir / "best_config.json"
    assert str(best) in out
    code, _, err = run_cli("train", "sentiment", "--config", best, "--data", data, "--runs-dir", tmp_path / "runs",
                           "--set", "train.epochs=1", "--set", "data.max_train_examples=100",
                           "--set", "vocab_size=500")
    assert code == 0, err
    trained = json.loads(next((tmp_path / "runs" / "sentiment").iterdir()).joinpath("config.json").read_text())
    best_values = json.loads(best.read_text())
    assert trained["lstm"] == best_values["lstm"] and trained["pooling"] == best_values["pooling"]


@pytest.mark.parametrize("file_option", [[], ["--file", "-"]])
def test_predict_reads_stdin(tiny_run, file_option):
    result = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "predict", "sentiment", "--run", str(tiny_run), *file_option],
        input="first line\nsecond line\n", capture_output=True, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert result.returncode == 0, result.stderr
    assert [line.split("\t")[2] for line in result.stdout.splitlines()] == ["first line", "second line"]
    assert result.stderr == ""  # no TensorFlow log noise on a normal run


@pytest.mark.parametrize("averaging", [
    ["train.ema_momentum=0.9"],
    ["train.weight_averaging=swa", "train.averaging_start_epoch=1",
     "train.lr_schedule=cosine", "train.warmup_epochs=0.5"],
    ["train.weight_averaging=nt_asgd", "train.averaging_patience=0", "train.lr_schedule=plateau"],
])
def test_weight_averaging_checkpoints_the_averaged_weights(shared_data, tmp_path, run_cli, averaging):

    import lstmkit.layers  # noqa: F401

    settings = [arg for item in averaging for arg in ("--set", item)]
    code, _, err = run_cli("train", "sentiment", "--preset", "tiny", "--data", shared_data / "mr_polarity",
                           "--runs-dir", tmp_path, "--set", "train.epochs=3", *settings)
    assert code == 0, err
    (run_dir,) = (tmp_path / "sentiment").iterdir()
    reported = json.loads((run_dir / "metrics.json").read_text())["validation"]
    history = (run_dir / "history.csv").read_text().strip().splitlines()
    header = history[0].split(",")
    best_logged = max(float(line.split(",")[header.index("val_accuracy")]) for line in history[1:])
    # Validation during training and the saved checkpoint both use the averaged weights.
    assert abs(reported["accuracy"] - best_logged) < 1e-6
