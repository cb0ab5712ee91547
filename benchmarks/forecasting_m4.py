"""The M4 competition's hourly series (``../shared/data/m4_hourly``), scored the M4 way:
48 steps from the end of each of the 414 series, mean sMAPE, MASE (m = 24) and OWA
relative to Naive2, each method's row beside the competition's published figures.

So far the same-run baselines only (issue 31 builds the global LSTM on top): seasonal
naive and Naive2, which must reproduce the published scores to three decimals (that
checks the metric code), statsmodels' Theta beside the competition's Theta, and (not with
--quick: about 2.5 s a series) the ETS that ``forecasting_builtin`` compares with."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np

HORIZON, SEASON = 48, 24
# From the competition's "Evaluation and Ranks.xlsx" (../shared/data/README.md): sMAPE, MASE, OWA.
PUBLISHED = {
    "seasonal_naive": (13.912, 1.193, 0.627),
    "naive2": (18.383, 2.395, 1.000),
    "theta": (18.138, 2.455, 1.006),
    "smyl_es_rnn": (9.328, 0.893, 0.440),
    "best_hourly_entry": (8.913, 0.801, 0.410),
}


def theta(history: np.ndarray) -> np.ndarray:
    from statsmodels.tsa.forecasting.theta import ThetaModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = ThetaModel(history, period=SEASON, deseasonalize=True, method="auto").fit()
    return np.asarray(fitted.forecast(HORIZON))


def ets(history: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The task's ETS baseline (additive errors, the lowest AICc), fitted on ``history``
    only: ``truth`` follows the origin and is never seen by the fit."""
    from lstmkit.tasks.forecasting.baselines import rolling_origin_forecasts

    return rolling_origin_forecasts(np.concatenate([history, truth]), [len(history)], HORIZON, SEASON,
                                    "ets").forecasts[0]


def run(data: Path, quick: bool) -> dict:
    from lstmkit.tasks.forecasting import m4

    train = m4.read_wide(data / "Hourly-train.csv")
    test = m4.read_wide(data / "Hourly-test.csv")
    missing = sorted(set(test) - set(train))
    if missing:
        raise RuntimeError(f"test series without a training series: {missing[:5]}")
    methods = {"seasonal_naive": lambda series: m4.seasonal_naive(train[series], HORIZON, SEASON),
               "naive2": lambda series: m4.naive2(train[series], HORIZON, SEASON),
               "theta": lambda series: theta(train[series])}
    if not quick:
        methods["ets"] = lambda series: ets(train[series], test[series])
    rows, scores = {}, {}
    for name, forecaster in methods.items():
        started = time.perf_counter()
        forecasts = {series: forecaster(series) for series in test}
        scores[name] = m4.score(train, test, forecasts, SEASON)
        rows[name] = {"seconds": round(time.perf_counter() - started, 1)}
    for name, row in rows.items():
        row.update({"smape": round(scores[name]["smape"], 3), "mase": round(scores[name]["mase"], 3),
                    "owa": round(m4.owa(scores[name], scores["naive2"]), 4)})
        if name in PUBLISHED:
            row["published"] = dict(zip(("smape", "mase", "owa"), PUBLISHED[name]))
    matched = max(abs(rows[name][key] - rows[name]["published"][key])
                  for name in ("seasonal_naive", "naive2") for key in ("smape", "mase"))
    return {"metric": "baseline_difference_from_published", "value": round(matched, 4), "series": len(test),
            "horizon": HORIZON, "season": SEASON, "methods": rows,
            "leaderboard": {name: dict(zip(("smape", "mase", "owa"), PUBLISHED[name]))
                            for name in ("smyl_es_rnn", "best_hourly_entry")},
            "model": "none yet: the global LSTM of issue 31 is not built"}
