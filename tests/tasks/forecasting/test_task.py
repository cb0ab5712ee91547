"""The task's own data and evaluation on small files, with a stand-in for a trained model
(no training): series whose seasonal naive forecast is exact, and predict's history files;
the task's declarations on the bound contract."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from lstmkit import config as config_lib
from lstmkit.errors import UserError
from lstmkit.task import ExtraPredictInputs, Objective, PredictInputs, Report, predict_inputs
from lstmkit.tasks.forecasting.config import TINY
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
    task = TASK.bind(TASK.tiny_config())
    splits = task.load_data(str(path))
    task = task.bind(preprocessing=task.adapt(splits.train))
    metrics = task.evaluate(LastValuePlusOrMinusOne(task.config.horizon), getattr(splits, split))
    return task, splits, metrics


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
        task, splits, metrics = evaluated(path)
    assert "MASE is undefined for it" in caplog.text and "value" in caplog.text
    # MASE is undefined (its scale, the seasonal naive error on the training part, is 0), and
    # so is the ratio to the seasonal naive: left out. The rest is there, and finite.
    for key in ("mase", "seasonal_naive_mase", "mase_ratio_to_seasonal_naive"):
        assert key not in metrics
    assert finite_json(metrics)["mae"] > 0
    assert {"smape", "rmse", "crps", "coverage"} <= metrics.keys()
    # Training weighs its windows by a positive scale: a finite loss.
    _, labels = next(splits.train.batch(8).as_numpy_iterator())
    outputs = LastValuePlusOrMinusOne(task.config.horizon).predict(np.zeros((8, task.config.context, 1)))
    assert np.isfinite(float(task.loss()(labels, outputs)))


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
    task = TASK.bind(TASK.tiny_config())
    task = task.bind(preprocessing=task.placeholder_preprocessing())
    with pytest.raises(UserError, match="row 9 of the time column 'date' holds '2020-01-08T00:00:00\\+05:00'"):
        task.read_history(str(path))
    prepared = task.preprocess([str(path)], {"horizon": None})
    assert prepared.items == [] and prepared.inputs is None
    (message,) = prepared.rejected.values()
    assert "row 9" in message and "\n" not in message


def test_declarations():
    assert isinstance(TASK, ExtraPredictInputs)
    assert TASK.objective == Objective("val_loss", "min")
    assert TASK.report == Report(headline="mase",
                                 metrics=("mase", "smape", "mae", "rmse", "quantile_loss", "crps", "coverage",
                                          "seasonal_naive_mase", "mase_ratio_to_seasonal_naive"),
                                 counts={}, plots=("forecast",))
    declared = predict_inputs(TASK)
    assert isinstance(declared, PredictInputs) and declared.file_is_one_input and declared.files == ()
    (horizon,) = declared.options
    assert (horizon.name, horizon.type) == ("horizon", int)
    assert TASK.custom_object_modules == ("lstmkit.tasks.forecasting.model",)
    assert TASK.tiny_config() is TINY and TASK.default_data == "builtin"
    # The fix the CLI names for a missing --data file, before TensorFlow loads: the task's own.
    assert TASK.sources_hint == ("the data source must be a .csv, .tsv or .parquet file of a time column and value "
                                 "columns, or builtin[:NAME] (NAME one of elnino, co2, sunspots, nile, realgdp, unemp)")
    # The unbound module-level task needs binding before anything reads its config.
    with pytest.raises(TypeError, match="not bound to a config"):
        TASK.load_data("builtin")
    task = TASK.bind(TINY)
    assert task.placeholder_preprocessing().scales == (1.0,)
    assert task.label_names() == ["q0.1", "q0.5", "q0.9"]
    calendar = dataclasses.replace(TINY, data=dataclasses.replace(TINY.data, calendar=True))
    assert TASK.bind(calendar).placeholder_preprocessing().scales == (1.0, 1.0, 1.0)


def bound_for_predict():
    task = TASK.bind(TINY)
    return task.bind(preprocessing=task.placeholder_preprocessing())


def test_predict_reads_each_history_once_keeps_order_and_continues_its_times(tmp_path, monkeypatch):
    """preprocess reads every input once (postprocess continues the times it read), sets
    aside those it cannot read, and postprocess prints the first --horizon steps."""
    from lstmkit.tasks.forecasting import data as forecast_data

    monkeypatch.chdir(tmp_path)  # a short name, printed whole
    path = "history.csv"
    pd.DataFrame({"date": MONTHS[:30], "y": np.arange(30.0)}).to_csv(path, index=False)
    reads = []
    read_table = forecast_data.read_table
    monkeypatch.setattr(forecast_data, "read_table", lambda *args: reads.append(args[0]) or read_table(*args))
    task = bound_for_predict()
    values = ",".join(["5"] * 30)
    items = [path, "1,2,abc", values]
    prepared = task.preprocess(items, {"horizon": 2})
    assert prepared.items == [path, values]
    assert prepared.rejected == {"1,2,abc": "'abc' is not a number; give the history as comma-separated numbers "
                                            "or a CSV file"}
    context = TINY.context
    assert prepared.inputs.shape == (2, context, 1) and prepared.inputs.dtype == np.float32
    np.testing.assert_array_equal(prepared.inputs[0, :, 0], np.arange(30.0 - context, 30.0))
    outputs = LastValuePlusOrMinusOne(TINY.horizon).predict(prepared.inputs)
    from_file, from_values = task.postprocess(prepared.items, outputs, {"horizon": 2}, prepared.notes)
    assert len(reads) == 1  # the file, read once for both steps
    assert from_file["time"] == ["2002-07-01T00:00:00", "2002-08-01T00:00:00"]  # the months after June 2002
    assert from_file["horizon"] == 2 and from_file["forecast"] == [29.0, 29.0]
    assert from_file["quantiles"] == {"q0.1": [28.0, 28.0], "q0.5": [29.0, 29.0], "q0.9": [30.0, 30.0]}
    assert from_file["text"].splitlines() == ["input,step,time,forecast,q0.1,q0.5,q0.9",
                                              f"{path},1,2002-07-01T00:00:00,29,28,29,30",
                                              f"{path},2,2002-08-01T00:00:00,29,28,29,30"]
    assert from_values["time"] is None and from_values["forecast"] == [5.0, 5.0]
    assert from_values["text"].splitlines() == [f'"{values[:37]}...",1,,5,4,5,6', f'"{values[:37]}...",2,,5,4,5,6']
    # Without --horizon, the run's whole horizon.
    (record,) = task.postprocess([path], outputs[:1], {"horizon": None})
    assert record["horizon"] == TINY.horizon == len(record["time"])


def test_predict_refuses_a_horizon_beyond_the_runs_before_reading_any_input(tmp_path, monkeypatch):
    from lstmkit.tasks.forecasting import data as forecast_data

    monkeypatch.setattr(forecast_data, "read_table", lambda *args: pytest.fail("an input was read"))
    task = bound_for_predict()
    for horizon in (0, TINY.horizon + 1):
        with pytest.raises(UserError) as error:
            task.preprocess([str(tmp_path / "history.csv")], {"horizon": horizon})
        assert str(error.value) == (f"--horizon {horizon}: this run forecasts {TINY.horizon} steps; ask for 1 to "
                                    f"{TINY.horizon}, or train a run with --set horizon={horizon}")
    prepared = task.preprocess([",".join(["1"] * 10)], {"horizon": TINY.horizon})
    assert prepared.items == [] and prepared.inputs is None
    assert prepared.rejected == {",".join(["1"] * 10): "the history has 10 steps; this run's model reads the last "
                                                       f"{TINY.context}: give at least {TINY.context}"}


def test_a_log_transform_refuses_values_at_or_below_zero_in_the_data_predict_and_the_export(tmp_path):
    import tensorflow as tf

    config = config_lib.apply_overrides(TASK.tiny_config(), ["transform=log"])
    path = tmp_path / "sales.csv"
    values = np.linspace(1.0, 50.0, 80)
    values[40] = 0.0
    pd.DataFrame({"sales": values}).to_csv(path, index=False)
    with pytest.raises(UserError, match=r"series sales holds 0 at step 41: transform=log needs every value above 0"):
        TASK.bind(config).load_data(str(path))
    task = TASK.bind(config)
    task = task.bind(preprocessing=task.placeholder_preprocessing())
    history = ",".join(["5"] * (config.context - 1) + ["-1"])
    prepared = task.preprocess([history, ",".join(["5"] * config.context)], {})
    assert len(prepared.items) == 1 and "send positive values only" in prepared.rejected[history]
    serve = task.serving_signatures()["serving_default"].build_fn(task.build_model())
    assert serve(history=tf.fill([1, config.context, 1], 5.0))["forecast"].shape == (1, config.horizon)
    with pytest.raises(tf.errors.InvalidArgumentError, match="history holds a value <= 0"):
        serve(history=tf.zeros([1, config.context, 1]))
