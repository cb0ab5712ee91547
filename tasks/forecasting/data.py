"""Reading time series: files (CSV/TSV/Parquet, wide or long) and statsmodels' real series.

A file holds a time column (optional) and value columns. Wide layout: every value column
is a series. Long layout (``data.series_column``): rows are grouped into series by that
column and ``data.value_columns`` names the one column of values. ``data.covariates``
names columns read as extra inputs beside every series' values.

Rows are sorted by time; a repeated time is an error, and irregular steps (gaps) are
reported, not filled. A missing or non-numeric value is an error naming its row and
column: filling it in is the user's decision (interpolate, carry forward, drop the span).

``builtin[:NAME]``: real public series that ship inside statsmodels, so they work
offline (``BUILTIN``; all public domain, as statsmodels' dataset notes state).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
from pathlib import Path

import numpy as np

from lstmkit.data import MAX_CSV_FIELD_CHARS, open_checked, read_bytes, require_path
from lstmkit.errors import UserError

logger = logging.getLogger("lstmkit")

TIME_COLUMN_NAMES = ("time", "date", "ds", "timestamp", "datetime", "year", "period", "month", "week", "day")
SOURCE_HINT = ("the data source must be a .csv, .tsv or .parquet file of a time column and value columns, "
               "or builtin[:NAME] (NAME one of {names})")
# Seasonal periods by pandas frequency prefix (the first letters of pd.infer_freq's answer).
SEASONS = {"Y": 1, "A": 1, "Q": 4, "M": 12, "W": 52, "D": 7, "B": 5, "h": 24, "H": 24}


@dataclasses.dataclass
class Series:
    """One series: ``values`` is ``[steps, features]`` (column 0 the forecast target,
    then the covariates); ``times`` its timestamps (a pandas index) or None."""

    name: str
    values: np.ndarray
    times: object = None
    season: int = 1
    #: Where it was read, where its name does not say: "row 5" (row layout), "store 3"
    #: (long layout); error messages name it.
    where: str = ""
    #: The step where its test block starts, when a data.test_source continued it (None:
    #: the blocks come from data.test_fraction).
    test_start: int | None = None

    @property
    def described(self) -> str:
        """Its name, and where it was read when the name does not say: "H7 (row 2)"."""
        return f"{self.name} ({self.where})" if self.where else self.name


@dataclasses.dataclass(frozen=True)
class BuiltinSeries:
    description: str
    load: object  # () -> (values, pandas DatetimeIndex)
    season: int


def _statsmodels_datasets():
    try:
        from statsmodels import datasets
    except ImportError:  # pragma: no cover - statsmodels is a dependency
        raise UserError("builtin series come from statsmodels; install it: pip install statsmodels") from None
    return datasets


def _sunspots():
    frame = _statsmodels_datasets().sunspots.load_pandas().data
    return frame["SUNACTIVITY"].to_numpy(), _years(frame["YEAR"])


def _nile():
    frame = _statsmodels_datasets().nile.load_pandas().data
    return frame["volume"].to_numpy(), _years(frame["year"])


def _years(column):
    import pandas as pd

    return pd.to_datetime([f"{int(year)}-01-01" for year in column])


def _elnino():
    import pandas as pd

    frame = _statsmodels_datasets().elnino.load_pandas().data
    values = frame.drop(columns="YEAR").to_numpy().reshape(-1)  # rows are years, columns months
    return values, pd.date_range(f"{int(frame['YEAR'].iloc[0])}-01-01", periods=len(values), freq="MS")


def _co2():
    # Weekly, with 59 missing weeks: monthly means are the usual form of this series, and a
    # 12-step season is tractable for the classical baselines. The five months without a
    # measured week (June and October 1958, February to April 1964) are interpolated
    # linearly between their neighbours.
    monthly = _statsmodels_datasets().co2.load_pandas().data["co2"].resample("MS").mean().interpolate()
    return monthly.to_numpy(), monthly.index


def _macro(column):
    def load():
        import pandas as pd

        frame = _statsmodels_datasets().macrodata.load_pandas().data
        start = f"{int(frame['year'].iloc[0])}Q{int(frame['quarter'].iloc[0])}"
        return frame[column].to_numpy(), pd.period_range(start, periods=len(frame), freq="Q").to_timestamp()

    return load


BUILTIN = {
    "elnino": BuiltinSeries("El Nino: monthly sea surface temperature, Nino 1+2 region, 1950-2010", _elnino, 12),
    "co2": BuiltinSeries("Mauna Loa CO2 (ppm), monthly means of the weekly series, 1958-2001", _co2, 12),
    "sunspots": BuiltinSeries("yearly sunspot numbers, 1700-2008", _sunspots, 1),
    "nile": BuiltinSeries("yearly Nile flow at Aswan (10^8 m^3), 1871-1970", _nile, 1),
    "realgdp": BuiltinSeries("US real GDP (billions of 2005 dollars), quarterly, 1959-2009", _macro("realgdp"), 4),
    "unemp": BuiltinSeries("US unemployment rate (%), quarterly, 1959-2009", _macro("unemp"), 4),
}
DEFAULT_BUILTIN = "elnino"


def builtin_series(name: str, settings) -> list[Series]:
    if name not in BUILTIN:
        raise UserError(f"unknown builtin series {name!r}; choose one of: {', '.join(BUILTIN)}")
    series = BUILTIN[name]
    values, times = series.load()
    season = settings.season or series.season
    values = np.asarray(values, np.float64)[:, None]
    if settings.calendar:
        values = np.concatenate([values, calendar_features(times, season, name)], axis=1)
    return [Series(name, values, times, season)]


def calendar_features(times, season: int, name: str) -> np.ndarray:
    """``[steps, 2]``: the sine and cosine of each timestamp's place in its season."""
    import pandas as pd

    if not isinstance(times, pd.DatetimeIndex):
        raise UserError(f"{name}: data.calendar needs a time column of dates; name it with data.time_column, "
                        "or set data.calendar=false")
    places = {12: lambda: times.month - 1, 4: lambda: times.quarter - 1, 7: lambda: times.day_of_week,
              5: lambda: times.day_of_week, 24: lambda: times.hour,
              52: lambda: times.isocalendar().week.to_numpy() - 1}
    if season not in places:
        raise UserError(f"{name}: data.calendar knows seasons of 4, 5, 7, 12, 24 and 52 steps, not {season}; "
                        "set data.season, or data.calendar=false")
    angle = 2 * np.pi * (np.asarray(places[season](), np.float64) % season) / season
    return np.stack([np.sin(angle), np.cos(angle)], axis=1)


