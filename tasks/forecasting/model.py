"""The forecaster: a window of raw history in, the horizon's quantiles out.

Inside the model, each window is put on a common footing before the LSTM reads it: every
feature has its last value subtracted (the level) and is divided by its scale (the
typical step-to-step change on the training part, from ``adapt``). The head maps the
LSTM's final output, plus a linear map of the scaled history (LSTNet's autoregressive
part), to ``horizon x quantiles`` changes, which are scaled back and added to the last
observed value. So the exported model takes raw values and returns raw forecasts.
"""

import keras

from keras import ops

from lstmkit.tasks.forecasting.config import ForecastConfig

PACKAGE = "lstmkit.forecasting"


@keras.saving.register_keras_serializable(package=PACKAGE)
class WindowScaling(keras.layers.Layer):
    """``(history - its last step) / scales``, per feature."""

    def __init__(self, scales, **kwargs):
        super().__init__(**kwargs)
        self.scales = [float(scale) for scale in scales]

    def call(self, history):
        history = ops.cast(history, "float32")
        return (history - history[:, -1:, :]) / ops.convert_to_tensor(self.scales, "float32")

    def get_config(self):
        return {**super().get_config(), "scales": self.scales}


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantileForecast(keras.layers.Layer):
    """Scaled changes ``[batch, horizon * quantiles]`` → raw quantiles ``[batch, horizon,
    quantiles]``: reshaped, sorted along the quantiles (so they never cross), times the
    target's scale, plus the history's last target value."""

    def __init__(self, horizon: int, quantiles: int, scale: float, **kwargs):
        super().__init__(**kwargs)
        self.horizon, self.quantiles, self.scale = int(horizon), int(quantiles), float(scale)

    def call(self, changes, history):
        changes = ops.reshape(ops.cast(changes, "float32"), (-1, self.horizon, self.quantiles))
        level = ops.cast(history[:, -1:, :1], "float32")  # [batch, 1, 1]: the last target value
        return level + self.scale * ops.sort(changes, axis=-1)

    def get_config(self):
        return {**super().get_config(), "horizon": self.horizon, "quantiles": self.quantiles, "scale": self.scale}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ScaledPinballLoss(keras.losses.Loss):
    """The pinball (quantile) loss averaged over the quantiles, each window's error
    divided by its series' scale (the label's second column), so that series of every
    magnitude weigh the same. Labels are ``[batch, horizon, 3]``: target, scale, and the
    seasonal naive forecast (for evaluation only)."""

    def __init__(self, quantiles, name="scaled_pinball", **kwargs):
        super().__init__(name=name, **kwargs)
        self.quantiles = [float(level) for level in quantiles]

    def call(self, y_true, y_pred):
        target, scale = y_true[..., :1], y_true[..., 1:2]
        levels = ops.convert_to_tensor(self.quantiles, y_pred.dtype)
        error = (ops.cast(target, y_pred.dtype) - y_pred) / ops.cast(scale, y_pred.dtype)
        return ops.mean(ops.maximum(levels * error, (levels - 1.0) * error), axis=(-2, -1))

    def get_config(self):
        return {**super().get_config(), "quantiles": self.quantiles}


def build_model(config: ForecastConfig, scales) -> keras.Model:
    """``scales``: one per feature (target first), learned on the training part."""
    features = len(scales)
    history = keras.Input(shape=(config.context, features), dtype="float32", name="history")
    scaled = WindowScaling(scales, name="window_scaling", dtype="float32")(history)
    multiplier = config.dropout_multiplier
    x = config.lstm.apply(scaled, return_sequences=False, dropout_multiplier=multiplier)
    outputs = config.horizon * len(config.quantiles)
    changes = keras.layers.Dense(outputs, name="horizon_head")(x)
    if config.autoregressive:
        flat = keras.layers.Flatten(name="flat_history")(scaled)
        linear = keras.layers.Dense(outputs, name="autoregressive", kernel_initializer="zeros")(flat)
        changes = keras.layers.Add(name="changes")([changes, linear])
    quantiles = QuantileForecast(config.horizon, len(config.quantiles), scales[0], name="quantiles",
                                 dtype="float32")(changes, history)
    return keras.Model(history, quantiles, name="forecasting")


def median_index(config: ForecastConfig) -> int:
    return list(config.quantiles).index(0.5)


