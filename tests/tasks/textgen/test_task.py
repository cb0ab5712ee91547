"""The text generation task on the bound task contract: its declarations and predict as one pipeline (preprocess, postprocess)."""

import dataclasses
import json

import numpy as np
import pytest

from lstmkit.errors import UserError
from lstmkit.task import Generative, Objective, Report
from lstmkit.tasks.textgen.config import MAX_PROMPT_CHARACTERS, TINY
from lstmkit.tasks.textgen.task import TASK, TextgenPreprocessing

VOCABULARY = list("\n !',.:;?abcdefghijklmnopqrstuvwxyz")


def test_declarations():
    assert isinstance(TASK, Generative)
    assert TASK.objective == Objective("val_loss", "min")
    # No figures: an evaluation holds neither a confusion matrix nor a forecast.
    assert TASK.report == Report(headline="bits_per_char",
                                 metrics=("loss", "nats_per_char", "bits_per_char", "perplexity"),
                                 counts={"characters": "characters"}, plots=())
    assert TASK.custom_object_modules == ("lstmkit.tasks.textgen.model",)
    assert TASK.tiny_config() is TINY and TASK.default_data == "tfds:tiny_shakespeare"
    # The unbound module-level task needs binding before anything reads its config.
    with pytest.raises(TypeError, match="not bound to a config"):
        TASK.load_data("builtin")
    placeholder = TASK.bind(TINY).placeholder_preprocessing()
    assert placeholder.vocabulary == ["\n"] + [chr(code) for code in range(32, 127)]


def test_preprocess_refuses_long_prompts_and_reads_an_empty_one_as_a_newline():
    task = TASK.bind(TINY, TextgenPreprocessing(VOCABULARY))
    long_prompt = "a" * (MAX_PROMPT_CHARACTERS + 1)
    prepared = task.preprocess(["to be", long_prompt, "", "a" * MAX_PROMPT_CHARACTERS], {})
    assert prepared.items == ["to be", "", "a" * MAX_PROMPT_CHARACTERS]
    assert [text.decode() for text in prepared.inputs.numpy()] == ["to be", "\n", "a" * MAX_PROMPT_CHARACTERS]
    assert prepared.rejected == {long_prompt: f"{MAX_PROMPT_CHARACTERS + 1:,} characters; at most "
                                              f"{MAX_PROMPT_CHARACTERS:,} are read (keep the end of it)"}
    nothing = task.preprocess([long_prompt], {})
    assert (nothing.items, nothing.inputs, list(nothing.rejected)) == ([], None, [long_prompt])


def test_postprocess_names_the_models_own_characters():
    """The records come from the preprocessing's vocabulary, no longer from the model's
    "characters" layer: both must list the same characters in the same order."""
    import keras

    task = TASK.bind(dataclasses.replace(TINY), TextgenPreprocessing(VOCABULARY))
    keras.utils.set_random_seed(3)
    model = task.build_model()
    layer_vocabulary = [str(char) for char in model.get_layer("characters").get_vocabulary()]
    assert layer_vocabulary == ["", "[UNK]"] + VOCABULARY
    items = ["to be", "", "or not to be, that is the question: whether tis nobler"]
    prepared = task.preprocess(items, {})
    outputs = model.predict(prepared.inputs, verbose=0)
    records = task.postprocess(prepared.items, outputs, {})
    assert [record["input"] for record in records] == items
    for item, record, logits in zip(items, records, outputs):
        # The last character's logits, read against the layer's vocabulary (padding and
        # out of vocabulary left out), as prediction did before it had the preprocessing.
        last = logits[max(len(item), 1) - 1, 2:].astype(np.float64)
        probabilities = np.exp(last - last.max()) / np.exp(last - last.max()).sum()
        top = np.argsort(-probabilities)[:5]
        assert list(record["next"]) == [layer_vocabulary[2 + i] for i in top]
        np.testing.assert_allclose(list(record["next"].values()), probabilities[top])
        assert record["text"].split("\t")[:5] == [f"{layer_vocabulary[2 + i]!r} {probabilities[i]:.3f}"
                                                  for i in top]
        json.dumps(record)
    assert records[2]["text"].endswith("\t..." + items[2][-37:])


def test_generate_refuses_a_long_prompt_before_anything_runs():
    with pytest.raises(UserError, match=f"the prompt has {MAX_PROMPT_CHARACTERS + 1:,} characters; at most "
                                        f"{MAX_PROMPT_CHARACTERS:,} are read"):
        TASK.bind(TINY).generate(None, "a" * (MAX_PROMPT_CHARACTERS + 1), 5,
                                 {"temperature": 1.0, "top_k": 0, "top_p": 1.0}, 1)


@pytest.mark.slow
def test_a_run_opens_evaluates_and_predicts_through_the_library(textgen_run):
    from lstmkit.prediction import predict_run
    from lstmkit.run import Run
    from lstmkit.task import encode_splits

    run = Run.from_folder(TASK, textgen_run)
    assert run.preprocessing == TextgenPreprocessing(
        json.loads((textgen_run / "preprocessing.json").read_text())["vocabulary"])
    assert run.model.get_layer("characters").get_vocabulary()[2:] == run.preprocessing.vocabulary
    # The validation metrics of metrics.json again, from the bound task.
    splits = encode_splits(run.task, run.task.load_data(run.data_source))
    again = run.task.evaluate(run.model, splits.validation)
    saved = run.metrics["validation"]
    assert again["characters"] == saved["characters"] and again["examples"] == saved["examples"]
    assert again["bits_per_char"] == pytest.approx(saved["bits_per_char"], abs=1e-4)
    long_prompt = "a" * (MAX_PROMPT_CHARACTERS + 1)
    predictions = predict_run(run, ["First Citizen", long_prompt, ""])
    assert [record["input"] for record in predictions.records] == ["First Citizen", ""]
    assert list(predictions.rejected) == [long_prompt]
    for record in predictions.records:
        assert set(record["next"]) <= set(run.preprocessing.vocabulary) and len(record["next"]) == 5
