"""Train a tiny keyword spotter on 96 real Speech Commands clips, then evaluate,
predict, export (SavedModel with two signatures, TensorFlow Lite) and refuse bad files."""

import json
import warnings

import numpy as np
import pytest
import tensorflow as tf

from tests.lstmkit.test_wav import wav_bytes


def opened(run_dir):
    """The run in ``run_dir``, opened afresh (its model loaded from best.keras)."""
    from lstmkit.run import Run
    from lstmkit.tasks.speech_commands.task import TASK

    return Run.from_folder(TASK, run_dir)


@pytest.fixture(scope="session")
def exported(speech_run, tmp_path_factory):
    from lstmkit.export import export_run

    return export_run(opened(speech_run), tmp_path_factory.mktemp("saved_models"))


def loaded_model(run_dir):
    return opened(run_dir).model


def clips(folder, count):
    return sorted(folder.rglob("*.wav"))[:: 96 // max(count, 1)][:count]


@pytest.mark.slow
def test_training_learns_and_records_the_labels(speech_run):
    rows = (speech_run / "history.csv").read_text().strip().splitlines()
    header = rows[0].split(",")
    history = [dict(zip(header, map(float, row.split(",")))) for row in rows[1:]]
    assert len(history) == 3
    assert history[-1]["loss"] < history[0]["loss"]
    preprocessing = json.loads((speech_run / "preprocessing.json").read_text())
    assert preprocessing["labels"] == sorted(preprocessing["labels"]) and len(preprocessing["labels"]) == 12
    assert len(preprocessing["mean"]) == len(preprocessing["variance"]) == 16  # the tiny preset's mel bands


@pytest.mark.slow
def test_inference_is_deterministic(speech_run):
    """SpecAugment and dropout act only in training."""
    model = loaded_model(speech_run)
    clip = np.random.default_rng(0).uniform(-0.3, 0.3, (2, 16_000)).astype(np.float32)
    np.testing.assert_array_equal(model(clip, training=False).numpy(), model(clip, training=False).numpy())
    assert not np.allclose(model(clip, training=True).numpy(), model(clip, training=False).numpy())


@pytest.mark.slow
def test_evaluate_reports_per_class_figures_and_a_confusion_png(speech_run, run_cli):
    code, out, err = run_cli("evaluate", "speech_commands", "--runs-dir", speech_run.parent.parent,
                             "--split", "all")
    assert code == 0, err
    assert "accuracy" in out and "confusion matrix" in out
    metrics = json.loads((speech_run / "evaluation-all.json").read_text())
    assert metrics["examples"] == 96 and set(metrics["per_class"]) == set(metrics["labels"])
    assert np.asarray(metrics["confusion_matrix"]).sum() == 96
    assert (speech_run / "confusion_matrix-all.png").stat().st_size > 1000


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.slow
def test_exported_waveform_signature_matches_the_model(speech_run, exported, batch):
    model = loaded_model(speech_run)
    serve = tf.saved_model.load(str(exported)).signatures["serving_default"]
    # Any length: the model pads or cuts to one second itself.
    waveforms = np.random.default_rng(batch).uniform(-0.5, 0.5, (batch, 12_345)).astype(np.float32)
    outputs = serve(waveform=tf.constant(waveforms))
    expected = model(waveforms, training=False).numpy()
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-5)
    labels = json.loads((exported / "assets.extra" / "lstmkit.json").read_text())["labels"]
    assert [label.decode() for label in outputs["label"].numpy()] == [labels[i] for i in expected.argmax(-1)]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.slow
def test_exported_wav_signature_decodes_and_resamples_by_itself(speech_run, exported, speech_slice,
                                                               fsdd_slice, batch):
    from lstmkit.wav import read_wav
    from lstmkit.tasks.speech_commands.task import to_clip

    model = loaded_model(speech_run)
    serve = tf.saved_model.load(str(exported)).signatures["wav_bytes"]
    # 16 kHz Speech Commands clips and an 8 kHz spoken digit in one batch.
    files = clips(speech_slice, batch - 1) + sorted(fsdd_slice.glob("*.wav"))[:1]
    contents = [path.read_bytes() for path in files]
    outputs = serve(wav=tf.constant(contents))
    expected_input = np.stack([to_clip(*read_wav(data), 16_000).numpy() for data in contents])
    np.testing.assert_allclose(outputs["probabilities"].numpy(), model(expected_input, training=False).numpy(),
                               atol=1e-5)
    assert outputs["label"].shape == (batch,)


