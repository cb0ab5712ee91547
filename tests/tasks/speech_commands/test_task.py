"""The task on the bound contract: its declarations, the prediction pipeline's two ends
(WAV files in, records out). That the task module imports no TensorFlow is checked for every
task in tests/lstmkit/test_imports.py."""

import numpy as np

from lstmkit.task import PreparedInputs, TFLiteExportable
from lstmkit.tasks.speech_commands.config import SpeechConfig
from lstmkit.tasks.speech_commands.task import TASK
from tests.lstmkit.test_wav import wav_bytes


def bound():
    task = TASK.bind(SpeechConfig())
    return task.bind(preprocessing=task.placeholder_preprocessing())


def test_declarations_are_those_of_a_classifier_with_a_tflite_export():
    assert isinstance(TASK, TFLiteExportable)
    assert TASK.objective == ("val_accuracy", "max")
    assert TASK.report.headline == "accuracy" and TASK.report.plots == ("confusion_matrix",)
    assert TASK.report.metrics == ("accuracy", "precision", "recall", "f1", "macro_f1", "loss")


def test_preprocess_keeps_readable_files_in_order_and_gives_a_reason_for_each_other(tmp_path):
    task = bound()
    good = [tmp_path / "a.wav", tmp_path / "b.wav"]
    good[0].write_bytes(wav_bytes(frames=8_000))
    good[1].write_bytes(wav_bytes(rate=8_000, frames=4_000))
    (tmp_path / "stereo.wav").write_bytes(wav_bytes(channels=2))
    items = [str(good[1]), str(tmp_path / "stereo.wav"), str(tmp_path / "missing.wav"), str(tmp_path),
             str(good[0])]
    prepared = task.preprocess(items, {})
    assert prepared.items == [str(good[1]), str(good[0])]
    assert prepared.inputs.shape == (2, task.config.clip_samples)
    assert set(prepared.rejected) == {str(tmp_path / "stereo.wav"), str(tmp_path / "missing.wav"), str(tmp_path)}
    assert "2 channels" in prepared.rejected[str(tmp_path / "stereo.wav")]
    assert prepared.rejected[str(tmp_path / "missing.wav")] == "no such file"
    assert prepared.rejected[str(tmp_path)] == "not a file"


def test_preprocess_with_every_file_refused_has_no_inputs(tmp_path):
    (tmp_path / "text.wav").write_bytes(b"hello, not audio")
    item = str(tmp_path / "text.wav")
    prepared = bound().preprocess([item], {})
    assert isinstance(prepared, PreparedInputs)
    assert prepared.items == [] and prepared.inputs is None and list(prepared.rejected) == [item]
    assert prepared.rejected[item].startswith("not a WAV file")


def test_postprocess_names_the_whole_file_however_long():
    task = bound()
    labels = task.label_names()
    name = "/recordings/" + "x" * 80 + ".wav"
    row = np.full(len(labels), 0.5 / (len(labels) - 1), np.float32)
    row[3] = 0.5
    (record,) = task.postprocess([name], row[None], {})
    assert record["input"] == name and record["label"] == labels[3]
    assert record["probabilities"] == dict(zip(labels, map(float, row)))
    assert record["text"] == f"{labels[3]}\t0.5000\t{name}"
