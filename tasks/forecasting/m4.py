"""The M4 competition's files, forecasts and scores (Makridakis, Spiliotis & Assimakopoulos,
IJF 2020), as the organisers' ``Benchmarks and Evaluation.R`` defines them.

- ``read_wide``: the competition's layout, one series per row (``V1`` its id, then its
  values in time order; shorter series leave trailing fields empty), as the task reads
  it with ``data.layout=rows``.
- ``seasonal_naive`` and ``naive2``: two of the competition's benchmarks. Naive2 is the
  naive forecast of the series after a classical multiplicative decomposition, applied
  only where the 90 % autocorrelation test at the seasonal lag finds seasonality.
- ``smape``, ``mase`` and ``owa``: the competition's point scores. sMAPE and MASE are
  averaged over the horizon of each series, then over the series; OWA is the mean of the
  two relative to Naive2's.

Reproducing the published scores of seasonal naive and Naive2 on the 414 hourly series
checks this code (``benchmarks/run.py forecasting_m4_hourly``, ``tests/tasks/forecasting/test_m4.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# The one-sided 90 % critical value of the competition's seasonality test.
SEASONALITY_CRITICAL_VALUE = 1.645


def read_wide(path: str | Path) -> dict[str, np.ndarray]:
    """Series id -> its values (float64), from a file in the competition's layout, read
    and checked as the task reads ``data.layout=rows`` (``data.read_rows``)."""
    from lstmkit.tasks.forecasting.config import DataConfig
    from lstmkit.tasks.forecasting.data import read_rows

    return {series.name: series.values[:, 0] for series in read_rows(Path(path), DataConfig(layout="rows"))}


def seasonal_naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """The last ``season`` values, repeated (the competition's sNaive)."""
    last = np.asarray(history, np.float64)[-season:]
    return np.resize(last, horizon)


def is_seasonal(history: np.ndarray, season: int) -> bool:
    """The competition's seasonality test: at least three seasons, and the autocorrelation
    at the seasonal lag beyond the 90 % limit of Bartlett's formula."""
    from statsmodels.tsa.stattools import acf

    history = np.asarray(history, np.float64)
    if season <= 1 or len(history) < 3 * season:
        return False
    correlations = acf(history, nlags=season, fft=False)[1:]
    limit = SEASONALITY_CRITICAL_VALUE / np.sqrt(len(history)) * np.sqrt(
        1 + 2 * np.sum(correlations[: season - 1] ** 2))
    return bool(abs(correlations[season - 1]) > limit)


def seasonal_indices(history: np.ndarray, season: int) -> np.ndarray:
    """The classical multiplicative decomposition's seasonal component (R's ``decompose``,
    statsmodels' ``seasonal_decompose``: a centred moving-average trend, the mean ratio to
    it at each position of the season, normalised to mean 1), one value per step."""
    from statsmodels.tsa.seasonal import seasonal_decompose

    return np.asarray(seasonal_decompose(np.asarray(history, np.float64), model="multiplicative",
                                         period=season).seasonal)


def naive2(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """The competition's Naive2: where ``is_seasonal``, the last value of the seasonally
    adjusted series times the last season of indices, repeated; else the last value."""
    history = np.asarray(history, np.float64)
    if not is_seasonal(history, season):
        return np.full(horizon, history[-1])
    indices = seasonal_indices(history, season)
    adjusted = history / indices
    return adjusted[-1] * np.resize(indices[-season:], horizon)


def smape(truth: np.ndarray, forecast: np.ndarray) -> float:
    """The competition's sMAPE of one series, in percent: mean 200 |y - f| / (|y| + |f|)."""
    truth, forecast = np.asarray(truth, np.float64), np.asarray(forecast, np.float64)
    return float(np.mean(200 * np.abs(truth - forecast) / (np.abs(truth) + np.abs(forecast))))


def mase(history: np.ndarray, truth: np.ndarray, forecast: np.ndarray, season: int) -> float:
    """The competition's MASE of one series: mean |y - f| over the in-sample mean absolute
    seasonal difference (lag ``season``)."""
    history = np.asarray(history, np.float64)
    scale = np.mean(np.abs(history[season:] - history[:-season]))
    return float(np.mean(np.abs(np.asarray(truth, np.float64) - np.asarray(forecast, np.float64))) / scale)


def msis(history: np.ndarray, truth: np.ndarray, lower: np.ndarray, upper: np.ndarray, season: int,
         alpha: float = 0.05) -> float:
    """The competition's mean scaled interval score of one series' ``1 - alpha`` interval:
    its width, plus 2 / alpha times how far each outcome falls outside it, averaged over
    the horizon and scaled as MASE is."""
    history, truth = np.asarray(history, np.float64), np.asarray(truth, np.float64)
    lower, upper = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    penalty = (upper - lower) + 2 / alpha * ((lower - truth) * (truth < lower) + (truth - upper) * (truth > upper))
    return float(np.mean(penalty) / np.mean(np.abs(history[season:] - history[:-season])))


def score(histories: dict, truths: dict, forecasts: dict, season: int) -> dict:
    """Mean sMAPE and MASE over the series (all three dicts keyed by series id)."""
    names = list(truths)
    return {"smape": float(np.mean([smape(truths[name], forecasts[name]) for name in names])),
            "mase": float(np.mean([mase(histories[name], truths[name], forecasts[name], season) for name in names])),
            "series": len(names)}


def owa(scores: dict, naive2_scores: dict) -> float:
    """The competition's overall weighted average: the mean of sMAPE and MASE relative to Naive2's."""
    return 0.5 * (scores["smape"] / naive2_scores["smape"] + scores["mase"] / naive2_scores["mase"])
