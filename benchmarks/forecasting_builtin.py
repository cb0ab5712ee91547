"""forecasting_builtin: the LSTM against the seasonal naive forecast and statsmodels'
ETS and ARIMA (automatic order) on each builtin series, on the same test origins.

Every series is cut into the task's consecutive train / validation / test blocks. The
LSTM trains on windows of the train block and stops early on the validation block;
ETS and ARIMA choose and fit their model on everything before the first test origin
(train and validation), then update their state with each new observation, never
refitting. All forecasts start at every step of the test block (rolling origins) and
are scored with the same MASE scale (the seasonal naive error on the train block).
"""

from __future__ import annotations

import sys
import tempfile
import time

import numpy as np

# Per series: horizon and context (M4's horizons: 6 for yearly, 8 for quarterly; 12 for monthly).
SERIES = {
    "elnino": ["horizon=12", "context=48"],
    "co2": ["horizon=12", "context=48"],
    "sunspots": ["horizon=6", "context=30"],
    "nile": ["horizon=6", "context=20"],
    "realgdp": ["horizon=8", "context=24"],
    "unemp": ["horizon=8", "context=24"],
}
QUICK = ["train.epochs=100"]
CLASSICAL = ("ets", "arima")


def run(quick: bool, seed: int, overrides: list[str]) -> dict:
    results = {}
    for name, settings in SERIES.items():
        results[name] = one_series(name, settings + (QUICK if quick else []) + overrides, seed)
        print(f"{name}: {results[name]}", file=sys.stderr, flush=True)
    lstm = [result["lstm"]["mase"] for result in results.values()]
    best_classical = [min(result[method]["mase"] for method in CLASSICAL) for result in results.values()]
    wins = sum(result["lstm"]["mase"] < min(result[m]["mase"] for m in ("seasonal_naive", *CLASSICAL))
               for result in results.values())
    return {
        "metric": "mean_mase_ratio_to_best_classical",
        "value": round(float(np.mean(lstm) / np.mean(best_classical)), 4),
        "mean_mase": {"lstm": round(float(np.mean(lstm)), 4),
                      "best_classical": round(float(np.mean(best_classical)), 4),
                      **{method: round(float(np.mean([r[method]["mase"] for r in results.values()])), 4)
                         for method in ("seasonal_naive", *CLASSICAL)}},
        "lstm_beats_all_baselines_on": f"{wins} of {len(results)}",
        "series": results,
    }


def one_series(name: str, overrides: list[str], seed: int) -> dict:
    from lstmkit import config as config_lib
    from lstmkit.registry import get_task
    from lstmkit.task import encode_splits
    from lstmkit.tasks.forecasting import baselines, data, metrics
    from lstmkit.training import train

    task = get_task("forecasting")
    config = config_lib.apply_overrides(task.default_config(), overrides)
    source = f"builtin:{name}"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lstmkit-bench-") as runs_root:
        run = train(task, config, source, runs_root=runs_root, seed=seed, command=" ".join(sys.argv))
        # The run's task is bound to its config and the preprocessing it adapted.
        splits = encode_splits(run.task, run.task.load_data(source))
        lstm = run.task.evaluate(run.model, splits.test)
        epochs = len(run.history)
    lstm_seconds = time.perf_counter() - started
    (series,) = data.read_source(source, config.data)
    blocks = data.time_blocks(series, config)
    test_origins = list(data.origins(blocks.validation_end, blocks.steps, config.horizon, config.data.origin_stride))
    values = series.values[:, 0]
    truth = np.stack([values[origin:origin + config.horizon] for origin in test_origins])
    scale = metrics.mase_scale(values[: blocks.train_end], series.season)
    scales = np.full(len(test_origins), scale)
    report = {"steps": blocks.steps, "season": series.season, "horizon": config.horizon,
              "test_origins": len(test_origins),
              "lstm": rounded({key: lstm[key] for key in ("mase", "smape", "coverage", "crps")}),
              "lstm_seconds": round(lstm_seconds, 1), "lstm_epochs": epochs}
    for method in ("seasonal_naive", *CLASSICAL):
        fitted = time.perf_counter()
        forecast = baselines.rolling_origin_forecasts(values, test_origins, config.horizon, series.season, method)
        scores = metrics.point_metrics(truth, forecast.forecasts, scales)
        report[method] = {**rounded({key: scores[key] for key in ("mase", "smape")}), "model": forecast.model,
                          "seconds": round(time.perf_counter() - fitted, 1)}
    best = min(CLASSICAL, key=lambda method: report[method]["mase"])
    report["mase_ratio_to_best_classical"] = round(report["lstm"]["mase"] / report[best]["mase"], 4)
    report["mase_ratio_to_seasonal_naive"] = round(report["lstm"]["mase"] / report["seasonal_naive"]["mase"], 4)
    return report


def rounded(scores: dict) -> dict:
    return {key: round(float(value), 4) for key, value in scores.items()}
