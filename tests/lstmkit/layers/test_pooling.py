import keras
import numpy as np
import pytest

from lstmkit.layers import SequencePooling, TruncateSequence


def _masked_model(mode):
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(50, 6, mask_zero=True)(tokens)
    return keras.Model(tokens, SequencePooling(mode)(x))


@pytest.mark.parametrize("mode", ["max", "mean", "attention"])
def test_padding_does_not_change_the_pooled_vector(mode):
    model = _masked_model(mode)
    short = model.predict(np.array([[3, 4, 5]]), verbose=0)
    padded = model.predict(np.array([[3, 4, 5, 0, 0, 0]]), verbose=0)
    np.testing.assert_allclose(short, padded, atol=1e-6)


@pytest.mark.parametrize("mode", ["max", "mean", "attention"])
def test_fully_masked_rows_give_finite_output(mode):
    output = _masked_model(mode).predict(np.array([[0, 0, 0], [1, 2, 0]]), verbose=0)
    assert np.all(np.isfinite(output))
    if mode != "attention":
        np.testing.assert_array_equal(output[0], 0.0)


def test_values_without_mask():
    inputs = np.array([[[1.0, -2.0], [3.0, 0.0]]], "float32")
    np.testing.assert_allclose(SequencePooling("max")(inputs), [[3.0, 0.0]])
    np.testing.assert_allclose(SequencePooling("mean")(inputs), [[2.0, -1.0]])
    weights = SequencePooling("attention")(inputs)
    assert weights.shape == (1, 2)


def test_bad_mode_and_config_round_trip():
    with pytest.raises(ValueError):
        SequencePooling("median")
    layer = SequencePooling("attention")
    assert SequencePooling.from_config(layer.get_config()).mode == "attention"


def test_truncate_caps_length_and_pads_empty_batches():
    layer = TruncateSequence(3)
    assert tuple(layer(np.ones((2, 10), "int32")).shape) == (2, 3)
    assert tuple(layer(np.ones((2, 2), "int32")).shape) == (2, 2)
    empty = keras.ops.convert_to_numpy(layer(np.zeros((2, 0), "int32")))
    assert empty.shape == (2, 1) and not empty.any()
    assert TruncateSequence.from_config(layer.get_config()).max_length == 3
