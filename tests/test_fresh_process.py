"""Every verb that loads a trained run, in a new process, on a run the test session
trained: a process that trained a model has imported every class the model uses, so only
a fresh one shows a class that loading forgets to register. The verbs of one check run
one after another in one new process (``tests.conftest.fresh_cli``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import fresh_cli

# Every test needs a session-trained run and spawns `python cli.py` processes.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RUN_FIXTURES = {"sentiment": "tiny_run", "speech_commands": "speech_run", "protein_ss": "protein_run",
                "textgen": "textgen_run", "forecasting": "forecasting_run"}


def predict_inputs(task_name, request) -> list[str]:
    if task_name == "speech_commands":
        return [str(next(request.getfixturevalue("speech_slice").glob("yes/*.wav")))]
    return {"sentiment": ["a gripping, funny film"], "protein_ss": ["MKVLAAGIVGLLLAAQPAMA"],
            "textgen": ["ROMEO:"], "forecasting": [",".join(["24.5"] * 30)]}[task_name]


def cli(*args, timeout=300) -> subprocess.CompletedProcess:
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, str(ROOT / "cli.py"), *map(str, args)], capture_output=True,
                            text=True, timeout=timeout, env=environment, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return result


@pytest.mark.parametrize("task_name", sorted(RUN_FIXTURES))
def test_a_new_process_evaluates_predicts_and_exports_a_trained_run(task_name, request, tmp_path):
    run_dir = request.getfixturevalue(RUN_FIXTURES[task_name])
    where = ["--run", run_dir, "--runs-dir", run_dir.parents[1]]

    evaluated, predicted, exported = fresh_cli(
        ["evaluate", task_name, *where],
        ["predict", task_name, *predict_inputs(task_name, request), "--format", "json", *where],
        ["export", task_name, "--base-path", tmp_path, *where])
    assert [evaluated[0], predicted[0], exported[0]] == [0, 0, 0], (evaluated[2], predicted[2], exported[2])
    report = json.loads((run_dir / "evaluation-test.json").read_text())
    assert report["examples"] > 0 and "saved:" in evaluated[1]

    records = [json.loads(line) for line in predicted[1].splitlines()]
    assert len(records) == 1 and records[0]

    assert (tmp_path / task_name / "1" / "saved_model.pb").is_file(), exported[1]


@pytest.mark.parametrize("task_name", ["sentiment", "speech_commands"])
def test_a_mixed_bfloat16_run_trains_predicts_and_exports_float32_signatures(task_name, request, tmp_path):
    import tensorflow as tf

    data = {"sentiment": lambda: request.getfixturevalue("shared_data") / "mr_polarity",
            "speech_commands": lambda: request.getfixturevalue("speech_slice")}[task_name]()
    runs = tmp_path / "runs"
    trained = cli("train", task_name, "--preset", "tiny", "--data", data, "--runs-dir", runs,
                  "--set", "train.precision=mixed_bfloat16", "--set", "train.epochs=1", timeout=600)
    assert "precision: mixed_bfloat16 (train.precision)" in trained.stdout
    (run_dir,) = (runs / task_name).iterdir()
    assert json.loads((run_dir / "run.json").read_text())["precision"] == "mixed_bfloat16"
    where = ["--run", run_dir.name, "--runs-dir", runs]
    predicted, doctor, exported = fresh_cli(
        ["predict", task_name, *predict_inputs(task_name, request), "--format", "json", *where],
        ["doctor", task_name, *where],
        ["export", task_name, "--base-path", tmp_path / "export", *where])
    assert [predicted[0], doctor[0], exported[0]] == [0, 0, 0], (predicted[2], doctor[2], exported[2])
    assert len(predicted[1].splitlines()) == 1
    assert "mixed_bfloat16" in doctor[1]
    signature = tf.saved_model.load(str(tmp_path / "export" / task_name / "1")).signatures["serving_default"]
    for name, spec in {**signature.structured_input_signature[1], **signature.structured_outputs}.items():
        assert spec.dtype in (tf.float32, tf.string, tf.int32, tf.int64), (name, spec.dtype)
