import keras
import numpy as np
import pytest

from lstmkit.layers import RegularizedLSTM, stacked_lstm


def _inputs(batch=4, time=7, features=5, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, time, features)).astype("float32")


@pytest.mark.parametrize("return_sequences", [False, True])
def test_matches_keras_lstm_with_regularization_off(return_sequences):
    inputs = _inputs()
    reference = keras.layers.LSTM(6, return_sequences=return_sequences)
    expected = reference(inputs)
    layer = RegularizedLSTM(6, return_sequences=return_sequences, variational_dropout=0.5, output_dropout=0.5)
    layer.build(inputs.shape)
    layer.set_weights(reference.get_weights())
    # Inference: the dropouts are off, so the outputs are the plain LSTM's.
    np.testing.assert_allclose(layer(inputs, training=False), expected, atol=1e-5)
    # Training with rates 0 is also exactly the plain LSTM.
    plain = RegularizedLSTM(6, return_sequences=return_sequences)
    plain.build(inputs.shape)
    plain.set_weights(reference.get_weights())
    np.testing.assert_allclose(plain(inputs, training=True), expected, atol=1e-5)


def test_golden_numbers_from_constant_initializers():
    layer = RegularizedLSTM(
        2, kernel_initializer="ones", recurrent_initializer="ones", bias_initializer="zeros",
        unit_forget_bias=False,
    )
    output = keras.ops.convert_to_numpy(layer(np.ones((1, 1, 1), "float32")))
    # One step from zero state: every gate sees 1; c = sigmoid(1) * tanh(1); h = sigmoid(1) * tanh(c).
    sigmoid = 1 / (1 + np.exp(-1.0))
    expected = sigmoid * np.tanh(sigmoid * np.tanh(1.0))
    np.testing.assert_allclose(output, [[expected, expected]], atol=1e-6)


def test_dropout_is_active_only_in_training():
    inputs = _inputs(batch=16)
    layer = RegularizedLSTM(8, return_sequences=True, variational_dropout=0.5, output_dropout=0.5, seed=3)
    inference = keras.ops.convert_to_numpy(layer(inputs, training=False))
    np.testing.assert_array_equal(inference, keras.ops.convert_to_numpy(layer(inputs, training=False)))
    trained = keras.ops.convert_to_numpy(layer(inputs, training=True))
    assert not np.allclose(trained, inference)
    # Output dropout is locked over time: a unit dropped at one step is dropped at all.
    zero = np.isclose(trained, 0.0)
    assert zero.any()
    assert np.array_equal(zero.all(axis=1), zero.any(axis=1))


def test_return_state_keeps_states_undropped():
    inputs = _inputs()
    layer = RegularizedLSTM(6, return_state=True, output_dropout=0.9, seed=1)
    output, hidden, cell = layer(inputs, training=True)
    assert output.shape == hidden.shape == cell.shape == (4, 6)
    # The final hidden state is the undropped output.
    output = keras.ops.convert_to_numpy(output)
    kept = ~np.isclose(output, 0.0)
    np.testing.assert_allclose(output[kept] * 0.1, keras.ops.convert_to_numpy(hidden)[kept], rtol=1e-4)


def test_config_round_trip_and_keras_file(tmp_path):
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(20, 4, mask_zero=True)(tokens)
    x = stacked_lstm(x, 5, num_layers=2, bidirectional=True, variational_dropout=0.2,
                     output_dropout=0.1, l2=1e-3, return_sequences=False)
    model = keras.Model(tokens, keras.layers.Dense(1)(x))
    layer = model.get_layer("lstm_0_bidirectional").forward_layer
    assert isinstance(layer, RegularizedLSTM) and layer.variational_dropout == 0.2
    clone = RegularizedLSTM.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert len(model.losses) == 8  # L2 on kernel and recurrent kernel, 2 layers x 2 directions
    batch = np.array([[1, 2, 3, 0], [4, 0, 0, 0]])
    model.compile("adam", "mse")
    model.fit(batch, np.ones((2, 1)), epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored.predict(batch, verbose=0), model.predict(batch, verbose=0), atol=1e-6)


def test_masked_steps_do_not_change_the_result():
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(20, 4, mask_zero=True)(tokens)
    model = keras.Model(tokens, RegularizedLSTM(3)(x))
    short = model.predict(np.array([[5, 6]]), verbose=0)
    padded = model.predict(np.array([[5, 6, 0, 0, 0]]), verbose=0)
    np.testing.assert_allclose(short, padded, atol=1e-6)
