"""What training and pretraining both do around Keras's epochs: resuming a killed fit
where it stopped (its history and its shuffles) and how progress is shown."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from lstmkit import runs


def progress_verbosity() -> int:
    """A live progress bar on a terminal, one line per epoch in logs and CI."""
    return 1 if sys.stdout.isatty() else 2


def skip_used_shuffles(train_batches, epochs: int) -> None:
    """Draw the shuffles of the training data that ``epochs`` epochs have used, so that
    a resumed run's next epoch sees the order an uninterrupted run would have seen.

    Each iterator of a reshuffling dataset draws the next shuffle. Keras's ``fit``
    makes one at each epoch's start and, when the number of batches is known, one
    more at its end (see keras.src.trainers.epoch_iterator); a test that resumes a
    killed run and compares it with an uninterrupted one guards this count.
    """
    per_epoch = 2 if int(train_batches.cardinality()) >= 0 else 1
    for _ in range(per_epoch * epochs):
        iter(train_batches)


def keep_history_epochs(history: Path, epochs: int) -> None:
    """Keep the header and the first ``epochs`` epochs of a CSVLogger file."""
    if not history.is_file():
        return
    with history.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    kept = [rows[0]] + [row for row in rows[1:] if row and int(row[0]) < epochs]
    if len(kept) == len(rows):
        return
    from io import StringIO

    text = StringIO()
    csv.writer(text, lineterminator="\n").writerows(kept)
    runs.write_atomically(history, text.getvalue())
