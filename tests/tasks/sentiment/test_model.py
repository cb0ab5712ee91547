import dataclasses
import json

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from lstmkit.tasks.sentiment.config import SentimentConfig
from lstmkit.tasks.sentiment.model import lower_and_split_punctuation, vectorizer
from lstmkit.tasks.sentiment.task import TASK


def test_standardization_splits_punctuation_and_drops_html_breaks():
    text = lower_and_split_punctuation(tf.constant(["Great!<br /><br />It's \"FINE\", ok?"]))
    assert text.numpy()[0].decode().split() == ["great", "!", "it's", '"', "fine", '"', ",", "ok", "?"]
    strip = vectorizer(dataclasses.replace(SentimentConfig(), standardize="strip_punctuation"))
    strip.adapt(tf.constant(["great!"]))
    assert "!" not in strip.get_vocabulary()


def test_model_takes_raw_strings_and_is_the_same_after_adapt_state_round_trip():
    config = TASK.tiny_config()
    train = tf.data.Dataset.from_tensor_slices((["good movie", "bad movie", "good good"], [1, 0, 1]))
    state = TASK.bind(config).adapt(train)
    assert state.vocabulary[:2] == ["", "[UNK]"] and "good" in state.vocabulary
    assert type(state).from_json(json.loads(json.dumps(state.to_json()))) == state  # as preprocessing.json
    model = TASK.bind(config, state).build_model()
    probabilities = model(tf.constant(["good", "unseen words only", ""])).numpy()
    assert probabilities.shape == (3, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)


def test_search_space_maps_hp_onto_the_config_and_defaults_to_it():
    config = SentimentConfig()
    hp = keras_tuner.HyperParameters()
    assert TASK.search_space(hp, config) == config  # unset hyperparameters take their defaults
    hp.values["lstm.units"] = 32
    hp.values["pooling"] = "attention"
    tuned = TASK.search_space(hp, config)
    assert tuned.lstm.units == 32 and tuned.pooling == "attention"
    assert {"lstm.units", "lstm.input_dropout", "train.learning_rate", "embedding_dropout"} <= set(hp.values)


def test_dropout_multiplier_scales_every_rate_and_refuses_rates_of_one():
    from lstmkit import config as config_lib
    from lstmkit.errors import UserError

    config = config_lib.apply_overrides(TASK.tiny_config(), [
        "embedding_dropout=0.2", "classifier_dropout=0.4", "lstm.input_dropout=0.3",
        "lstm.weight_drop=0.25", "lstm.output_dropout=0.1", "dropout_multiplier=2"])
    model = TASK.bind(config, TASK.bind(config).placeholder_preprocessing()).build_model()
    lstm = model.get_layer("lstm_0_bidirectional").forward_layer
    assert model.get_layer("embedding").rate == 0.4
    assert model.get_layer("classifier_dropout").rate == 0.8
    assert (lstm.variational_dropout, lstm.weight_drop, lstm.output_dropout) == (0.6, 0.5, 0.2)
    with pytest.raises(UserError, match="dropout_multiplier 3 makes lstm.input_dropout 0.4 -> 1.2"):
        config_lib.apply_overrides(TASK.tiny_config(), ["lstm.input_dropout=0.4", "dropout_multiplier=3"])


def test_the_wide_part_adapts_n_grams_on_training_texts_and_adds_their_logits(tmp_path):
    import keras

    from lstmkit import config as config_lib

    config = config_lib.apply_overrides(TASK.tiny_config(), ["wide_ngrams=2", "wide_vocab_size=50"])
    train = tf.data.Dataset.from_tensor_slices((["not good at all", "very good film", "not bad"], [0, 1, 1]))
    state = TASK.bind(config).adapt(train)
    assert state.ngram_vocabulary[0] == "[UNK]" and {"not good", "very good", "good"} <= set(state.ngram_vocabulary)
    assert type(state).from_json(json.loads(json.dumps(state.to_json()))) == state
    # A run saved before the wide part existed has no ngram_vocabulary: it reads back empty.
    assert type(state).from_json({"vocabulary": state.vocabulary}).ngram_vocabulary == []
    model = TASK.bind(config, state).build_model()
    texts = tf.constant(["not good", "very good film !", ""])
    probabilities = model(texts).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    # The softmax reads the sum of the LSTM's and the n-gram model's logits.
    wide = keras.Model(model.input, model.get_layer("wide_logits").output)(texts)
    deep = keras.Model(model.input, model.get_layer("deep_logits").output)(texts)
    np.testing.assert_allclose(probabilities, tf.nn.softmax(wide + deep).numpy(), rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "wide.keras")
    loaded = keras.saving.load_model(tmp_path / "wide.keras")
    np.testing.assert_allclose(loaded(texts).numpy(), probabilities, rtol=1e-5, atol=1e-6)
