"""Training callbacks every task shares (the optimizer and its learning-rate schedules are in
``lstmkit.optimization``)."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import keras
import numpy as np
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

    # -- for RunBackup: what a resumed run needs to go on averaging where it stopped
    def backup_state(self) -> tuple[dict, list]:
        average = [] if self.average is None else [ops.convert_to_numpy(value) for value in self.average]
        scalars = {"count": self.count, "averaging": self.averaging, "best": self.best,
                   "epochs_without_improvement": self.epochs_without_improvement,
                   "has_average": self.average is not None}
        return scalars, average

    def restore_state(self, scalars: dict, arrays: list) -> None:
        self.count = scalars["count"]
        self.averaging = scalars["averaging"]
        self.best = scalars["best"]
        self.epochs_without_improvement = scalars["epochs_without_improvement"]
        self.average = [ops.convert_to_tensor(array) for array in arrays] if scalars["has_average"] else None


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


def plateau_callback(settings, monitor: str, direction: str):
    """``PlateauSchedule`` for ``lr_schedule="plateau"``, else None."""
    if settings.lr_schedule != "plateau":
        return None
    return PlateauSchedule(
        monitor=monitor, mode=direction, factor=settings.plateau_factor,
        patience=settings.plateau_patience, min_lr=settings.min_learning_rate, verbose=1,
    )


class PlateauSchedule(keras.callbacks.ReduceLROnPlateau):
    """``ReduceLROnPlateau`` that also ends training once it has nothing left to try: the
    learning rate is at its floor (``min_lr``, when above 0) and the objective has stalled
    for ``patience`` more epochs. The run has converged; going on to the epoch cap would
    only spend time (early stopping's own patience may be much longer)."""

    def on_epoch_end(self, epoch, logs=None):
        rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        at_floor = self.min_lr > 0 and rate <= self.min_lr * (1 + 1e-6)
        super().on_epoch_end(epoch, logs)
        if at_floor and self.wait >= self.patience and not self.in_cooldown():
            self.model.stop_training = True
            print(f"Epoch {epoch + 1}: converged: the learning rate is at its floor ({self.min_lr:g}) and "
                  f"{self.monitor} has not improved for {self.wait} epochs; stopping", flush=True)


def weight_averaging_callback(settings, monitor: str, direction: str):
    """``WeightAveraging`` for ``weight_averaging`` other than "none", else None."""
    if settings.weight_averaging == "none":
        return None
    return WeightAveraging(settings.weight_averaging, start_epoch=settings.averaging_start_epoch,
                           monitor=monitor, mode_direction=direction,
                           patience=settings.averaging_patience)


class BestCheckpoint(keras.callbacks.Callback):
    """Save the whole model to ``path`` (a ``.keras`` file) whenever ``monitor`` beats
    its best value so far (and ``initial_best``, the best of the epochs before a resume).

    Unlike ``keras.callbacks.ModelCheckpoint`` the file is written beside and renamed
    into place, so a kill or a full disk never leaves a broken checkpoint; and a
    non-finite value, or weights that are not all finite, never count as the best.
    """

    def __init__(self, path, monitor: str, direction: str, initial_best=None):
        super().__init__()
        self.path = Path(path)
        self.monitor = monitor
        self.direction = direction
        self.best = initial_best

    def _improves(self, value) -> bool:
        if value is None or not math.isfinite(value):
            return False
        return self.best is None or (value > self.best if self.direction == "max" else value < self.best)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if not self._improves(value):
            return
        if not all(np.isfinite(weights).all() for weights in self.model.get_weights()):
            return
        save_model_atomically(self.model, self.path)
        self.best = float(value)


def save_model_atomically(model, path: Path) -> None:
    """``model.save(path)`` written beside and renamed into place: a kill or a full disk
    never leaves a broken ``.keras`` file."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.tmp-{os.getpid()}.keras")
    try:
        model.save(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


# The counters of Keras callbacks that decide when training stops or the learning rate
# drops: a resumed run goes on counting instead of starting them afresh.
KERAS_CALLBACK_STATE = {
    keras.callbacks.EarlyStopping: ("wait", "best", "best_epoch", "stopped_epoch"),
    keras.callbacks.ReduceLROnPlateau: ("wait", "cooldown_counter", "best"),
}


def training_variables(model) -> list:
    """Every variable a resumed run needs: the weights, the seed generators' state
    (dropout masks, weight drop, zoneout, augmentation), the optimizer's state (step,
    learning rate, moments, moving average), and what a model carries from batch to
    batch outside Keras's tracking (e.g. truncated-BPTT states), which it lists as
    ``backup_variables``."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return [*model.variables, *model.optimizer.variables, *getattr(model, "backup_variables", ())]


def _plain(value):
    """A JSON-ready Python number from a NumPy or tensor scalar."""
    return value.item() if hasattr(value, "item") else value


