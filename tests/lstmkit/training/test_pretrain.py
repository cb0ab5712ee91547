"""Language-model pretraining of a text task's encoder (lstmkit.training.pretrain),
through the sentiment task: the loss falls, the weights move into the classifier, a
killed pretraining resumes to the uninterrupted result, the finished run exports with
raw text in, and what cannot be pretrained is refused in one line."""

import json
import subprocess
import sys

import numpy as np
import pytest

from lstmkit import config as config_lib
from lstmkit.errors import UserError
from lstmkit.registry import get_task
from lstmkit.training import pretrain
from tests.conftest import ROOT
from tests.lstmkit.test_crash_safety import ENV, cli, finished_run, kill_when, metrics

# Small enough for seconds per epoch on 2 cores.
PRETRAIN = ["pretrain.sequence_length=16", "pretrain.batch_size=8", "pretrain.sampled_words=12",
            "pretrain.learning_rate=0.03"]


def test_windows_make_every_inner_word_a_target_once_per_direction():
    stream = np.arange(23)
    rows = pretrain.windows(stream, 5)
    assert rows.shape == (4, 7)
    # Inputs are each row's inner words; forward targets the next word, backward the previous.
    forward = np.concatenate([row[2:] for row in rows])
    backward = np.concatenate([row[:-2] for row in rows])
    assert list(forward) == list(range(2, 22))
    assert list(backward) == list(range(0, 20))


def repetitive_corpus(path, sentences=200):
    """Sentences that follow a fixed pattern, which a language model learns quickly."""
    rng = np.random.default_rng(0)
    rows = ["text,label"]
    for index in range(sentences):
        good = index % 2
        word = ["awful", "great"][good]
        subject = ["the film", "this movie", "the plot", "the acting"][rng.integers(4)]
        rows.append(f"{subject} is {word} and {subject} stays {word} .,{good}")
    path.write_text("\n".join(rows) + "\n")
    return path


def tiny_setup(data, overrides):
    from lstmkit.training.setup import RunSetup

    task = get_task("sentiment")
    config = config_lib.apply_overrides(task.tiny_config(), overrides)
    setup = RunSetup.prepare(task, config, str(data), seed=3)
    return setup.task, config, setup


