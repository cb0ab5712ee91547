"""Forecast metrics on hand-worked examples."""

import numpy as np
import pytest

from lstmkit.errors import UserError
from lstmkit.tasks.forecasting.metrics import (mase_scale, pinball_loss, point_metrics, quantile_metrics,
                                               seasonal_naive)


def test_mase_scale_is_the_in_sample_seasonal_naive_mae():
    train = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    # Lag 1: |3-1|, |2-3|, |5-2|, |4-5| = 2, 1, 3, 1; lag 2: |2-1|, |5-3|, |4-2| = 1, 2, 2.
    assert mase_scale(train, 1) == pytest.approx(7 / 4)
    assert mase_scale(train, 2) == pytest.approx(5 / 3)
    assert type(mase_scale(train, 1)) is float


def test_mase_scale_refuses_too_short_or_non_finite_training_data():
    with pytest.raises(UserError, match="more than season=2 training values, got 2"):
        mase_scale(np.array([1.0, 2.0]), 2)
    with pytest.raises(UserError, match="not finite"):
        mase_scale(np.array([1.0, np.nan, 2.0, 3.0]), 1)


def test_mase_scale_is_zero_where_the_seasonal_naive_forecast_is_exact():
    """A legal series, whose MASE is undefined (point_metrics leaves it out), not an error."""
    assert mase_scale(np.full(10, 4.0), 1) == 0.0
    # Not constant, but it repeats exactly every season.
    assert mase_scale(np.array([1.0, 2.0, 1.0, 2.0, 1.0]), 2) == 0.0
    # Repeats up to float64 rounding: sin(2 pi (i + 12) / 12) - sin(2 pi i / 12) is about 1e-15.
    seasonal = 25 + 2 * np.sin(2 * np.pi * np.arange(120) / 12)
    assert 0 < np.abs(seasonal[12:] - seasonal[:-12]).max() < 1e-13
    assert type(mase_scale(seasonal, 12)) is float and mase_scale(seasonal, 12) == 0.0
    # Small real changes on a large level are changes.
    assert mase_scale(1e7 + np.arange(10.0) % 2, 1) == 1.0


def test_loss_scale_is_positive_even_where_mase_is_undefined():
    from lstmkit.tasks.forecasting.metrics import loss_scale

    train = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    assert loss_scale(train, 2) == mase_scale(train, 2)
    # Repeating every season: the step-to-step (naive) change, mean |1-2| = 1.
    assert loss_scale(np.array([1.0, 2.0, 1.0, 2.0, 1.0]), 2) == 1.0
    # Constant: its magnitude; all zeros: 1.
    assert loss_scale(np.full(10, -4.0), 1) == 4.0
    assert loss_scale(np.zeros(10), 3) == 1.0


def test_point_metrics_by_hand():
    truth = np.array([[1.0, 0.0, 2.0], [4.0, 4.0, 4.0]])
    forecast = np.array([[2.0, 0.0, 1.0], [4.0, 6.0, 4.0]])
    metrics = point_metrics(truth, forecast, np.array([0.5, 2.0]))
    # Absolute errors: [[1, 0, 1], [0, 2, 0]].
    assert metrics["mae"] == pytest.approx(4 / 6)
    assert metrics["rmse"] == pytest.approx(np.sqrt(6 / 6))
    # sMAPE terms |f-y|/(|y|+|f|): 1/3, 0/0 -> 0, 1/3, 0, 2/10, 0.
    assert metrics["smape"] == pytest.approx(200 * (1 / 3 + 1 / 3 + 2 / 10) / 6)
    # Each window's errors over its own scale: [[2, 0, 2], [0, 1, 0]].
    assert metrics["mase"] == pytest.approx(5 / 6)
    assert all(type(value) is float for value in metrics.values())


def test_a_perfect_forecast_scores_zero_even_where_truth_is_zero():
    truth = np.array([[0.0, 3.0]])
    metrics = point_metrics(truth, truth.copy(), np.array([1.0]))
    assert metrics == {"mae": 0.0, "rmse": 0.0, "smape": 0.0, "mase": 0.0}


def test_windows_without_a_mase_scale_are_left_out_of_mase_and_none_leaves_no_mase():
    truth = np.array([[1.0, 0.0, 2.0], [4.0, 4.0, 4.0]])
    forecast = np.array([[2.0, 0.0, 1.0], [4.0, 6.0, 4.0]])
    with np.errstate(all="raise"):  # no division by zero on the way
        metrics = point_metrics(truth, forecast, np.array([0.5, 0.0]))
        assert metrics["mase"] == pytest.approx((2 + 0 + 2) / 3)  # the first window's alone
        assert metrics["mae"] == pytest.approx(4 / 6)  # every window
        undefined = point_metrics(truth, forecast, np.array([0.0, 0.0]))
    assert "mase" not in undefined and undefined["mae"] == pytest.approx(4 / 6)
    assert all(np.isfinite(value) for value in undefined.values())


def test_pinball_loss_weighs_under_and_over_forecasts_by_the_level():
    # Truth 10: a 0.9 quantile at 13 is 3 too high -> 0.1 x 3; at 7 it is 3 too low -> 0.9 x 3.
    assert pinball_loss(10.0, 13.0, 0.9) == pytest.approx(0.3)
    assert pinball_loss(10.0, 7.0, 0.9) == pytest.approx(2.7)


def test_quantile_metrics_by_hand():
    truth = np.array([[10.0, 20.0]])
    quantiles = np.array([[[8.0, 10.0, 13.0], [8.0, 10.0, 13.0]]])
    metrics = quantile_metrics(truth, quantiles, [0.1, 0.5, 0.9])
    # Truth 10: 0.1 x 2, 0, 0.1 x 3; truth 20: 0.1 x 12, 0.5 x 10, 0.9 x 7.
    losses = [0.2, 0.0, 0.3, 1.2, 5.0, 6.3]
    assert metrics["quantile_loss"] == pytest.approx(np.mean(losses))
    assert metrics["crps"] == pytest.approx(2 * np.mean(losses))
    assert metrics["coverage"] == 0.5  # 10 lies in [8, 13], 20 does not
    assert metrics["interval"] == "10-90"


def test_coverage_counts_the_interval_ends_and_the_interval_is_named_in_percent():
    truth = np.array([[8.0, 13.0, 7.9, 13.1]])
    quantiles = np.broadcast_to([8.0, 10.0, 13.0], (1, 4, 3))
    metrics = quantile_metrics(truth, quantiles, [0.025, 0.5, 0.975])
    assert metrics["coverage"] == 0.5
    assert metrics["interval"] == "2.5-97.5"
    assert quantile_metrics(truth, quantiles[..., [0, 2]], [0.05, 0.95])["interval"] == "5-95"


def test_seasonal_naive_repeats_the_last_season():
    history = np.arange(1.0, 8.0)  # 1..7
    np.testing.assert_array_equal(seasonal_naive(history, 5, 3), [5.0, 6.0, 7.0, 5.0, 6.0])
    np.testing.assert_array_equal(seasonal_naive(history, 2, 3), [5.0, 6.0])
    np.testing.assert_array_equal(seasonal_naive(history, 3, 1), [7.0, 7.0, 7.0])


def test_seasonal_naive_needs_a_full_season_of_history():
    with pytest.raises(UserError, match="at least season=12 values of history, got 5"):
        seasonal_naive(np.arange(5.0), 3, 12)
