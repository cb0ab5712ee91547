"""Bound the length of sequences inside the model."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lstmkit")
class TruncateSequence(keras.layers.Layer):
    """Keep at most ``max_length`` steps of a ``[batch, time, ...]`` tensor.

    Unlike a fixed ``output_sequence_length``, short batches stay short (an LSTM pays
    for every padded step), while a pathologically long input cannot blow up memory.
    A batch of empty sequences gets one padding step (value 0, the mask value), because
    recurrent layers cannot run over zero steps.
    """

    def __init__(self, max_length, **kwargs):
        super().__init__(**kwargs)
        if max_length <= 0:
            raise ValueError(f"max_length must be > 0, got {max_length!r}")
        self.max_length = max_length

    def call(self, inputs):
        padding = [[0, 0], [0, 1]] + [[0, 0]] * (len(inputs.shape) - 2)
        padded = ops.pad(inputs, padding)
        length = ops.minimum(ops.maximum(ops.shape(inputs)[1], 1), self.max_length)
        return padded[:, :length]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None, *input_shape[2:])

    def get_config(self):
        config = super().get_config()
        config.update(max_length=self.max_length)
        return config
