"""Evaluation and prediction against a trained run, for any task."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from lstmkit import config as config_lib
from lstmkit import runs
from lstmkit.errors import UserError
from lstmkit.task import Task


def predict_probabilities(model, dataset, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and labels for an unbatched ``(input, label)`` dataset."""
    labels = np.concatenate([np.asarray(y) for _, y in dataset.batch(4096).as_numpy_iterator()])
    probabilities = model.predict(dataset.map(lambda x, y: x).batch(batch_size), verbose=0)
    return probabilities, labels


def classification_metrics(model, dataset, label_names: list[str], batch_size: int) -> dict:
    """Accuracy, cross-entropy, per-class precision/recall/F1 (and macro F1), and the
    confusion matrix (rows: true class, columns: predicted class)."""
    probabilities, labels = predict_probabilities(model, dataset, batch_size)
    metrics = confusion_metrics(labels, probabilities.argmax(axis=-1), label_names)
    picked = probabilities[np.arange(len(labels)), labels]
    metrics["loss"] = float(-np.log(np.clip(picked, 1e-7, 1.0)).mean())
    return metrics


def confusion_metrics(labels: np.ndarray, predictions: np.ndarray, label_names: list[str]) -> dict:
    """Accuracy, per-class precision/recall/F1, macro F1 and the confusion matrix of
    class ids ``predictions`` against ``labels``."""
    classes = len(label_names)
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    per_class = {}
    for index, name in enumerate(label_names):
        true_positive = confusion[index, index]
        predicted = confusion[:, index].sum()
        actual = confusion[index, :].sum()
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": float(precision), "recall": float(recall), "f1": float(f1),
                           "support": int(actual)}
    metrics = {
        "examples": int(len(labels)),
        "accuracy": float((predictions == labels).mean()),
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
        "labels": list(label_names),
    }
    if classes == 2:
        # The usual binary figures are those of the second ("positive") class.
        metrics.update({key: per_class[label_names[1]][key] for key in ("precision", "recall", "f1")})
    return metrics


def load_run(task: Task, run_dir: Path):
    """The config and best model of a finished run."""
    from lstmkit.saving import load_model

    checkpoint = run_dir / "best.keras"
    if not checkpoint.is_file():
        raise UserError(f"run {run_dir} has no best.keras yet; finish it with train --resume, or pick another --run")
    config = config_lib.from_dict(task.config_class, runs.read_json(run_dir / "config.json"))
    model = load_model(checkpoint)
    return config, model


def evaluate_run(task: Task, run_dir: Path, data_source: str | None, split: str,
                 data_overrides: list[str] = ()) -> tuple[dict, Path]:
    """Evaluate a run's best model on ``split`` of ``data_source`` (default: the data it
    was trained on); ``split="all"`` scores every example of the source (an outside test
    file of any size). ``data_overrides`` ("data.KEY=VALUE") say how to read a source
    that differs from the run's (other column names...). Writes
    ``evaluation-<split>[-<source>].json`` (one per outside source, so one does not
    overwrite another) and, for classifiers, a confusion-matrix PNG beside it; returns
    the metrics and the JSON path."""
    from lstmkit import plots

    config, model = load_run(task, run_dir)
    not_data = [item for item in data_overrides if not item.startswith("data.")]
    if not_data:
        raise UserError(f"{not_data[0]}: evaluation can change how data is read (data.* keys) but not the "
                        "trained model; train another run to change the rest")
    config = config_lib.apply_overrides(config, list(data_overrides))
    trained_on = runs.read_json(run_dir / "run.json")["data"]
    source = data_source or trained_on
    preprocessing = runs.read_json(run_dir / "preprocessing.json")
    if split == "all":
        dataset = task.encode_labels(task.load_all(source, config), config, preprocessing)
    else:
        dataset = getattr(task.encode_splits(task.load_data(source, config), config, preprocessing), split)
    metrics = task.evaluate(model, dataset, config, preprocessing)
    metrics["data"] = source
    metrics["split"] = split
    name = f"evaluation-{split}" if source == trained_on else f"evaluation-{split}-{source_slug(source)}"
    report = run_dir / f"{name}.json"
    runs.write_json(report, metrics)
    if "confusion_matrix" in metrics:
        plots.confusion_matrix(metrics["confusion_matrix"], metrics["labels"],
                               run_dir / f"{name.replace('evaluation', 'confusion_matrix', 1)}.png")
    return metrics, report


def source_slug(source: str) -> str:
    """A short file-name-safe name for a data source: its last path part and a hash of
    the whole (two files called test.csv in different folders get different names)."""
    last = re.sub(r"[^A-Za-z0-9._-]+", "_", source.rstrip("/").rsplit("/", 1)[-1])[:40].strip("._") or "data"
    return f"{last}-{hashlib.sha256(source.encode()).hexdigest()[:8]}"
