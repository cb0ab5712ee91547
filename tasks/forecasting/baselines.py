"""The classical forecasters the LSTM is benchmarked against, on rolling origins: the seasonal
naive, ETS and ARIMA. ETS and ARIMA are chosen by AICc on the history before the first
origin, fitted there once, and then only filtered forward (same parameters) to later origins.
"""

from __future__ import annotations

import contextlib
import itertools
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from lstmkit.errors import UserError
from lstmkit.tasks.forecasting.metrics import seasonal_naive

METHODS = ("seasonal_naive", "ets", "arima")


@dataclass(frozen=True)
class BaselineForecast:
    """Forecasts [origins, horizon] and the model that made them, in words."""

    forecasts: np.ndarray
    model: str


class _NoCandidateFits(Exception):
    """Every candidate model failed to fit; the message says which family."""


# A fitted model, as a function from a history to statsmodels results over that history
# with the fitted parameters kept (the state is filtered through the history).
Refilter = Callable[[np.ndarray], object]


def rolling_origin_forecasts(values: np.ndarray, origins: list[int], horizon: int, season: int,
                             method: str) -> BaselineForecast:
    """For each origin o (an index into ``values``), the forecast of values[o:o + horizon]
    made from values[:o] only. ``method`` is "seasonal_naive", "ets" or "arima". ETS and
    ARIMA choose and fit their model on the values before the first origin; later origins
    keep its parameters and only update its state. If no candidate fits, the seasonal
    naive is used and ``model`` says so."""
    values = np.asarray(values, dtype=float)
    origins = [int(origin) for origin in origins]
    _check_inputs(values, origins, horizon, season, method)
    if method == "seasonal_naive":
        return _seasonal_naive_forecasts(values, origins, horizon, season)
    fit = _fit_ets if method == "ets" else _fit_arima
    history = values[:min(origins)]
    with _quiet_statsmodels():
        try:
            if np.ptp(history) == 0:  # degenerate likelihoods; the naive forecast is the constant
                raise _NoCandidateFits("the history before the first origin is constant")
            model, refilter = fit(history, season)
        except _NoCandidateFits as error:
            fallback = _seasonal_naive_forecasts(values, origins, horizon, season)
            return BaselineForecast(fallback.forecasts, f"{fallback.model} (fallback: {error})")
        # One pass with fixed parameters through the values before the last origin; a
        # dynamic prediction from origin o (dynamic=0) starts from the state at o, which has
        # seen values[:o] only, and feeds back its own forecasts after that.
        filtered = refilter(values[:max(origins)])
        forecasts = [np.asarray(filtered.predict(start=origin, end=origin + horizon - 1, dynamic=0))
                     for origin in origins]
    return BaselineForecast(np.stack(forecasts), model)


def _check_inputs(values, origins, horizon, season, method) -> None:
    if method not in METHODS:
        raise UserError(f"unknown baseline method {method!r}; choose one of: {', '.join(METHODS)}")
    if horizon < 1 or season < 1:
        raise UserError(f"horizon and season must be >= 1, got horizon={horizon}, season={season}")
    if not origins or min(origins) < 1 or max(origins) > len(values):
        raise UserError(f"origins must be a non-empty list of indices in 1..{len(values)} (the number of "
                        f"values), got {origins[:3]}{'...' if len(origins) > 3 else ''}")
    if not np.all(np.isfinite(values[:max(origins)])):
        raise UserError("the series holds NaN or infinite values before the last origin: fill or drop "
                        "them first (the baselines need a complete history)")


def _seasonal_naive_forecasts(values, origins, horizon, season) -> BaselineForecast:
    forecasts = np.stack([seasonal_naive(values[:origin], horizon, season) for origin in origins])
    return BaselineForecast(forecasts, f"seasonal naive m={season}")


@contextlib.contextmanager
def _quiet_statsmodels():
    """Silence statsmodels' fitting chatter here only: a candidate that fits poorly loses
    on AICc, and hundreds of warnings per benchmark would bury the real ones."""
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, InterpolationWarning, ValueWarning

    with warnings.catch_warnings():
        for category in (ConvergenceWarning, ValueWarning, InterpolationWarning):
            warnings.simplefilter("ignore", category)
        warnings.filterwarnings("ignore", message="Non-(stationary|invertible) starting")
        yield


def _has_two_seasons(history, season) -> bool:
    return season > 1 and len(history) >= 2 * season


# ----------------------------------------------------------------------------- ETS

def _fit_ets(history: np.ndarray, season: int) -> tuple[str, Refilter]:
    """The additive-error ETS with the lowest AICc, trend none or additive damped,
    seasonality none or additive (the latter only with two full seasons of history)."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    seasonals = (None, "add") if _has_two_seasons(history, season) else (None,)
    best = None
    for trend, seasonal in itertools.product((None, "add"), seasonals):
        spec = dict(error="add", trend=trend, damped_trend=trend is not None, seasonal=seasonal,
                    seasonal_periods=season if seasonal else None, initialization_method="estimated")
        try:
            results = ETSModel(history, **spec).fit(disp=False)
        except Exception:  # statsmodels fails in many ways on degenerate candidates; skip this one
            continue
        if np.isfinite(results.aicc) and (best is None or results.aicc < best[0].aicc):
            best = (results, spec)
    if best is None:
        raise _NoCandidateFits("no ETS candidate could be fitted")
    results, spec = best
    label = f"ETS(A,{'Ad' if spec['trend'] else 'N'},{'A' if spec['seasonal'] else 'N'})"
    label += f" m={season}" if spec["seasonal"] else ""
    # ETS results cannot be extended; smoothing a longer history with the same parameters
    # (initial states included) keeps the fit and only runs the state forward.
    return label, lambda longer: ETSModel(longer, **spec).smooth(results.params)


# --------------------------------------------------------------------------- ARIMA

def _fit_arima(history: np.ndarray, season: int) -> tuple[str, Refilter]:
    """auto.arima (Hyndman & Khandakar's stepwise search, as pmdarima implements it): the
    seasonal and ordinary differences from unit-root tests, then the ARMA orders and
    constant by AICc; each candidate is fitted by statsmodels' SARIMAX."""
    try:
        import pmdarima
    except ImportError:
        raise UserError("the ARIMA baseline needs pmdarima: pip install -e \".[bench]\"") from None

    seasonal = _has_two_seasons(history, season)
    try:
        fitted = pmdarima.auto_arima(history, seasonal=seasonal, m=season if seasonal else 1, stepwise=True,
                                     information_criterion="aicc", error_action="ignore", suppress_warnings=True)
    except Exception as error:  # every candidate failed (pmdarima raises ValueError and others)
        raise _NoCandidateFits(f"no ARIMA candidate could be fitted: {str(error).splitlines()[0][:80]}") from None
    (p, d, q), (P, D, Q, m) = fitted.order, fitted.seasonal_order
    label = f"ARIMA({p},{d},{q})" + (f"({P},{D},{Q})[{m}]" if seasonal and (P or D or Q) else "")
    if fitted.with_intercept:
        label += " with drift" if d + D == 1 else " with non-zero mean"
    # pmdarima keeps statsmodels' results: apply() runs its state through a longer history.
    return label, fitted.arima_res_.apply
