"""The forecaster's own layers: raw values in and out, quantiles never cross, and the
members of an ensemble each train on their own loss."""

import numpy as np
import pytest

from lstmkit import config as config_lib
from lstmkit.tasks.forecasting import model as forecast_model
from lstmkit.tasks.forecasting.task import TASK


def built(*overrides, scales=(2.0,)):
    config = config_lib.apply_overrides(TASK.tiny_config(), list(overrides))
    return config, forecast_model.build_model(config, list(scales))


def test_a_constant_history_before_training_forecasts_its_level():
    """The autoregressive part starts at zero and the window is level-free, so an
    untrained model's forecast is near the last value, in raw units."""
    config, model = built("autoregressive=true")
    history = np.full((2, config.context, 1), 1000.0, np.float32)
    quantiles = forecast_model.forecast_quantiles(model.predict(history, verbose=0))
    assert quantiles.shape == (2, config.horizon, 3)
    assert np.abs(quantiles - 1000.0).max() < 2.0 * 10  # within a few scales (2.0) of the level
    assert (np.diff(quantiles, axis=-1) >= 0).all()


def test_each_member_has_its_own_loss_and_the_forecast_is_their_average():
    config, model = built("members=3")
    rng = np.random.default_rng(0)
    outputs = model.predict(rng.normal(size=(5, config.context, 1)).astype(np.float32), verbose=0)
    assert outputs.shape == (5, 3, config.horizon, 3)
    labels = np.stack([rng.normal(size=(5, config.horizon)), np.full((5, config.horizon), 2.0),
                       np.zeros((5, config.horizon))], axis=-1).astype(np.float32)
    loss = TASK.bind(config).loss()
    whole = float(loss(labels, outputs))
    # The ensemble's loss is the mean of its members' losses: no member's gradient depends
    # on another member's output (a loss on the averaged forecast would couple them).
    apart = np.mean([float(loss(labels, outputs[:, [member]])) for member in range(3)])
    assert whole == pytest.approx(apart, rel=1e-5)
    np.testing.assert_allclose(forecast_model.forecast_quantiles(outputs), outputs.mean(axis=1), rtol=1e-6)


def test_the_loss_divides_each_window_by_its_series_scale():
    config, model = built()
    outputs = np.zeros((2, 1, config.horizon, 3), np.float32)
    labels = np.zeros((2, config.horizon, 3), np.float32)
    labels[..., 0] = 4.0
    labels[0, :, 1], labels[1, :, 1] = 1.0, 4.0
    loss = TASK.bind(config).loss()
    # Pinball of an error of 4 (scale 1) and of 1 (scale 4), over the levels 0.1, 0.5, 0.9.
    per_window = [np.mean([level * error for level in (0.1, 0.5, 0.9)]) for error in (4.0, 1.0)]
    assert float(loss(labels, outputs)) == pytest.approx(np.mean(per_window), rel=1e-6)


def test_calendar_features_keep_their_place_while_values_lose_their_level():
    from lstmkit.tasks.forecasting.model import WindowScaling

    history = np.array([[[10.0, 0.5, 0.8], [12.0, 0.7, 0.6], [11.0, 0.9, 0.1]]], np.float32)
    scaled = np.asarray(WindowScaling([2.0, 5.0, 5.0], levelled=1)(history))
    np.testing.assert_allclose(scaled[0, :, 0], [-0.5, 0.5, 0.0])  # (value - last) / 2
    np.testing.assert_allclose(scaled[0, :, 1:], history[0, :, 1:])  # the calendar as it is


