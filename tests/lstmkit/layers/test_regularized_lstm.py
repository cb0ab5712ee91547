import keras
import numpy as np
import pytest
from keras import ops

from lstmkit.layers import RegularizedLSTM, stacked_lstm

EVERY_OPTION = dict(variational_dropout=0.2, output_dropout=0.2, weight_drop=0.3, zoneout_cell=0.1,
                    zoneout_hidden=0.1, layer_norm=True, activation_l2=0.5,
                    temporal_activation_l2=0.5, recurrent_dropout=0.1)


def _inputs(batch=4, time=7, features=5, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, time, features)).astype("float32")


def _numpy(x):
    return ops.convert_to_numpy(x)


def _twin(reference, **kwargs):
    """A RegularizedLSTM with the reference layer's weights."""
    layer = RegularizedLSTM(reference.units, return_sequences=reference.return_sequences,
                            return_state=reference.return_state, go_backwards=reference.go_backwards,
                            stateful=reference.stateful, **kwargs)
    layer.build(reference.input_spec.shape if reference.stateful else (None, None, 5))
    layer.set_weights(reference.get_weights())
    return layer


# ------------------------------------------------------------------ equivalence with keras.layers.LSTM
@pytest.mark.parametrize("options", [
    dict(return_sequences=False),
    dict(return_sequences=True),
    dict(return_sequences=True, go_backwards=True),
    dict(return_state=True),
])
@pytest.mark.parametrize("training", [False, True])
def test_matches_keras_lstm_with_every_option_off(options, training):
    inputs = _inputs()
    reference = keras.layers.LSTM(6, **options)
    expected = reference(inputs, training=training)
    actual = _twin(reference)(inputs, training=training)
    for want, got in zip(keras.tree.flatten(expected), keras.tree.flatten(actual)):
        np.testing.assert_allclose(_numpy(got), _numpy(want), atol=1e-5)


def test_matches_keras_lstm_on_masked_and_bidirectional_input():
    tokens = np.array([[3, 4, 5, 0, 0], [6, 7, 8, 9, 2], [1, 0, 0, 0, 0]])

    def model(make_lstm):
        keras.utils.set_random_seed(7)
        inputs = keras.Input((None,), dtype="int32")
        x = keras.layers.Embedding(10, 5, mask_zero=True)(inputs)
        x = keras.layers.Bidirectional(make_lstm(return_sequences=True))(x)
        return keras.Model(inputs, make_lstm(return_sequences=False, go_backwards=True)(x))

    reference = model(lambda **kw: keras.layers.LSTM(4, **kw))
    ours = model(lambda **kw: RegularizedLSTM(4, **kw))
    ours.set_weights(reference.get_weights())
    np.testing.assert_allclose(ours.predict(tokens, verbose=0), reference.predict(tokens, verbose=0),
                               atol=1e-5)


def test_matches_keras_lstm_when_stateful():
    inputs = _inputs(batch=2)
    reference = keras.layers.LSTM(3, stateful=True, return_sequences=True)
    reference.build((2, 7, 5))
    ours = RegularizedLSTM(3, stateful=True, return_sequences=True)
    ours.build((2, 7, 5))
    ours.set_weights(reference.get_weights())
    for chunk in (inputs[:, :3], inputs[:, 3:]):  # state carries across calls
        np.testing.assert_allclose(_numpy(ours(chunk)), _numpy(reference(chunk)), atol=1e-5)
    ours.reset_state()
    reference.reset_state()
    np.testing.assert_allclose(_numpy(ours(inputs)), _numpy(reference(inputs)), atol=1e-5)


def test_keras_recurrent_dropout_is_keras_own():
    # Same seed, same masks: the slow opt-in is exactly keras.layers.LSTM(recurrent_dropout=...).
    inputs = _inputs()
    reference = keras.layers.LSTM(6, return_sequences=True, recurrent_dropout=0.3, dropout=0.2, seed=5)
    expected = reference(inputs, training=True)
    ours = _twin(reference, recurrent_dropout=0.3, dropout=0.2, seed=5)
    np.testing.assert_allclose(_numpy(ours(inputs, training=True)), _numpy(expected), atol=1e-5)
    assert ours.fused_kernel_obstacles() and not _twin(reference).fused_kernel_obstacles()


