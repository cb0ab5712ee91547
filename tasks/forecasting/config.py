"""The forecasting task's config: one frozen dataclass per concern."""

from __future__ import annotations

import dataclasses
from typing import Literal

from lstmkit.config import LSTMStackConfig, TrainingConfig, check_ranges, in_range
from lstmkit.errors import UserError


# Measured on the six builtin series (BENCHMARKS.md): 32 units with weight drop 0.3 and
# input dropout 0.1 did as well as 64 units with less dropout, and better than none.
FORECAST_LSTM = LSTMStackConfig(units=32, layers=1, input_dropout=0.1, output_dropout=0.1, weight_drop=0.3)
# The longest history accepted anywhere (predict, the exported graph): only the last
# ``context`` steps are read, so more is a mistake or an attempt to hold a server.
MAX_HISTORY = 100_000
# A horizon or context past these is far beyond what one window-to-horizon model does.
MAX_HORIZON = 1_000
MAX_CONTEXT = 10_000


@dataclasses.dataclass(frozen=True)
class DataConfig:
    # "columns": a table with a header, a row per time step (a series per value column, or
    # per data.series_column group). "rows": the forecasting competitions' files (M3, M4,
    # Tourism): a series per row, its id first, then its values; no times (give data.season).
    layout: Literal["columns", "rows"] = "columns"
    # A file in the same layout whose series continue those of the data source, matched
    # by name (the M4 test file): it is the test block; validation is then the last
    # validation_fraction of the data source, and test_fraction is not used.
    test_source: str = ""
    # The column of timestamps (dates, or numbers such as years); "" picks a column named
    # time/date/ds/timestamp/year/period, else a first column that parses as dates, else
    # none (rows are taken as consecutive steps, in file order).
    time_column: str = ""
    # Wide layout: each value column is one series. Empty: every numeric column but the
    # time, series and covariate columns.
    value_columns: tuple[str, ...] = ()
    # Long layout: rows are grouped into series by this column (value_columns then names
    # the one column of values).
    series_column: str = ""
    # Columns read as extra inputs at every history step (their past values), for every series.
    covariates: tuple[str, ...] = ()
    # Calendar features: the sine and cosine of each step's place in its season (month of
    # the year, quarter, day of the week, hour of the day...), from the time column, as two
    # more inputs after the covariates. The forecast steps' places follow from the last
    # step's, so the model needs no input from the future for them.
    calendar: bool = False
    # The seasonal period in steps (12 for monthly data): the seasonal naive forecast that
    # MASE is scaled by uses it. 0: from the time column's frequency (1 if unknown).
    season: int = in_range(0, 0, 10_000)
    # The last test_fraction of every series is the test block, the validation_fraction
    # before it the validation block, the rest trains: consecutive blocks, never shuffled
    # across the cuts. Each block holds at least one horizon.
    validation_fraction: float = in_range(0.1, 0.0, 1.0, low_open=True, high_open=True)
    test_fraction: float = in_range(0.2, 0.0, 1.0, low_open=True, high_open=True)
    # Rolling-origin evaluation: a forecast from every origin_stride-th step of the test block.
    origin_stride: int = in_range(1, 1, 100_000)
    # Training windows drawn from each series per epoch, one from each of as many equal
    # stretches of its training origins, at a random place in the stretch (drawn afresh each
    # epoch): every series weighs the same whatever its length, and no window is held in
    # memory before its batch. 0: the series' average number of training origins, so that
    # a single series gives each of its windows once per epoch.
    windows_per_series: int = in_range(0, 0, 1_000_000)

    def features(self) -> int:
        """Inputs per history step: the target, the covariates, and two calendar features."""
        return 1 + len(self.covariates) + 2 * self.calendar

    def __post_init__(self):
        check_ranges(self)
        if self.validation_fraction + self.test_fraction >= 0.9:
            raise UserError("data.validation_fraction + data.test_fraction must leave at least 10% of each "
                            f"series to train on, got {self.validation_fraction} + {self.test_fraction}")


