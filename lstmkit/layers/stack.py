"""Stacks of (optionally bidirectional) ``RegularizedLSTM`` layers, AWD-LSTM style.

AWD-LSTM names its dropouts by where they act, not by layer: ``input_dropout`` on what
enters the first layer, ``hidden_dropout`` between layers, ``output_dropout`` on what
leaves the last one, ``weight_drop`` on every recurrent kernel. ``stacked_lstm`` takes
those (each a single rate, or one rate per layer where that makes sense) and one
``dropout_multiplier`` that scales every rate at once, the single knob worth tuning
first (fastai's ``drop_mult``). ``lstmkit.config.LSTMStackConfig`` is the same set as a
task-config section, so every task exposes the same keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from lstmkit.layers.regularized_lstm import RegularizedLSTM


def scaled_rate(rate: float, multiplier: float) -> float:
    """``rate * multiplier``, refusing a result that would drop everything."""
    value = rate * multiplier
    if not 0.0 <= value < 1.0:
        raise ValueError(f"rate {rate} x dropout_multiplier {multiplier} = {value:g}; "
                         "scaled rates must stay in [0, 1)")
    return value


def _per_layer(name, value, num_layers):
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != num_layers:
            raise ValueError(f"{name} has {len(value)} values for {num_layers} layers")
        return list(value)
    return [value] * num_layers


def stacked_lstm(
    inputs,
    units: int | Sequence[int],
    num_layers: int = 1,
    bidirectional: bool = False,
    input_dropout: float = 0.0,
    hidden_dropout: float | Sequence[float] = 0.0,
    output_dropout: float = 0.0,
    weight_drop: float | Sequence[float] = 0.0,
    recurrent_dropout: float = 0.0,
    zoneout_cell: float = 0.0,
    zoneout_hidden: float = 0.0,
    layer_norm: bool = False,
    activation_l2: float = 0.0,
    temporal_activation_l2: float = 0.0,
    l2: float = 0.0,
    dropout_multiplier: float = 1.0,
    return_sequences: bool = True,
    return_state: bool = False,
    seed: int | None = None,
    name: str = "lstm",
):
    """Apply ``num_layers`` RegularizedLSTM layers to ``inputs`` (a Keras tensor).

    Rates: ``input_dropout`` is the first layer's variational input dropout;
    ``hidden_dropout`` (one rate, or one per layer boundary: ``num_layers - 1`` values)
    the input dropout of every later layer; ``output_dropout`` the last layer's output
    dropout; ``weight_drop`` (one rate, or one per layer) each layer's DropConnect.
    ``recurrent_dropout`` and the zoneouts apply to every layer; all of these are scaled
    by ``dropout_multiplier``. ``activation_l2`` / ``temporal_activation_l2`` (AR/TAR)
    act on the last layer's output, as in AWD-LSTM. ``l2`` is an L2 penalty on the
    input and recurrent kernels of every layer.

    Every layer but the last returns sequences; the last returns sequences only when
    ``return_sequences`` is true (otherwise its final output, which for a bidirectional
    layer joins the forward final state with the backward final state).
    """
    units = _per_layer("units", units, num_layers)
    weight_drop = _per_layer("weight_drop", weight_drop, num_layers)
    between = _per_layer("hidden_dropout", hidden_dropout, num_layers - 1)
    input_rates = [input_dropout, *between]

    def rate(value):
        return scaled_rate(value, dropout_multiplier)

    x = inputs
    states = []
    for index in range(num_layers):
        last = index == num_layers - 1
        penalty = keras.regularizers.L2(l2) if l2 else None
        layer = RegularizedLSTM(
            units[index],
            return_sequences=return_sequences or not last,
            return_state=return_state,
            variational_dropout=rate(input_rates[index]),
            output_dropout=rate(output_dropout) if last else 0.0,
            weight_drop=rate(weight_drop[index]),
            recurrent_dropout=rate(recurrent_dropout),
            zoneout_cell=rate(zoneout_cell),
            zoneout_hidden=rate(zoneout_hidden),
            layer_norm=layer_norm,
            activation_l2=activation_l2 if last else 0.0,
            temporal_activation_l2=temporal_activation_l2 if last else 0.0,
            kernel_regularizer=penalty,
            recurrent_regularizer=penalty,
            seed=None if seed is None else seed + 10 * index,
            name=f"{name}_{index}",
        )
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"{name}_{index}_bidirectional")
        x = layer(x)
        if return_state:
            x, *layer_states = x
            states.append(layer_states)
    return (x, states) if return_state else x