def read_source(source: str, settings) -> list[Series]:
    """The series of ``source`` (a file path or ``builtin[:NAME]``)."""
    if source == "builtin" or source.startswith("builtin:"):
        if settings.covariates or settings.value_columns or settings.series_column:  # calendar is fine
            raise UserError("builtin series have no columns to choose; drop data.value_columns, "
                            "data.series_column and data.covariates")
        return builtin_series(source.partition(":")[2] or DEFAULT_BUILTIN, settings)
    if source.startswith("tfds:"):
        raise UserError("TensorFlow Datasets has no time-series forecasting dataset that fits this task; "
                        "use a CSV/TSV/Parquet file or builtin[:NAME]")
    path = require_path(source, "data source", SOURCE_HINT.format(names=", ".join(BUILTIN)))
    if settings.layout == "rows":
        return read_rows(path, settings)
    return series_from_frame(read_table(path, "data"), settings, path.name)


def read_with_test_source(source: str, settings) -> list[Series]:
    """The series of ``source``, each continued by the series of the same name in
    ``settings.test_source`` (the same layout and columns), which becomes its test block.
    A test series without a series of its name in ``source``, or one of ``source``'s
    series missing from the test file, is refused in one line naming its row or column."""
    test_source = settings.test_source
    check_test_source(test_source, source)
    series = read_source(source, settings)
    tested = {one.name: one for one in read_source(test_source, settings)}
    known = {one.name for one in series}
    for one in tested.values():
        if one.name not in known:
            where = one.where or f"column {one.name}"
            raise UserError(f"{Path(test_source).name} {where}: series {one.name} is not in {Path(source).name}; "
                            "every test series continues a training series of the same name")
    joined = []
    for one in series:
        if one.name not in tested:
            where = one.where or f"column {one.name}"
            raise UserError(f"series {one.name} ({Path(source).name} {where}) has no continuation in "
                            f"data.test_source {Path(test_source).name}; give every series its test steps, or "
                            "leave data.test_source empty to hold out data.test_fraction")
        after = tested[one.name]
        times = None
        if one.times is not None and after.times is not None:
            if after.times[0] <= one.times[-1]:
                raise UserError(f"{Path(test_source).name}: series {one.name} starts at {after.times[0]}, not after "
                                f"the training data's last time {one.times[-1]}; the test file continues the series")
            times = one.times.append(after.times)
        joined.append(dataclasses.replace(one, values=np.concatenate([one.values, after.values]), times=times,
                                          test_start=len(one.values)))
    return joined


