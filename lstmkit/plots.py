"""PNG figures: training curves, confusion matrices and forecasts (matplotlib, no display needed)."""

from __future__ import annotations

import csv
from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(history_csv: Path, output: Path) -> None:
    """One panel per metric, training and validation curves over epochs."""
    with Path(history_csv).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    names = [name for name in rows[0] if name not in ("epoch", "learning_rate", "train_seconds", "epoch_seconds")
             and not name.startswith("val_")]
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.5), squeeze=False)
    epochs = [int(row["epoch"]) + 1 for row in rows]
    for axis, name in zip(axes[0], names):
        axis.plot(epochs, [float(row[name]) for row in rows], marker="o", label="train")
        # Keras's CSVLogger writes "NA" validation columns for a run without validation.
        if f"val_{name}" in rows[0] and "NA" not in {row[f"val_{name}"] for row in rows}:
            axis.plot(epochs, [float(row[f"val_{name}"]) for row in rows], marker="o", label="validation")
        axis.set_xlabel("epoch")
        axis.set_title(name)
        axis.legend()
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)


def confusion_matrix(matrix: list[list[int]], labels: list[str], output: Path) -> None:
    plt = _pyplot()
    size = max(4, 0.6 * len(labels) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    peak = max(max(row) for row in matrix) or 1
    for row_index, row in enumerate(matrix):
        for column_index, count in enumerate(row):
            axis.text(column_index, row_index, str(count), ha="center", va="center",
                      color="white" if count > peak / 2 else "black")
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)


def forecast(history: list[float], truth: list[float], quantiles: list[list[float]], levels: list[float],
             output: Path) -> None:
    """One forecast window: the history, the truth after it, the median forecast and
    the bands between symmetric quantiles (the widest palest)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(9, 3.5))
    past = range(-len(history) + 1, 1)
    ahead = range(1, len(truth) + 1)
    axis.plot(past, history, color="black", label="history")
    axis.plot(ahead, truth, color="black", linestyle="--", marker=".", label="truth")
    columns = list(zip(*quantiles))
    for low in range(len(levels) // 2):
        high = len(levels) - 1 - low
        axis.fill_between(ahead, columns[low], columns[high], color="tab:blue", alpha=0.15 + 0.15 * low,
                          label=f"{levels[low]:g}-{levels[high]:g} quantiles")
    if 0.5 in levels:
        axis.plot(ahead, columns[levels.index(0.5)], color="tab:blue", marker=".", label="median forecast")
    axis.axvline(0.5, color="grey", linewidth=0.8)
    axis.set_xlabel("steps from the forecast origin")
    axis.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)


# What a task's ``Report.plots`` may name: plot name -> draw(evaluation result, output).
# Each reads the keys its task's ``evaluate`` puts in the result for it.
PLOTS = {
    "confusion_matrix": lambda result, output: confusion_matrix(result["confusion_matrix"], result["labels"], output),
    "forecast": lambda result, output: forecast(**result["forecast_plot"], output=output),
}
