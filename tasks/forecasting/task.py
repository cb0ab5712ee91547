"""The forecasting task wired onto the lstmkit task contract."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

import numpy as np

from lstmkit.errors import UserError
from lstmkit.task import (DataSplits, ExtraPredictInputs, Objective, PredictInputs, PredictOption, PreparedInputs,
                          Preprocessing, Report, ServingSignature, Task)
from lstmkit.tasks.forecasting import config as forecast_config
from lstmkit.tasks.forecasting import data as forecast_data
from lstmkit.tasks.forecasting import metrics as forecast_metrics
from lstmkit.tasks.forecasting.config import MAX_HISTORY
from lstmkit.tasks.forecasting.search_space import search_space

TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".parquet", ".pq")
# Float32 values of all windows together, at most (2 GiB).
MAX_WINDOW_VALUES = 1 << 29
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


class ForecastingTask(Task, ExtraPredictInputs):
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
        blocks, which are the past at its origin (``windows_dataset`` says what a label holds)."""
        config = self.config
        series = forecast_data.read_source(source, config.data)
        # Windows overlap: each holds its own copy of ``context`` steps. Refuse before
        # making them what would not fit in memory.
        values = sum(len(one.values) * one.values.shape[1] for one in series) * (config.context + config.horizon)
        if values > MAX_WINDOW_VALUES:
            raise UserError(f"{source} would make {values:,} window values (steps x features x (context + horizon)), "
                            f"more than the {MAX_WINDOW_VALUES:,} held in memory at once; lower context or "
                            "horizon, or train on fewer or shorter series")
        parts = {"train": [], "validation": [], "test": []}
        for one in series:
            blocks = forecast_data.time_blocks(one, config)
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
                history, target, naive = forecast_data.windows(one, split_origins, config.context, config.horizon)
                parts[split].append((history, target, np.full(len(target), scale), naive,
                                     np.full(len(target), mase_scale)))
        datasets = {split: windows_dataset(pieces) for split, pieces in parts.items()}
        counts = ", ".join(f"{split} {sum(len(p[1]) for p in pieces)}" for split, pieces in parts.items())
        training_windows = sum(len(piece[1]) for piece in parts["train"])
        if training_windows < FEW_TRAINING_WINDOWS:
            logger.warning("%s gives only %d training window(s) of %d steps -> %d (%s): too few for a network to "
                           "learn much; lower context or horizon, give longer or more series, or compare with a "
                           "classical forecaster (benchmarks/run.py forecasting_builtin)", source, training_windows,
                           config.context, config.horizon, counts)
        names = ", ".join(one.name for one in series[:5]) + (", ..." if len(series) > 5 else "")
        description = (f"{source}: {len(series)} series ({names}), season {series[0].season}, "
                       f"windows of {config.context} steps -> {config.horizon}: {counts}")
        return DataSplits(datasets["train"], datasets["validation"], datasets["test"], description)

    def adapt(self, train_dataset) -> Preprocessing:
        histories = np.concatenate([np.asarray(x) for x, _ in train_dataset.batch(4096).as_numpy_iterator()])
        changes = np.diff(histories, axis=1).reshape(-1, histories.shape[-1])
        scales = changes.std(axis=0)
        # A feature that never changes in training is scaled by 1 (there is nothing to learn from it).
        scales = np.where(np.isfinite(scales) & (scales > 0), scales, 1.0)
        return ForecastPreprocessing(tuple(map(float, scales)))

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
        histories, labels = (np.concatenate(parts) for parts in zip(
            *((np.asarray(x), np.asarray(y)) for x, y in dataset.batch(4096).as_numpy_iterator())))
        if len(labels) == 0:
            raise UserError("the split has no forecast windows; give a longer series or a larger test_fraction")
        quantiles = forecast_model.forecast_quantiles(
            model.predict(histories, batch_size=max(config.train.batch_size, 256), verbose=0))
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
        histories, rejected = {}, {}
        for item in items:
            if item in histories or item in rejected:
                continue
            try:
                histories[item] = self.read_history(item)
            except UserError as error:
                rejected[item] = str(error)
        kept = [item for item in items if item not in rejected]
        if not kept:
            return PreparedInputs([], None, rejected)
        context = self.config.context
        return PreparedInputs(kept, np.stack([histories[item].values[-context:] for item in kept]).astype(np.float32),
                              rejected, notes={item: series.times for item, series in histories.items()})

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
            times = self.forecast_times(item, horizon, (notes or {}).get(item))
            shown = "stdin" if "\n" in item.strip() else item if len(item) <= 40 else item[:37] + "..."
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

    def forecast_times(self, item: str, horizon: int, times=None) -> list[str]:
        """Timestamps of the ``horizon`` forecast steps, continuing the history's regular
        time column; empty when it has none (or irregular steps). ``times``: the column
        as ``preprocess`` read it; without them, the input is read here."""
        import pandas as pd

        if times is None:
            try:
                times = self.read_history(item).times
            except UserError:
                return []
        frequency = forecast_data.inferred_frequency(times)
        if not frequency:
            return []
        future = pd.date_range(times[-1], periods=horizon + 1, freq=frequency)[1:]
        return [stamp.isoformat() for stamp in future]



def windows_dataset(pieces):
    """``(history, label)`` pairs; a label is ``[horizon, 4]``: the target, its series'
    loss scale (the loss divides by it: ``metrics.loss_scale``), the seasonal naive
    forecast from the same origin (evaluation's baseline; NaN where the series has no full
    season before the origin) and its series' MASE scale (evaluation computes MASE with
    it; 0 where MASE is undefined). The two scales differ only where the MASE scale is 0."""
    import tensorflow as tf

    history = np.concatenate([piece[0] for piece in pieces]).astype(np.float32)
    target = np.concatenate([piece[1] for piece in pieces]).astype(np.float32)
    scale = np.concatenate([piece[2] for piece in pieces]).astype(np.float32)
    naive = np.concatenate([piece[3] for piece in pieces]).astype(np.float32)
    mase_scale = np.concatenate([piece[4] for piece in pieces]).astype(np.float32)
    labels = np.stack([target, np.broadcast_to(scale[:, None], target.shape), naive,
                       np.broadcast_to(mase_scale[:, None], target.shape)], axis=-1)
    return tf.data.Dataset.from_tensor_slices((history, labels))


TASK = ForecastingTask()
