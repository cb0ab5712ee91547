"""The competitions' row layout (data.layout=rows) with a test file matched by series id
(data.test_source): reading and its errors, a file of M4's full size read streaming, and
a slice of the real M4 hourly files trained, evaluated, predicted, exported and served."""

import json
import tracemalloc

import numpy as np
import pytest

from lstmkit.errors import UserError
from lstmkit.tasks.forecasting import data, m4
from lstmkit.tasks.forecasting.config import DataConfig, ForecastConfig

ROWS = DataConfig(layout="rows", season=24)
HOURLY = ["--set", "data.layout=rows", "--set", "data.season=24", "--set", "horizon=48", "--set", "context=168"]


def write(path, text):
    path.write_text(text)
    return path


def one_line_error(call, fragment):
    with pytest.raises(UserError) as raised:
        call()
    message = str(raised.value)
    assert fragment in message and "\n" not in message, message
    return message


def test_a_test_file_continues_each_series_by_id_and_becomes_its_test_block(tmp_path):
    train = write(tmp_path / "train.csv", '"V1","V2","V3","V4","V5"\n"B",1,2,3,4\n"A",5,6,7,\n')
    test = write(tmp_path / "test.csv", '"V1","V2","V3"\n"A",8,9\n"B",5,6\n')  # another order
    b, a = data.read_with_test_source(str(train), DataConfig(layout="rows", test_source=str(test)))
    assert (a.name, b.name, a.where) == ("A", "B", "row 3")
    np.testing.assert_array_equal(a.values[:, 0], [5, 6, 7, 8, 9])
    assert a.test_start == 3 and b.test_start == 4
    blocks = data.time_blocks(b, ForecastConfig(horizon=1, context=2, data=DataConfig(validation_fraction=0.2)))
    assert (blocks.train_end, blocks.validation_end, blocks.steps) == (3, 4, 6)  # test: the 2 steps of test.csv


def test_mismatched_or_misplaced_test_files_are_refused_in_one_line(tmp_path):
    train = write(tmp_path / "train.csv", '"V1","V2","V3"\n"A",1,2\n"B",3,4\n')
    extra = write(tmp_path / "extra.csv", '"V1","V2"\n"A",1\n"B",2\n"C",3\n')
    missing = write(tmp_path / "missing.csv", '"V1","V2"\n"A",1\n')

    def joined(test_source, source=str(train), **settings):
        return lambda: data.read_with_test_source(source, DataConfig(layout="rows", test_source=str(test_source),
                                                                     **settings))

    one_line_error(joined(extra), "extra.csv row 4: series C is not in train.csv")
    one_line_error(joined(missing), "series B (train.csv row 3) has no continuation in data.test_source missing.csv")
    one_line_error(joined(train), "is the data source itself")
    one_line_error(joined(tmp_path / "nowhere.csv"), "data.test_source")
    one_line_error(joined(extra, source="builtin:elnino"), "builtin series hold out data.test_fraction")
    only_one = write(tmp_path / "one.csv", '"V1","V2"\n"A",1\n"B",2\n')
    a, _ = data.read_with_test_source(str(train), DataConfig(layout="rows", test_source=str(only_one)))
    one_line_error(lambda: data.time_blocks(a, ForecastConfig(horizon=2, context=2)),
                   "series A has 1 step(s) in data.test_source, fewer than the horizon (2)")


@pytest.mark.parametrize("content, fragment", [
    ('"V1","V2","V3"\n"H1",1,x\n', "rows.csv row 2 (H1), column V3: holds 'x', not a number"),
    ('"V1","V2","V3","V4"\n"H1",1,,3\n', "row 2 (H1), column V3: is empty inside the series"),
    ('"V1","V2"\n"H1",1,2\n', "rows.csv row 2 has 3 fields, more than the header's 2"),
    ('"V1","V2"\n"H1",1\n"H1",2\n', "row 3: series H1 appears twice"),
    ('"V1","V2"\n,1\n', "row 2: the id column (V1) is empty"),
    ('"V1","V2"\n"H1",nan\n', "column V2: holds 'nan', not a finite number"),
    ('"V1","V2"\n"H1",1e39\n', "past float32's largest value"),
    ('"V1","V2"\n', "holds no series"),
])
def test_bad_rows_name_their_row_and_column(tmp_path, content, fragment):
    path = write(tmp_path / "rows.csv", content)
    one_line_error(lambda: data.read_source(str(path), ROWS), fragment)


