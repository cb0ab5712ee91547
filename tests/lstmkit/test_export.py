"""The export contract for every task: TensorFlow Serving's layout, named signatures,
the metadata in assets.extra, and TensorFlow's own saved_model_cli on each export."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# Every test needs every task's session-trained run (the exports fixture).
pytestmark = pytest.mark.slow

# One raw input per task for saved_model_cli run: a Python literal (--input_exprs), or an
# array (--inputs, from a .npy file: TensorFlow 2.21 takes literals only in expressions).
SAVED_MODEL_CLI_INPUTS = {
    "sentiment": ("text", "['a gripping, funny film']", ["probabilities", "label"]),
    "speech_commands": ("waveform", np.zeros((1, 16000), np.float32), ["probabilities", "label"]),
    "protein_ss": ("sequence", "['MKTAYIAKQRQISFVKSHFSRQ']", ["probabilities", "structure", "length"]),
    "textgen": ("text", "['ROMEO:']", ["probabilities", "next_character", "vocabulary"]),
    "forecasting": ("history", np.full((1, 30, 1), 24.0, np.float32), ["forecast", "quantiles", "quantile_levels"]),
}


def saved_model_cli(*args):
    tool = shutil.which("saved_model_cli", path=str(Path(sys.executable).parent)) or shutil.which("saved_model_cli")
    done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("task_name", sorted(SAVED_MODEL_CLI_INPUTS))
def test_saved_model_cli_shows_and_runs_every_export(exports, task_name, tmp_path):
    version = exports / task_name / "1"
    shown = saved_model_cli("show", "--all", "--dir", str(version))
    name, value, outputs = SAVED_MODEL_CLI_INPUTS[task_name]
    assert "signature_def['serving_default']" in shown and f"inputs['{name}']" in shown
    assert all(f"outputs['{output}']" in shown for output in outputs)
    if isinstance(value, str):
        given = ["--input_exprs", f"{name}={value}"]
    else:
        np.save(tmp_path / "input.npy", value)
        given = ["--inputs", f"{name}={tmp_path / 'input.npy'}"]
    ran = saved_model_cli("run", "--dir", str(version), "--tag_set", "serve", "--signature_def", "serving_default",
                          *given)
    assert all(f"Result for output key {output}" in ran for output in outputs), ran[-2000:]


@pytest.mark.parametrize("task_name", sorted(SAVED_MODEL_CLI_INPUTS))
def test_every_export_carries_its_metadata(exports, task_name):
    info = json.loads((exports / task_name / "1" / "assets.extra" / "lstmkit.json").read_text())
    assert info["task"] == task_name and info["config"] and info["metrics"]
    assert len(info["train_fingerprint_sha256"]) == 64
    assert "keras" in info["versions"] and {"tensorflow", "tensorflow-cpu"} & set(info["versions"])
    assert "serving_default" in info["signatures"]
    if task_name != "textgen":
        assert info["labels"]
    # Only temporary folders are hidden; versions are integers.
    assert [path.name for path in (exports / task_name).iterdir()] == ["1"]