def test_golden_numbers_from_constant_initializers():
    layer = RegularizedLSTM(2, kernel_initializer="ones", recurrent_initializer="ones",
                            bias_initializer="zeros", unit_forget_bias=False)
    output = _numpy(layer(np.ones((1, 1, 1), "float32")))
    # One step from zero state: every gate sees 1; c = sigmoid(1) * tanh(1); h = sigmoid(1) * tanh(c).
    sigmoid = 1 / (1 + np.exp(-1.0))
    expected = sigmoid * np.tanh(sigmoid * np.tanh(1.0))
    np.testing.assert_allclose(output, [[expected, expected]], atol=1e-6)


# ------------------------------------------------------------------ the regularizers, statistically
def test_variational_dropout_masks_are_locked_scaled_and_near_the_rate():
    layer = RegularizedLSTM(4, variational_dropout=0.3, seed=1)
    inputs = np.ones((400, 6, 50), "float32")
    dropped = _numpy(layer.input_dropout_layer(inputs, training=True))
    assert set(np.unique(dropped)) == {0.0, np.float32(1 / 0.7)}
    assert (dropped == dropped[:, :1]).all()  # the same mask at every step
    assert abs((dropped == 0).mean() - 0.3) < 0.02


def test_output_dropout_is_locked_over_time_and_off_at_inference():
    inputs = _inputs(batch=64)
    layer = RegularizedLSTM(16, return_sequences=True, output_dropout=0.5, seed=3)
    inference = _numpy(layer(inputs))
    trained = _numpy(layer(inputs, training=True))
    zero = trained == 0.0
    assert np.array_equal(zero.all(axis=1), zero.any(axis=1))
    assert abs(zero.all(axis=1).mean() - 0.5) < 0.06
    np.testing.assert_allclose(trained[~zero], (inference * 2)[~zero], rtol=1e-5, atol=1e-6)


def test_weight_drop_zeroes_the_gradient_of_dropped_recurrent_weights():
    import tensorflow as tf

    layer = RegularizedLSTM(32, weight_drop=0.4, seed=11)
    inputs = _inputs(batch=8, features=5)
    layer.build(inputs.shape)
    kernel = layer.cell.recurrent_kernel
    with tf.GradientTape() as tape:
        loss = ops.sum(layer(inputs, training=True))
    gradient = _numpy(tape.gradient(loss, kernel.value))
    zero = gradient == 0.0
    # Exactly 0 where the weight was dropped for this batch; the fraction is near 0.4.
    assert abs(zero.mean() - 0.4) < 0.05
    # A new mask per batch.
    with tf.GradientTape() as tape:
        loss = ops.sum(layer(inputs, training=True))
    assert not np.array_equal(_numpy(tape.gradient(loss, kernel.value)) == 0.0, zero)
    # No weight drop at inference: the layer is deterministic and uses every weight.
    np.testing.assert_array_equal(_numpy(layer(inputs)), _numpy(layer(inputs)))


def test_zoneout_one_copies_the_previous_state_and_inference_is_the_expectation():
    inputs = _inputs()
    frozen = RegularizedLSTM(6, return_sequences=True, return_state=True, zoneout_cell=1.0,
                             zoneout_hidden=1.0)
    sequence, hidden, cell = frozen(inputs, training=True)
    assert np.all(_numpy(sequence) == 0.0) and np.all(_numpy(hidden) == 0.0)
    assert np.all(_numpy(cell) == 0.0)

    # At inference, state = p * previous + (1 - p) * new: compute one step by hand.
    layer = RegularizedLSTM(3, zoneout_cell=0.25, zoneout_hidden=0.5, return_state=True)
    plain = RegularizedLSTM(3, return_state=True)
    step = inputs[:, :1]
    layer.build(step.shape)
    plain.build(step.shape)
    plain.set_weights(layer.get_weights())
    _, h, c = plain(step)
    _, zoned_h, zoned_c = layer(step)
    np.testing.assert_allclose(_numpy(zoned_c), 0.75 * _numpy(c), atol=1e-6)
    # h is computed from the new (un-zoned) cell, then zoned out.
    np.testing.assert_allclose(_numpy(zoned_h), 0.5 * _numpy(h), atol=1e-6)