def test_window_scaling_forecasts_a_rescaled_and_shifted_history_rescaled_and_shifted():
    """One network for series of every magnitude: each window is divided by its own scale
    and levelled at its last value, so ``a * history + b`` gets ``a * forecast + b``. A
    run-wide scale (``scaling=run``) has no such property."""
    rng = np.random.default_rng(3)
    history = rng.normal(size=(2, TASK.tiny_config().context, 1)).cumsum(axis=1).astype(np.float32)
    for scaling, equivariant in (("window", True), ("run", False)):
        config, model = built(f"scaling={scaling}", "autoregressive=true")
        model.get_layer("autoregressive").set_weights(
            [rng.normal(size=w.shape).astype(np.float32) for w in model.get_layer("autoregressive").get_weights()])
        forecast = forecast_model.forecast_quantiles(model.predict(history, verbose=0))
        moved = forecast_model.forecast_quantiles(model.predict(1000 * history + 5e4, verbose=0))
        assert np.allclose(moved, 1000 * forecast + 5e4, rtol=1e-4, atol=1.0) == equivariant


def zero_network(model):
    """Make the network's own output 0: the forecast is then its anchor."""
    for layer in model.layers:
        if layer.name in ("horizon_head", "autoregressive"):
            layer.set_weights([np.zeros_like(weight) for weight in layer.get_weights()])


def test_the_forecast_is_a_change_from_the_last_value_or_from_the_last_season():
    history = (100 + np.arange(24.0) % 4 * 10)[None, :, None].astype(np.float32)  # a season of 4 steps
    for anchor, expected in (("last", [130.0] * 6), ("season", [100.0, 110, 120, 130, 100, 110])):
        config, model = built(f"anchor={anchor}", "data.season=4")
        zero_network(model)
        quantiles = forecast_model.forecast_quantiles(model.predict(history, verbose=0))[0]
        np.testing.assert_allclose(quantiles, np.repeat(np.array(expected)[:, None], 3, axis=1), rtol=1e-6)


def test_a_log_transform_forecasts_ratios_positive_and_scale_free():
    """``transform=log``: ``a * history`` gets ``a * forecast`` (a shift does not: changes are
    ratios), and every quantile is above 0 even where the network asks for a large fall."""
    rng = np.random.default_rng(4)
    history = np.exp(rng.normal(size=(2, TASK.tiny_config().context, 1)).cumsum(axis=1) * 0.1).astype(np.float32)
    config, model = built("transform=log", "autoregressive=true")
    layer = model.get_layer("autoregressive")
    layer.set_weights([rng.normal(size=w.shape).astype(np.float32) * 3 for w in layer.get_weights()])
    forecast = forecast_model.forecast_quantiles(model.predict(history, verbose=0))
    assert (forecast > 0).all()
    np.testing.assert_allclose(forecast_model.forecast_quantiles(model.predict(1000 * history, verbose=0)),
                               1000 * forecast, rtol=1e-4)
    shifted = forecast_model.forecast_quantiles(model.predict(history + 5, verbose=0))
    assert not np.allclose(shifted, forecast + 5, rtol=1e-3)


def test_calibration_widens_intervals_that_are_too_narrow_until_they_cover_their_share():
    """Quantiles drawn half as wide as the outcomes' spread: the widths found put 10 % of
    new outcomes below q0.1 and 10 % above q0.9, and the layer applies them."""
    rng = np.random.default_rng(5)
    levels, median = (0.1, 0.5, 0.9), 1
    spread = 1.2816  # the 0.9 quantile of a standard normal
    quantiles = np.stack([-spread / 2 * np.ones(20_000), np.zeros(20_000), spread / 2 * np.ones(20_000)], -1)
    widths = forecast_model.calibrate_widths(quantiles, rng.normal(size=20_000), levels, median)
    np.testing.assert_allclose(widths, [2.0, 1.0, 2.0], rtol=0.05)
    layer = forecast_model.IntervalCalibration(median)
    calibrated = np.asarray(layer(quantiles.astype(np.float32)))  # built with widths of 1: unchanged
    np.testing.assert_allclose(calibrated, quantiles, rtol=1e-6)
    layer.widths.assign(widths.astype(np.float32))
    calibrated = np.asarray(layer(quantiles.astype(np.float32)))
    fresh = rng.normal(size=20_000)
    assert abs((fresh < calibrated[:, 0]).mean() - 0.1) < 0.01 and abs((fresh > calibrated[:, 2]).mean() - 0.1) < 0.01
