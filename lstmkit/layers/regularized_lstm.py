"""``RegularizedLSTM``: ``keras.layers.LSTM`` plus regularization that keeps the fast path."""

import keras

from lstmkit.layers.locked_dropout import LockedDropout


@keras.saving.register_keras_serializable(package="lstmkit")
class RegularizedLSTM(keras.layers.LSTM):
    """A drop-in ``keras.layers.LSTM`` with variational input and output dropout.

    Args:
        units: size of the hidden state.
        variational_dropout: rate of a dropout mask drawn once per sequence and applied
            to the input at every time step.
        output_dropout: the same, applied to the outputs (to the single output when
            ``return_sequences=False``; states returned with ``return_state`` are left
            untouched so they can be carried on).
        **kwargs: everything ``keras.layers.LSTM`` takes, including the usual
            ``kernel_regularizer`` / ``recurrent_regularizer`` / ``bias_regularizer``.

    Both dropouts act outside the recurrence, so the layer still uses the fused cuDNN
    kernel on GPU whenever ``keras.layers.LSTM`` with the same arguments would; only
    Keras's own per-step ``recurrent_dropout`` rules it out. Defaults already follow
    common LSTM practice: forget-gate bias 1 (``unit_forget_bias``) and an orthogonal
    recurrent initializer.
    """

    def __init__(self, units, variational_dropout=0.0, output_dropout=0.0, **kwargs):
        super().__init__(units, **kwargs)
        for name, rate in (("variational_dropout", variational_dropout),
                           ("output_dropout", output_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {rate!r}")
        self.variational_dropout = variational_dropout
        self.output_dropout = output_dropout
        seed = kwargs.get("seed")
        self.input_dropout_layer = LockedDropout(variational_dropout, seed=seed)
        self.output_dropout_layer = LockedDropout(
            output_dropout, seed=None if seed is None else seed + 1
        )

    def call(self, sequences, initial_state=None, mask=None, training=False):
        sequences = self.input_dropout_layer(sequences, training=training)
        result = super().call(sequences, initial_state=initial_state, mask=mask,
                              training=training)
        if self.return_state:
            output, *states = result
            return [self.output_dropout_layer(output, training=training), *states]
        return self.output_dropout_layer(result, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            variational_dropout=self.variational_dropout,
            output_dropout=self.output_dropout,
        )
        return config
