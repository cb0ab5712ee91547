"""Attaching a padding mask computed from token ids to any tensor."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lstmkit")
class PaddingMask(keras.layers.Layer):
    """``PaddingMask()([features, ids])`` returns ``features`` with the Keras mask
    ``ids != padding_id``. For models whose features pass through layers that do not
    carry masks (convolutions), so the mask is attached again where the LSTM needs it."""

    def __init__(self, padding_id=0, **kwargs):
        super().__init__(**kwargs)
        self.padding_id = padding_id

    def call(self, inputs):
        return inputs[0]

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs[1], self.padding_id)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "padding_id": self.padding_id}
