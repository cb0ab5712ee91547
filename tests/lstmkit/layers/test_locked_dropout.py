import keras
import numpy as np
import pytest

from lstmkit.layers import LockedDropout


def test_values_are_zero_or_scaled_and_the_mask_is_locked_over_time():
    rate = 0.3
    inputs = np.ones((64, 20, 32), dtype="float32")
    outputs = keras.ops.convert_to_numpy(LockedDropout(rate, seed=1)(inputs, training=True))
    assert np.all(np.isclose(outputs, 0.0) | np.isclose(outputs, 1 / (1 - rate)))
    # One mask per sequence: every time step equals the first.
    assert np.array_equal(outputs, np.repeat(outputs[:, :1, :], 20, axis=1))
    # Different sequences get different masks.
    assert not np.array_equal(outputs[0, 0], outputs[1, 0])
    dropped = np.isclose(outputs[:, 0, :], 0.0).mean()
    assert abs(dropped - rate) < 0.05


def test_inference_is_identity_and_rank_two_gets_plain_dropout():
    inputs = np.random.default_rng(0).normal(size=(8, 5, 4)).astype("float32")
    layer = LockedDropout(0.5, seed=2)
    assert np.array_equal(keras.ops.convert_to_numpy(layer(inputs, training=False)), inputs)
    flat = keras.ops.convert_to_numpy(layer(np.ones((256, 16), "float32"), training=True))
    assert np.all(np.isclose(flat, 0.0) | np.isclose(flat, 2.0))
    assert 0.4 < np.isclose(flat, 0.0).mean() < 0.6


def test_config_round_trip_and_mask_passthrough():
    layer = LockedDropout(0.25, seed=5, name="locked")
    clone = LockedDropout.from_config(layer.get_config())
    assert clone.rate == 0.25 and clone.seed == 5 and "noise_shape" not in clone.get_config()
    tokens = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)(tokens)
    assert LockedDropout(0.5)(embedded)._keras_mask is not None


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_bad_rate_is_rejected(rate):
    with pytest.raises(ValueError):
        LockedDropout(rate)