def test_the_row_layout_refuses_column_settings_and_bytes_that_are_not_utf8(tmp_path):
    path = write(tmp_path / "rows.csv", '"V1","V2"\n"H1",1\n')
    one_line_error(lambda: data.read_source(str(path), DataConfig(layout="rows", value_columns=("V2",))),
                   "data.layout=rows reads one series per row")
    path.write_bytes(b'"V1","V2"\n"H1",1\n"H\xe9",2\n')
    one_line_error(lambda: data.read_source(str(path), ROWS), "is not UTF-8")


def test_a_too_short_series_names_its_row_and_the_context_that_fits(tmp_path):
    path = write(tmp_path / "rows.csv", '"V1",' + ",".join(f'"V{i}"' for i in range(2, 102)) + '\n"H7",'
                 + ",".join(["1"] * 100) + "\n")
    (series,) = data.read_source(str(path), ROWS)
    one_line_error(lambda: data.time_blocks(series, ForecastConfig(horizon=12, context=90)),
                   "series H7 (row 2) has 100 steps")


@pytest.mark.slow
def test_a_file_of_100000_series_is_read_streaming_without_a_copy_of_its_text(tmp_path):
    """M4's full size in rows: what reading holds at its peak is what it returns (the
    values and their series), not the file's text as well."""
    path = tmp_path / "m4_size.csv"
    rng = np.random.default_rng(0)
    lengths = 20 + np.arange(100_000) % 8
    fields = np.char.mod("%.1f", rng.uniform(0, 1000, int(lengths.sum()))).tolist()
    ends = np.cumsum(lengths)
    lines = ["V1," + ",".join(f"V{i}" for i in range(2, 29))]
    lines += [f"S{row}," + ",".join(fields[end - length:end]) + "," * (27 - length)
              for row, (end, length) in enumerate(zip(ends, lengths))]
    path.write_text("\n".join(lines) + "\n")
    del lines, fields
    size = path.stat().st_size
    tracemalloc.start()
    try:
        series = data.read_source(str(path), ROWS)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(series) == 100_000 and series[-1].name == "S99999" and len(series[9].values) == 20 + 9 % 8
    # Reading the text whole would add at least its size (bytes, then as much again decoded); what
    # streaming adds at its peak is the reader's buffers and the set of ids seen.
    assert peak - kept < size / 2, (peak, kept, size)


def test_every_origin_is_cut_as_windows_cuts_it_and_draws_are_balanced_per_series():
    from lstmkit.tasks.forecasting.task import windows_dataset

    rng = np.random.default_rng(1)
    long, short = rng.normal(size=(60, 1)), rng.normal(size=(25, 1))
    values = np.concatenate([long, short]).astype(np.float32)
    context, horizon, season = 6, 3, 4
    rows = [(10, 40, 1, 0, season, 2.0, 3.0), (60 + 6, 12, 1, 60, season, 5.0, 0.0)]
    every = list(windows_dataset(values, rows, context, horizon, None).as_numpy_iterator())
    assert len(every) == 52
    for (first, count, *_), one, scale in zip(rows, (long[:, 0], short[:, 0]), (2.0, 5.0)):
        start = first - (0 if len(one) == 60 else 60)
        origins = np.arange(start, start + count)[:, None]
        steps = np.arange(horizon)[None, :]
        history = one[origins + np.arange(-context, 0)[None, :]][..., None]
        target = one[origins + steps]
        seasonal = origins - season + steps % season
        naive = np.where(seasonal >= 0, one[np.maximum(seasonal, 0)], np.nan)
        cut = every[:40] if len(one) == 60 else every[40:]
        np.testing.assert_allclose([h for h, _ in cut], history, rtol=1e-6)
        labels = np.stack([label for _, label in cut])
        np.testing.assert_allclose(labels[..., 0], target, rtol=1e-6)
        np.testing.assert_allclose(labels[..., 1], scale)
        np.testing.assert_allclose(labels[..., 2], naive, rtol=1e-6)  # NaN where no season lies behind
    # Drawn: as many per series, each from its own stretch of origins, afresh every epoch.
    drawn = windows_dataset(values, rows, context, horizon, 4)
    epochs = [sorted((label[0, 1], label[0, 0]) for _, label in drawn.as_numpy_iterator()) for _ in range(3)]
    assert all(len(epoch) == 8 and sum(scale == 2.0 for scale, _ in epoch) == 4 for epoch in epochs)
    assert epochs[0] != epochs[1] or epochs[1] != epochs[2]
    once = windows_dataset(values, rows[:1], context, horizon, 40)  # as many draws as origins: each once
    targets = sorted(float(label[0, 0]) for _, label in once.as_numpy_iterator())
    np.testing.assert_allclose(targets, np.sort(values[10:50, 0]), rtol=1e-6)