def check_test_source(test_source: str, source: str) -> None:
    """Refuse a ``data.test_source`` for builtin series, a missing one, or the data source itself."""
    if source == "builtin" or source.startswith("builtin:"):
        raise UserError("data.test_source continues the series of a file; builtin series hold out "
                        "data.test_fraction instead, so leave data.test_source empty")
    path = require_path(test_source, "data.test_source", "give the file that continues each series (M4's test file)")
    if Path(source).exists() and path.resolve() == Path(source).expanduser().resolve():
        raise UserError(f"data.test_source {test_source} is the data source itself; give the file of the steps "
                        "that follow, or leave data.test_source empty to hold out data.test_fraction")


def read_rows(path: Path, settings, kind: str = "data") -> list[Series]:
    """The row layout of the forecasting competitions' files (M3, M4, Tourism): a header,
    then one series per row, its id in the first column and its values in time order after
    it; a shorter series leaves its trailing fields empty. No time column: the season is
    ``data.season`` (1 if unset).

    The file is streamed row by row, so only the values are held, never the text beside
    them (M4's full set is 100,000 rows). A row with more fields than the header, a
    non-numeric or infinite field, an empty field inside a series, a row without values,
    an empty or repeated id is refused in one line naming the row and the column."""
    if settings.covariates or settings.value_columns or settings.series_column or settings.calendar \
            or settings.time_column:
        raise UserError("data.layout=rows reads one series per row (an id, then values): it has no columns to "
                        "choose and no times; drop data.value_columns, data.series_column, data.covariates, "
                        "data.time_column and data.calendar")
    with open_checked(path, kind) as handle:
        return rows_from_stream(handle, path.name, settings)


def rows_from_stream(stream, name: str, settings) -> list[Series]:
    """``read_rows`` of an open binary stream (a file, or predict's standard input)."""
    season = settings.season or 1
    series, seen = [], set()
    previous = csv.field_size_limit(MAX_CSV_FIELD_CHARS)
    number = 1
    try:
        rows = csv.reader(io.TextIOWrapper(stream, encoding="utf-8-sig", newline=""))
        header = next(rows, None)
        if not header:
            raise UserError(f"{name} is empty; a row layout needs a header row (an id column, then "
                            "one column per step) and a row per series")
        for number, row in enumerate(rows, start=2):
            if not any(field.strip() for field in row):
                continue
            if len(row) > len(header):
                raise UserError(f"{name} row {number} has {len(row)} fields, more than the header's "
                                f"{len(header)}; every row is an id and at most {len(header) - 1} values")
            values = _row_values(row, header, number, name)
            series_id = row[0].strip()
            if series_id in seen:
                raise UserError(f"{name} row {number}: series {series_id} appears twice; give each series one row")
            seen.add(series_id)
            check_float32_range(values, f"{name} row {number} ({series_id})")
            series.append(Series(series_id, values[:, None], None, season, where=f"row {number}"))
    except UnicodeDecodeError as error:
        raise UserError(f"{name} row {number + 1} is not UTF-8 ({error.reason}); re-encode the file as UTF-8, "
                        "e.g. iconv -f cp1252 -t utf-8") from None
    except csv.Error as error:
        raise UserError(f"{name} row {number + 1}: {error}") from None
    finally:
        csv.field_size_limit(previous)
    if not series:
        raise UserError(f"{name} holds no series; give one row per series (an id, then values) after the header")
    return series


