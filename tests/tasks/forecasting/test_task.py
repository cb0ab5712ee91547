"""The task's own data and evaluation on small files, with a stand-in for a trained model
(no training): series whose seasonal naive forecast is exact, and predict's history files."""

import json

import numpy as np
import pandas as pd
import pytest

from lstmkit.errors import UserError
from lstmkit.tasks.forecasting.task import TASK

MONTHS = pd.date_range("2000-01-01", periods=120, freq="MS").strftime("%Y-%m-%d")


class LastValuePlusOrMinusOne:
    """Quantiles last value - 1, last value, last value + 1 at every step, as a model's
    ``[windows, members, horizon, quantiles]`` output."""

    def __init__(self, horizon):
        self.horizon = horizon

    def predict(self, histories, **_):
        last = np.asarray(histories)[:, -1, 0]
        return np.broadcast_to(last[:, None, None, None] + np.array([-1.0, 0.0, 1.0]),
                               (len(last), 1, self.horizon, 3)).astype(np.float32)


def evaluated(path, split="test"):
    config = TASK.tiny_config()
    splits = TASK.load_data(str(path), config)
    preprocessing = TASK.adapt(config, splits.train)
    metrics = TASK.evaluate(LastValuePlusOrMinusOne(config.horizon), getattr(splits, split), config, preprocessing)
    return config, splits, metrics


def finite_json(metrics):
    """metrics.json as training writes it; export refuses a run whose numbers are not finite."""
    return json.loads(json.dumps(metrics, allow_nan=False))


@pytest.mark.parametrize("values", [
    25 + 2 * np.sin(2 * np.pi * np.arange(120) / 12),  # repeats up to float64 rounding
    20.0 + np.arange(120) % 12,  # repeats exactly
], ids=["sine", "integers"])
def test_a_series_that_repeats_every_season_is_evaluated_without_mase(tmp_path, caplog, values):
    path = tmp_path / "seasonal.csv"
    pd.DataFrame({"date": MONTHS, "value": values}).to_csv(path, index=False)
    with caplog.at_level("WARNING", logger="lstmkit"):
        config, splits, metrics = evaluated(path)
    assert "MASE is undefined for it" in caplog.text and "value" in caplog.text
    # MASE is undefined (its scale, the seasonal naive error on the training part, is 0), and
    # so is the ratio to the seasonal naive: left out. The rest is there, and finite.
    for key in ("mase", "seasonal_naive_mase", "mase_ratio_to_seasonal_naive"):
        assert key not in metrics
    assert finite_json(metrics)["mae"] > 0
    assert {"smape", "rmse", "crps", "coverage"} <= metrics.keys()
    # Training weighs its windows by a positive scale: a finite loss.
    _, labels = next(splits.train.batch(8).as_numpy_iterator())
    outputs = LastValuePlusOrMinusOne(config.horizon).predict(np.zeros((8, config.context, 1)))
    assert np.isfinite(float(TASK.loss(config)(labels, outputs)))


def test_a_seasonal_naive_that_is_exact_on_the_test_block_leaves_only_the_ratio_out(tmp_path):
    # Noise in the first five years, an exact repeat after: the training part's scale is not
    # 0, but the seasonal naive forecast of every test window is exact.
    values = 20.0 + np.arange(120) % 12
    values[:60] += np.random.default_rng(0).normal(size=60)
    path = tmp_path / "seasonal.csv"
    pd.DataFrame({"date": MONTHS, "value": values}).to_csv(path, index=False)
    _, _, metrics = evaluated(path)
    assert metrics["seasonal_naive_mase"] == 0.0 and "mase_ratio_to_seasonal_naive" not in metrics
    assert finite_json(metrics)["mase"] > 0


def test_a_history_file_with_and_without_utc_offsets_is_refused_for_predict(tmp_path):
    path = tmp_path / "history.csv"
    stamps = list(pd.date_range("2020-01-01", periods=30, freq="D").strftime("%Y-%m-%d"))
    stamps[7] = "2020-01-08T00:00:00+05:00"
    pd.DataFrame({"date": stamps, "y": np.arange(30.0)}).to_csv(path, index=False)
    config = TASK.tiny_config()
    with pytest.raises(UserError, match="row 9 of the time column 'date' holds '2020-01-08T00:00:00\\+05:00'"):
        TASK.read_history(config, str(path))
    (message,) = TASK.rejected_predict_inputs(config, TASK.placeholder_preprocessing(config), [str(path)]).values()
    assert "row 9" in message and "\n" not in message