class RunBackup(keras.callbacks.Callback):
    """The training state a killed run continues from (``train --resume``); it replaces
    ``keras.callbacks.BackupAndRestore``.

    At the end of every epoch it saves, in ``folder``: ``training_variables`` and the
    counters of those ``stateful_callbacks`` that have any (early stopping, plateau
    schedules, weight averaging), so that a resumed run takes the steps an
    uninterrupted one would have taken. ``state.json`` names the last complete epoch
    and its ``epoch-N.npz``; it is replaced by a rename only after everything else of
    that epoch is on disk, so a kill or a full disk at any moment leaves the previous
    epoch's state whole. Once training has ended (all epochs, or stopped early) the
    state says so, and a resumed run goes straight to its final evaluation.

    The variables are written with NumPy, not HDF5: h5py leaves a file it failed to
    write (a full disk) open, and the process then dies with a segfault at exit.

    Put this callback first, so that it copies the raw weights before averaging swaps
    them out (at validation, or at the epoch's end), and ``backup.committer`` last, so that an epoch counts as done only once
    the checkpoint and the history have been written. Nothing is deleted when
    training ends: the caller removes the folder once the run is finished.
    """

    STATE_FILE = "state.json"

    def __init__(self, folder, stateful_callbacks=()):
        super().__init__()
        self.folder = Path(folder)
        # Those with counters to keep (others, e.g. SwapEMAWeights, keep none).
        self.stateful_callbacks = [
            callback for callback in stateful_callbacks
            if hasattr(callback, "backup_state") or isinstance(callback, tuple(KERAS_CALLBACK_STATE))
        ]
        state_file = self.folder / self.STATE_FILE
        self.state = json.loads(state_file.read_text(encoding="utf-8")) if state_file.is_file() else None
        self.committer = _CommitBackup(self)
        self._variables = None  # this epoch's, copied before averaging swaps weights in

    @property
    def completed_epochs(self) -> int:
        return self.state["epochs"] if self.state else 0

    @property
    def training_done(self) -> bool:
        return bool(self.state and self.state.get("training_done"))

    def _arrays(self):
        return np.load(self.folder / self.state["arrays"])

    def on_train_begin(self, logs=None):
        if not self.state:
            return
        variables = training_variables(self.model)
        with self._arrays() as arrays:
            if self.state["variables"] != len(variables):
                raise ValueError(f"the backup in {self.folder} holds {self.state['variables']} variables, "
                                 f"the model {len(variables)}")
            for index, variable in enumerate(variables):
                variable.assign(arrays[f"variable-{index}"])

    def _copy_variables(self):
        if self._variables is None:
            self._variables = [np.asarray(variable) for variable in training_variables(self.model)]

    def on_epoch_begin(self, epoch, logs=None):
        self._variables = None

    def on_test_begin(self, logs=None):
        # Inside fit, validation follows the epoch's last batch, and weight averaging
        # swaps the average in here: copy the raw weights first.
        self._copy_variables()

    def on_epoch_end(self, epoch, logs=None):
        self._copy_variables()  # no validation (train+validation merged)

    def _restore_callbacks(self) -> None:
        if not self.state:
            return
        with self._arrays() as arrays:
            for index, (callback, scalars) in enumerate(zip(self.stateful_callbacks, self.state["callbacks"],
                                                            strict=True)):
                scalars = dict(scalars)
                if hasattr(callback, "restore_state"):
                    count = scalars.pop("arrays")
                    callback.restore_state(scalars, [arrays[f"callback-{index}-{i}"] for i in range(count)])
                else:
                    for name, value in scalars.items():
                        setattr(callback, name, value)

    def _commit(self, epoch: int) -> None:
        epochs = epoch + 1
        arrays = {f"variable-{index}": value for index, value in enumerate(self._variables)}
        callbacks = []
        for index, callback in enumerate(self.stateful_callbacks):
            if hasattr(callback, "backup_state"):
                scalars, values = callback.backup_state()
                scalars = dict(scalars, arrays=len(values))
                arrays.update({f"callback-{index}-{i}": value for i, value in enumerate(values)})
            else:
                names = next(names for kind, names in KERAS_CALLBACK_STATE.items() if isinstance(callback, kind))
                scalars = {name: getattr(callback, name) for name in names}
            callbacks.append({key: _plain(value) for key, value in scalars.items()})
        state = {
            "epochs": epochs,
            "arrays": f"epoch-{epochs}.npz",
            "variables": len(self._variables),
            "callbacks": callbacks,
            # Early stopping, TerminateOnNaN or the last epoch: no epoch follows.
            "training_done": bool(self.model.stop_training) or epochs >= self.params["epochs"],
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        written = self.folder / state["arrays"]
        try:
            with written.open("wb") as handle:
                np.savez(handle, **arrays)
            self._write_state(state)
        except BaseException:
            written.unlink(missing_ok=True)
            raise
        self._variables = None
        for path in self.folder.glob("epoch-*"):
            if path != written:
                path.unlink(missing_ok=True)

    def _write_state(self, state: dict) -> None:
        from lstmkit.runs import write_atomically

        write_atomically(self.folder / self.STATE_FILE, json.dumps(state))
        self.state = state

    def mark_training_done(self) -> None:
        """Record that training has ended: a resume goes straight to the final evaluation."""
        if self.state is not None and not self.training_done:
            self._write_state(dict(self.state, training_done=True))


class _CommitBackup(keras.callbacks.Callback):
    """``RunBackup``'s second half, placed last among the callbacks."""

    def __init__(self, backup: RunBackup):
        super().__init__()
        self.backup = backup

    def on_train_begin(self, logs=None):
        # After the other callbacks have reset themselves.
        self.backup._restore_callbacks()

    def on_epoch_end(self, epoch, logs=None):
        self.backup._commit(epoch)