@dataclasses.dataclass(frozen=True)
class ForecastConfig:
    # Steps forecast from each origin.
    horizon: int = in_range(12, 1, MAX_HORIZON)
    # History steps the model reads (the exported model takes any longer history and
    # reads its last ``context`` steps).
    context: int = in_range(48, 2, MAX_CONTEXT)
    # The quantiles forecast (the median is the point forecast, so 0.5 is one of them).
    quantiles: tuple[float, ...] = in_range((0.1, 0.5, 0.9), 0.0, 1.0, low_open=True, high_open=True)
    # What each window's values are divided by before the network reads them: "window",
    # the window's own typical step-to-step change (one network for series of every
    # magnitude, as DeepAR and N-BEATS scale), or "run", one scale per feature measured on
    # the training part (all series alike).
    scaling: Literal["window", "run"] = "window"
    # "log": the network reads and forecasts the logarithm of the target, so changes are
    # ratios (multiplicative seasonality, spikes over a floor) and forecasts are positive;
    # every target value must be above 0 (the data, predict and the export refuse others).
    # Needs scaling=window. "none": the values as they are.
    transform: Literal["none", "log"] = "none"
    # After training, widen or narrow each quantile's distance from the median so that
    # the validation windows fall below it as often as its level says (split-conformal
    # calibration; the factors are weights of the model, so the export has them).
    calibrate: bool = True
    # What the network's forecast is a change from: "last", the last observed value; or
    # "season", the seasonal naive forecast (the last data.season steps repeated; needs
    # data.season set and a context of at least one season), so that an untrained network
    # already forecasts as well as that benchmark and learns only what it misses.
    anchor: Literal["last", "season"] = "last"
    # A linear map from the scaled history straight to the horizon, added to the LSTM's
    # output (LSTNet's autoregressive component): the LSTM learns what a linear model misses.
    autoregressive: bool = True
    # Networks trained side by side in one model, each from its own initialisation and on
    # its own loss (a deep ensemble); the forecast averages their quantiles. On series of a
    # few hundred steps one network's forecast varies with its seed, and the average of a
    # few is steadier.
    members: int = in_range(1, 1, 32)
    dropout_multiplier: float = in_range(1.0, 0.0, 100.0, low_open=True)
    lstm: LSTMStackConfig = FORECAST_LSTM
    data: DataConfig = DataConfig()
    # A few hundred windows per series: many short epochs; 1e-3 beat 3e-3 on the builtin series.
    # The plateau schedule ends a run once the rate is at its floor and stalls again (converged);
    # the epoch cap is only a bound.
    train: TrainingConfig = TrainingConfig(epochs=1000, batch_size=32, learning_rate=1e-3, patience=30,
                                           lr_schedule="plateau", plateau_patience=5, min_learning_rate=1e-4)

    def __post_init__(self):
        check_ranges(self)
        self.lstm.check_multiplier(self.dropout_multiplier)
        if list(self.quantiles) != sorted(set(self.quantiles)) or 0.5 not in self.quantiles:
            raise UserError(f"quantiles must be increasing, without repeats, and include 0.5 (the point "
                            f"forecast), got {self.quantiles}")
        if self.anchor == "season" and not 1 < self.data.season <= self.context:
            raise UserError(f"anchor=season repeats the last season of the history: it needs data.season above 1 "
                            f"(the steps of one season: 24 for hourly data) and at most context ({self.context}), "
                            f"got data.season={self.data.season}; set it, or use anchor=last")
        if self.transform == "log" and self.scaling != "window":
            raise UserError("transform=log needs scaling=window (a run-wide scale is measured on the values "
                            "before the logarithm); set scaling=window")
        if len(self.quantiles) > 99:
            raise UserError(f"quantiles holds {len(self.quantiles)} levels; at most 99 are accepted")


TINY = ForecastConfig(
    horizon=6,
    context=24,
    lstm=dataclasses.replace(FORECAST_LSTM, units=8),
    train=TrainingConfig(epochs=3, batch_size=32, learning_rate=1e-2),
)