def _row_values(row: list[str], header: list[str], number: int, name: str) -> np.ndarray:
    """The values of one row of the row layout (its trailing empty fields dropped)."""
    series_id, fields = row[0].strip(), [field.strip() for field in row[1:]]
    if not series_id:
        raise UserError(f"{name} row {number}: the id column ({header[0]}) is empty; give every series an id")
    while fields and not fields[-1]:
        fields.pop()
    if not fields:
        raise UserError(f"{name} row {number} ({series_id}): no values; remove the row or fill it")
    try:
        values = np.array(fields, dtype=np.float64)
        bad = None if np.isfinite(values).all() else int(np.flatnonzero(~np.isfinite(values))[0])
    except ValueError:
        bad = next(index for index, field in enumerate(fields) if not is_number(field))
    if bad is None:
        return values
    what = ("is empty inside the series" if not fields[bad] else
            f"holds {fields[bad]!r}, not " + ("a finite number" if is_number(fields[bad]) else "a number"))
    raise UserError(f"{name} row {number} ({series_id}), column {header[bad + 1]}: {what}; give finite numbers "
                    "only, with empty fields at the end of a row only")


def read_table(path: Path, kind: str = "data"):
    """A CSV, TSV or Parquet file as a DataFrame of strings-as-read (checked, size-capped)."""
    import pandas as pd

    data = read_bytes(path, kind)
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(io.BytesIO(data))
        separator = "\t" if suffix in (".tsv", ".tab") else ","
        return pd.read_csv(io.BytesIO(data), sep=separator, skipinitialspace=True)
    except UserError:
        raise
    except Exception as error:  # pandas and pyarrow raise many kinds for a malformed file
        what = "Parquet" if suffix in (".parquet", ".pq") else "CSV/TSV"
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path.name} is not a readable {what} file ({message}); "
                        "it needs a header row of column names") from None


def find_time_column(frame, settings, name: str) -> str | None:
    import pandas as pd

    if settings.time_column:
        if settings.time_column not in frame.columns:
            raise UserError(f"{name} has no column {settings.time_column!r} (data.time_column); its columns are: "
                            f"{', '.join(map(str, frame.columns))}")
        return settings.time_column
    for column in frame.columns:
        if str(column).strip().lower() in TIME_COLUMN_NAMES:
            return column
    first = frame.columns[0]
    if frame[first].dtype == object:
        # utc=True: dates in several UTC offsets are dates too (parse_times says how it reads them).
        parsed = pd.to_datetime(frame[first], errors="coerce", format="mixed", utc=True)
        if parsed.notna().all():
            return first
    return None


