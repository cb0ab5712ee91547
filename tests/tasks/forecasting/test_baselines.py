"""The classical baselines on rolling origins: the seasonal naive as defined, ETS and ARIMA
beat it on a trending seasonal series, and no forecast uses values at or after its origin."""

import re

import numpy as np
import pytest

from lstmkit.errors import UserError
from lstmkit.tasks.forecasting.baselines import rolling_origin_forecasts
from lstmkit.tasks.forecasting.metrics import seasonal_naive

SEASON, HORIZON = 12, 12
ORIGINS = list(range(84, 109))  # the last window ends at the 120th value


def trending_seasonal_series() -> np.ndarray:
    """10 years of months: a linear trend, a yearly sine and small seeded AR(1) noise (so
    that the fitted models react to the latest values, and a look-ahead would show)."""
    t = np.arange(120)
    shocks = np.random.default_rng(0).normal(0.0, 0.2, len(t))
    noise = np.zeros_like(shocks)
    for step in t:
        noise[step] = 0.5 * noise[step - 1] + shocks[step] if step else shocks[step]
    return 10 + 0.05 * t + 2 * np.sin(2 * np.pi * t / SEASON) + noise


def truth(values) -> np.ndarray:
    return np.stack([values[origin:origin + HORIZON] for origin in ORIGINS])


@pytest.fixture(scope="module", params=["ets", "arima"])
def fitted(request):
    values = trending_seasonal_series()
    return request.param, values, rolling_origin_forecasts(values, ORIGINS, HORIZON, SEASON, request.param)


def test_seasonal_naive_method_is_the_seasonal_naive_at_every_origin():
    values = trending_seasonal_series()
    result = rolling_origin_forecasts(values, ORIGINS, HORIZON, SEASON, "seasonal_naive")
    expected = np.stack([seasonal_naive(values[:origin], HORIZON, SEASON) for origin in ORIGINS])
    np.testing.assert_array_equal(result.forecasts, expected)
    assert result.model == "seasonal naive m=12"


def test_ets_and_arima_beat_the_seasonal_naive_on_a_trending_seasonal_series(fitted):
    method, values, result = fitted
    assert result.forecasts.shape == (len(ORIGINS), HORIZON)
    naive = rolling_origin_forecasts(values, ORIGINS, HORIZON, SEASON, "seasonal_naive").forecasts
    # The seasonal naive lags the trend by a year (0.6 here); the models should not.
    model_mae, naive_mae = (np.abs(forecasts - truth(values)).mean() for forecasts in (result.forecasts, naive))
    assert model_mae < 0.75 * naive_mae, (result.model, model_mae, naive_mae)
    pattern = {"ets": r"ETS\(A,(N|Ad),A\) m=12", "arima": r"ARIMA\(\d,[01],\d\)\(\d,[01],\d\)\[12\]"}[method]
    assert re.match(pattern, result.model), result.model


def test_no_forecast_uses_values_at_or_after_its_origin(fitted):
    method, values, result = fitted
    middle = len(ORIGINS) // 2
    changed = values.copy()
    changed[ORIGINS[middle]:] += np.linspace(5.0, 50.0, len(values) - ORIGINS[middle])
    again = rolling_origin_forecasts(changed, ORIGINS, HORIZON, SEASON, method)
    # Origins up to the middle one (the first included: it fixes the parameters) are
    # untouched; the later ones do see the change.
    np.testing.assert_allclose(again.forecasts[:middle + 1], result.forecasts[:middle + 1], rtol=1e-10, atol=1e-10)
    assert not np.allclose(again.forecasts[middle + 1:], result.forecasts[middle + 1:])
    assert again.model == result.model


@pytest.mark.parametrize("method", ["ets", "arima"])
def test_a_yearly_series_gets_a_non_seasonal_model(method):
    rng = np.random.default_rng(1)
    values = np.cumsum(rng.normal(0.5, 1.0, 80))  # a random walk with drift
    result = rolling_origin_forecasts(values, [60, 65, 70], 10, 1, method)
    assert result.forecasts.shape == (3, 10)
    assert "[" not in result.model and "m=" not in result.model and "fallback" not in result.model, result.model


@pytest.mark.parametrize("method", ["ets", "arima"])
def test_a_constant_history_falls_back_to_the_seasonal_naive_and_says_so(method):
    result = rolling_origin_forecasts(np.full(60, 3.0), [40, 45], 5, SEASON, method)
    np.testing.assert_array_equal(result.forecasts, np.full((2, 5), 3.0))
    assert result.model.startswith("seasonal naive m=12 (fallback: ")


def test_bad_inputs_are_user_errors():
    values = trending_seasonal_series()
    with pytest.raises(UserError, match="unknown baseline method 'prophet'"):
        rolling_origin_forecasts(values, ORIGINS, HORIZON, SEASON, "prophet")
    with pytest.raises(UserError, match="origins must be"):
        rolling_origin_forecasts(values, [200], HORIZON, SEASON, "ets")
    with_gap = values.copy()
    with_gap[50] = np.nan
    with pytest.raises(UserError, match="NaN"):
        rolling_origin_forecasts(with_gap, ORIGINS, HORIZON, SEASON, "arima")
