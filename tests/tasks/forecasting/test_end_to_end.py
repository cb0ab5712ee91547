"""A tiny forecaster of El Nino: evaluation with its baseline and plot, predict from
files, values and stdin, the horizon option, export, and bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from lstmkit.tasks.forecasting import data
from lstmkit.tasks.forecasting.config import DataConfig


def opened(run_dir):
    from lstmkit.run import Run
    from lstmkit.tasks.forecasting.task import TASK

    return Run.from_folder(TASK, run_dir)


def elnino_tail(steps=40):
    (series,) = data.builtin_series("elnino", DataConfig())
    return series.values[-steps:, 0], series.times[-steps:]


@pytest.mark.slow
def test_training_learns_and_the_test_metrics_compare_with_the_seasonal_naive(forecasting_run):
    rows = (forecasting_run / "history.csv").read_text().strip().splitlines()
    header = rows[0].split(",")
    losses = [float(dict(zip(header, row.split(",")))["loss"]) for row in rows[1:]]
    assert losses[-1] < losses[0]
    test = json.loads((forecasting_run / "metrics.json").read_text())["test"]
    # 732 months: the last 146 are the test block; 6-step horizons from each of its origins.
    assert test["examples"] == 146 - 6 + 1
    assert test["mase_ratio_to_seasonal_naive"] == pytest.approx(test["mase"] / test["seasonal_naive_mase"])
    assert 0 <= test["coverage"] <= 1 and test["crps"] > 0 and test["smape"] > 0


@pytest.mark.slow
def test_the_median_is_the_point_forecast_and_quantiles_never_cross(forecasting_run):
    from lstmkit.tasks.forecasting.model import forecast_quantiles

    run = opened(forecasting_run)
    config, model = run.config, run.model
    values, _ = elnino_tail(config.context)
    quantiles = forecast_quantiles(model.predict(values[None, :, None].astype(np.float32), verbose=0))[0]
    assert quantiles.shape == (config.horizon, len(config.quantiles))
    assert (np.diff(quantiles, axis=-1) >= 0).all()
    # Raw values in, raw values out: forecasts of sea temperatures (about 20-28 degrees).
    assert 15 < quantiles[:, 1].mean() < 35


@pytest.mark.slow
def test_evaluate_writes_the_forecast_plot(forecasting_run, run_cli):
    code, out, err = run_cli("evaluate", "forecasting", "--run", forecasting_run, "--runs-dir",
                             forecasting_run.parents[1])
    assert code == 0, err
    assert "mase" in out and "seasonal_naive_mase" in out
    plot = forecasting_run / "forecast-test.png"
    assert plot.is_file() and plot.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_predict_reads_a_history_file_continues_its_times_and_honours_horizon(forecasting_run, run_cli, tmp_path):
    values, times = elnino_tail()
    path = tmp_path / "history.csv"
    pd.DataFrame({"month": times.strftime("%Y-%m-%d"), "temperature": values}).to_csv(path, index=False)
    where = ["--run", forecasting_run, "--runs-dir", forecasting_run.parents[1]]
    code, out, err = run_cli("predict", "forecasting", "--file", path, "--horizon", 3, *where)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "input,step,time,forecast,q0.1,q0.5,q0.9" and len(lines) == 1 + 3
    assert lines[1].split(",")[2] == "2011-01-01T00:00:00"  # the month after the history's last
    code, out, err = run_cli("predict", "forecasting", ",".join(map(str, values)), "--format", "json", *where)
    (record,) = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and record["horizon"] == 6 and record["forecast"] == record["quantiles"]["q0.5"]
    # The same history from a file and from values gives the same forecast.
    code, out, err = run_cli("predict", "forecasting", "--file", path, "--format", "json", *where)
    assert json.loads(out)["forecast"] == pytest.approx(record["forecast"], rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("arguments, message", [
    (["1,2,abc"], "'abc' is not a number"),
    (["/dev/zero"], "is a device, not a regular file"),
    (["missing.csv"], "missing.csv"),
    ([",".join(["1"] * 10)], "the history has 10 steps; this run's model reads the last 24"),
    ([",".join(["1"] * 30 + ["nan"])], "NaN or infinite"),
    ([",".join(["1"] * 30), "--horizon", "7"], "--horizon 7: this run forecasts 6 steps"),
    # Past float32 (infinity in the model), and finite but overflowing once scaled: never a printed NaN.
    ([",".join(["1"] * 29 + ["1e39"])], "past float32's largest value"),
    ([",".join(["3e38", "-3e38"] * 15)], "not a finite number for this input"),
])
def test_bad_predict_input_is_one_line_and_exit_code_2(forecasting_run, run_cli, arguments, message):
    code, out, err = run_cli("predict", "forecasting", *arguments, "--run", forecasting_run, "--runs-dir",
                             forecasting_run.parents[1])
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_bad_history_file_is_refused_with_its_row(forecasting_run, run_cli, tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("t,y\n" + "".join(f"{i},{20 + i % 3}\n" for i in range(30)) + "30,oops\n")
    code, out, err = run_cli("predict", "forecasting", "--file", path, "--run", forecasting_run, "--runs-dir",
                             forecasting_run.parents[1])
    assert code == 2 and "row 32 of column 'y' holds 'oops'" in err


@pytest.mark.slow
def test_the_export_returns_the_models_quantiles_from_a_longer_history(forecasting_run, tmp_path):
    import tensorflow as tf

    from lstmkit.export import export_run
    from lstmkit.tasks.forecasting.model import forecast_quantiles

    run = opened(forecasting_run)
    config, model = run.config, run.model
    serve = tf.saved_model.load(str(export_run(run, tmp_path))).signatures["serving_default"]
    values, _ = elnino_tail(40)
    history = np.stack([values, values + 1])[..., None].astype(np.float32)
    outputs = serve(history=tf.constant(history))
    expected = forecast_quantiles(model.predict(history[:, -config.context:], verbose=0))
    np.testing.assert_allclose(outputs["quantiles"].numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(outputs["forecast"].numpy(), expected[..., 1], atol=1e-4)
    np.testing.assert_allclose(outputs["quantile_levels"].numpy(), [config.quantiles] * 2)


@pytest.mark.slow
def test_a_calendar_run_predicts_from_a_dated_file_and_refuses_bare_values(run_cli, tmp_path):
    runs = tmp_path / "runs"
    code, out, err = run_cli("train", "forecasting", "--preset", "tiny", "--data", "builtin:elnino", "--runs-dir",
                             runs, "--set", "data.calendar=true", "--set", "train.epochs=1")
    assert code == 0, err
    values, times = elnino_tail()
    path = tmp_path / "history.csv"
    pd.DataFrame({"month": times.strftime("%Y-%m-%d"), "sst": values}).to_csv(path, index=False)
    code, out, err = run_cli("predict", "forecasting", "--file", path, "--format", "json", "--runs-dir", runs)
    assert code == 0, err
    assert len(json.loads(out)["forecast"]) == 6
    code, out, err = run_cli("predict", "forecasting", ",".join(map(str, values)), "--runs-dir", runs)
    assert code == 2 and "reads 3 features per step" in err


@pytest.mark.slow
def test_a_purely_seasonal_series_trains_evaluates_and_exports_without_mase(run_cli, tmp_path, caplog):
    """Its seasonal naive forecast is exact: MASE and the ratio to it are undefined, left out
    of the metrics (every number in them finite), and the run finishes."""
    path = tmp_path / "seasonal.csv"
    months = pd.date_range("2000-01-01", periods=120, freq="MS").strftime("%Y-%m-%d")
    pd.DataFrame({"date": months, "value": 25 + 2 * np.sin(2 * np.pi * np.arange(120) / 12)}).to_csv(path, index=False)
    runs = tmp_path / "runs"
    code, out, err = run_cli("train", "forecasting", "--data", path, "--preset", "tiny", "--runs-dir", runs,
                             "--set", "train.epochs=1")
    assert code == 0, err
    assert "MASE is undefined for it" in caplog.text  # a warning (on stderr from a real process)
    (run_dir,) = (runs / "forecasting").iterdir()
    assert not run_dir.name.endswith(".partial")
    test = json.loads((run_dir / "metrics.json").read_text(), parse_constant=lambda name: pytest.fail(name))["test"]
    assert "mase" not in test and "mase_ratio_to_seasonal_naive" not in test and test["mae"] >= 0
    code, out, err = run_cli("evaluate", "forecasting", "--runs-dir", runs)
    assert code == 0, err
    assert "  mae " in out and "  mase " not in out and "Traceback" not in err
    code, out, err = run_cli("export", "forecasting", "--runs-dir", runs, "--base-path", tmp_path / "saved")
    assert code == 0, err
    assert (tmp_path / "saved" / "forecasting" / "1" / "saved_model.pb").is_file()


@pytest.mark.slow
def test_a_time_column_with_and_without_utc_offsets_is_one_line_from_a_real_train_process(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    path = tmp_path / "zones.csv"
    stamps = ["2020-01-01", "2020-02-01T00:00:00+05:00"] + [f"2020-{month:02d}-01" for month in range(3, 13)]
    pd.DataFrame({"date": stamps, "y": np.arange(12.0)}).to_csv(path, index=False)
    result = subprocess.run([sys.executable, str(ROOT / "cli.py"), "train", "forecasting", "--data", str(path),
                             "--preset", "tiny", "--runs-dir", str(tmp_path / "runs")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and "Traceback" not in result.stderr
    assert "row 3 of the time column 'date' holds '2020-02-01T00:00:00+05:00'" in line
    assert not list((tmp_path / "runs").glob("forecasting/*"))


@pytest.mark.slow
def test_local_times_across_a_clock_change_train_in_utc_and_predict_continues_them(run_cli, tmp_path, caplog):
    """Hourly Paris times written with their offsets (+01:00, then +02:00 after the change
    to summer time) are one regular hourly series in UTC; a history in one offset keeps it."""
    hours = pd.date_range("2021-03-19 06:00", periods=240, freq="h", tz="Europe/Paris")  # to 2021-03-29 06:00
    values = 10 + 3 * np.sin(2 * np.pi * np.arange(240) / 24) + np.random.default_rng(1).normal(0, 0.3, 240)
    frame = pd.DataFrame({"time": [stamp.isoformat() for stamp in hours], "load": values})
    path = tmp_path / "load.csv"
    frame.to_csv(path, index=False)
    runs = tmp_path / "runs"
    code, out, err = run_cli("train", "forecasting", "--data", path, "--preset", "tiny", "--runs-dir", runs,
                             "--set", "train.epochs=1")
    assert code == 0, err
    (run_dir,) = (runs / "forecasting").iterdir()
    assert "season 24" in json.loads((run_dir / "run.json").read_text())["data_description"]
    assert "irregular" not in caplog.text
    history = tmp_path / "history.csv"
    frame.tail(24).to_csv(history, index=False)  # all after the change, in +02:00
    code, out, err = run_cli("predict", "forecasting", "--file", history, "--format", "json", "--runs-dir", runs)
    assert code == 0, err
    assert json.loads(out)["time"][0] == (hours[-1] + pd.Timedelta(hours=1)).isoformat()
    frame.tail(40).to_csv(history, index=False)  # from before the change: +01:00 and +02:00, read in UTC
    code, out, err = run_cli("predict", "forecasting", "--file", history, "--format", "json", "--runs-dir", runs)
    assert code == 0, err
    assert json.loads(out)["time"][0] == (hours[-1] + pd.Timedelta(hours=1)).tz_convert("UTC").isoformat()
    frame.loc[frame.index[-2], "time"] = "2021-03-29 05:00"  # no offset
    frame.tail(40).to_csv(history, index=False)
    code, out, err = run_cli("predict", "forecasting", "--file", history, "--runs-dir", runs)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "row 40 of the time column 'time' holds '2021-03-29 05:00'" in err