def parse_times(column, name: str, column_name: str):
    """Timestamps of a time column: dates, or numbers (years, step numbers).

    Whole numbers stay integers: as floats, step numbers past 2**53 (1e17 + 1...) round
    onto each other. Dates with different UTC offsets are read in UTC, as
    ``pd.to_datetime(..., utc=True)`` reads them; dates with an offset mixed with dates
    without one are refused (which zone the latter are in is a guess)."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column):
        if pd.api.types.is_integer_dtype(column) and not column.isna().any():
            numbers = column.to_numpy()
            # int64 (any width, nullable or not), but a uint64 past int64's range stays uint64: exact either way.
            if numbers.dtype.kind == "i" or numbers.max(initial=0) <= np.iinfo(np.int64).max:
                numbers = numbers.astype(np.int64)
            return pd.Index(numbers)
        numbers = column.to_numpy(np.float64, na_value=np.nan)
        if not np.isfinite(numbers).all():
            row = int(np.flatnonzero(~np.isfinite(numbers))[0])
            raise UserError(f"{name}: row {row + 2} of the time column {column_name!r} is empty; every row needs a time")
        return pd.Index(numbers)
    try:
        parsed = pd.to_datetime(column, errors="coerce", format="mixed")
    except ValueError:  # pandas: "Mixed timezones detected" (errors="coerce" does not cover it)
        _refuse_offsets_mixed_with_none(column, name, column_name)
        parsed = pd.to_datetime(column, errors="coerce", format="mixed", utc=True)
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise UserError(f"{name}: row {row + 2} of the time column {column_name!r} holds "
                        f"{column.iloc[row]!r}, not a date or time; fix it or name another column in data.time_column")
    return pd.DatetimeIndex(parsed)


def _refuse_offsets_mixed_with_none(column, name: str, column_name: str) -> None:
    """A UserError naming the first row whose date has a UTC offset where the first
    date has none, or the other way round (one by one: only when pandas found zones mixed)."""
    import pandas as pd

    first = None
    for row, value in enumerate(column):
        try:
            stamp = pd.Timestamp(value)  # ten times faster than pd.to_datetime, and alike where both parse
        except (TypeError, ValueError):
            stamp = pd.to_datetime(value, errors="coerce", format="mixed")
        if pd.isna(stamp):
            continue  # parse_times names it
        if first is None:
            first = (row, value, stamp.tzinfo is not None)
        elif (stamp.tzinfo is not None) != first[2]:
            this, that = ("with", "without") if stamp.tzinfo is not None else ("without", "with")
            raise UserError(
                f"{name}: row {row + 2} of the time column {column_name!r} holds {value!r}, a time {this} a UTC "
                f"offset, but row {first[0] + 2} holds {first[1]!r}, one {that}: which zone the times without "
                "one are in is a guess; give every row an offset (Z for UTC), or none")


def numeric_column(frame, column, name: str) -> np.ndarray:
    """A value column as floats; a non-numeric, missing or infinite value is a UserError
    naming its row (as a spreadsheet counts them: the header is row 1)."""
    import pandas as pd

    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raw = frame[column].iloc[row]
        what = "is empty" if pd.isna(raw) else f"holds {raw!r}, not a finite number"
        raise UserError(f"{name}: row {row + 2} of column {column!r} {what} ({int(bad.sum())} such row(s)); "
                        "fill or remove them first (interpolate, or cut the series before the gap)")
    check_float32_range(values, f"{name}: column {column!r}")
    return values


def check_float32_range(values: np.ndarray, what: str) -> None:
    """The model computes in float32: a larger value would be infinity there."""
    most = float(np.finfo(np.float32).max)
    if values.size and float(np.abs(values).max()) > most:
        row = int(np.argmax(np.abs(values) > most))
        raise UserError(f"{what} holds {values.flat[row]:.4g}, past float32's largest value ({most:.4g}), in "
                        "which the model computes; rescale the series (divide it by a power of ten)")


def series_from_frame(frame, settings, name: str) -> list[Series]:
    if frame.empty:
        raise UserError(f"{name} has no rows; it needs a header row and a row per time step")
    frame = frame.rename(columns=lambda column: str(column).strip())
    time_column = find_time_column(frame, settings, name)
    for column in (settings.series_column, *settings.covariates, *settings.value_columns):
        if column and column not in frame.columns:
            raise UserError(f"{name} has no column {column!r}; its columns are: {', '.join(frame.columns)}")
    reserved = {time_column, settings.series_column, *settings.covariates} - {None, ""}
    if settings.series_column:
        if len(settings.value_columns) != 1:
            raise UserError("a long layout (data.series_column) needs data.value_columns to name its one "
                            "column of values")
        groups = [(str(key), part) for key, part in frame.groupby(settings.series_column, sort=False)]
        targets = list(settings.value_columns)
    else:
        import pandas as pd

        targets = list(settings.value_columns) or [
            column for column in frame.columns if column not in reserved
            and pd.api.types.is_numeric_dtype(pd.to_numeric(frame[column], errors="coerce"))
            and pd.to_numeric(frame[column], errors="coerce").notna().any()]
        if not targets:
            raise UserError(f"{name} has no numeric value column; name the values with data.value_columns")
        groups = [(None, frame)]
    series = []
    for key, part in groups:
        part = part.reset_index(drop=True)
        times = None
        if time_column is not None:
            times = parse_times(part[time_column], name, time_column)
            order = np.argsort(np.asarray(times), kind="stable")
            part, times = part.iloc[order].reset_index(drop=True), times[order]
            repeated = times.duplicated()
            if repeated.any():
                raise UserError(f"{name}: time {times[repeated][0]} appears twice"
                                + (f" in series {key!r}" if key is not None else "")
                                + "; each step needs one row (aggregate the repeats first)")
        extra = [numeric_column(part, column, name) for column in settings.covariates]
        season = settings.season or infer_season(times)
        if settings.calendar:
            calendar = calendar_features(times, season, name)
            extra += [calendar[:, 0], calendar[:, 1]]
        for target in targets:
            values = np.stack([numeric_column(part, target, name), *extra], axis=1)
            label = key if key is not None else target
            where = f"{settings.series_column} {key}" if key is not None else ""  # the name is the column
            series.append(Series(label, values, times, season, where=where))
            report_gaps(label, times)
    return series


def inferred_frequency(times) -> str | None:
    """pandas' name for the regular step of ``times`` ("MS", "QS-OCT", "W-SUN"...), or None."""
    import pandas as pd

    if not isinstance(times, pd.DatetimeIndex) or len(times) < 3:
        return None
    try:
        # pandas 3 warns that infer_freq will return an offset; ask for that now where it can.
        with pd.option_context("future.infer_freq_returns_offset", True):
            found = pd.infer_freq(times)
    except (pd.errors.OptionError, KeyError):
        found = pd.infer_freq(times)
    except (TypeError, ValueError):
        return None
    return getattr(found, "freqstr", found) or None


