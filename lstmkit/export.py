"""Export a run's model as a SavedModel in the TensorFlow Serving layout.

``saved_models/<task>/<version>/`` with integer versions counting up. The SavedModel is
written to a hidden temporary folder beside the versions (TensorFlow Serving ignores
names that are not integers) and renamed into place, so a crash never leaves a
half-written version. ``assets.extra/lstmkit.json`` records the label names, resolved
config, library versions, metrics and training-data fingerprint.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from lstmkit import config as config_lib
from lstmkit import runs
from lstmkit.evaluation import load_run
from lstmkit.task import Task


def existing_versions(task_dir: Path) -> list[int]:
    if not task_dir.is_dir():
        return []
    return sorted(int(path.name) for path in task_dir.iterdir() if path.name.isdigit())


def export_run(task: Task, run_dir: Path, base_path: str | Path = "saved_models") -> Path:
    """Export the best model of ``run_dir``; return the new version folder."""
    import keras

    config, model = load_run(task, run_dir)
    task_dir = Path(base_path) / task.name
    task_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-export-", dir=task_dir))
    try:
        saved_model = staging / "model"
        archive = keras.export.ExportArchive()
        archive.track(model)
        for name, signature in task.serving_signatures(config).items():
            archive.add_endpoint(name, signature.build_fn(model), input_signature=signature.input_signature)
        archive.write_out(str(saved_model), verbose=False)
        (saved_model / "assets.extra").mkdir(exist_ok=True)
        run_info = runs.read_json(run_dir / "run.json")
        metrics_file = run_dir / "metrics.json"
        runs.write_json(saved_model / "assets.extra" / "lstmkit.json", {
            "task": task.name,
            "run": str(run_dir),
            "labels": task.label_names(config),
            "config": config_lib.to_dict(config),
            "metrics": runs.read_json(metrics_file) if metrics_file.is_file() else None,
            "train_fingerprint_sha256": run_info["train_fingerprint_sha256"],
            "data": run_info["data"],
            "versions": runs.library_versions(),
        })
        while True:
            version = (existing_versions(task_dir) or [0])[-1] + 1
            target = task_dir / str(version)
            try:
                # Fails if another export took this version first; then take the next.
                os.rename(saved_model, target)
                return target
            except OSError:
                if not target.exists():
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
