"""Forecast accuracy: point metrics (MAE, RMSE, sMAPE, MASE), quantile metrics (pinball
loss, CRPS, interval coverage) and the seasonal naive forecast that MASE is scaled by."""

from __future__ import annotations

import numpy as np

from lstmkit.errors import UserError


# A mean change this small next to the series' own size is floating-point rounding, not a
# change: 25 + 2 sin(2 pi i / 12) differs from itself a season later by about 1e-15. The
# threshold is far above float64 rounding (1e-16) and far below what the model's float32
# values can hold (1e-7), so no change the model could see is called none.
NEGLIGIBLE_CHANGE = 1e-9


def mean_change(values: np.ndarray, lag: int) -> float:
    """mean |y[t] - y[t - lag]|; 0.0 where that is rounding (``NEGLIGIBLE_CHANGE``)."""
    change = float(np.mean(np.abs(values[lag:] - values[:-lag])))
    return 0.0 if change <= NEGLIGIBLE_CHANGE * float(np.max(np.abs(values))) else change


def mase_scale(train_values: np.ndarray, season: int) -> float:
    """In-sample MAE of the seasonal naive forecast on the training part:
    mean |y[t] - y[t - season]| over t >= season (season 1: the naive forecast).

    0.0 where the training part repeats itself every season (a constant series, or a
    purely seasonal one, up to rounding): the seasonal naive forecast is exact there, so
    MASE, a ratio to its error, is undefined. That is a legal series, not an error:
    ``point_metrics`` leaves its windows out of MASE."""
    train_values = np.asarray(train_values, dtype=float)
    _check_season(season)
    if len(train_values) <= season:
        raise UserError(f"MASE needs more than season={season} training values, got {len(train_values)}: "
                        "use a longer training part or a smaller season")
    if not np.isfinite(train_values).all():
        raise UserError("MASE scale is not finite (the training part holds NaN or infinite values): "
                        "fill or drop them first")
    return mean_change(train_values, season)


def loss_scale(train_values: np.ndarray, season: int) -> float:
    """A positive scale that training divides a series' errors by, so that series of every
    size weigh the same: its ``mase_scale``; where that is 0, its step-to-step change; where
    that is 0 too (a constant training part), its size; 1 for a series of zeros."""
    scale = mase_scale(train_values, season)
    train_values = np.asarray(train_values, dtype=float)
    if scale == 0:
        scale = mean_change(train_values, 1)
    if scale == 0:
        scale = float(np.max(np.abs(train_values))) or 1.0
    return scale


def point_metrics(truth: np.ndarray, forecast: np.ndarray, mase_scales: np.ndarray) -> dict:
    """MAE, RMSE, sMAPE (percent) and MASE over all windows and steps; ``truth`` and
    ``forecast`` are [windows, horizon], ``mase_scales`` [windows] (each window's
    series' ``mase_scale``).

    A window whose scale is 0 has no MASE (``mase_scale``): MASE is the mean over the
    other windows, and absent where no window has a scale."""
    truth, forecast = np.asarray(truth, dtype=float), np.asarray(forecast, dtype=float)
    mase_scales = np.asarray(mase_scales, dtype=float)
    if truth.shape != forecast.shape or truth.ndim != 2 or mase_scales.shape != truth.shape[:1]:
        raise ValueError(f"truth {truth.shape} and forecast {forecast.shape} must be the same "
                         f"[windows, horizon], mase_scales {mase_scales.shape} [windows]")
    error = np.abs(forecast - truth)
    magnitude = np.abs(truth) + np.abs(forecast)
    # A step where truth and forecast are both 0 is a perfect forecast: it counts as 0, not NaN.
    relative = np.divide(error, magnitude, out=np.zeros_like(error), where=magnitude > 0)
    metrics = {
        "mae": float(error.mean()),
        "rmse": float(np.sqrt(np.mean(error ** 2))),
        "smape": float(200.0 * relative.mean()),
    }
    scaled = mase_scales > 0
    if scaled.any():
        metrics["mase"] = float(np.mean(error[scaled] / mase_scales[scaled, None]))
    return metrics


def quantile_metrics(truth: np.ndarray, quantiles: np.ndarray, levels) -> dict:
    """Pinball loss, CRPS and the coverage of the outermost interval; ``truth`` is
    [windows, horizon], ``quantiles`` [windows, horizon, Q] at the increasing ``levels``.

    "crps" is approximated from the quantiles as 2 x the mean pinball loss over the
    levels (exact in the limit of many evenly spaced levels). "coverage" is the share
    of truths between the lowest and highest quantile, the interval that "interval"
    names in percent (e.g. "10-90")."""
    truth, quantiles = np.asarray(truth, dtype=float), np.asarray(quantiles, dtype=float)
    levels = np.asarray(levels, dtype=float)
    if quantiles.shape != truth.shape + levels.shape or levels.ndim != 1:
        raise ValueError(f"quantiles {quantiles.shape} must be truth {truth.shape} + [{len(levels)} levels]")
    if not (np.all((levels > 0) & (levels < 1)) and np.all(np.diff(levels) > 0)):
        raise ValueError(f"quantile levels must be increasing and inside (0, 1), got {levels.tolist()}")
    loss = float(pinball_loss(truth[..., None], quantiles, levels).mean())
    lowest, highest = quantiles[..., 0], quantiles[..., -1]
    return {
        "quantile_loss": loss,
        "crps": 2.0 * loss,
        "coverage": float(np.mean((truth >= lowest) & (truth <= highest))),
        "interval": f"{_percent(levels[0])}-{_percent(levels[-1])}",
    }


def pinball_loss(truth: np.ndarray, quantile: np.ndarray, level) -> np.ndarray:
    """Elementwise pinball loss max(q (y - f), (q - 1) (y - f)) of quantile f at level q."""
    diff = truth - quantile
    return np.maximum(level * diff, (level - 1) * diff)


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """The next ``horizon`` values as a repeat of the last ``season`` values of ``history``."""
    history = np.asarray(history, dtype=float)
    _check_season(season)
    if len(history) < season:
        raise UserError(f"the seasonal naive forecast needs at least season={season} values of history, "
                        f"got {len(history)}: use a longer history or a smaller season")
    last_season = history[len(history) - season:]
    return np.resize(last_season, horizon)  # np.resize repeats its input cyclically


def _check_season(season: int) -> None:
    if season < 1:
        raise UserError(f"season must be a whole number >= 1 (1 for no seasonality), got {season}")


def _percent(level: float) -> str:
    """0.1 -> "10", 0.025 -> "2.5" (rounded first: 0.1 * 100 is 10.000000000000002)."""
    return f"{round(100 * float(level), 6):g}"
