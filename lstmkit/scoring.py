"""Metric arithmetic on predictions: accuracy, cross-entropy, per-class precision,
recall and F1, and confusion matrices (NumPy only; no run, no task)."""

from __future__ import annotations

import numpy as np


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
