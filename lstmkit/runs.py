"""Run directories: ``runs/<task>/<run-id>/``, built under a ``.partial`` name and
renamed when complete, so a crashed or killed run is never mistaken for a finished one
(and can be resumed)."""

from __future__ import annotations

import dataclasses
import datetime
import errno
import importlib.metadata
import json
import os
import platform
import secrets
import shutil
import socket
import sys
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows has none: there the owner's PID is all there is to go by
    fcntl = None

from lstmkit import hints
from lstmkit.errors import UserError

PARTIAL_SUFFIX = ".partial"
# In a run folder while a process trains it: that process holds a lock on it and has
# written its id and host into it (see TrainingLock).
LOCK_FILE = "training.lock"


def new_run_id() -> str:
    """A sortable, practically unique id: start time plus a short random suffix."""
    return f"{datetime.datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def require_folder(path: str | Path, what: str) -> None:
    """Refuse a folder to write in (``what``: "runs folder", "export folder") that cannot
    become a folder because it, or a folder above it, is a file; before any work is done."""
    path = Path(path)
    for part in (path, *path.parents):
        if part.exists() or part.is_symlink():
            if not part.is_dir():
                where = "is a file" if part == path else f"is under {part}, which is a file"
                raise UserError(f"{what} {path} {where}, not a folder; choose a folder")
            return


def new_run_dir(runs_root: Path, task_name: str, *, prefix: str = "", suffix: str = "") -> Path:
    """Create and return an empty ``.partial`` folder named by a fresh run id (searches:
    ``prefix="tune-"``)."""
    path = Path(runs_root) / task_name / f"{prefix}{new_run_id()}{suffix}{PARTIAL_SUFFIX}"
    path.mkdir(parents=True)
    return path


def finish_run_dir(partial: Path) -> Path:
    final = partial.with_name(partial.name[: -len(PARTIAL_SUFFIX)])
    os.rename(partial, final)
    return final


def run_id(run_dir: Path) -> str:
    """A run's id (what ``find_run`` takes): the folder's name without ``.partial``."""
    name = Path(run_dir).name
    return name[: -len(PARTIAL_SUFFIX)] if name.endswith(PARTIAL_SUFFIX) else name


class TrainingLock:
    """Held by the process that trains a run folder, from before its ``run.json`` is
    written until the process ends: ``training_process`` tells a run being trained
    right now from one that was killed. The lock is an ``flock``, which the OS drops
    when its process dies however it dies (``kill -9`` too), so a stale file never
    reads as a live run and a reused PID is never taken for the trainer. The file
    holds the owner's PID and host, to name it."""

    # A process that only asks whether the run is trained (``training_process``) holds
    # the lock for an instant: the trainer tries again for that long before giving up.
    ATTEMPTS, PAUSE_SECONDS = 10, 0.05

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOCK_FILE
        self.handle = None

    def acquire(self) -> None:
        """Take the lock, or raise a UserError naming the process that trains the run."""
        try:
            handle = open(self.path, "a+", encoding="utf-8")  # "a+": the owner's line is kept until it is ours
        except OSError:
            return  # a folder where nothing can be written: training will stop, and say why, at its first file
        try:
            for attempt in range(self.ATTEMPTS):
                try:
                    if fcntl is not None:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if attempt == self.ATTEMPTS - 1:
                        raise UserError(f"run {run_id(self.path.parent)} is being trained right now by "
                                        f"{describe_owner(training_process(self.path.parent))}; wait for it "
                                        "to end, or stop that process first") from None
                    time.sleep(self.PAUSE_SECONDS)
                except OSError:  # a file system without locks: the PID below is what is left
                    break
            try:
                handle.seek(0)
                handle.truncate()
                handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                         "since": datetime.datetime.now().isoformat(timespec="seconds")}) + "\n")
                handle.flush()
            except OSError:
                pass  # a full disk: the lock holds all the same, only the owner goes unnamed
        except BaseException:
            handle.close()
            raise
        self.handle = handle

    def release(self) -> None:
        """Let go of the lock (the file stays in an unfinished run, naming its last owner)."""
        if self.handle is not None:
            self.handle.close()  # closing the file drops the flock
            self.handle = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc_info):
        self.release()


def training_process(run_dir: str | Path) -> dict | None:
    """``{"pid", "host", "since"}`` of the process training ``run_dir`` right now, or
    None when none is (killed, stopped, or started by an lstmkit without the lock).

    It is the lock that says so; only where the file system has no locks is a live PID
    of this host taken for the trainer."""
    path = Path(run_dir) / LOCK_FILE
    try:
        handle = open(path, encoding="utf-8")
    except OSError:
        return None
    with handle:
        try:
            owner = json.loads(handle.read() or "{}")
        except ValueError:  # being written this instant
            owner = {}
        owner = owner if isinstance(owner, dict) else {}
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return owner
            except OSError:
                pass  # no locks here: go by the PID below
            else:
                fcntl.flock(handle, fcntl.LOCK_UN)
                return None
    pid = owner.get("pid")
    if owner.get("host") == socket.gethostname() and isinstance(pid, int):
        try:
            os.kill(pid, 0)
            return owner
        except ProcessLookupError:
            return None
        except PermissionError:  # another user's live process
            return owner
    return None


