"""Reading series: layouts, formats, the errors of bad files, time-ordered blocks and windows."""

import logging
import re

import numpy as np
import pandas as pd
import pytest

from lstmkit.errors import UserError
from lstmkit.tasks.forecasting import data
from lstmkit.tasks.forecasting.config import DataConfig, ForecastConfig


def read(path, **settings):
    return data.read_source(str(path), DataConfig(**settings))


def test_a_wide_csv_is_one_series_per_value_column_sorted_by_time_with_its_season(tmp_path):
    path = tmp_path / "sales.csv"
    months = pd.date_range("2020-01-01", periods=30, freq="MS")
    frame = pd.DataFrame({"month": months.strftime("%Y-%m-%d"), "north": np.arange(30.0), "south": -np.arange(30.0)})
    frame.iloc[::-1].to_csv(path, index=False)  # newest first: read back in time order
    north, south = read(path)
    assert (north.name, south.name) == ("north", "south")
    np.testing.assert_array_equal(north.values[:, 0], np.arange(30.0))
    np.testing.assert_array_equal(south.values[:, 0], -np.arange(30.0))
    assert north.season == 12 and north.times[0] == months[0]


def test_a_long_tsv_groups_rows_into_series_and_covariates_ride_along(tmp_path):
    path = tmp_path / "stores.tsv"
    rows = ["store\tday\tsales\tprice"]
    for store in ("a", "b"):
        rows += [f"{store}\t2024-01-{day:02d}\t{day * (2 if store == 'b' else 1)}\t{day / 10}" for day in range(1, 15)]
    path.write_text("\n".join(rows) + "\n")
    first, second = read(path, series_column="store", value_columns=("sales",), covariates=("price",))
    assert (first.name, second.name) == ("a", "b")
    assert first.values.shape == (14, 2) and first.season == 7
    np.testing.assert_allclose(second.values[:, 0], 2 * np.arange(1, 15))
    np.testing.assert_allclose(second.values[:, 1], np.arange(1, 15) / 10)


def test_parquet_reads_like_csv(tmp_path):
    frame = pd.DataFrame({"ds": pd.date_range("2001-01-01", periods=12, freq="QS"), "y": np.arange(12.0)})
    frame.to_parquet(tmp_path / "y.parquet")
    (series,) = read(tmp_path / "y.parquet")
    assert series.season == 4 and series.values[-1, 0] == 11.0


@pytest.mark.parametrize("body, message", [
    ("time,y\n1,2\n2,abc\n3,4\n", "row 3 of column 'y' holds 'abc', not a finite number"),
    ("time,y\n1,2\n2,\n3,4\n", "row 3 of column 'y' is empty"),
    ("time,y\n1,2\n2,inf\n3,4\n", "row 3 of column 'y'"),
    ("time,y\n1,2\n1,3\n3,4\n", "time 1 appears twice"),
    ("time,y\n1.5,2\n1.5,3\n3,4\n", "time 1.5 appears twice"),
    ("date,y\n2020-01-01,2\nyesterday,3\n", "row 3 of the time column 'date' holds 'yesterday'"),
    ("time,name\n1,a\n2,b\n", "no numeric value column"),
    ("time,y\n", "has no rows"),
])
def test_bad_files_are_one_line_naming_the_row_and_the_fix(tmp_path, body, message):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(UserError, match=message) as error:
        read(path)
    assert "\n" not in str(error.value)


def test_integer_times_stay_integers_and_fractional_ones_floats(tmp_path):
    """Step numbers past 2**53 are distinct integers, not floats rounded onto each other."""
    path = tmp_path / "steps.csv"
    path.write_text("time,y\n" + "".join(f"{10**17 + i},{i % 5}\n" for i in range(30)))
    (series,) = read(path)
    assert series.times.dtype == np.int64 and series.times.is_unique
    assert list(series.times) == [10**17 + i for i in range(30)]
    path.write_text("time,y\n" + "".join(f"{10**17 + i},{i % 5}\n" for i in (0, 1, 1, 2)))
    with pytest.raises(UserError, match="time 100000000000000001 appears twice"):
        read(path)
    path.write_text("time,y\n" + "".join(f"{i / 2},{i % 5}\n" for i in range(30)))
    (series,) = read(path)
    assert series.times.dtype == np.float64 and series.times[1] == 0.5
    # A missing time in a nullable integer column is still a missing time.
    path = tmp_path / "steps.parquet"
    pd.DataFrame({"time": pd.array([1, None, 3], dtype="Int64"), "y": [1.0, 2.0, 3.0]}).to_parquet(path)
    with pytest.raises(UserError, match="row 3 of the time column 'time' is empty"):
        read(path)


