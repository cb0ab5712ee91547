"""Locked (variational) dropout: one dropout mask per sequence, shared by every time step."""

import keras


@keras.saving.register_keras_serializable(package="lstmkit")
class LockedDropout(keras.layers.Dropout):
    """Dropout whose mask is drawn once per sequence and reused at every time step.

    For a ``[batch, time, features]`` input the mask has shape ``[batch, 1, features]``
    (Gal & Ghahramani's variational dropout, the "locked dropout" of AWD-LSTM). Kept
    values are scaled by ``1 / (1 - rate)``; at inference the layer is the identity.
    Inputs of rank 2 get ordinary dropout, so the layer also fits after pooling or
    after an LSTM that returns only its last output.
    """

    def __init__(self, rate, seed=None, **kwargs):
        kwargs.pop("noise_shape", None)
        super().__init__(rate, noise_shape=None, seed=seed, **kwargs)

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        noise_shape = None
        if len(inputs.shape) >= 3:
            noise_shape = (None, 1) + (None,) * (len(inputs.shape) - 2)
        return keras.random.dropout(
            inputs, self.rate, noise_shape=noise_shape, seed=self.seed_generator
        )

    def get_config(self):
        config = super().get_config()
        config.pop("noise_shape", None)
        return config
