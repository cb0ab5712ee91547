"""Training callbacks and the learning-rate schedule every task shares."""

from __future__ import annotations

import math
import time

import keras
from keras import ops


class WeightAveraging(keras.callbacks.Callback):
    """Average the weights over training; validation, checkpoints and the end result use
    the average.

    Modes:
        ``"swa"``: stochastic weight averaging (Izmailov et al. 2018): from epoch
        ``start_epoch`` (1-based) on, the weights at the end of each epoch enter an equal-
        weight running average.
        ``"nt_asgd"``: non-monotonically triggered averaging (Merity et al. 2018): once
        ``monitor`` has not improved for ``patience`` epochs, average the weights after
        every batch from then on (averaged SGD's iterate average, with any optimizer).

    While averaging is on, the average is swapped into the model before validation and
    stays in through ``on_epoch_end``, so callbacks after this one (early stopping,
    ``ModelCheckpoint``) see and save the averaged weights; training resumes from the
    raw weights at the next epoch. At the end of training the average stays in the
    model. Put ``BackupAndRestore`` before this callback so that backups keep the raw
    weights. Only trainable weights are averaged.
    """

    def __init__(self, mode="swa", start_epoch=1, monitor="val_loss", mode_direction="min",
                 patience=2):
        super().__init__()
        if mode not in ("swa", "nt_asgd"):
            raise ValueError(f"mode must be 'swa' or 'nt_asgd', got {mode!r}")
        if start_epoch < 1:
            raise ValueError(f"start_epoch is 1-based, got {start_epoch!r}")
        self.mode = mode
        self.start_epoch = start_epoch
        self.monitor = monitor
        self.direction = mode_direction
        self.patience = patience

    # -- state
    def on_train_begin(self, logs=None):
        self.average = None
        self.count = 0
        self.raw = None  # the raw weights while the average is swapped in
        self.averaging = False  # nt_asgd: triggered
        self.best = None
        self.epochs_without_improvement = 0
        self.current_epoch = 0
        self.updated_this_epoch = False

    @property
    def variables(self):
        return self.model.trainable_variables

    def _accumulate(self):
        current = [ops.convert_to_tensor(v) for v in self.variables]
        self.count += 1
        if self.average is None:
            self.average = [ops.copy(value) for value in current]
        else:
            self.average = [a + (value - a) / self.count for a, value in zip(self.average, current)]

    def _swap_in(self):
        if self.average is None or self.raw is not None:
            return
        self.raw = [ops.copy(ops.convert_to_tensor(v)) for v in self.variables]
        for variable, value in zip(self.variables, self.average):
            variable.assign(value)

    def _swap_out(self):
        if self.raw is None:
            return
        for variable, value in zip(self.variables, self.raw):
            variable.assign(value)
        self.raw = None

    def _end_of_epoch_update(self, epoch):
        if self.updated_this_epoch:
            return
        self.updated_this_epoch = True
        if self.mode == "swa" and epoch + 1 >= self.start_epoch:
            self._accumulate()

    # -- hooks
    def on_epoch_begin(self, epoch, logs=None):
        self._swap_out()
        self.current_epoch = epoch
        self.updated_this_epoch = False

    def on_train_batch_end(self, batch, logs=None):
        if self.mode == "nt_asgd" and self.averaging:
            self._accumulate()

    def on_test_begin(self, logs=None):
        # Inside fit this comes after the epoch's last batch: validate the average.
        self._end_of_epoch_update(self.current_epoch)
        self._swap_in()

    def on_epoch_end(self, epoch, logs=None):
        self._end_of_epoch_update(epoch)
        if self.mode == "nt_asgd" and not self.averaging:
            self._check_trigger((logs or {}).get(self.monitor))
        self._swap_in()

    def _check_trigger(self, value):
        if value is None or math.isnan(value):
            return
        improved = self.best is None or (value < self.best if self.direction == "min" else value > self.best)
        if improved:
            self.best = value
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        if self.epochs_without_improvement >= self.patience:
            self.averaging = True

    def on_train_end(self, logs=None):
        self._swap_in()


class EpochTimer(keras.callbacks.Callback):
    """Adds ``train_seconds`` (the epoch's training batches) and ``epoch_seconds``
    (with validation) to the epoch logs, so ``history.csv`` records throughput."""

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()
        self._trained = None

    def on_test_begin(self, logs=None):
        # Validation starts once per epoch, after the training batches.
        if self._trained is None:
            self._trained = time.perf_counter() - self._started

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self._started
        if logs is not None:
            logs["train_seconds"] = elapsed if self._trained is None else self._trained
            logs["epoch_seconds"] = elapsed


def learning_rate(settings, steps_per_epoch: int):
    """The optimizer's learning rate for a ``TrainingConfig``: a float, or a warm-up +
    cosine ``keras.optimizers.schedules.CosineDecay`` counted in optimizer steps.

    ``"plateau"`` returns a float; ``plateau_callback`` does the reducing.
    """
    warmup_steps = round(settings.warmup_epochs * steps_per_epoch)
    if settings.lr_schedule == "plateau" or (settings.lr_schedule == "constant" and not warmup_steps):
        return settings.learning_rate
    total_steps = max(settings.epochs * steps_per_epoch, warmup_steps + 1)
    if settings.lr_schedule == "cosine":
        alpha = min(settings.min_learning_rate / settings.learning_rate, 1.0)
    else:  # constant after the warm-up: a cosine that never leaves its peak
        alpha = 1.0
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else settings.learning_rate,
        decay_steps=total_steps - warmup_steps,
        alpha=alpha,
        warmup_target=settings.learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def plateau_callback(settings, monitor: str, direction: str):
    """``ReduceLROnPlateau`` for ``lr_schedule="plateau"``, else None."""
    if settings.lr_schedule != "plateau":
        return None
    return keras.callbacks.ReduceLROnPlateau(
        monitor=monitor, mode=direction, factor=settings.plateau_factor,
        patience=settings.plateau_patience, min_lr=settings.min_learning_rate, verbose=1,
    )


def weight_averaging_callback(settings, monitor: str, direction: str):
    """``WeightAveraging`` for ``weight_averaging`` other than "none", else None."""
    if settings.weight_averaging == "none":
        return None
    return WeightAveraging(settings.weight_averaging, start_epoch=settings.averaging_start_epoch,
                           monitor=monitor, mode_direction=direction,
                           patience=settings.averaging_patience)