def test_zoneout_in_training_keeps_each_unit_or_updates_it():
    inputs = _inputs(batch=200, time=2)
    layer = RegularizedLSTM(20, return_sequences=True, zoneout_hidden=0.3, seed=2)
    outputs = _numpy(layer(inputs, training=True))
    # At step 1 (zero initial state), a kept unit is exactly 0.
    kept = outputs[:, 0] == 0.0
    assert abs(kept.mean() - 0.3) < 0.03
    # At step 2 each unit either equals its step-1 value or moved.
    same = outputs[:, 1] == outputs[:, 0]
    assert 0.2 < same.mean() < 0.4


def test_layer_norm_normalizes_and_leaves_the_fused_path():
    layer = RegularizedLSTM(8, layer_norm=True, return_sequences=True)
    outputs = layer(_inputs(features=5) * 100.0)  # large inputs: LN keeps gates unsaturated
    assert outputs.shape == (4, 7, 8)
    assert {w.name for w in layer.weights} >= {"input_norm_gamma", "recurrent_norm_gamma",
                                               "cell_norm_gamma", "cell_norm_beta"}
    assert any("layer_norm" in reason for reason in layer.fused_kernel_obstacles())
    assert np.std(_numpy(outputs)) > 0.05


def test_activation_regularizers_are_masked_losses_added_only_in_training():
    tokens = np.array([[3, 4, 0, 0], [5, 6, 7, 8]])
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10, 3, mask_zero=True)(inputs)
    layer = RegularizedLSTM(4, return_sequences=True, activation_l2=2.0, temporal_activation_l2=3.0)
    model = keras.Model(inputs, layer(x))
    outputs = _numpy(model(tokens, training=True))
    assert len(model.losses) == 2
    temporal_loss, activation_loss = (float(loss) for loss in model.losses)
    valid = tokens != 0
    expected_ar = 2.0 * (outputs ** 2).mean(-1)[valid].mean()
    pairs = valid[:, 1:] & valid[:, :-1]
    expected_tar = 3.0 * ((outputs[:, 1:] - outputs[:, :-1]) ** 2).mean(-1)[pairs].mean()
    np.testing.assert_allclose([activation_loss, temporal_loss], [expected_ar, expected_tar], rtol=1e-5)
    model(tokens, training=False)
    assert model.losses == [] or all(float(loss) == 0 for loss in model.losses)


def test_weight_drop_variational_output_ar_tar_l2_keep_the_fused_path():
    fast = RegularizedLSTM(4, weight_drop=0.5, variational_dropout=0.3, output_dropout=0.3,
                           activation_l2=1.0, temporal_activation_l2=1.0,
                           kernel_regularizer="l2", recurrent_regularizer="l2")
    assert fast.fused_kernel_obstacles() == []
    for option in (dict(recurrent_dropout=0.1), dict(zoneout_cell=0.1), dict(layer_norm=True),
                   dict(activation="relu"), dict(unroll=True)):
        assert RegularizedLSTM(4, **option).fused_kernel_obstacles(), option


def test_the_fused_kernel_receives_the_weight_dropped_recurrent_kernel(monkeypatch):
    # On a GPU the layer calls the backend's fused LSTM; pretend there is one and check what
    # it is given: the kernel dropped for this batch, outside the step loop.
    from lstmkit import keras_internals

    seen = {}

    def fused(inputs, h, c, mask, kernel, recurrent_kernel, bias, **kwargs):
        seen["recurrent_kernel"] = _numpy(recurrent_kernel)
        raise NotImplementedError  # then the layer runs its own loop, as on CPU

    monkeypatch.setattr(keras_internals, "fused_lstm", fused)
    layer = RegularizedLSTM(16, weight_drop=0.5, seed=4)
    layer(_inputs(), training=True)
    dropped = seen["recurrent_kernel"] == 0.0
    assert abs(dropped.mean() - 0.5) < 0.06
    kept = _numpy(layer.cell.recurrent_kernel)[~dropped]
    np.testing.assert_allclose(seen["recurrent_kernel"][~dropped], kept * 2, rtol=1e-5)
    seen.clear()
    RegularizedLSTM(4, zoneout_cell=0.1)(_inputs(), training=True)
    assert seen == {}  # zoneout never asks for the fused kernel


