"""Task-independent data helpers: checked file reading, seeded splits, archives,
TensorFlow Datasets with a fast offline failure, fingerprints and batching."""

from __future__ import annotations

import hashlib
import logging
import socket
import tarfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from lstmkit.errors import UserError

# TensorFlow Datasets downloads from its Google Cloud Storage mirror (and the
# dataset's own hosts). Offline it retries for minutes before giving up, so we
# check once, quickly, before asking it to download anything.
DOWNLOAD_PROBE = ("storage.googleapis.com", 443)
DOWNLOAD_PROBE_TIMEOUT_S = 3.0

ARCHIVE_SUFFIXES = (".tar.xz", ".tar.gz", ".tgz", ".tar.bz2", ".tar")


def require_path(path: str | Path, what: str, hint: str) -> Path:
    """Return ``path`` as a Path if it exists, else a UserError naming it and ``hint``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{what} {path} does not exist; {hint}")
    return path


def decode_utf8(data: bytes, name: str) -> str:
    """Decode UTF-8 (a leading BOM is allowed) or raise a UserError naming the byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(
            f"{name} is not UTF-8 (byte {error.start}: {data[error.start:error.start + 1]!r}); "
            "re-encode it as UTF-8, e.g. iconv -f latin1 -t utf-8"
        ) from None


def read_text(path: Path) -> str:
    try:
        return decode_utf8(path.read_bytes(), str(path))
    except IsADirectoryError:
        raise UserError(f"{path} is a folder; expected a file") from None


def read_fasta(text: str, name: str) -> list[tuple[str, list[str]]]:
    """(header without '>', its lines) for every record; unwrapped sequences are one line."""
    records: list[tuple[str, list[str]]] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith(">"):
            records.append((line[1:].strip(), []))
        elif not records:
            raise UserError(f"{name} line {number}: text before the first '>' header; is it a FASTA file?")
        else:
            records[-1][1].append(line)
    if not records:
        raise UserError(f"{name} has no FASTA records ('>' header lines)")
    return records


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES)


def iter_archive_files(path: Path) -> Iterator[tuple[str, bytes]]:
    """Yield ``(member name, bytes)`` for every regular file in a tar archive, streaming."""
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if member.isfile():
                    yield member.name, archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as error:
        raise UserError(f"cannot read archive {path} ({error}); check the file is a complete tar archive") from None


def seeded_split(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(count)`` into (kept, held-out) index arrays, deterministically."""
    order = np.random.default_rng(seed).permutation(count)
    held_out = int(round(count * fraction))
    return np.sort(order[held_out:]), np.sort(order[:held_out])


def take(items: Sequence, indices: np.ndarray) -> list:
    return [items[i] for i in indices]


def download_reachable() -> bool:
    try:
        socket.create_connection(DOWNLOAD_PROBE, timeout=DOWNLOAD_PROBE_TIMEOUT_S).close()
        return True
    except OSError:
        return False


def load_tfds(name: str, splits: list[str], offline_hint: str, as_supervised: bool = True):
    """``tfds.load(name, split=splits, as_supervised=...)``, failing fast offline.

    A dataset already prepared in the TFDS data directory loads without the network, and
    so does one whose builder reads files a user put in TFDS's manual folder
    (``<data dir>/downloads/manual``). Otherwise the download host is probed with a short
    timeout; if it cannot be reached the UserError says how to use local files instead
    (``offline_hint``).
    """
    import tensorflow_datasets as tfds

    # Looking for a prepared copy makes TFDS log a warning about an empty folder.
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        builder = tfds.builder(name)
        manual = builder.data_dir_root / "downloads" / "manual"
        local = builder.is_prepared() or bool(
            builder.MANUAL_DOWNLOAD_INSTRUCTIONS and manual.is_dir() and any(manual.iterdir()))
    except Exception as error:  # TFDS raises its own DatasetNotFoundError and friends
        raise UserError(f"TensorFlow Datasets has no dataset {name!r} ({error.__class__.__name__}); {offline_hint}") from None
    finally:
        absl_logger.setLevel(level)
    if not local and not download_reachable():
        raise UserError(
            f"cannot download tfds:{name}: no network connection to {DOWNLOAD_PROBE[0]}; {offline_hint}"
        )
    return tfds.load(name, split=splits, as_supervised=as_supervised)


def fingerprint(dataset) -> str:
    """SHA-256 of every element of a finite dataset, in order: identifies training data."""
    digest = hashlib.sha256()
    for element in dataset.as_numpy_iterator():
        for part in element if isinstance(element, tuple) else (element,):
            array = np.asarray(part)
            digest.update(array.dtype.str.encode())
            digest.update(array.tobytes() if array.dtype != object else repr(array.tolist()).encode())
    return digest.hexdigest()


def count(dataset) -> int:
    """Number of elements of a finite dataset (without a pass when tf.data knows it)."""
    import tensorflow as tf

    known = int(dataset.cardinality())
    if known >= 0:
        return known
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda total, _: total + 1))


def batched(dataset, batch_size: int, *, shuffle: bool = False, seed: int = 0, buffer: int = 10_000):
    """Batch an unbatched dataset for ``fit``/``evaluate``; shuffling is seeded and
    differs each epoch."""
    import tensorflow as tf

    if shuffle:
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)