@pytest.mark.slow
def test_tflite_export_uses_builtin_ops_and_matches_keras(speech_run, tmp_path, speech_slice):
    from lstmkit.wav import read_wav
    from lstmkit.export import export_tflite

    version = export_tflite(opened(speech_run), tmp_path)
    assert version == tmp_path / "speech_commands_tflite" / "1"
    labels = (version / "labels.txt").read_text().splitlines()
    assert labels == json.loads((speech_run / "preprocessing.json").read_text())["labels"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's note about LiteRT
        interpreter = tf.lite.Interpreter(model_path=str(version / "model.tflite"))
    runner = interpreter.get_signature_runner()
    model = loaded_model(speech_run)
    for path in clips(speech_slice, 3):
        clip = read_wav(path.read_bytes())[0][None]
        np.testing.assert_allclose(runner(waveform=clip)["probabilities"], model(clip, training=False).numpy(),
                                   atol=1e-4)
    # The converter was limited to TensorFlow Lite's built-in ops: no Flex (TensorFlow) op.
    assert b"Flex" not in (version / "model.tflite").read_bytes()


@pytest.mark.slow
def test_predict_prints_a_label_per_file_and_one_line_per_bad_file(speech_run, run_cli, speech_slice, tmp_path):
    good = clips(speech_slice, 2)
    bad = {
        "text.wav": b"hello, not audio",
        "header.wav": wav_bytes()[:30],
        "stereo.wav": wav_bytes(channels=2),
        "8bit.wav": wav_bytes(width=1),
        "24bit.wav": wav_bytes(width=3),
        "odd_rate.wav": wav_bytes(rate=12_345),
        "empty.wav": wav_bytes(frames=0),
        "long.wav": wav_bytes(frames=30 * 16_000),
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    runs = speech_run.parent.parent
    code, out, err = run_cli("predict", "speech_commands", *good, "--runs-dir", runs)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2 and all(str(path) in line for path, line in zip(good, lines))
    labels = json.loads((speech_run / "preprocessing.json").read_text())["labels"]
    assert all(line.split("\t")[0] in labels and 0 < float(line.split("\t")[1]) <= 1 for line in lines)

    code, out, err = run_cli("predict", "speech_commands", good[0], *(tmp_path / name for name in bad),
                             tmp_path / "missing.wav", "--runs-dir", runs)
    assert code == 2
    assert len(out.strip().splitlines()) == 1  # the good file is still predicted
    errors = err.strip().splitlines()
    assert len(errors) == len(bad) + 1 and "Traceback" not in err
    for reason, line in zip(["not a WAV file", "truncated WAV header", "2 channels", "8-bit", "24-bit",
                             "sample rate 12345 Hz", "no audio", "30.0 s long", "no such file"], errors):
        assert line.startswith("Error: ") and reason in line


def test_training_on_nothing_usable_is_one_line_and_writes_nothing(run_cli, tmp_path):
    for label in ("yes", "no"):
        (tmp_path / "data" / label).mkdir(parents=True)
        (tmp_path / "data" / label / "a_nohash_0.wav").write_bytes(wav_bytes(channels=2))
    runs = tmp_path / "runs"
    code, out, err = run_cli("train", "speech_commands", "--preset", "tiny", "--data", tmp_path / "data",
                             "--runs-dir", runs)
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("Error: no usable clips")
    assert "2 channels" in err  # the refused files are listed before the error
    assert not runs.exists()


@pytest.mark.slow
def test_tflite_export_of_a_task_without_one_is_refused(tiny_run, run_cli):
    code, out, err = run_cli("export", "sentiment", "--format", "tflite", "--runs-dir", tiny_run.parent.parent)
    assert code == 2 and err.strip() == "Error: sentiment has no TensorFlow Lite export; export it as a SavedModel instead"
