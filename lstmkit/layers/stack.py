"""Build a stack of (optionally bidirectional) ``RegularizedLSTM`` layers."""

import keras

from lstmkit.layers.regularized_lstm import RegularizedLSTM


def stacked_lstm(
    inputs,
    units,
    num_layers=1,
    bidirectional=False,
    variational_dropout=0.0,
    output_dropout=0.0,
    l2=0.0,
    return_sequences=True,
    name="lstm",
):
    """Apply ``num_layers`` RegularizedLSTM layers to ``inputs`` (a Keras tensor).

    Every layer but the last returns sequences; the last returns sequences only when
    ``return_sequences`` is true (otherwise its final output, which for a bidirectional
    layer joins the forward final state with the backward final state). ``l2`` is the
    weight of an L2 penalty on the input and recurrent kernels.
    """
    x = inputs
    for index in range(num_layers):
        last = index == num_layers - 1
        penalty = keras.regularizers.L2(l2) if l2 else None
        layer = RegularizedLSTM(
            units,
            return_sequences=return_sequences or not last,
            variational_dropout=variational_dropout,
            output_dropout=output_dropout,
            kernel_regularizer=penalty,
            recurrent_regularizer=penalty,
            name=f"{name}_{index}",
        )
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"{name}_{index}_bidirectional")
        x = layer(x)
    return x