def test_the_language_model_learns_and_its_weights_move_into_the_classifier(tmp_path):
    data = repetitive_corpus(tmp_path / "corpus.csv")
    task, config, setup = tiny_setup(data, ["pretrain.epochs=8", *PRETRAIN])
    model = task.build_model()
    before = [w.copy() for w in model.get_layer("embedding").get_weights()]
    copied = pretrain.pretrain_encoder(task, model, setup.splits, tmp_path, seed=3)

    assert copied == ["embedding", "lstm_0_bidirectional"]
    history = (tmp_path / pretrain.HISTORY_FILE).read_text().strip().splitlines()
    header = history[0].split(",")
    losses = [float(line.split(",")[header.index("val_loss")]) for line in history[1:]]
    assert len(losses) == 8
    # Exact cross-entropy on held-out sentences, both directions: well under the start.
    assert losses[-1] < 0.6 * losses[0]
    after = model.get_layer("embedding").get_weights()
    assert not np.allclose(before[0], after[0])

    # The classifier now holds exactly the language model's encoder: rebuilding the
    # language model from a fresh backup restore gives the same weights.
    from lstmkit.callbacks import RunBackup

    language = pretrain.compiled_language_model(task.text_encoder(), 1, "float32")
    backup = RunBackup(tmp_path / "backup" / "pretrain")
    assert backup.training_done
    backup.set_model(language)
    backup.on_train_begin()
    for name in copied:
        for mine, theirs in zip(model.get_layer(name).get_weights(), language.get_layer(name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)


def test_pretraining_off_leaves_the_model_alone(tmp_path):
    data = repetitive_corpus(tmp_path / "corpus.csv", sentences=40)
    task, config, setup = tiny_setup(data, [])
    model = task.build_model()
    assert pretrain.pretrain_encoder(task, model, setup.splits, tmp_path, 3) == []
    assert not (tmp_path / pretrain.HISTORY_FILE).exists()


@pytest.mark.parametrize("overrides, message", [
    (["pretrain.sampled_words=5000"], "pretrain.sampled_words (5,000) must be smaller than the vocabulary"),
    (["pretrain.sequence_length=5000"], "fewer than one pretraining window"),
    (["lstm.layers=2"], "bidirectional stack needs a single layer"),
])
def test_what_cannot_be_pretrained_is_refused_before_training(tmp_path, overrides, message):
    data = repetitive_corpus(tmp_path / "corpus.csv", sentences=40)
    task, config, setup = tiny_setup(data, ["pretrain.epochs=1", *PRETRAIN, *overrides])
    model = task.build_model()
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pretrain.pretrain_encoder(task, model, setup.splits, tmp_path, 3)


def train_command(data, runs, *extra):
    return [sys.executable, str(ROOT / "cli.py"), "train", "sentiment", "--data", str(data), "--runs-dir",
            str(runs), "--preset", "tiny", "--seed", "5", "--set", "pretrain.epochs=3",
            *[arg for item in PRETRAIN for arg in ("--set", item)], *extra]


@pytest.mark.slow
def test_an_empty_corpus_is_refused_from_the_cli_and_leaves_no_run(tmp_path):
    data = tmp_path / "blank.csv"
    data.write_text("text,label\n" + '" ",1\n" ",0\n' * 20)
    done = subprocess.run(train_command(data, tmp_path / "runs"), env=ENV, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith("Error: the training texts hold no words") and len(done.stderr.splitlines()) == 1
    assert not list((tmp_path / "runs").glob("sentiment/*"))


@pytest.mark.slow
def test_a_killed_pretraining_resumes_to_the_uninterrupted_result_which_exports_raw_text(tmp_path, run_cli):
    import tensorflow as tf

    data = repetitive_corpus(tmp_path / "corpus.csv")
    whole = tmp_path / "whole"
    done = subprocess.run(train_command(data, whole), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pretrained layers moved into the sentiment model: embedding, lstm_0_bidirectional" in done.stdout

    killed = tmp_path / "killed"

    def pretraining_epochs():
        found = list(killed.glob("sentiment/*.partial/backup/pretrain/state.json"))
        return json.loads(found[0].read_text())["epochs"] if found else 0

    kill_when(train_command(data, killed), lambda: pretraining_epochs() >= 1)
    assert pretraining_epochs() < 3, "pretraining finished before it could be killed"
    resumed = cli("train", "sentiment", "--resume", "latest", "--runs-dir", killed)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Epoch 1/3" not in resumed.stdout  # pretraining continued, not restarted
    run_dir, reference = finished_run(killed), finished_run(whole)
    assert [line.split(",")[0] for line in (run_dir / pretrain.HISTORY_FILE).read_text().splitlines()[1:]] == [
        "0", "1", "2"]
    assert metrics(run_dir) == metrics(reference)

    # In this process: exports in a new one are tested for every task in tests/test_fresh_process.py.
    code, _, err = run_cli("export", "sentiment", "--run", reference, "--base-path", tmp_path / "export")
    assert code == 0, err[-2000:]
    signature = tf.saved_model.load(str(tmp_path / "export" / "sentiment" / "1")).signatures["serving_default"]
    outputs = signature(text=tf.constant(["the film is great and the film stays great .", "awful"]))
    probabilities = outputs["probabilities"].numpy()
    assert probabilities.shape == (2, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_tune_refuses_to_search_with_pretraining_rather_than_ignore_it(run_cli, tmp_path):
    data = repetitive_corpus(tmp_path / "corpus.csv", sentences=40)
    code, out, err = run_cli("tune", "sentiment", "--data", data, "--preset", "tiny", "--runs-dir", tmp_path / "runs",
                             "--max-trials", "1", "--set", "pretrain.epochs=1")
    assert code == 2 and err.strip().endswith("drop pretrain.epochs here and set it when training the best config")
    assert not list((tmp_path / "runs").glob("sentiment/*"))
