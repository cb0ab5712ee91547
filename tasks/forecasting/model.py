"""The forecaster: a window of raw history in, the horizon's quantiles out.

Inside the model, each window is put on a common footing before the LSTM reads it: every
value feature (the target, the covariates) has its last value subtracted (the level) and
is divided by a scale; calendar features pass as they are. The scale is the window's own
(``scaling="window"``: the mean absolute step-to-step change of each feature inside the
window, as DeepAR scales each window by its own size), so one network serves series of
every magnitude and needs no per-series state at serving time; or one per feature for the
whole run (``scaling="run"``: the typical step-to-step change on the training part, from
``adapt``). The head maps the LSTM's final output, plus a linear map of the scaled history
(LSTNet's autoregressive part), to ``horizon x quantiles`` changes, which are scaled back
and added to an anchor: the last observed value, or (``anchor="season"``) the seasonal
naive forecast, so that the network learns only what the last season does not say. With
``transform="log"`` all of this happens to the logarithm of the target, and the quantiles
are raised back by ``exp``. ``IntervalCalibration`` then widens or narrows each quantile's
distance from the median by factors set on the validation windows after training. So the
exported model takes raw values and returns raw forecasts.

With ``members`` > 1 the model holds that many such networks side by side; its output
keeps a member axis, ``[batch, members, horizon, quantiles]``, so that each member trains
on its own loss, and ``forecast_quantiles`` averages them into the forecast.
"""

import keras
import numpy as np
from keras import ops

from lstmkit.tasks.forecasting.config import ForecastConfig

PACKAGE = "lstmkit.forecasting"


@keras.saving.register_keras_serializable(package=PACKAGE)
class LogTarget(keras.layers.Layer):
    """The history with its target (the first feature) replaced by its natural logarithm
    (``transform="log"``): changes become ratios, and a forecast made here and raised
    back by ``ops.exp`` is positive. The data and the serving graph refuse values <= 0."""

    def call(self, history):
        history = ops.cast(history, "float32")
        return ops.concatenate([ops.log(history[:, :, :1]), history[:, :, 1:]], axis=-1)


def window_scales(history):
    """``[batch, 1, features]``: each window's own scale of each feature, the mean absolute
    change from one step to the next inside it; where a window does not change, its mean
    absolute value; where that is 0 too, 1 (so a flat window of zeros stays zeros)."""
    change = ops.mean(ops.abs(history[:, 1:, :] - history[:, :-1, :]), axis=1, keepdims=True)
    size = ops.mean(ops.abs(history), axis=1, keepdims=True)
    return ops.where(change > 0, change, ops.where(size > 0, size, ops.ones_like(size)))