def test_dates_in_several_utc_offsets_are_read_in_utc(tmp_path):
    """As pd.to_datetime(..., utc=True) reads them: one zone, the same instants."""
    path = tmp_path / "zones.csv"
    stamps = ["2020-01-01T00:00:00Z", "2020-02-01T00:00:00+05:00", "2020-03-01T00:00:00-03:00",
              "2020-04-01T00:00:00+00:00"]
    pd.DataFrame({"date": stamps, "y": [1.0, 2.0, 3.0, 4.0]}).to_csv(path, index=False)
    (series,) = read(path)
    expected = pd.DatetimeIndex(pd.to_datetime(stamps, utc=True))
    assert str(series.times.tz) == "UTC"
    assert list(series.times) == list(expected)
    # In time order: 2020-02-01T00:00+05:00 is the evening of January 31st in UTC.
    assert series.times[1] == pd.Timestamp("2020-01-31T19:00:00Z")
    np.testing.assert_array_equal(series.values[:, 0], [1.0, 2.0, 3.0, 4.0])


@pytest.mark.parametrize("stamps, row, value", [
    (["2020-01-01", "2020-02-01T00:00:00+05:00", "2020-03-01"], 3, "2020-02-01T00:00:00+05:00"),
    (["2020-01-01T00:00:00Z", "2020-02-01T00:00:00+05:00", "2020-03-01 00:00"], 4, "2020-03-01 00:00"),
])
def test_dates_with_and_without_a_utc_offset_are_refused_naming_the_row(tmp_path, stamps, row, value):
    """Which zone a date without an offset is in is anyone's guess: refuse, do not guess UTC."""
    path = tmp_path / "zones.csv"
    pd.DataFrame({"date": stamps, "y": np.arange(len(stamps), dtype=float)}).to_csv(path, index=False)
    with pytest.raises(UserError, match=re.escape(f"row {row} of the time column 'date' holds '{value}'")) as error:
        read(path)
    assert "\n" not in str(error.value) and "row 2" in str(error.value)


def test_named_columns_must_exist_and_other_sources_are_refused(tmp_path):
    path = tmp_path / "y.csv"
    path.write_text("time,y\n1,2\n2,3\n")
    with pytest.raises(UserError, match="no column 'sales'"):
        read(path, value_columns=("sales",))
    with pytest.raises(UserError, match="no time-series forecasting dataset"):
        read("tfds:m4")
    with pytest.raises(UserError, match="unknown builtin series 'm4'; choose one of: elnino"):
        read("builtin:m4")
    with pytest.raises(UserError, match="builtin series have no columns"):
        read("builtin", covariates=("x",))


def test_irregular_steps_are_reported_not_filled(tmp_path, caplog):
    path = tmp_path / "gaps.csv"
    days = list(pd.date_range("2024-01-01", periods=20, freq="D").delete([5, 6, 12]))
    pd.DataFrame({"date": days, "y": np.arange(len(days))}).to_csv(path, index=False)
    with caplog.at_level(logging.WARNING, logger="lstmkit"):
        (series,) = read(path)
    assert len(series.values) == 17
    assert "2 irregular step(s)" in caplog.text and "2024-01-05" in caplog.text


def test_every_builtin_series_loads_offline_with_its_season():
    for name, builtin in data.BUILTIN.items():
        (series,) = data.builtin_series(name, DataConfig())
        assert series.season == builtin.season and np.isfinite(series.values).all() and len(series.values) >= 100