def test_invalid_rates_are_rejected():
    with pytest.raises(ValueError, match="weight_drop must be in"):
        RegularizedLSTM(3, weight_drop=1.0)
    with pytest.raises(ValueError, match="activation_l2 must be >= 0"):
        RegularizedLSTM(3, activation_l2=-1)


# ------------------------------------------------------------------ serialization and determinism
def _model_with_every_option(seed=0):
    keras.utils.set_random_seed(seed)
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(20, 4, mask_zero=True)(tokens)
    x = keras.layers.Bidirectional(RegularizedLSTM(5, return_sequences=True, seed=1, **EVERY_OPTION))(x)
    x = RegularizedLSTM(5, seed=2, kernel_regularizer="l1", **EVERY_OPTION)(x)
    return keras.Model(tokens, keras.layers.Dense(1)(x))


@pytest.mark.slow
def test_every_option_round_trips_through_config_keras_file_and_saved_model(tmp_path):
    import tensorflow as tf

    model = _model_with_every_option()
    layer = model.layers[-2]
    clone = RegularizedLSTM.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    for name, value in EVERY_OPTION.items():
        assert clone.get_config()[name] == value
    batch = np.array([[1, 2, 3, 0], [4, 0, 0, 0]])
    model.compile("adam", "mse")
    model.fit(batch, np.ones((2, 1)), epochs=1, verbose=0)
    expected = model.predict(batch, verbose=0)

    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(restored.predict(batch, verbose=0), expected, atol=1e-6)

    model.export(str(tmp_path / "saved_model"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "saved_model"))
    np.testing.assert_allclose(served.serve(tf.constant(batch, tf.int32)).numpy(), expected, atol=1e-5)


@pytest.mark.slow
def test_seeded_training_repeats_exactly():
    batch = np.array([[1, 2, 3, 0], [4, 5, 0, 0], [6, 7, 8, 9]])

    def run():
        model = _model_with_every_option(seed=3)
        model.compile(keras.optimizers.Adam(1e-2), "mse")
        model.fit(batch, np.ones((3, 1)), epochs=3, verbose=0, shuffle=False)
        return model.predict(batch, verbose=0)

    np.testing.assert_array_equal(run(), run())


# ------------------------------------------------------------------ stacks
def test_stack_places_awd_rates_and_scales_them_with_one_multiplier():
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(20, 4, mask_zero=True)(tokens)
    x = stacked_lstm(x, [6, 6, 3], num_layers=3, input_dropout=0.3, hidden_dropout=[0.2, 0.1],
                     output_dropout=0.25, weight_drop=0.4, activation_l2=1.0, l2=1e-3,
                     dropout_multiplier=0.5, return_sequences=False)
    model = keras.Model(tokens, x)
    layers = [model.get_layer(f"lstm_{i}") for i in range(3)]
    assert [layer.units for layer in layers] == [6, 6, 3]
    assert [layer.variational_dropout for layer in layers] == [0.15, 0.1, 0.05]
    assert [layer.output_dropout for layer in layers] == [0.0, 0.0, 0.125]
    assert [layer.weight_drop for layer in layers] == [0.2, 0.2, 0.2]
    assert [layer.activation_l2 for layer in layers] == [0.0, 0.0, 1.0]
    assert [layer.return_sequences for layer in layers] == [True, True, False]
    assert len(model.losses) == 6  # L2 on two kernels per layer
    with pytest.raises(ValueError, match="scaled rates must stay"):
        stacked_lstm(keras.Input((None, 4)), 3, output_dropout=0.6, dropout_multiplier=2.0)
    with pytest.raises(ValueError, match="hidden_dropout has 1 values for 2 layers"):
        stacked_lstm(keras.Input((None, 4)), 3, num_layers=3, hidden_dropout=[0.1])
