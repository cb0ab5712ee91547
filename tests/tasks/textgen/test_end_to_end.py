"""Train a tiny character model on a slice of tiny shakespeare, then evaluate, predict,
generate and export it, and refuse bad input with one line."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf


def history(run_dir):
    lines = (run_dir / "history.csv").read_text().strip().splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, map(float, line.split(",")))) for line in lines[1:]]


@pytest.mark.slow
def test_loss_goes_down_and_metrics_agree(textgen_run):
    rows = history(textgen_run)
    assert len(rows) == 3
    vocabulary = json.loads((textgen_run / "preprocessing.json").read_text())["vocabulary"]
    # Better than guessing uniformly, and better each epoch.
    assert rows[0]["val_loss"] < math.log(len(vocabulary))
    assert rows[2]["val_loss"] < rows[1]["val_loss"] < rows[0]["val_loss"]
    assert rows[2]["train_seconds"] > 0 and rows[2]["epoch_seconds"] >= rows[2]["train_seconds"]
    validation = json.loads((textgen_run / "metrics.json").read_text())["validation"]
    # 3,000 validation characters make 46 windows of 64 (+1) characters.
    assert validation["examples"] == 46 and validation["characters"] == 46 * 64
    assert validation["bits_per_char"] == pytest.approx(validation["nats_per_char"] / math.log(2))
    assert validation["perplexity"] == pytest.approx(math.exp(validation["nats_per_char"]))
    # The best epoch's validation loss is the one Keras logged.
    assert validation["nats_per_char"] == pytest.approx(min(row["val_loss"] for row in rows), abs=1e-4)


@pytest.mark.slow
def test_evaluate_on_a_text_file(textgen_run, run_cli, shared_data, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text((shared_data / "tinyshakespeare" / "input.txt").read_text()[-20_000:], encoding="utf-8")
    code, out, err = run_cli("evaluate", "textgen", "--run", textgen_run, "--data", other)
    assert code == 0, err
    assert "bits_per_char" in out and "perplexity" in out
    (report,) = textgen_run.glob("evaluation-test-other.txt-*.json")  # an outside file: a report of its own
    saved = json.loads(report.read_text())
    # No test part of its own: the validation part (last 10%: 2,000 characters) is the test.
    assert saved["characters"] == (2_000 - 1) // 64 * 64


@pytest.mark.slow
def test_generate_length_seed_and_greedy(textgen_run, run_cli):
    def generate(*options):
        code, out, err = run_cli("generate", "textgen", "--run", textgen_run, "--prompt", "ROMEO:", *options)
        assert code == 0, err
        assert out.startswith("ROMEO:") and out.endswith("\n")
        return out[len("ROMEO:"):-1]

    first = generate("--length", "120", "--seed", "3")
    assert len(first) == 120
    assert generate("--length", "120", "--seed", "3") == first
    assert generate("--length", "120", "--seed", "4") != first
    greedy = generate("--length", "60", "--temperature", "0")
    assert generate("--length", "60", "--top-k", "1", "--temperature", "2", "--seed", "9") == greedy


@pytest.mark.slow
def test_generate_with_characters_the_model_never_saw(textgen_run, run_cli):
    code, out, err = run_cli("generate", "textgen", "--run", textgen_run, "--prompt", "ŒUVRE 漢字:",
                             "--length", "30", "--seed", "1", "--top-p", "0.9")
    assert code == 0, err
    assert out.startswith("ŒUVRE 漢字:") and len(out.rstrip("\n")) == len("ŒUVRE 漢字:") + 30


@pytest.mark.slow
def test_predict_lists_likely_next_characters(textgen_run, run_cli):
    code, out, err = run_cli("predict", "textgen", "--run", textgen_run, "--format", "json", "First Citizen", "")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["input"] for row in rows] == ["First Citizen", ""]
    for row in rows:
        assert len(row["next"]) == 5 and 0 < sum(row["next"].values()) <= 1 + 1e-6


@pytest.mark.slow
def test_export_round_trip_both_signatures(textgen_run, run_cli, tmp_path):
    code, out, err = run_cli("export", "textgen", "--run", textgen_run, "--base-path", tmp_path)
    assert code == 0, err
    exported = tf.saved_model.load(str(tmp_path / "textgen" / "1"))
    assert set(exported.signatures) == {"serving_default", "generate"}
    vocabulary = json.loads((textgen_run / "preprocessing.json").read_text())["vocabulary"]
    served = exported.signatures["serving_default"](text=tf.constant(["First Citizen", "", "漢"]))
    probabilities = served["probabilities"].numpy()
    assert probabilities.shape == (3, len(vocabulary))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert [char.decode() for char in served["vocabulary"].numpy()[0]] == vocabulary
    assert served["next_character"].numpy()[0].decode() == vocabulary[probabilities[0].argmax()]

    generated = exported.signatures["generate"](
        prompt=tf.constant(["ROMEO:"]), length=tf.constant(80), temperature=tf.constant(0.8),
        seed=tf.constant(3, tf.int64))["generated"].numpy()[0].decode()
    code, out, err = run_cli("generate", "textgen", "--run", textgen_run, "--prompt", "ROMEO:",
                             "--length", "80", "--seed", "3")
    assert code == 0, err
    assert out == "ROMEO:" + generated + "\n"
    with pytest.raises(tf.errors.InvalidArgumentError, match="length must be >= 1"):
        exported.signatures["generate"](prompt=tf.constant(["a"]), length=tf.constant(0),
                                        temperature=tf.constant(0.8), seed=tf.constant(3, tf.int64))
    # Served generation is capped in the graph (a larger max_generated_length at export raises it).
    with pytest.raises(tf.errors.InvalidArgumentError, match="length must be <= 2,000"):
        exported.signatures["generate"](prompt=tf.constant(["a"]), length=tf.constant(2001),
                                        temperature=tf.constant(0.8), seed=tf.constant(3, tf.int64))


@pytest.mark.parametrize("options, message", [
    (["--length", "0"], "--length"),
    (["--length", "1000000"], "--length"),
    (["--temperature", "-0.5"], "--temperature"),
    (["--top-p", "0"], "--top-p"),
    (["--top-p", "1.5"], "--top-p"),
    (["--top-k", "-1"], "--top-k"),
])
@pytest.mark.slow
def test_bad_generate_options(textgen_run, run_cli, options, message):
    code, out, err = run_cli("generate", "textgen", "--run", textgen_run, *options)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err


@pytest.mark.slow
def test_generate_refuses_a_classifier(run_cli, tiny_run):
    code, _, err = run_cli("generate", "sentiment", "--run", tiny_run, "--seed", "1")
    assert code == 2 and "not a generative task" in err


@pytest.mark.parametrize("content, options, message", [
    (b"", [], "holds no text"),
    (b"\xff\xfe not utf-8 " * 50, [], "not UTF-8"),
    (b"short\n" * 5, [], "fewer than one window"),
    # 900 characters: 90 to validate (a window is 64 + 1), 810 to train on.
    (b"a short corpus\n" * 60, ["--set", "data.sequence_length=1000"],
     "shorter than one window of data.sequence_length + 1 = 1001"),
    (b"a short corpus\n" * 60, ["--set", "train.batch_size=64"], "25 windows of 32 characters, fewer than train.batch_size = 64"),
])
def test_bad_corpus_writes_nothing(run_cli, tmp_path, content, options, message):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(content)
    runs = tmp_path / "runs"
    code, out, err = run_cli("train", "textgen", "--preset", "tiny", "--data", corpus, "--runs-dir", runs, *options)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not runs.exists() or not any(runs.rglob("*"))


@pytest.mark.slow
def test_evaluate_scores_a_text_too_short_to_train_on(textgen_run, run_cli, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("To be, or not to be, that is the question. " * 20, encoding="utf-8")  # 880 characters
    code, out, err = run_cli("evaluate", "textgen", "--run", textgen_run, "--data", short, "--split", "all")
    assert code == 0, err
    (report,) = textgen_run.glob("evaluation-all-short.txt-*.json")
    saved = json.loads(report.read_text())
    # 792 training characters make 24 windows of 32 (+1), the 88 validation ones 1 of 64.
    assert saved["characters"] == 24 * 32 + 64


@pytest.mark.slow
def test_prompts_over_the_limit_are_refused_in_one_line(textgen_run, run_cli):
    from lstmkit.tasks.textgen.config import MAX_PROMPT_CHARACTERS

    long_prompt = "a" * (MAX_PROMPT_CHARACTERS + 1)
    code, out, err = run_cli("generate", "textgen", "--run", textgen_run, "--prompt", long_prompt, "--length", "5")
    assert code == 2 and f"at most {MAX_PROMPT_CHARACTERS:,}" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli("predict", "textgen", "--run", textgen_run, long_prompt, "ROMEO:")
    assert code == 2 and f"at most {MAX_PROMPT_CHARACTERS:,}" in err and out.count("\n") == 1
