"""The CPU whole-sequence kernel against keras.layers.LSTM: values and every gradient."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lstmkit.layers import RegularizedLSTM
from lstmkit.layers import sequence_lstm
from lstmkit.layers.regularized_lstm import SEQUENCE_KERNEL_MIN_UNITS

UNITS, FEATURES = 6, 5

MASKS = {
    "right_padded": [[1, 1, 1, 0, 0, 0, 0], [1] * 7, [1, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0, 0]],
    "left_padded": [[0, 0, 0, 1, 1, 1, 1], [1] * 7, [0, 0, 0, 0, 0, 0, 1], [0, 1, 1, 1, 1, 1, 1]],
    "holes_and_an_empty_row": [[1, 0, 1, 0, 1, 1, 0], [0] * 7, [0, 1, 1, 0, 0, 1, 1], [1] * 7],
}


def _loss_and_gradients(layer, inputs, mask, initial_state):
    inputs = tf.convert_to_tensor(inputs)
    state = [tf.convert_to_tensor(s) for s in initial_state] if initial_state is not None else None
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        if state is not None:
            tape.watch(state)
        result = layer(inputs, mask=mask, initial_state=state, training=True)
        loss = 0.0
        for k, value in enumerate(keras.tree.flatten(result)):
            weights = tf.cos(tf.reshape(tf.range(tf.size(value), dtype=tf.float32), tf.shape(value)) + k)
            loss += tf.reduce_sum(value * weights)
    sources = [inputs, *(state or []), *layer.trainable_variables]
    return keras.tree.flatten(result), tape.gradient(loss, sources)


def _pair(options):
    reference = keras.layers.LSTM(UNITS, **options)
    reference.build((None, None, FEATURES))
    ours = RegularizedLSTM(UNITS, cpu_kernel="sequence", **options)
    ours.build((None, None, FEATURES))
    ours.set_weights([w + 0.3 * np.random.default_rng(1).normal(size=w.shape).astype("float32")
                      for w in reference.get_weights()])
    reference.set_weights(ours.get_weights())  # a non-trivial bias too
    assert ours._sequence_kernel_applies()
    return reference, ours


@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize("mask_name", [None, *MASKS])
@pytest.mark.parametrize("options", [
    dict(return_sequences=True),
    dict(return_sequences=False, return_state=True),
    dict(return_sequences=True, go_backwards=True, return_state=True),
    dict(return_sequences=True, zero_output_for_mask=True),
])
def test_values_and_gradients_match_keras_lstm(options, mask_name, graph, monkeypatch):
    if graph and options.get("zero_output_for_mask"):
        pytest.skip("one graph-mode case per mask suffices")
    calls = []
    original = sequence_lstm.lstm_sequence
    monkeypatch.setattr(sequence_lstm, "lstm_sequence",
                        lambda *args: calls.append(1) or original(*args))
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(4, 7, FEATURES)).astype("float32")
    mask = None if mask_name is None else tf.constant(np.array(MASKS[mask_name], bool))
    initial_state = [rng.normal(size=(4, UNITS)).astype("float32") for _ in range(2)]
    reference, ours = _pair(options)
    run = tf.function(_loss_and_gradients, autograph=False) if graph else _loss_and_gradients
    want_values, want_gradients = run(reference, inputs, mask, initial_state)
    got_values, got_gradients = run(ours, inputs, mask, initial_state)
    assert calls, "the sequence kernel was not used"
    for want, got in zip(want_values, got_values):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)
    names = ["inputs", "h0", "c0", "kernel", "recurrent_kernel", "bias"]
    for name, want, got in zip(names, want_gradients, got_gradients):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5, rtol=1e-5,
                                   err_msg=name)


def test_gradients_without_an_initial_state_and_with_weight_drop_reach_the_weights():
    """The weight-dropped recurrent kernel goes into the sequence kernel: dropped entries get
    no gradient, kept ones do."""
    keras.utils.set_random_seed(3)
    layer = RegularizedLSTM(UNITS, weight_drop=0.5, seed=3, cpu_kernel="sequence")
    layer.build((None, None, FEATURES))
    inputs = tf.constant(np.random.default_rng(0).normal(size=(8, 9, FEATURES)).astype("float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(inputs, training=True))
    gradient = tape.gradient(loss, layer.cell.recurrent_kernel).numpy()
    zero = np.abs(gradient) < 1e-12
    assert 0.3 < zero.mean() < 0.7


def test_kernel_is_skipped_where_the_step_changes_and_chosen_by_width():
    for options in (dict(zoneout_cell=0.1), dict(layer_norm=True), dict(recurrent_dropout=0.1)):
        assert not RegularizedLSTM(4, cpu_kernel="sequence", **options)._sequence_kernel_applies()
    assert RegularizedLSTM(4, weight_drop=0.5, variational_dropout=0.3,
                           cpu_kernel="sequence")._sequence_kernel_applies()
    assert not RegularizedLSTM(1024, cpu_kernel="step")._sequence_kernel_applies()
    assert not RegularizedLSTM(SEQUENCE_KERNEL_MIN_UNITS - 1)._sequence_kernel_applies()
    assert RegularizedLSTM(SEQUENCE_KERNEL_MIN_UNITS)._sequence_kernel_applies()
    with pytest.raises(ValueError, match="cpu_kernel"):
        RegularizedLSTM(4, cpu_kernel="fast")


def test_cpu_kernel_survives_the_layer_config():
    layer = RegularizedLSTM(4, cpu_kernel="step")
    assert RegularizedLSTM.from_config(layer.get_config()).cpu_kernel == "step"
