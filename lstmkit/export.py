"""Export a run's model as a SavedModel in the TensorFlow Serving layout.

``saved_models/<task>/<version>/`` with integer versions counting up. The SavedModel is
written to a hidden temporary folder beside the versions (TensorFlow Serving ignores
names that are not integers) and renamed into place, so a crash never leaves a
half-written version; the temporary folder's name holds the host and process id, and
an export removes those left by exports that were killed (their process is gone).
``assets.extra/lstmkit.json`` records the label names, resolved
config, library versions, metrics, training-data fingerprint and which signatures may
be batched across requests.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from lstmkit import config as config_lib
from lstmkit import runs
from lstmkit.errors import UserError
from lstmkit.run import Run
from lstmkit.task import TFLiteExportable


def existing_versions(task_dir: Path) -> list[int]:
    if not task_dir.is_dir():
        return []
    return sorted(int(path.name) for path in task_dir.iterdir() if path.name.isdigit())


STAGING_PREFIX = ".tmp-export-"
# Staging folders named before they carried a process id: removed once this old.
UNOWNED_STAGING_AGE_SECONDS = 24 * 3600


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _staging_owner(name: str):
    """(host, pid) from ``.tmp-export-<host>-<pid>-<random>``, or None for an older name."""
    host, _, pid = name[len(STAGING_PREFIX):].rpartition("-")[0].rpartition("-")
    return (host, int(pid)) if host and pid.isdigit() else None


def remove_stale_staging(task_dir: Path) -> list[Path]:
    """Remove the staging folders of killed exports: those of this host whose process is
    gone (a live export's folder, or another host's, is left alone), and unowned ones
    (from older lstmkit) untouched for a day. Returns what was removed."""
    removed = []
    if not task_dir.is_dir():
        return removed
    here = socket.gethostname()
    for path in task_dir.glob(f"{STAGING_PREFIX}*"):
        owner = _staging_owner(path.name)
        if owner is None:
            try:
                stale = time.time() - path.stat().st_mtime > UNOWNED_STAGING_AGE_SECONDS
            except FileNotFoundError:
                continue
        else:
            stale = owner[0] == here and owner[1] != os.getpid() and not _process_alive(owner[1])
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _staging_folder(task_dir: Path) -> Path:
    """A new hidden folder beside the versions, named after this host and process."""
    task_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(task_dir)
    return Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{socket.gethostname()}-{os.getpid()}-", dir=task_dir))


def _refuse_unfinished_or_diverged(run: Run) -> None:
    """Only a finished run with finite metrics is exported."""
    run.require_finished()
    metrics = run.metrics

    def numbers(value):
        if isinstance(value, dict):
            for item in value.values():
                yield from numbers(item)
        elif isinstance(value, float):
            yield value

    if not all(math.isfinite(number) for number in numbers(metrics)):
        raise UserError(f"run {run.id} has non-finite metrics (training diverged); "
                        "train a new run with a lower train.learning_rate and export that")


def _checked_export(function):
    """What both exports refuse before loading anything (a base path that cannot be a
    folder, an unfinished or diverged run), and a full disk as one line (the staging
    folder is removed either way)."""
    import functools

    @functools.wraps(function)
    def wrapper(run: Run, base_path="saved_models", *args, **kwargs):
        runs.require_folder(base_path, "export base path")
        _refuse_unfinished_or_diverged(run)
        try:
            return function(run, base_path, *args, **kwargs)
        except Exception as error:
            if not runs.is_out_of_space(error):
                raise
            raise UserError(f"out of disk space exporting to {base_path}; free some space and export again") from None

    return wrapper


def _claim_next_version(task_dir: Path, staged: Path) -> Path:
    """Rename ``staged`` to the next free integer version under ``task_dir``."""
    while True:
        version = (existing_versions(task_dir) or [0])[-1] + 1
        target = task_dir / str(version)
        try:
            # Fails if another export took this version first; then take the next.
            os.rename(staged, target)
            return target
        except OSError:
            if not target.exists():
                raise


def _write_saved_model(model, signatures: dict, path: Path) -> None:
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, signature in signatures.items():
        archive.add_endpoint(name, signature.endpoint(model), input_signature=signature.input_signature)
    archive.write_out(str(path), verbose=False)


@_checked_export
def export_run(run: Run, base_path: str | Path = "saved_models", max_generated_length: int | None = None) -> Path:
    """Export the best model of ``run``; return the new version folder. A generative
    signature produces at most ``max_generated_length`` per request (default:
    ``MAX_SERVED_GENERATED_LENGTH``)."""
    task, model = run.task, run.model
    task_dir = Path(base_path) / task.name
    staging = _staging_folder(task_dir)
    try:
        saved_model = staging / "model"
        signatures = task.serving_signatures(max_generated_length)
        _write_saved_model(model, signatures, saved_model)
        (saved_model / "assets.extra").mkdir(exist_ok=True)
        runs.write_json(saved_model / "assets.extra" / "lstmkit.json", {
            "task": task.name,
            "run": str(run.folder),
            "labels": task.label_names(),
            "config": config_lib.to_dict(run.config),
            "metrics": run.metrics,
            "train_fingerprint_sha256": run.manifest["train_fingerprint_sha256"],
            "data": run.data_source,
            "versions": runs.library_versions(),
            # For servers that join concurrent requests into one batch (cli.py serve).
            # The same input length limits the graph checks, for the server to refuse
            # long inputs before the model runs.
            "signatures": {name: {"batchable": signature.batchable,
                                  "max_lengths": {input_name: list(limit)
                                                  for input_name, limit in signature.max_lengths.items()}}
                           for name, signature in signatures.items()},
        })
        return _claim_next_version(task_dir, saved_model)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@_checked_export
def export_tflite(run: Run, base_path: str | Path = "saved_models") -> Path:
    """Convert the best model of ``run`` to TensorFlow Lite with built-in ops only;
    write ``BASE_PATH/<task>_tflite/<version>/`` holding ``model.tflite`` and
    ``labels.txt`` (one class per line, in output order). Beside, not inside, the
    SavedModel versions, so TensorFlow Serving's folder holds SavedModels only."""
    import tensorflow as tf

    task = run.task
    if not isinstance(task, TFLiteExportable):
        raise UserError(f"{task.name} has no TensorFlow Lite export; export it as a SavedModel instead")
    model, signature = run.model, task.tflite_signature()
    task_dir = Path(base_path) / f"{task.name}_tflite"
    staging = _staging_folder(task_dir)
    try:
        # Converting from a SavedModel (not from concrete functions) freezes the
        # variables the LSTM's while loop reads; otherwise the interpreter cannot find them.
        _write_saved_model(model, {"serving_default": signature}, staging / "saved_model")
        converter = tf.lite.TFLiteConverter.from_saved_model(str(staging / "saved_model"))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        version = staging / "version"
        version.mkdir()
        (version / "model.tflite").write_bytes(converter.convert())
        (version / "labels.txt").write_text("\n".join(task.label_names()) + "\n",
                                            encoding="utf-8")
        return _claim_next_version(task_dir, version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
