"""The forecasting task wired onto the lstmkit task contract."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

import numpy as np

from lstmkit.errors import UserError
from lstmkit.task import (Calibrates, DataSplits, ExtraPredictInputs, Objective, PredictInputs, PredictOption,
                          PreparedInputs, Preprocessing, Report, ServingSignature, Task)
from lstmkit.tasks.forecasting import config as forecast_config
from lstmkit.tasks.forecasting import data as forecast_data
from lstmkit.tasks.forecasting import metrics as forecast_metrics
from lstmkit.tasks.forecasting.config import MAX_HISTORY
from lstmkit.tasks.forecasting.search_space import search_space

TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".parquet", ".pq")
# Fewer training windows than this (two batches of the default size) is said plainly: the
# network has almost nothing to learn from, and a classical forecaster will likely do better.
FEW_TRAINING_WINDOWS = 64

logger = logging.getLogger("lstmkit")


@dataclasses.dataclass(frozen=True)
class ForecastPreprocessing(Preprocessing):
    #: Per input feature (the target, the covariates, the calendar): the standard deviation
    #: of its step-to-step changes in the training windows, which the model divides by.
    scales: tuple[float, ...]

    def __post_init__(self):  # JSON gives a list back
        object.__setattr__(self, "scales", tuple(self.scales))


class ForecastingTask(Task, ExtraPredictInputs, Calibrates):
    """Multi-step probabilistic forecasts of one or many series from their recent history."""

    name = "forecasting"
    config_class = forecast_config.ForecastConfig
    preprocessing_class = ForecastPreprocessing
    objective = Objective("val_loss", "min")
    report = Report(headline="mase",
                    metrics=("mase", "smape", "mae", "rmse", "quantile_loss", "crps", "coverage",
                             "seasonal_naive_mase", "mase_ratio_to_seasonal_naive"),
                    plots=("forecast",))
    # A history file (or stdin) is one input: a table of one series.
    predict_inputs = PredictInputs(
        options=(PredictOption("horizon", "Print the first N steps of the forecast (at most the run's "
                                          "horizon; default: all of them).", int),),
        file_is_one_input=True)
    # Real series inside statsmodels: works offline, as a default must.
    default_data = "builtin"
    # The same fix as reading a missing file names (data.read_source).
    sources_hint = forecast_data.SOURCE_HINT.format(names=", ".join(forecast_data.BUILTIN))
    # The model's module imports Keras (and registers the layers and loss a saved model
    # needs): it is imported where a model is built or used, or before one is loaded,
    # never when the CLI only checks a command line.
    custom_object_modules = ("lstmkit.tasks.forecasting.model",)

    def tiny_config(self):
        return forecast_config.TINY

    def search_space(self, hp, config):
        return search_space(hp, config)

    # --- data ----------------------------------------------------------------------
    def load_data(self, source: str) -> DataSplits:
        """Rolling-origin windows of every series: training origins whose horizon lies in
        the train block, validation and test origins in theirs (test every
        ``data.origin_stride`` steps). A window's history may reach back into earlier
        blocks, which are the past at its origin (``windows_dataset`` says what a label holds).

        No window is made before its batch: the splits hold the series' values once, end
        to end, and where each series' windows start. Training draws
        ``data.windows_per_series`` windows from every series each epoch."""
        config = self.config
        if config.data.test_source:
            series = forecast_data.read_with_test_source(source, config.data)
        else:
            series = forecast_data.read_source(source, config.data)
        tables = {split: [] for split in ("train", "validation", "test")}
        offset = 0
        for one in series:
            blocks = forecast_data.time_blocks(one, config)
            if config.transform == "log" and (one.values[:, 0] <= 0).any():
                step = int(np.argmax(one.values[:, 0] <= 0))
                raise UserError(f"series {one.described} holds "
                                f"{one.values[step, 0]:g} at step {step + 1}: transform=log needs every value above "
                                "0; drop transform=log, or shift the series above 0 first")
            train_values = one.values[: blocks.train_end, 0]
            mase_scale = forecast_metrics.mase_scale(train_values, one.season)
            if mase_scale == 0:
                logger.warning("series %s repeats itself every %d step(s) in its training part (the seasonal naive "
                               "forecast is exact there), so MASE is undefined for it: its windows are left out "
                               "of MASE; judge it by MAE, RMSE and sMAPE", one.name, one.season)
            scale = forecast_metrics.loss_scale(train_values, one.season)
            chosen = {
                "train": forecast_data.origins(config.context, blocks.train_end, config.horizon),
                "validation": forecast_data.origins(blocks.train_end, blocks.validation_end, config.horizon),
                "test": forecast_data.origins(blocks.validation_end, blocks.steps, config.horizon,
                                              config.data.origin_stride),
            }
            for split, split_origins in chosen.items():
                if len(split_origins):
                    tables[split].append((offset + split_origins.start, len(split_origins), split_origins.step,
                                          offset, one.season, scale, mase_scale))
            offset += len(one.values)
        names = ", ".join(one.name for one in series[:5]) + (", ..." if len(series) > 5 else "")
        shown = f"{len(series)} series ({names}), season {series[0].season}"
        values = np.concatenate([one.values for one in series]).astype(np.float32)
        del series  # the float64 copy: only the float32 values above are kept
        counts = {split: sum(row[1] for row in rows) for split, rows in tables.items()}
        training_windows = counts["train"]
        per_series = config.data.windows_per_series or max(1, -(-training_windows // max(len(tables["train"]), 1)))
        described = ", ".join(f"{split} {count}" for split, count in counts.items())
        if training_windows < FEW_TRAINING_WINDOWS:
            logger.warning("%s gives only %d training window(s) of %d steps -> %d (%s): too few for a network to "
                           "learn much; lower context or horizon, give longer or more series, or compare with a "
                           "classical forecaster (benchmarks/run.py forecasting_builtin)", source, training_windows,
                           config.context, config.horizon, described)
        description = (f"{source}: {shown}, windows of {config.context} steps -> {config.horizon}: {described}; "
                       f"{per_series} training window(s) drawn per series each epoch")
        datasets = {split: windows_dataset(values, rows, config.context, config.horizon,
                                           per_series if split == "train" else None)
                    for split, rows in tables.items()}
        return DataSplits(datasets["train"], datasets["validation"], datasets["test"], description)

    def adapt(self, train_dataset) -> Preprocessing:
        """The standard deviation of each feature's step-to-step changes over one epoch's
        training windows (``scaling="run"`` divides by them), summed batch by batch."""
        total, squares, count = 0.0, 0.0, 0
        for histories, _ in train_dataset.batch(4096).as_numpy_iterator():
            changes = np.diff(histories.astype(np.float64), axis=1).reshape(-1, histories.shape[-1])
            total, squares, count = total + changes.sum(axis=0), squares + (changes ** 2).sum(axis=0), \
                count + len(changes)
        mean = total / max(count, 1)
        scales = np.sqrt(np.maximum(squares / max(count, 1) - mean ** 2, 0.0))
        # A feature that never changes in training is scaled by 1 (there is nothing to learn from it).
        scales = np.where(np.isfinite(scales) & (scales > 0), scales, 1.0)
        return ForecastPreprocessing(tuple(map(float, np.broadcast_to(scales, (self.config.data.features(),)))))

    def placeholder_preprocessing(self) -> Preprocessing:
        return ForecastPreprocessing((1.0,) * self.config.data.features())

    # --- model ---------------------------------------------------------------------
    def build_model(self):
        from lstmkit.tasks.forecasting import model as forecast_model

        return forecast_model.build_model(self.config, self.preprocessing.scales)

    def loss(self):
        from lstmkit.tasks.forecasting import model as forecast_model

        return forecast_model.ScaledPinballLoss(self.config.quantiles)

    # --- evaluation, prediction, export ---------------------------------------------
    def label_names(self) -> list[str]:
        return [f"q{level:g}" for level in self.config.quantiles]

    def calibrate(self, model, validation_dataset) -> dict:
        """The interval calibration's widths from the validation windows (``calibrate``:
        ``model.calibrate_widths``), set in the model; nothing without ``calibrate``."""
        from lstmkit.tasks.forecasting import model as forecast_model

        if not self.config.calibrate:
            return {}
        layer = model.get_layer("interval_calibration")
        layer.widths.assign(np.ones(len(self.config.quantiles), np.float32))
        labels, quantiles, _ = self.forecast_windows(model, validation_dataset)
        widths = forecast_model.calibrate_widths(quantiles, labels[..., 0], self.config.quantiles,
                                                 forecast_model.median_index(self.config))
        layer.widths.assign(widths.astype(np.float32))
        return {f"width_q{level:g}": float(width) for level, width in zip(self.config.quantiles, widths)}

    def forecast_windows(self, model, dataset):
        """``(labels, quantiles, the last history)`` of every window of ``dataset``, batch
        by batch: only the horizon-sized arrays are kept, and the last history."""
        from lstmkit.tasks.forecasting import model as forecast_model

        parts, history = [], None
        for history, labels in dataset.batch(4096).as_numpy_iterator():
            predicted = model.predict(history, batch_size=max(self.config.train.batch_size, 256), verbose=0)
            parts.append((labels, forecast_model.forecast_quantiles(np.asarray(predicted))))
        if not parts:
            raise UserError("the split has no forecast windows; give a longer series or a larger test_fraction")
        labels, quantiles = (np.concatenate(columns) for columns in zip(*parts))
        return labels, quantiles, history

    def evaluate(self, model, dataset) -> dict:
        """Point metrics of the median (MAE, RMSE, sMAPE, MASE), quantile loss, CRPS and
        interval coverage over every window, and the seasonal naive forecast's MASE on the
        same windows (where every origin has a season behind it); ``forecast_plot`` holds the last
        window's history, truth and quantiles (plotted by ``evaluate``).

        What is undefined is left out, so that metrics.json holds only finite numbers:
        MASE and the seasonal naive's MASE where no series has a MASE scale (each repeats
        itself every season in its training part), and the ratio of the two where the
        seasonal naive forecast is exact on these windows."""
        from lstmkit.tasks.forecasting import model as forecast_model

        config = self.config
        labels, quantiles, histories = self.forecast_windows(model, dataset)
        truth, naive, scales = labels[..., 0], labels[..., 2], labels[:, 0, 3]
        middle = forecast_model.median_index(config)
        metrics = {"examples": int(len(truth))}
        metrics.update(forecast_metrics.point_metrics(truth, quantiles[..., middle], scales))
        metrics.update(forecast_metrics.quantile_metrics(truth, quantiles, config.quantiles))
        if np.isfinite(naive).all() and "mase" in metrics:
            metrics["seasonal_naive_mase"] = forecast_metrics.point_metrics(truth, naive, scales)["mase"]
            if metrics["seasonal_naive_mase"] > 0:
                metrics["mase_ratio_to_seasonal_naive"] = metrics["mase"] / metrics["seasonal_naive_mase"]
        metrics["forecast_plot"] = {
            "history": histories[-1, :, 0].tolist(), "truth": truth[-1].tolist(),
            "quantiles": quantiles[-1].tolist(), "levels": list(config.quantiles)}
        return metrics

    def serving_signatures(self, max_generated_length: int | None = None) -> dict[str, ServingSignature]:
        import tensorflow as tf

        from lstmkit.tasks.forecasting import model as forecast_model

        config = self.config
        features, context = len(self.preprocessing.scales), config.context
        middle = forecast_model.median_index(config)
        levels = tf.constant(list(config.quantiles), tf.float32)

        def build(model):
            def serve(history):
                checks = [
                    tf.debugging.Assert(tf.shape(history)[1] >= context, [
                        f"history is too short: this model reads the last {context} steps; send at least {context}"]),
                    tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(history)), [
                        "history holds a NaN or infinite value; fill or cut the gap first"]),
                ]
                if config.transform == "log":
                    checks.append(tf.debugging.Assert(tf.reduce_all(history[:, -context:, 0] > 0), [
                        "history holds a value <= 0; this model forecasts the logarithm of the series "
                        "(transform=log): send positive values only"]))
                with tf.control_dependencies(checks):
                    quantiles = forecast_model.forecast_quantiles(model(history[:, -context:], training=False))
                batch = tf.shape(quantiles)[0]
                return {"forecast": quantiles[..., middle], "quantiles": quantiles,
                        "quantile_levels": tf.tile(levels[None, :], [batch, 1])}

            return serve

        inputs = [tf.TensorSpec(shape=(None, None, features), dtype=tf.float32, name="history")]
        # Requests of different history lengths cannot be joined into one batch.
        return {"serving_default": ServingSignature(inputs, build, batchable=False,
                                                    max_lengths={"history": (MAX_HISTORY, "time steps")})}

    def predict_horizon(self, options: dict) -> int:
        """The steps ``predict`` prints: ``--horizon`` (1 to the run's horizon), or all."""
        horizon = options.get("horizon")
        if horizon is None:
            return self.config.horizon
        if not 1 <= horizon <= self.config.horizon:
            raise UserError(f"--horizon {horizon}: this run forecasts {self.config.horizon} steps; ask for 1 to "
                            f"{self.config.horizon}, or train a run with --set horizon={horizon}")
        return horizon

    def preprocess(self, items: list[str], options: dict) -> PreparedInputs:
        """The last ``context`` steps of each history (``read_history``); a history that
        cannot be read is set aside with its reason. A bad ``--horizon`` is refused
        before any input is read. Each input is read once: its time column goes to
        ``postprocess`` (``PreparedInputs.notes``), which continues it."""
        self.predict_horizon(options)
        histories, rejected, kept, read = {}, {}, [], {}
        for item in items:  # an input given twice is read once and forecast twice
            if item not in read and item not in rejected:
                try:
                    read[item] = [key for key, series in self.read_histories(item)
                                  if self._checked(key, series, histories, rejected)]
                except UserError as error:
                    rejected[item] = str(error)
            kept += read.get(item, [])
        if not kept:
            return PreparedInputs([], None, rejected)
        context = self.config.context
        return PreparedInputs(kept, np.stack([histories[item].values[-context:] for item in kept]).astype(np.float32),
                              rejected, notes={item: series.times for item, series in histories.items()})

    def _checked(self, key: str, series, histories: dict, rejected: dict) -> bool:
        """Keep ``series`` in ``histories`` if the model can forecast from it, else its reason in ``rejected``."""
        try:
            histories[key] = self.check_history(series)
            return True
        except UserError as error:
            rejected[key] = str(error)
            return False

    def read_histories(self, item: str) -> list[tuple[str, forecast_data.Series]]:
        """The histories of one predict input, each with the name it is reported under: a
        file in the row layout (``data.layout=rows``) holds one per row, named
        ``FILE#ID``; any other input holds one (``read_history``)."""
        if self.config.data.layout != "rows" or not ("\n" in item.strip() or os.path.lexists(item)):
            return [(item, self.read_history(item))]
        if "\n" in item.strip():
            import io

            found = forecast_data.rows_from_stream(io.BytesIO(item.encode()), "standard input", self.config.data)
            return [(f"stdin#{series.name}", series) for series in found]
        found = forecast_data.read_rows(Path(item), self.config.data, "input")
        return [(f"{item}#{series.name}", series) for series in found]

    def read_history(self, item: str) -> forecast_data.Series:
        """One history from a predict input: a CSV/TSV/Parquet file (or CSV text, from
        stdin) of one series with the run's columns, or comma-separated values."""
        config = self.config
        features = config.data.features()
        # A path that exists (a FIFO, a folder...) goes to the checked reader, which says what it is.
        if "\n" in item.strip() or item.lower().endswith(TABLE_SUFFIXES) or os.path.lexists(item):
            if "\n" in item.strip():
                import io

                import pandas as pd

                try:
                    frame = pd.read_csv(io.StringIO(item), skipinitialspace=True)
                except Exception as error:
                    raise UserError(f"standard input is not a readable CSV ({error})") from None
                name = "standard input"
            else:
                frame, name = forecast_data.read_table(Path(item), "input"), Path(item).name
            found = forecast_data.series_from_frame(frame, config.data, name)
            if len(found) != 1:
                raise UserError(f"{name} holds {len(found)} series ({', '.join(s.name for s in found[:5])}); "
                                "give one series per file")
            series = found[0]
        else:
            parts = [part for part in item.replace(",", " ").split() if part]
            try:
                values = np.array([float(part) for part in parts], np.float64)
            except ValueError:
                bad = next(part for part in parts if not forecast_data.is_number(part))
                raise UserError(f"{bad!r} is not a number; give the history as comma-separated numbers or a "
                                "CSV file") from None
            if features != 1:
                raise UserError(f"this run's model reads {features} features per step (the target, its covariates "
                                "and calendar features); give a CSV file with a time column and the run's columns")
            if not np.isfinite(values).all():
                raise UserError("the history holds a NaN or infinite value; fill or cut the gap first")
            forecast_data.check_float32_range(values, "the history")
            series = forecast_data.Series("history", values[:, None])
        return series

    def check_history(self, series: forecast_data.Series) -> forecast_data.Series:
        """``series`` if this run's model can forecast from it, else a UserError saying why."""
        config = self.config
        features = config.data.features()
        steps = len(series.values)
        if series.values.shape[1] != features:
            raise UserError(f"the history has {series.values.shape[1]} feature(s) per step; this run's model "
                            f"reads {features}")
        if steps > MAX_HISTORY:
            raise UserError(f"the history has {steps:,} steps; at most {MAX_HISTORY:,} are accepted (only the "
                            f"last {config.context} are read)")
        if steps < config.context:
            raise UserError(f"the history has {steps} steps; this run's model reads the last {config.context}: "
                            f"give at least {config.context}")
        if config.transform == "log" and (series.values[-config.context:, 0] <= 0).any():
            raise UserError(f"the history's last {config.context} steps hold a value <= 0; this run forecasts the "
                            "logarithm of the series (transform=log), so send positive values only")
        return series

    def postprocess(self, items: list[str], outputs, options: dict, notes: dict | None = None) -> list[dict]:
        """One record per history: the median forecast and every quantile for the first
        ``--horizon`` steps (default: the run's horizon); ``text`` is CSV (a header before
        the first input's rows)."""
        from lstmkit.tasks.forecasting import model as forecast_model

        config = self.config
        horizon = options.get("horizon") or config.horizon
        middle = forecast_model.median_index(config)
        names = [f"q{level:g}" for level in config.quantiles]
        records = []
        for index, (item, quantiles) in enumerate(zip(items, forecast_model.forecast_quantiles(np.asarray(outputs)))):
            quantiles = quantiles[:horizon]
            if notes is None or item not in notes:  # called without preprocess's notes: read the input again
                notes = {**(notes or {}), **self.preprocess([item], {}).notes}
            times = forecast_times(notes.get(item), horizon)
            # A row layout's FILE#ID keeps its end (the series id), long values their start.
            shown = "stdin" if "\n" in item.strip() else item if len(item) <= 40 else \
                "..." + item[-37:] if "#" in item else item[:37] + "..."
            rows = ["input,step,time,forecast," + ",".join(names)] if index == 0 else []
            for step, row in enumerate(quantiles):
                time = times[step] if times else ""
                rows.append(",".join([json.dumps(shown) if "," in shown else shown, str(step + 1), time,
                                      f"{row[middle]:.6g}", *(f"{value:.6g}" for value in row)]))
            records.append({
                "input": shown, "horizon": int(len(quantiles)),
                "time": times or None,
                "forecast": [float(row[middle]) for row in quantiles],
                "quantiles": {name: [float(value) for value in quantiles[:, column]]
                              for column, name in enumerate(names)},
                "text": "\n".join(rows),
            })
        return records

def forecast_times(times, horizon: int) -> list[str]:
    """Timestamps of the ``horizon`` forecast steps, continuing a history's regular time
    column ``times``; empty when it has none (or irregular steps)."""
    import pandas as pd

    frequency = forecast_data.inferred_frequency(times)
    if not frequency:
        return []
    future = pd.date_range(times[-1], periods=horizon + 1, freq=frequency)[1:]
    return [stamp.isoformat() for stamp in future]


def windows_dataset(values: np.ndarray, rows: list[tuple], context: int, horizon: int, per_series: int | None):
    """``(history, label)`` pairs cut from ``values`` (every series end to end, ``[steps,
    features]`` float32) batch by batch, so that no window exists before it is used.

    ``rows``: per series, ``(first origin, origins, stride, series start, season, loss
    scale, MASE scale)``, positions into ``values``. ``per_series`` None: every origin of
    every series, in order (validation, test). Otherwise that many per series, drawn afresh
    each epoch: the i-th from the i-th of ``per_series`` equal stretches of the series'
    origins, at a random place in it (with as many draws as origins, each origin once).

    A label is ``[horizon, 4]``: the target, its series' loss scale (the loss divides by
    it: ``metrics.loss_scale``), the seasonal naive forecast from the same origin
    (evaluation's baseline; NaN where the series has no full season before the origin)
    and its series' MASE scale (evaluation computes MASE with it; 0 where MASE is
    undefined). The two scales differ only where the MASE scale is 0."""
    import tensorflow as tf

    table = np.array(rows, np.float64).reshape(-1, 7)
    first, count, stride, start, season = (tf.constant(table[:, column].astype(np.int64)) for column in range(5))
    scale, mase_scale = (tf.constant(table[:, column].astype(np.float32)) for column in (5, 6))
    flat = tf.constant(values)
    series_count = len(table)

    def cut(chosen, origin):
        """Windows of series ``chosen`` at origin number ``origin`` of each, ``[batch]`` each."""
        position = tf.gather(first, chosen) + origin * tf.gather(stride, chosen)
        history = tf.gather(flat, position[:, None] + tf.range(-context, 0, dtype=tf.int64)[None, :])
        steps = tf.range(horizon, dtype=tf.int64)[None, :]
        target = tf.gather(flat[:, 0], position[:, None] + steps)
        period = tf.gather(season, chosen)[:, None]
        seasonal = position[:, None] - period + steps % period
        begins = tf.gather(start, chosen)[:, None]
        naive = tf.where(seasonal >= begins, tf.gather(flat[:, 0], tf.maximum(seasonal, begins)), float("nan"))
        shape = tf.shape(target)
        labels = tf.stack([target, tf.broadcast_to(tf.gather(scale, chosen)[:, None], shape), naive,
                           tf.broadcast_to(tf.gather(mase_scale, chosen)[:, None], shape)], axis=-1)
        return history, labels

    if per_series is None:
        ends = tf.constant(np.cumsum(table[:, 1]).astype(np.int64))

        def every_origin(index):
            chosen = tf.searchsorted(ends, index, side="right")
            return cut(chosen, index - (tf.gather(ends, chosen) - tf.gather(count, chosen)))

        total = int(table[:, 1].sum())
        windows = tf.data.Dataset.range(total).batch(1024).map(every_origin).unbatch()
        return windows.apply(tf.data.experimental.assert_cardinality(total))

    def drawn(index, random):
        # Draw number i of a series is index // series_count: the stretch it comes from.
        chosen, stretch = index % series_count, index // series_count
        counts = tf.gather(count, chosen)
        origin = (stretch * counts + tf.math.floormod(random, counts)) // per_series
        return cut(chosen, origin)

    total = series_count * per_series
    # Stretch-major order: a shuffle buffer smaller than an epoch still mixes every series.
    order = tf.data.Dataset.range(total).shuffle(min(total, 1 << 18), reshuffle_each_iteration=True)
    randoms = tf.data.Dataset.random(rerandomize_each_iteration=True)
    batches = tf.data.Dataset.zip(order, randoms).batch(1024).map(drawn).unbatch()
    return batches.apply(tf.data.experimental.assert_cardinality(total))


TASK = ForecastingTask()
