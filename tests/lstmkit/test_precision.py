"""train.precision: resolving it, building under it, and a mixed precision model that still
loads, trains and keeps float32 where it must."""

import keras
import numpy as np
import pytest

from lstmkit import precision
from lstmkit.layers import RegularizedLSTM, SequencePooling


def test_explicit_precision_is_taken_as_is_and_auto_depends_on_the_machine(monkeypatch):
    assert precision.resolve("mixed_bfloat16") == ("mixed_bfloat16", "train.precision")
    monkeypatch.setattr(precision, "_gpu_present", lambda: False)
    monkeypatch.setattr(precision, "cpu_bf16_features", lambda: ())
    assert precision.resolve("auto")[0] == "float32"
    monkeypatch.setattr(precision, "cpu_bf16_features", lambda: ("amx_bf16",))
    policy, why = precision.resolve("auto")
    assert policy == precision.AUTO_ON_BF16_CPU and "amx_bf16" in why


def test_models_are_built_under_the_policy_and_the_global_one_comes_back():
    before = keras.config.dtype_policy().name
    with precision.dtype_policy("mixed_bfloat16"):
        model = keras.Sequential([keras.Input((3, 4)), RegularizedLSTM(5),
                                  keras.layers.Dense(2, dtype="float32", name="head")])
    assert keras.config.dtype_policy().name == before
    assert precision.model_precision(model) == "mixed_bfloat16"
    assert precision.layers_in_float32(model) == ["head"]
    assert model(np.zeros((2, 3, 4), "float32")).dtype == "float32"


@pytest.mark.parametrize("cpu_kernel", ["sequence", "step"])
def test_bfloat16_layer_tracks_float32_and_its_regularizer_losses_are_float32(cpu_kernel):
    inputs = np.random.default_rng(0).normal(size=(4, 9, 5)).astype("float32")
    options = dict(return_sequences=True, activation_l2=1.0, temporal_activation_l2=1.0,
                   cpu_kernel=cpu_kernel)
    reference = RegularizedLSTM(6, **options)
    expected = reference(inputs, training=True)
    with precision.dtype_policy("mixed_bfloat16"):
        layer = RegularizedLSTM(6, **options)
    layer.build((None, None, 5))
    layer.set_weights(reference.get_weights())
    got = layer(inputs, training=True)
    assert keras.backend.standardize_dtype(got.dtype) == "bfloat16"
    np.testing.assert_allclose(np.asarray(got, "float32"), np.asarray(expected), atol=0.05)
    assert all(keras.backend.standardize_dtype(loss.dtype) == "float32" for loss in layer.losses) and len(layer.losses) == 2


def test_a_mixed_precision_model_loaded_under_float32_keeps_its_sublayers_in_bfloat16(tmp_path):
    """Sub-layers made by a layer (dropout inside RegularizedLSTM, the attention of
    SequencePooling) take their layer's policy, not the global float32 of the loading
    process; otherwise a loaded model mixes dtypes and fails."""
    with precision.dtype_policy("mixed_bfloat16"):
        inputs = keras.Input((None, 4))
        x = keras.layers.Bidirectional(RegularizedLSTM(5, return_sequences=True,
                                                       variational_dropout=0.1))(inputs)
        x = SequencePooling("attention")(x)
        model = keras.Model(inputs, keras.layers.Dense(2, dtype="float32")(x))
    model.save(tmp_path / "model.keras")
    assert keras.config.dtype_policy().name == "float32"
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    data = np.random.default_rng(1).normal(size=(3, 7, 4)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(data)), np.asarray(model(data)), atol=1e-6)