def infer_season(times) -> int:
    """The seasonal period of regular timestamps (12 for monthly...), 1 if unknown."""
    frequency = inferred_frequency(times)
    if not frequency:
        return 1
    for prefix, season in SEASONS.items():
        if frequency.lstrip("0123456789").startswith(prefix):
            return season
    return 1


def report_gaps(name: str, times) -> int:
    """Warn about irregular steps (the most common step is taken as the regular one);
    the values are still read as consecutive steps. Returns how many steps differ."""
    import pandas as pd

    if times is None or len(times) < 3:
        return 0
    # Differences of neighbours, not Series.diff: that turns integer times into floats.
    values = np.asarray(times)
    steps = pd.Series(values[1:] - values[:-1], index=range(1, len(values)))
    if isinstance(times, pd.DatetimeIndex):
        # Calendar months and years differ in days: compare whole months for those.
        if inferred_frequency(times):
            return 0
        months = times.year * 12 + times.month
        if (times.day == times[0].day).all() and len(set(np.diff(months))) == 1:
            return 0
    regular = steps.mode().iloc[0]
    irregular = steps[steps != regular]
    if irregular.empty:
        return 0
    where = ", ".join(str(times[index - 1]) for index in irregular.index[:3])
    logger.warning("series %s has %d irregular step(s) (the usual step is %s; after %s%s); they are read as "
                   "consecutive steps", name, len(irregular), regular, where, "..." if len(irregular) > 3 else "")
    return len(irregular)


def is_number(text: str) -> bool:
    """Whether ``float`` reads ``text`` (a field of a CSV, a predict item's value)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class Blocks:
    """Where a series' consecutive train / validation / test blocks end (exclusive)."""

    train_end: int
    validation_end: int
    steps: int


def time_blocks(series: Series, config) -> Blocks:
    """Train, validation and test blocks of ``series``: the test block is its last
    ``data.test_fraction`` (at least one horizon), the validation block the
    ``data.validation_fraction`` before it (at least one horizon), the rest trains and must hold ``context + horizon`` steps for one window."""
    settings, steps = config.data, len(series.values)
    if series.test_start is not None:  # a data.test_source continued it
        test = steps - series.test_start
        if test < config.horizon:
            raise UserError(f"series {series.name} has {test} step(s) in data.test_source, fewer than the horizon "
                            f"({config.horizon}); give at least {config.horizon}, or --set horizon={test}")
        validation = max(int(round(series.test_start * settings.validation_fraction)), config.horizon)
    else:
        test = max(int(round(steps * settings.test_fraction)), config.horizon)
        validation = max(int(round(steps * settings.validation_fraction)), config.horizon)
    train = steps - test - validation
    needed = config.context + config.horizon
    if train < needed:
        fits = train - config.horizon  # the longest context one training window leaves room for
        change = (f"--set context={fits} fits this series" if fits >= 2 else
                  "--set horizon=... context=...")
        raise UserError(
            f"series {series.described} has {steps} steps: after its "
            f"validation ({validation}) and test ({test}) blocks, {max(train, 0)} are left to train on, fewer than "
            f"context + horizon = {needed}; lower "
            f"horizon or context ({change}), or give a longer series")
    return Blocks(train, train + validation, steps)


def origins(start: int, end: int, horizon: int, stride: int = 1) -> range:
    """Forecast origins whose whole horizon lies in ``[start, end)``."""
    return range(start, end - horizon + 1, stride)
