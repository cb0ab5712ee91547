"""A trained run, opened once: ``Run.open(task, "latest")``.

Evaluate, predict, export, generate, doctor, tune's retrain and the benchmarks all start
from a ``Run``: the folder found, its manifest (``run.json``), its config and typed
preprocessing read back and the task bound to both, its metrics and history, and its
best model loaded the first time it is asked for. Nothing else reads a run folder's
files by hand (``lstmkit.runs`` keeps the folder mechanics: ids, locks, listings).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from lstmkit import config as config_lib
from lstmkit import hints, runs
from lstmkit.errors import UserError

if TYPE_CHECKING:
    from lstmkit.task import Preprocessing, Task

BEST_MODEL = "best.keras"


def read_config(task: Task, folder: Path):
    """The config a run or search folder was made with."""
    return config_lib.from_dict(task.config_class, runs.read_json(Path(folder) / "config.json"))


def read_preprocessing(task: Task, folder: Path) -> Preprocessing:
    """The preprocessing a run or search folder adapted on its training data."""
    path = Path(folder) / "preprocessing.json"
    return task.preprocessing_class.from_json(runs.read_json(path), str(path))


def load_model(task: Task, path: str | Path):
    """``keras.saving.load_model`` with lstmkit's and ``task``'s custom Keras objects
    registered first (a fresh process has imported neither)."""
    from lstmkit import saving

    for module in task.custom_object_modules:
        importlib.import_module(module)
    return saving.load_model(path)


@dataclasses.dataclass(frozen=True)
class Run:
    folder: Path
    #: The task bound to this run's config and preprocessing.
    task: Task
    #: ``run.json``: how the run was made (data, seed, command, fingerprint...).
    manifest: dict
    #: The runs folder this run lives in (``<runs_root>/<task>/<run id>``).
    runs_root: Path
    #: ``metrics.json`` as it was when the run was opened (validation and test metrics
    #: of the best model), or None while unfinished.
    metrics: dict | None

    @classmethod
    def open(cls, task: Task, run: str | Path = "latest", runs_root: str | Path = "runs") -> Run:
        """The run ``run`` ('latest', a run id, or a run folder) of ``task``."""
        return cls.from_folder(task, runs.find_run(Path(runs_root), task.name, str(run)))

    @classmethod
    def from_folder(cls, task: Task, folder: str | Path) -> Run:
        folder = Path(folder)
        bound = task.bind(read_config(task, folder), read_preprocessing(task, folder))
        metrics = folder / "metrics.json"
        # A run folder is <runs root>/<task>/<run id>.
        return cls(folder, bound, runs.read_json(folder / "run.json"), folder.parent.parent,
                   runs.read_json(metrics) if metrics.is_file() else None)

    @property
    def id(self) -> str:
        return runs.run_id(self.folder)

    @property
    def config(self):
        return self.task.config

    @property
    def preprocessing(self) -> Preprocessing:
        return self.task.preprocessing

    @property
    def data_source(self) -> str:
        """The ``--data`` the run was trained on."""
        return self.manifest["data"]

    @property
    def finished(self) -> bool:
        return not self.folder.name.endswith(runs.PARTIAL_SUFFIX) and self.metrics is not None

    @property
    def history(self) -> list[dict]:
        """``history.csv``: one row of logged values per epoch (strings, as logged)."""
        path = self.folder / "history.csv"
        if not path.is_file():
            return []
        with open(path, newline="") as handle:
            return list(csv.DictReader(handle))

    def resume_hint(self) -> str:
        return hints.resume_run(self.task.name, self.folder, self.runs_root)

    def require_finished(self) -> None:
        """Refuse an unfinished run, naming the command that finishes it."""
        if not self.finished:
            raise UserError(f"run {self.id} is unfinished; finish it first: {self.resume_hint()}")

    @functools.cached_property
    def model(self):
        """The best model (``best.keras``), loaded once."""
        checkpoint = self.folder / BEST_MODEL
        if not checkpoint.is_file():
            raise UserError(f"run {self.folder} has no {BEST_MODEL} yet; finish it with {self.resume_hint()}, "
                            "or pick another run")
        return load_model(self.task, checkpoint)