def test_blocks_are_consecutive_and_windows_never_cross_an_origin(tmp_path):
    from lstmkit.tasks.forecasting.task import TASK

    values = np.arange(200.0)[:, None]
    series = data.Series("s", values, season=12)
    config = ForecastConfig(horizon=12, context=24, data=DataConfig(season=12))
    blocks = data.time_blocks(series, config)
    assert (blocks.train_end, blocks.validation_end, blocks.steps) == (140, 160, 200)
    pd.DataFrame({"s": values[:, 0]}).to_csv(tmp_path / "s.csv", index=False)
    test = list(TASK.bind(config).load_data(str(tmp_path / "s.csv")).test.as_numpy_iterator())
    assert len(test) == 200 - 12 - 160 + 1
    first = blocks.validation_end
    (history, labels), last = test[0], test[-1][1]
    np.testing.assert_array_equal(history[:, 0], np.arange(first - 24, first))
    np.testing.assert_array_equal(labels[:, 0], np.arange(first, first + 12))
    np.testing.assert_array_equal(labels[:, 2], np.arange(first - 12, first))  # the last season, repeated
    assert last[-1, 0] == 199


def test_a_series_too_short_for_context_and_horizon_says_what_to_lower():
    series = data.Series("short", np.arange(60.0)[:, None])
    with pytest.raises(UserError, match="fewer than context \\+ horizon = 60; lower horizon or context"):
        data.time_blocks(series, ForecastConfig(horizon=12, context=48))
    # 72 monthly steps: 46 left to train on, so a context of 34 leaves room for one window.
    monthly = data.Series("sales", np.arange(72.0)[:, None])
    with pytest.raises(UserError, match="series sales has 72 steps.*--set context=34 fits this series"):
        data.time_blocks(monthly, ForecastConfig(horizon=12, context=48))
    data.time_blocks(monthly, ForecastConfig(horizon=12, context=34))  # and it does
    with pytest.raises(UserError, match=r"\(--set horizon=\.\.\. context=\.\.\.\)"):
        data.time_blocks(data.Series("tiny", np.arange(20.0)[:, None]), ForecastConfig(horizon=12, context=48))


def test_calendar_features_give_each_step_its_place_in_the_season(tmp_path):
    path = tmp_path / "monthly.csv"
    months = pd.date_range("2020-03-01", periods=14, freq="MS")
    pd.DataFrame({"month": months, "y": np.arange(14.0)}).to_csv(path, index=False)
    (series,) = read(path, calendar=True)
    assert series.values.shape == (14, 3) and DataConfig(calendar=True).features() == 3
    angle = 2 * np.pi * (months.month.to_numpy() - 1) / 12
    np.testing.assert_allclose(series.values[:, 1], np.sin(angle), atol=1e-12)
    np.testing.assert_allclose(series.values[:, 2], np.cos(angle), atol=1e-12)
    np.testing.assert_allclose(series.values[0, 1:], series.values[12, 1:])  # March again a year later
    (plain,) = read(path)
    with pytest.raises(UserError, match="data.calendar needs a time column of dates"):
        data.calendar_features(None, 12, "x.csv")
    with pytest.raises(UserError, match="not 1"):
        data.calendar_features(plain.times, 1, "x.csv")



@pytest.mark.parametrize("steps, warned", [(100, True), (400, False)])
def test_a_handful_of_training_windows_is_said_plainly(tmp_path, caplog, steps, warned):
    """100 steps leave 70 to train on: 41 windows of 24 -> 6, below the 64 warned about."""
    import logging

    import pandas as pd

    from lstmkit.tasks.forecasting.task import TASK

    path = tmp_path / "short.csv"
    values = np.arange(steps) + 3 * np.sin(np.arange(steps))
    pd.DataFrame({"time": np.arange(steps), "y": values}).to_csv(path, index=False)
    with caplog.at_level(logging.WARNING, logger="lstmkit"):
        TASK.bind(ForecastConfig(horizon=6, context=24)).load_data(str(path))
    said = "gives only 41 training window(s) of 24 steps -> 6" in caplog.text
    assert said == warned and ("lower context or horizon" in caplog.text) == warned
