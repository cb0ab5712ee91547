import keras
import numpy as np
import pytest

from lstmkit.layers import EmbeddingDropout


def _layer(rate, seed=1):
    layer = EmbeddingDropout(50, 8, rate=rate, seed=seed, embeddings_initializer="ones")
    layer.build((None, None))
    return layer


def test_whole_words_are_dropped_consistently_and_kept_rows_scaled():
    rate = 0.4
    ids = np.tile(np.arange(50), (6, 1))  # every word appears in every row
    outputs = keras.ops.convert_to_numpy(_layer(rate)(ids, training=True))
    assert np.all(np.isclose(outputs, 0.0) | np.isclose(outputs, 1 / (1 - rate)))
    # A word is dropped as a whole (all features) and everywhere in the batch.
    per_word = np.isclose(outputs, 0.0).all(axis=-1)
    assert np.array_equal(per_word, np.isclose(outputs, 0.0).any(axis=-1))
    assert np.array_equal(per_word, np.repeat(per_word[:1], 6, axis=0))
    assert 0.15 < per_word[0].mean() < 0.65


def test_masks_differ_between_batches_and_inference_is_a_plain_lookup():
    layer = _layer(0.5)
    ids = np.arange(50)[None]
    first = keras.ops.convert_to_numpy(layer(ids, training=True))
    second = keras.ops.convert_to_numpy(layer(ids, training=True))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(ids, training=False)), np.ones((1, 50, 8)))


def test_symbolic_call_in_a_saved_model(tmp_path):
    tokens = keras.Input((None,), dtype="int32")
    embedded = EmbeddingDropout(10, 3, rate=0.3, mask_zero=True)(tokens)
    assert embedded._keras_mask is not None
    model = keras.Model(tokens, keras.layers.GlobalAveragePooling1D()(embedded))
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    ids = np.array([[1, 2, 0]])
    np.testing.assert_allclose(restored.predict(ids, verbose=0), model.predict(ids, verbose=0))


def test_config_round_trip_and_mask_zero():
    layer = EmbeddingDropout(10, 3, rate=0.2, seed=4, mask_zero=True)
    clone = EmbeddingDropout.from_config(layer.get_config())
    assert (clone.rate, clone.seed, clone.mask_zero, clone.input_dim) == (0.2, 4, True, 10)
    with pytest.raises(ValueError):
        EmbeddingDropout(10, 3, rate=1.0)