def m4_slice(shared_data, folder, series=6):
    """The first ``series`` rows of the real M4 hourly train and test files."""
    paths = []
    for name in ("Hourly-train.csv", "Hourly-test.csv"):
        lines = (shared_data / "m4_hourly" / name).read_text().splitlines()[: series + 1]
        paths.append(write(folder / name, "\n".join(lines) + "\n"))
    return paths


@pytest.mark.slow
def test_a_slice_of_m4_trains_evaluates_predicts_exports_and_serves(shared_data, tmp_path, run_cli):
    import tensorflow as tf

    from tests.conftest import fresh_cli
    from tests.lstmkit.serving.test_app import Server

    train, test = m4_slice(shared_data, tmp_path)
    runs, exports = tmp_path / "runs", tmp_path / "exports"
    code, out, err = run_cli("train", "forecasting", "--preset", "tiny", "--data", train, "--runs-dir", runs, *HOURLY,
                             "--set", f"data.test_source={test}", "--set", "data.windows_per_series=4")
    assert code == 0, err
    (run_dir,) = (runs / "forecasting").iterdir()
    described = json.loads((run_dir / "run.json").read_text())["data_description"]
    assert "6 series (H1, H2, H3, H4, H5, ...), season 24" in described
    assert "4 training window(s) drawn per series each epoch" in described
    tested = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert tested["examples"] == 6  # one 48-step forecast per series: the test file's steps
    evaluated, predicted, exported = fresh_cli(
        ["evaluate", "forecasting", "--runs-dir", runs],
        ["predict", "forecasting", "--file", train, "--format", "json", "--horizon", "2", "--runs-dir", runs],
        ["export", "forecasting", "--runs-dir", runs, "--base-path", exports])
    for code, _, err in (evaluated, predicted, exported):
        assert code == 0, err
    out = predicted[1]
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [record["input"][-2:] for record in records] == ["H1", "H2", "H3", "H4", "H5", "H6"]
    assert all(record["horizon"] == 2 for record in records)
    history = m4.read_wide(train)["H1"][:, None].astype(np.float32)
    served = tf.saved_model.load(str(exports / "forecasting" / "1")).signatures["serving_default"]
    forecast = served(history=tf.constant(history[None]))["forecast"].numpy()[0]
    np.testing.assert_allclose(forecast[:2], records[0]["forecast"], rtol=1e-5)
    server = Server(exports)
    try:
        status, answer = server.request("/v1/models/forecasting:predict", {"instances": [history.tolist()]})
    finally:
        server.stop()
    assert status == 200, answer
    np.testing.assert_allclose(answer["predictions"][0]["forecast"], forecast, rtol=1e-5)


def test_a_dated_test_file_continues_the_columns_of_the_data_source_and_must_come_after_it(tmp_path):
    import pandas as pd

    months = pd.date_range("2020-01-01", periods=30, freq="MS")
    pd.DataFrame({"month": months[:24].strftime("%Y-%m-%d"), "north": np.arange(24.0)}).to_csv(
        tmp_path / "train.csv", index=False)
    pd.DataFrame({"month": months[24:].strftime("%Y-%m-%d"), "north": np.arange(24.0, 30.0)}).to_csv(
        tmp_path / "test.csv", index=False)
    settings = DataConfig(test_source=str(tmp_path / "test.csv"))
    (north,) = data.read_with_test_source(str(tmp_path / "train.csv"), settings)
    np.testing.assert_array_equal(north.values[:, 0], np.arange(30.0))
    assert north.test_start == 24 and north.times[-1] == months[-1] and north.season == 12
    pd.DataFrame({"month": months[20:26].strftime("%Y-%m-%d"), "north": np.arange(6.0)}).to_csv(
        tmp_path / "test.csv", index=False)
    one_line_error(lambda: data.read_with_test_source(str(tmp_path / "train.csv"), settings),
                   "test.csv: series north starts at 2021-09-01 00:00:00, not after the training data's last time "
                   "2021-12-01 00:00:00")
