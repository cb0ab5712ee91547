"""The M4 competition's hourly series (``../shared/data/m4_hourly``), scored the M4 way:
48 steps from the end of each of the 414 series, mean sMAPE, MASE (m = 24) and OWA
relative to Naive2, each method's row beside the competition's published figures.

The LSTM is the forecasting task itself, as a user runs it on these files: one network
trained over all 414 series (``data.layout=rows`` with the test file as
``data.test_source``), then a forecast of 48 steps from the end of every training series,
with its 95 % interval (the 0.025 and 0.975 quantiles) scored by MSIS and coverage, and
its 80 % interval's coverage. Beside it, in the same run: seasonal naive and Naive2, which
must reproduce the published scores to three decimals (that checks the metric code),
statsmodels' Theta beside the competition's Theta, and (not with --quick: about 2.5 s a
series) the ETS that ``forecasting_builtin`` compares with."""

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


# The task's settings for these files: two weeks of hourly history (the daily and weekly
# seasons), the competition's horizon, the quantiles of the 80 % and 95 % intervals, the
# logarithm (the series are positive, their daily swing grows with their level), and an
# ensemble of three networks. Large batches with a cosine decay train several times
# faster on 2 cores than the task's defaults (batches of 32, a plateau schedule), which
# suit a single short series. What each choice gained: BENCHMARKS.md.
LSTM = ["data.layout=rows", f"data.season={SEASON}", f"horizon={HORIZON}", "context=336",
        "quantiles=0.025,0.1,0.5,0.9,0.975", "transform=log", "members=3", "train.batch_size=128",
        "train.learning_rate=3e-3", "train.lr_schedule=cosine", "train.min_learning_rate=1e-4"]
QUICK = ["train.epochs=20", "data.windows_per_series=50"]
FULL = ["train.epochs=40", "data.windows_per_series=50"]


def lstm(data: Path, series: dict, quick: bool, seed: int, overrides: list[str]) -> dict:
    """Train the task on the train file (``series``, as read), then forecast from the end of every series:
    ``{"forecasts": {id: median}, "lower"/"upper" (95 %), "lower80"/"upper80", ...}``."""
    import sys
    import tempfile

    from lstmkit import config as config_lib
    from lstmkit.registry import get_task
    from lstmkit.tasks.forecasting.model import forecast_quantiles
    from lstmkit.training import train

    task = get_task("forecasting")
    settings = LSTM + [f"data.test_source={data / 'Hourly-test.csv'}"] + (QUICK if quick else FULL) + overrides
    config = config_lib.apply_overrides(task.default_config(), settings)
    names = list(series)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lstmkit-bench-") as runs_root:
        run = train(task, config, str(data / "Hourly-train.csv"), runs_root=runs_root, seed=seed,
                    command=" ".join(sys.argv))
        histories = np.stack([series[name][-config.context:] for name in names])[:, :, None].astype(np.float32)
        quantiles = np.asarray(forecast_quantiles(run.model.predict(histories, batch_size=512, verbose=0)))
        losses = [float(row["val_loss"]) for row in run.history]
    levels = list(config.quantiles)
    column = {level: levels.index(level) for level in (0.025, 0.1, 0.5, 0.9, 0.975) if level in levels}
    by_name = {key: {name: quantiles[row, :, column[level]] for row, name in enumerate(names)}
               for key, level in (("forecasts", 0.5), ("lower", 0.025), ("upper", 0.975), ("lower80", 0.1),
                                  ("upper80", 0.9)) if level in column}
    return {**by_name, "seconds": round(time.perf_counter() - started, 1), "epochs": len(losses),
            "best_epoch": int(np.argmin(losses)) + 1, "settings": settings,
            "task_test_metrics": {key: round(float(value), 4) for key, value in run.metrics.get("test", {}).items()
                                  if key in ("mase", "smape", "coverage", "crps")}}


def intervals(train: dict, test: dict, lower: dict, upper: dict, alpha: float) -> dict:
    """The competition's MSIS of the ``1 - alpha`` interval, and the share of outcomes inside."""
    from lstmkit.tasks.forecasting import m4

    names = list(test)
    inside = np.concatenate([(lower[name] <= test[name]) & (test[name] <= upper[name]) for name in names])
    return {"msis": float(np.mean([m4.msis(train[name], test[name], lower[name], upper[name], SEASON, alpha)
                                   for name in names])),
            "coverage": float(inside.mean())}


def run(data: Path, quick: bool, seed: int = 0, overrides: list[str] | None = None) -> dict:
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
    trained = lstm(data, train, quick, seed, list(overrides or []))
    scores["lstm"] = m4.score(train, test, trained["forecasts"], SEASON)
    interval95 = intervals(train, test, trained["lower"], trained["upper"], 0.05)
    interval80 = intervals(train, test, trained["lower80"], trained["upper80"], 0.2)
    rows["lstm"] = {"seconds": trained["seconds"], "epochs": trained["epochs"], "best_epoch": trained["best_epoch"],
                    "interval95_msis": round(interval95["msis"], 4),
                    "interval95_coverage": round(interval95["coverage"], 4),
                    "interval80_coverage": round(interval80["coverage"], 4),
                    "task_test_metrics": trained["task_test_metrics"]}
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
    owa = rows["lstm"]["owa"]
    return {"metric": "lstm_owa", "value": owa, "series": len(test), "horizon": HORIZON, "season": SEASON,
            "goal": PUBLISHED["smyl_es_rnn"][2],
            "margin_to_seasonal_naive": round(rows["seasonal_naive"]["owa"] - owa, 4),
            "baseline_difference_from_published": round(matched, 4), "methods": rows,
            "leaderboard": {name: dict(zip(("smape", "mase", "owa"), PUBLISHED[name]))
                            for name in ("smyl_es_rnn", "best_hourly_entry")},
            "settings": trained["settings"]}