def describe_owner(owner: dict | None) -> str:
    """The owner of a training lock in words: 'process 1234 on box' (or what is known)."""
    owner = owner or {}
    return f"process {owner.get('pid', '(unknown)')} on {owner.get('host', 'an unknown host')}"


def is_out_of_space(error: BaseException) -> bool:
    """Whether ``error`` (or one it was raised from) says the disk or quota is full.
    h5py and TensorFlow report it in their message, not in ``errno``."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(error)
        if "No space left on device" in text or "Disk quota exceeded" in text or "errno = 28" in text:
            return True
        error = error.__cause__ or error.__context__
    return False


def remove_quietly(path: Path) -> None:
    """Remove a file or folder if it is there (cleaning up after a failure)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def find_run(runs_root: Path, task_name: str, run: str, partial: bool = False) -> Path:
    """Resolve ``run`` ('latest', a run id, or a path) to a run directory.

    With ``partial=True`` it looks for an unfinished run (to resume).
    """
    task_root = Path(runs_root) / task_name
    if run != "latest":
        candidates = [Path(run), task_root / run, task_root / f"{run}{PARTIAL_SUFFIX}"]
        for candidate in candidates:
            if (candidate / "run.json").is_file():
                return candidate
        raise UserError(f"no run {run!r} (looked in {task_root}); pass a run id, a run folder, or 'latest'")
    runs = sorted(
        path for path in task_root.glob("*")
        if (path / "run.json").is_file() and path.name.endswith(PARTIAL_SUFFIX) == partial
    )
    if not runs:
        what = "unfinished run to resume" if partial else "finished run"
        raise UserError(f"no {what} under {task_root}; train one first: "
                        f"{hints.train(task_name, runs_root)}")
    if partial:
        # The latest run to resume is one that no process is training right now (if all
        # are, the newest: resuming it then says which process trains it).
        runs = [path for path in runs if training_process(path) is None] or runs
    return runs[-1]


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in ("tensorflow", "tensorflow-cpu", "keras", "keras-tuner", "tensorflow-datasets", "numpy", "click"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` by a rename: a kill or a full disk leaves the old
    file or the new one, never part of one."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json(path: Path, data) -> None:
    write_atomically(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def unfinished_run_since(runs_root: Path, task_name: str, since: float) -> Path | None:
    """The newest unfinished run folder created at or after ``since`` (a ``time.time()``),
    i.e. the one an interrupted command was writing, or None."""
    found = [path for path in (Path(runs_root) / task_name).glob(f"*{PARTIAL_SUFFIX}")
             if (path / "run.json").is_file() and path.stat().st_mtime >= since - 1]
    return max(found, default=None)


def best_epoch(history_csv: Path, monitor: str, direction: str) -> tuple[int, float, int] | None:
    """(best epoch counted from 1, its ``monitor`` value, epochs logged) from a
    CSVLogger file, or None when ``monitor`` was never logged."""
    import csv
    import math

    if not Path(history_csv).is_file():
        return None
    with open(history_csv, newline="") as handle:
        values = [float(row[monitor]) if row.get(monitor) else math.nan for row in csv.DictReader(handle)]
    scored = [(value, index) for index, value in enumerate(values) if math.isfinite(value)]
    if not scored:
        return None
    value, index = (max if direction == "max" else min)(scored, key=lambda pair: pair[0])
    return index + 1, value, len(values)


@dataclasses.dataclass
class RunSummary:
    """One line of ``cli.py runs``."""

    id: str
    kind: str  # "run" or "search"
    started: str
    data: str
    finished: bool
    test_metrics: dict


def list_runs(runs_root: Path, task_name: str) -> list[RunSummary]:
    """Every run and search folder of a task, oldest first."""
    summaries = []
    for path in sorted((Path(runs_root) / task_name).glob("*")):
        finished = not path.name.endswith(PARTIAL_SUFFIX)
        run_id = path.name.removesuffix(PARTIAL_SUFFIX)
        try:
            if (path / "run.json").is_file():
                info = read_json(path / "run.json")
                metrics = read_json(path / "metrics.json").get("test", {}) if (path / "metrics.json").is_file() else {}
                summaries.append(RunSummary(run_id, "run", info.get("started", ""), info.get("data", ""),
                                            finished, metrics))
            elif (path / "search.json").is_file():
                info = read_json(path / "search.json")
                started = datetime.datetime.fromtimestamp(path.stat().st_mtime).isoformat(timespec="seconds")
                summaries.append(RunSummary(run_id, "search", started, info.get("data", ""), finished, {}))
        except (OSError, ValueError):  # a folder being written or damaged by hand: skip it
            continue
    return summaries
