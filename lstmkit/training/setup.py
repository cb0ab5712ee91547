"""What a training run and a hyperparameter search both start from (``RunSetup``):
the data read and its labels encoded, preprocessing adapted on the training split (or
read back from the folder being resumed), and a fresh ``.partial`` folder holding the
files that say how the run or search was made."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from lstmkit import config as config_lib
from lstmkit import data as data_lib
from lstmkit import runs
from lstmkit.errors import UserError
from lstmkit.run import read_preprocessing
from lstmkit.task import encode_splits

if TYPE_CHECKING:
    from lstmkit.task import DataSplits, Preprocessing, Task


def seed_everything(seed: int) -> None:
    """Same seed, same machine, same result: seeds Python, NumPy and TensorFlow and
    asks TensorFlow for deterministic kernels."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


@dataclasses.dataclass
class RunSetup:
    #: The task bound to ``config`` and ``preprocessing``.
    task: Task
    config: Any
    data_source: str
    #: Labels encoded for the loss. ``validation`` is None when it was merged into
    #: ``train`` (a final fit after a search).
    splits: DataSplits
    preprocessing: Preprocessing
    #: The training split's fingerprint, so that a resumed run can tell its data changed.
    train_fingerprint: str

    @classmethod
    def prepare(cls, task: Task, config, data_source: str, seed: int, *, resumed: Path | None = None,
                merge_validation: bool = False, check_fingerprint: Callable[[str], None] | None = None) -> RunSetup:
        """Seed everything, read ``data_source`` and adapt preprocessing on its training
        split, or, for a folder being ``resumed``, read back what it adapted.
        ``check_fingerprint`` is given the training split's fingerprint as soon as it is
        known, before the adapting, to refuse the data early."""
        seed_everything(seed)
        task = task.bind(config)
        splits = task.load_data(data_source)
        if merge_validation:
            splits = dataclasses.replace(splits, train=splits.train.concatenate(splits.validation), validation=None,
                                         description=f"{splits.description}; validation merged into train")
        fingerprint = data_lib.fingerprint(splits.train)
        if check_fingerprint is not None:
            check_fingerprint(fingerprint)
        if resumed is not None:
            preprocessing = read_preprocessing(task, resumed)
        else:
            preprocessing = task.adapt(splits.train)
        task = task.bind(preprocessing=preprocessing)
        splits = encode_splits(task, splits)
        return cls(task, config, data_source, splits, preprocessing, fingerprint)

    def create_folder(self, runs_root, files: dict, *, prefix: str = "", suffix: str = "",
                      on_created: Callable[[Path], None] | None = None) -> Path:
        """A new ``.partial`` folder under ``runs_root/<task>/`` holding the adapted
        preprocessing, the config and then ``files`` (JSON data, or text), in that order:
        the last one marks the folder as a run or a search. ``on_created`` is called
        with the empty folder first (a run takes its training lock there). On a full disk
        or an unwritable ``runs_root`` nothing is left behind."""
        folder = None
        try:
            folder = runs.new_run_dir(runs_root, self.task.name, prefix=prefix, suffix=suffix)
            if on_created is not None:
                on_created(folder)
            everything = {"preprocessing.json": self.preprocessing.to_json(),
                          "config.json": config_lib.to_dict(self.config), **files}
            for name, content in everything.items():
                if isinstance(content, str):
                    runs.write_atomically(folder / name, content)
                else:
                    runs.write_json(folder / name, content)
            return folder
        except OSError as error:
            if folder is not None:
                runs.remove_quietly(folder)
            if runs.is_out_of_space(error):
                raise UserError(f"out of disk space under {runs_root}; free some space and start again") from None
            raise UserError(f"cannot create a run folder under {runs_root} ({error.strerror}); "
                            "choose a writable runs folder") from None
