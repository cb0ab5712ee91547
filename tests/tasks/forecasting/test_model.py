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
