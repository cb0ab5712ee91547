"""The character model and its sampler, on small untrained models (fixed seeds)."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from lstmkit.errors import UserError
from lstmkit.tasks.textgen.config import TINY, TextgenConfig
from lstmkit.tasks.textgen.generation import CharacterSampler
from lstmkit.tasks.textgen.model import build_model
from lstmkit.tasks.textgen.task import TextgenPreprocessing

VOCABULARY = list("\n !',.:;?abcdefghijklmnopqrstuvwxyz")


def tiny_model(**changes):
    keras.utils.set_random_seed(3)
    return build_model(dataclasses.replace(TINY, **changes), VOCABULARY)


def generate(sampler, prompts, length, temperature=0.8, top_k=0, top_p=1.0, seed=5):
    texts = sampler.generate(tf.constant(prompts), tf.constant(length), tf.constant(temperature),
                             tf.constant(top_k), tf.constant(top_p), tf.constant(seed, tf.int64))
    return [text.decode("utf-8") for text in texts.numpy()]


def test_logits_for_every_position_and_character():
    model = tiny_model()
    logits = model(tf.constant(["to be", "or not to be"]))
    assert logits.shape == (2, 12, len(VOCABULARY) + 2)


def test_tied_embeddings_share_the_matrix():
    untied = tiny_model(embedding_dim=32)
    tied = tiny_model(embedding_dim=32, tie_embeddings=True)
    size = len(VOCABULARY) + 2
    # The output layer's (32 x size) matrix is gone; its bias stays, on the embedding.
    assert untied.count_params() - tied.count_params() == 32 * size
    embedding = tied.get_layer("embedding")
    assert {weight.name for weight in embedding.weights} == {"embeddings", "output_bias"}
    # Changing the embedding changes the output logits too.
    before = tied(tf.constant(["abc"])).numpy()
    embedding.embeddings.assign(embedding.embeddings * 2)
    assert not np.allclose(before, tied(tf.constant(["abc"])).numpy())


@pytest.mark.parametrize("tied", [False, True])
def test_layer_by_layer_logits_equal_the_models_and_stay_float32_under_bfloat16(tied):
    """Carried-state training and generation run the layers one by one (run_layers,
    output_logits); they must give the model's own logits, also under mixed precision,
    where the logits are cast back to float32."""
    from lstmkit.precision import dtype_policy
    from lstmkit.tasks.textgen.model import output_logits, run_layers

    for policy in ("float32", "mixed_bfloat16"):
        with dtype_policy(policy):
            model = tiny_model(embedding_dim=32, tie_embeddings=tied)
        texts = tf.constant(["to be", "or not"])
        ids = model.get_layer("characters")(texts)
        outputs, _ = run_layers(model, ids)
        logits = output_logits(model, outputs)
        assert logits.dtype == tf.float32
        np.testing.assert_allclose(logits.numpy(), model(texts).numpy(), atol=1e-5)


def test_tying_needs_equal_widths():
    with pytest.raises(UserError, match="tie_embeddings needs embedding_dim == lstm.units"):
        TextgenConfig(tie_embeddings=True, embedding_dim=64)


def test_unidirectional_only():
    with pytest.raises(UserError, match="bidirectional must be false"):
        TextgenConfig(lstm=dataclasses.replace(TextgenConfig().lstm, bidirectional=True))


def test_prompt_state_ignores_padding():
    # A prompt's next-character logits are the same alone or in a batch with a longer one.
    sampler = CharacterSampler(tiny_model())
    alone, _ = sampler.start(tf.constant(["to be"]))
    batched, _ = sampler.start(tf.constant(["to be", "or not to be, that is"]))
    np.testing.assert_allclose(alone[0], batched[0], atol=1e-5)


def test_stepping_matches_running_the_model_on_the_whole_text():
    model = tiny_model(lstm=dataclasses.replace(TINY.lstm, layers=2))
    sampler = CharacterSampler(model)
    logits, states = sampler.start(tf.constant(["to b"]))
    stepped, _ = sampler.advance(tf.constant([VOCABULARY.index("e") + 2]), states)
    whole = model(tf.constant(["to be"]), training=False)[:, -1]
    np.testing.assert_allclose(stepped, whole, atol=1e-5)
    np.testing.assert_allclose(logits, model(tf.constant(["to b"]), training=False)[:, -1], atol=1e-5)


def test_length_and_seed_determinism():
    sampler = CharacterSampler(tiny_model())
    first = generate(sampler, ["to be", ""], 40, seed=11)
    assert [len(text) for text in first] == [40, 40]
    assert generate(sampler, ["to be", ""], 40, seed=11) == first
    assert generate(sampler, ["to be", ""], 40, seed=12) != first


def test_temperature_zero_and_top_k_one_are_greedy():
    sampler = CharacterSampler(tiny_model())
    greedy = generate(sampler, ["to be"], 30, temperature=0.0)
    for seed in (1, 2):
        assert generate(sampler, ["to be"], 30, temperature=1.5, top_k=1, seed=seed) == greedy
        # A nucleus smaller than the top character's probability keeps only that one.
        assert generate(sampler, ["to be"], 30, temperature=1.0, top_p=1e-6, seed=seed) == greedy


def test_pick_respects_top_k_and_top_p_and_never_picks_special_ids():
    logits = tf.constant([[9.0, 9.0, 3.0, 2.0, 1.0, 0.0]])  # ids 0, 1: padding, out of vocabulary
    picks = {int(CharacterSampler.pick(logits, tf.constant(5.0), tf.constant(2), tf.constant(1.0),
                                       tf.constant(1, tf.int64), tf.constant(step))[0]) for step in range(200)}
    assert picks == {2, 3}
    # Probabilities of ids 2..5 at temperature 1: .64 .24 .09 .03; top_p .8 keeps the first two.
    picks = {int(CharacterSampler.pick(logits, tf.constant(1.0), tf.constant(0), tf.constant(0.8),
                                       tf.constant(1, tf.int64), tf.constant(step))[0]) for step in range(300)}
    assert picks == {2, 3}
    picks = {int(CharacterSampler.pick(logits, tf.constant(1.0), tf.constant(0), tf.constant(1.0),
                                       tf.constant(1, tf.int64), tf.constant(step))[0]) for step in range(300)}
    assert picks == {2, 3, 4, 5}


def test_out_of_vocabulary_prompt_still_generates():
    sampler = CharacterSampler(tiny_model())
    (text,) = generate(sampler, ["ŒUVRE 漢字 ROMEO"], 20)
    assert len(text) == 20 and set(text) <= set(VOCABULARY)


def test_stream_gives_the_same_text_as_the_graph_loop():
    sampler = CharacterSampler(tiny_model(tie_embeddings=True, embedding_dim=32))
    streamed = "".join(sampler.stream("to be", 25, temperature=0.9, top_k=5, top_p=0.9, seed=4))
    assert streamed == generate(sampler, ["to be"], 25, temperature=0.9, top_k=5, top_p=0.9, seed=4)[0]


def test_training_carries_each_rows_state_to_the_next_batch():
    from lstmkit.config import TrainingConfig
    from lstmkit.registry import get_task

    # No dropout and a zero learning rate: the carried states after two batches must be
    # those of running each stream's two windows as one text from a zero state.
    config = dataclasses.replace(TINY, lstm=dataclasses.replace(TINY.lstm, layers=2, input_dropout=0.0,
                                                                 output_dropout=0.0, weight_drop=0.0),
                                 train=TrainingConfig(batch_size=2))
    task = get_task("textgen").bind(config, TextgenPreprocessing(VOCABULARY))
    text = "to be or not to be that is the question whether tis nobler in the mind to suffer"
    windows = [text[i:i + 10] for i in range(0, 40, 10)]  # streams: windows 0,1 and 2,3
    targets = [text[i + 1:i + 11] for i in range(0, 40, 10)]
    dataset = task.encode_labels(tf.data.Dataset.from_tensor_slices((windows, targets)))
    batches = task.batches(dataset, training=True, seed=0)
    assert [list(map(bytes.decode, texts.numpy())) for texts, _ in batches] == [
        [windows[0], windows[2]], [windows[1], windows[3]]]
    # Validation and evaluation batches stay in text order, whatever the training batching.
    assert [list(map(bytes.decode, texts.numpy())) for texts, _ in task.batches(dataset)] == [
        windows[:2], windows[2:]]
    keras.utils.set_random_seed(3)
    model = task.build_model()
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=task.loss())
    model.fit(batches, epochs=1, verbose=0, shuffle=False)
    from lstmkit.tasks.textgen.model import run_layers

    ids = model.get_layer("characters")(tf.constant([windows[0] + windows[1], windows[2] + windows[3]]))
    _, expected = run_layers(model, ids)
    for carried, state in zip(model.carried.variables, expected):
        np.testing.assert_allclose(carried.numpy(), state.numpy(), atol=1e-5)


def test_activation_regularization_adds_to_the_training_loss():
    from lstmkit.registry import get_task

    losses = []
    for weight in (0.0, 1000.0):
        config = dataclasses.replace(TINY, lstm=dataclasses.replace(TINY.lstm, activation_l2=weight))
        task = get_task("textgen").bind(config, TextgenPreprocessing(VOCABULARY))
        keras.utils.set_random_seed(3)
        model = task.build_model()
        model.compile(optimizer=keras.optimizers.SGD(0.0), loss=task.loss())
        texts = tf.constant(["to be or not to be"] * config.train.batch_size)
        targets = model.get_layer("characters")(tf.constant(["o be or not to be "] * config.train.batch_size))
        losses.append(model.train_on_batch(texts, targets))
    assert losses[1] > losses[0] + 0.01


def test_window_batching_shuffles_and_keeps_no_state():
    from lstmkit.config import TrainingConfig
    from lstmkit.registry import get_task

    config = dataclasses.replace(TINY, data=dataclasses.replace(TINY.data, batching="windows"),
                                 train=TrainingConfig(batch_size=4))
    task = get_task("textgen").bind(config, TextgenPreprocessing(VOCABULARY + list("0123456789")))
    windows = [f"window {i:02d}" for i in range(12)]
    dataset = task.encode_labels(tf.data.Dataset.from_tensor_slices((windows, windows)))
    batches = task.batches(dataset, training=True, seed=1)
    epochs = [[text.decode() for texts, _ in batches for text in texts.numpy()] for _ in range(2)]
    assert sorted(epochs[0]) == windows and epochs[0] != windows and epochs[0] != epochs[1]
    assert task.bind(preprocessing=TextgenPreprocessing(VOCABULARY)).build_model().carried is None