@keras.saving.register_keras_serializable(package=PACKAGE)
class WindowScaling(keras.layers.Layer):
    """``(history - its last step) / scale`` for the first ``levelled`` features (values
    whose level says nothing across windows); the rest (calendar features, whose place
    in the season is the point) pass through. The scale is each window's own
    (``per_window``: ``window_scales``), else ``scales``, one per feature for the run."""

    def __init__(self, scales, levelled: int | None = None, per_window: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.scales = [float(scale) for scale in scales]
        self.levelled = len(self.scales) if levelled is None else int(levelled)
        self.per_window = bool(per_window)

    def call(self, history):
        history = ops.cast(history, "float32")
        kept = np.array([1.0] * self.levelled + [0.0] * (len(self.scales) - self.levelled), np.float32)
        level = history[:, -1:, :] * ops.convert_to_tensor(kept)
        if self.per_window:
            scales = ops.where(ops.convert_to_tensor(kept) > 0, window_scales(history), 1.0)
        else:
            scales = ops.convert_to_tensor(np.where(kept > 0, self.scales, 1.0).astype(np.float32))
        return (history - level) / scales

    def get_config(self):
        return {**super().get_config(), "scales": self.scales, "levelled": self.levelled,
                "per_window": self.per_window}


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantileForecast(keras.layers.Layer):
    """Scaled changes ``[batch, members, horizon * quantiles]`` → raw quantiles ``[batch,
    members, horizon, quantiles]``: reshaped, sorted along the quantiles (so they never
    cross), times the target's scale (the window's own with ``per_window``, as
    ``WindowScaling`` divided by it; else ``scale``), plus the history's last target value."""

    def __init__(self, horizon: int, quantiles: int, scale: float, per_window: bool = False, season: int = 0,
                 **kwargs):
        super().__init__(**kwargs)
        self.horizon, self.quantiles, self.scale = int(horizon), int(quantiles), float(scale)
        self.per_window, self.season = bool(per_window), int(season)

    def call(self, changes, history):
        # [batch, members, horizon * quantiles] -> [batch, members, horizon, quantiles]
        members = ops.shape(changes)[1]
        changes = ops.reshape(ops.cast(changes, "float32"), (-1, members, self.horizon, self.quantiles))
        target = ops.cast(history[:, :, 0], "float32")
        if self.season:  # the seasonal naive forecast: step h repeats the last season's step h mod season
            steps = history.shape[1]
            anchor = ops.take(target, [steps - self.season + step % self.season for step in range(self.horizon)],
                              axis=1)[:, None, :, None]  # [batch, 1, horizon, 1]
        else:
            anchor = target[:, -1:][:, :, None, None]  # the last value, [batch, 1, 1, 1]
        scale = window_scales(target[:, :, None])[:, :, :, None] if self.per_window else self.scale
        return anchor + scale * ops.sort(changes, axis=-1)

    def get_config(self):
        return {**super().get_config(), "horizon": self.horizon, "quantiles": self.quantiles, "scale": self.scale,
                "per_window": self.per_window, "season": self.season}


@keras.saving.register_keras_serializable(package=PACKAGE)
class IntervalCalibration(keras.layers.Layer):
    """Quantiles ``[..., quantiles]`` with each one's distance from the median multiplied
    by its ``widths`` entry, then sorted: the calibration ``calibrate_widths`` sets on
    held-out windows after training (all 1 before: the quantiles as trained). A
    non-trainable weight, so it is saved, loaded and exported with the model."""

    def __init__(self, median: int, **kwargs):
        super().__init__(**kwargs)
        self.median = int(median)

    def build(self, input_shape):
        self.widths = self.add_weight(shape=(input_shape[-1],), initializer="ones", trainable=False, name="widths")

    def call(self, quantiles):
        median = quantiles[..., self.median:self.median + 1]
        return ops.sort(median + ops.cast(self.widths, quantiles.dtype) * (quantiles - median), axis=-1)

    def get_config(self):
        return {**super().get_config(), "median": self.median}


def calibrate_widths(quantiles: np.ndarray, truth: np.ndarray, levels, median: int) -> np.ndarray:
    """Per level, the factor on its distance from the median that puts the share
    ``level`` of ``truth`` below it on these windows (a split-conformal fit of each
    quantile: the quantile of how many distances each outcome lies from the median).
    ``quantiles`` ``[..., levels]`` as forecast with widths of 1, ``truth`` ``[...]``."""
    middle = quantiles[..., median]
    widths = np.ones(len(levels))
    for index, level in enumerate(levels):
        if index == median:
            continue
        distance = np.abs(quantiles[..., index] - middle)
        useful = distance > 0
        if not useful.any():
            continue
        # How far past the median, in this quantile's distances, each outcome lies (its side).
        reach = ((truth - middle) if level > 0.5 else (middle - truth))[useful] / distance[useful]
        widths[index] = max(float(np.quantile(reach, level if level > 0.5 else 1 - level)), 0.0)
    return widths


@keras.saving.register_keras_serializable(package=PACKAGE)
class ScaledPinballLoss(keras.losses.Loss):
    """The pinball (quantile) loss averaged over the quantiles, each window's error
    divided by its series' scale (the label's second column), so that series of every
    magnitude weigh the same. Labels are ``[batch, horizon, 4]``: target, scale, and the
    seasonal naive forecast and MASE scale (for evaluation only; ``windows_dataset``)."""

    def __init__(self, quantiles, name="scaled_pinball", **kwargs):
        super().__init__(name=name, **kwargs)
        self.quantiles = [float(level) for level in quantiles]

    def call(self, y_true, y_pred):
        # Labels [batch, horizon, 4] against every member's [batch, members, horizon, quantiles].
        target, scale = y_true[:, None, :, :1], y_true[:, None, :, 1:2]
        levels = ops.convert_to_tensor(self.quantiles, y_pred.dtype)
        error = (ops.cast(target, y_pred.dtype) - y_pred) / ops.cast(scale, y_pred.dtype)
        return ops.mean(ops.maximum(levels * error, (levels - 1.0) * error), axis=(-3, -2, -1))

    def get_config(self):
        return {**super().get_config(), "quantiles": self.quantiles}


def build_model(config: ForecastConfig, scales) -> keras.Model:
    """``scales``: one per feature (target first), learned on the training part."""
    features = len(scales)
    history = keras.Input(shape=(config.context, features), dtype="float32", name="history")
    levelled = features - 2 * config.data.calendar
    per_window = config.scaling == "window"
    logged = config.transform == "log"
    modelled = LogTarget(name="log_target", dtype="float32")(history) if logged else history
    scaled = WindowScaling(scales, levelled, per_window, name="window_scaling", dtype="float32")(modelled)
    outputs = config.horizon * len(config.quantiles)
    flat = keras.layers.Flatten(name="flat_history")(scaled) if config.autoregressive else None
    members = []
    for member in range(config.members):
        # One member keeps the plain names (lstm_0, horizon_head...).
        prefix = f"member_{member}_" if config.members > 1 else ""
        x = config.lstm.apply(scaled, return_sequences=False, dropout_multiplier=config.dropout_multiplier,
                              name=f"{prefix}lstm")
        changes = keras.layers.Dense(outputs, name=f"{prefix}horizon_head")(x)
        if config.autoregressive:
            linear = keras.layers.Dense(outputs, name=f"{prefix}autoregressive", kernel_initializer="zeros")(flat)
            changes = keras.layers.Add(name=f"{prefix}changes")([changes, linear])
        members.append(keras.layers.Reshape((1, outputs), name=f"{prefix}member_axis")(changes))
    changes = members[0] if len(members) == 1 else keras.layers.Concatenate(axis=1, name="members")(members)
    season = config.data.season if config.anchor == "season" else 0
    quantiles = QuantileForecast(config.horizon, len(config.quantiles), scales[0], per_window, season,
                                 name="quantiles", dtype="float32")(changes, modelled)
    if logged:  # exp keeps the quantiles' order
        quantiles = keras.layers.Activation("exponential", name="exp_quantiles", dtype="float32")(quantiles)
    if config.calibrate:
        quantiles = IntervalCalibration(median_index(config), name="interval_calibration", dtype="float32")(quantiles)
    return keras.Model(history, quantiles, name="forecasting")


def forecast_quantiles(outputs):
    """The forecast ``[batch, horizon, quantiles]`` from the model's output: the members'
    quantiles averaged (an average of sorted quantiles stays sorted). NumPy or tensors."""
    return ops.mean(outputs, axis=1) if not isinstance(outputs, np.ndarray) else outputs.mean(axis=1)


def median_index(config: ForecastConfig) -> int:
    return list(config.quantiles).index(0.5)


