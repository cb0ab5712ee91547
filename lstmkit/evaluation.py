"""Evaluation and prediction against a trained run, for any task."""

from __future__ import annotations

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


def evaluate_run(task: Task, run_dir: Path, data_source: str | None, split: str) -> tuple[dict, Path]:
    """Evaluate a run's best model on ``split`` of ``data_source`` (default: the data it
    was trained on); ``split="all"`` joins train, validation and test, for scoring a
    whole outside file. Writes ``evaluation-<split>.json`` and, for classifiers, a
    confusion-matrix PNG into the run folder; returns the metrics and the JSON path."""
    from lstmkit import plots

    config, model = load_run(task, run_dir)
    source = data_source or runs.read_json(run_dir / "run.json")["data"]
    preprocessing = runs.read_json(run_dir / "preprocessing.json")
    splits = task.encode_splits(task.load_data(source, config), config, preprocessing)
    if split == "all":
        dataset = splits.train.concatenate(splits.validation)
        if splits.test is not splits.validation:  # a source without a test split of its own
            dataset = dataset.concatenate(splits.test)
    else:
        dataset = getattr(splits, split)
    metrics = task.evaluate(model, dataset, config, preprocessing)
    metrics["data"] = source
    metrics["split"] = split
    report = run_dir / f"evaluation-{split}.json"
    runs.write_json(report, metrics)
    if "confusion_matrix" in metrics:
        plots.confusion_matrix(metrics["confusion_matrix"], metrics["labels"],
                               run_dir / f"confusion_matrix-{split}.png")
    return metrics, report
