"""Task-independent data helpers: checked file reading, seeded splits, archives,
TensorFlow Datasets with a fast offline failure, fingerprints and batching.

Every file lstmkit reads for a user (data, config JSON, predict inputs) goes through
``read_bytes`` here: it refuses what is not a regular file and reads at most a size cap
per kind of file (``MAX_BYTES``), so that /dev/zero, a FIFO or a huge file is one clear
error instead of exhausted memory or a hang.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import logging
import os
import re
import socket
import stat
import sys
import tarfile
from pathlib import Path
from typing import BinaryIO, Iterator, Literal, Sequence

import numpy as np

from lstmkit.errors import UserError

# TensorFlow Datasets downloads from its Google Cloud Storage mirror (and the
# dataset's own hosts). Offline it retries for minutes before giving up, so we
# check once, quickly, before asking it to download anything.
DOWNLOAD_PROBE = ("storage.googleapis.com", 443)
DOWNLOAD_PROBE_TIMEOUT_S = 3.0

ARCHIVE_SUFFIXES = (".tar.xz", ".tar.gz", ".tgz", ".tar.bz2", ".tar")

FileKind = Literal["config", "data", "input"]
# The most bytes read from one file of each kind (the README lists them). A config is a
# small JSON object (best_config.json is under 1 KiB). A data file (one text, CSV/TSV or
# FASTA file, a .txt.gz once decompressed, one member of an archive) is held in memory
# whole, as are all of predict's inputs (a file of lines, a FASTA file, standard input, one WAV).
MAX_BYTES: dict[str, int] = {"config": 1 << 20, "data": 1 << 30, "input": 64 << 20}
# Python's csv module refuses fields over 131,072 characters. A legitimate field (a
# review, a chain's per-residue tokens) is far below 2**20; a longer one is nearly always
# a quote left open that swallowed the rest of the file.
MAX_CSV_FIELD_CHARS = 1 << 20
_READ_CHUNK = 16 << 20


def require_path(path: str | Path, what: str, hint: str) -> Path:
    """Return ``path`` as a Path if it exists, else a UserError naming it and ``hint``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{what} {path} does not exist; {hint}")
    return path


def check_source_exists(source: str, hint: str) -> None:
    """Refuse a ``--data`` path that does not exist, with ``hint`` (what the task reads),
    before anything heavy is loaded (the CLI calls this before TensorFlow). A public
    source (``tfds:NAME``), standard input (``-``) and a task's named sources (a word,
    with a qualifier after a colon: ``builtin``, ``builtin:elnino``) pass: the task
    reads those itself."""
    if source == "-" or source.startswith("tfds:") or re.fullmatch(r"[A-Za-z]\w*(:[\w,-]+)?", source):
        return  # "builtin", "builtin:elnino": a name the task knows, not a path
    require_path(source, "data source", hint)


def decode_utf8(data: bytes, name: str) -> str:
    """Decode UTF-8 (a leading BOM is allowed) or raise a UserError naming the byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise UserError(
            f"{name} is not UTF-8 (byte {error.start}: {data[error.start:error.start + 1]!r}); "
            "re-encode it as UTF-8, e.g. iconv -f cp1252 -t utf-8"
        ) from None


def size_text(size: int) -> str:
    """A byte count as people read it: 64 MiB, 1 GiB."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} bytes"


def read_bytes(path: str | Path, kind: FileKind = "data") -> bytes:
    """The bytes of the regular file ``path``, at most ``MAX_BYTES[kind]`` of them.

    Anything else is a UserError in one line: a missing path, a folder, a FIFO, device
    or socket (reading /dev/zero never ends; opening a FIFO waits for a writer forever),
    a file without read permission, or a larger file.
    """
    path = Path(path).expanduser()
    with open_checked(path, kind) as handle:
        try:
            return read_stream(handle, str(path), kind)
        except OSError as error:
            raise _unreadable(path, error) from None


def open_checked(path: str | Path, kind: FileKind = "data") -> BinaryIO:
    """The regular file ``path`` opened for reading in binary, with ``read_bytes``'s
    checks made first (what it is, its permissions, its size against ``MAX_BYTES``), for
    a reader that streams a file too large to hold as text beside what it makes of it."""
    path = Path(path).expanduser()
    try:
        # Look before opening: opening a FIFO blocks, and opening a device can act on it.
        _require_regular_file(path, os.stat(path).st_mode)
        # O_NONBLOCK: should the path become a FIFO after the look, the open still
        # returns, and fstat below refuses it.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise _unreadable(path, error) from None
    handle = os.fdopen(descriptor, "rb")
    try:
        status = os.fstat(descriptor)
        _require_regular_file(path, status.st_mode)
        if status.st_size > MAX_BYTES[kind]:
            raise _too_large(str(path), kind)
    except BaseException:
        handle.close()
        raise
    return handle


def read_stream(stream: BinaryIO, name: str, kind: FileKind) -> bytes:
    """Everything ``stream`` holds (standard input, a decompressing reader), refusing
    more than ``MAX_BYTES[kind]``."""
    limit = MAX_BYTES[kind]
    chunks, total = [], 0
    while chunk := stream.read(min(_READ_CHUNK, limit + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise _too_large(name, kind)
    return b"".join(chunks)


def _require_regular_file(path: Path, mode: int) -> None:
    if stat.S_ISDIR(mode):
        raise UserError(f"{path} is a folder; expected a file")
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise UserError(f"{path} is {kind}, not a regular file; lstmkit reads only regular files, "
                        "so save the data to a file first")


def _unreadable(path: Path, error: OSError) -> UserError:
    if error.errno == errno.ENOENT:
        return UserError(f"{path} does not exist; check the path")
    if error.errno in (errno.EACCES, errno.EPERM):
        return UserError(f"cannot read {path}: permission denied; make it readable (chmod u+r) "
                         "or run as its owner")
    return UserError(f"cannot read {path} ({error.strerror or error})")


def _too_large(name: str, kind: FileKind) -> UserError:
    return UserError(f"{name} is larger than {size_text(MAX_BYTES[kind])}, the most lstmkit reads "
                     f"from one {kind} file; use a smaller file (or split it)")


def read_text(path: str | Path, kind: FileKind = "data") -> str:
    """``read_bytes`` decoded as UTF-8."""
    return decode_utf8(read_bytes(path, kind), str(Path(path).expanduser()))


def read_input_text(source: str) -> str:
    """predict's inputs as text: a file's, or standard input's for ``-``."""
    if source == "-":
        return decode_utf8(read_stream(sys.stdin.buffer, "standard input", "input"), "standard input")
    return read_text(source, "input")


def read_csv_rows(text: str, name: str, **reader_options) -> list[list[str]]:
    """Every row of CSV/TSV ``text`` (``csv.reader`` options), fields up to
    ``MAX_CSV_FIELD_CHARS``; a longer field is a UserError naming the line it starts on."""
    reader = csv.reader(io.StringIO(text), **reader_options)
    rows, row_start = [], 1  # the line the row being read starts on (a quoted field spans lines)
    # The limit is process-wide in the csv module: raise it for this read only.
    previous = csv.field_size_limit(MAX_CSV_FIELD_CHARS)
    try:
        for row in reader:
            rows.append(row)
            row_start = reader.line_num + 1
    except csv.Error as error:
        problem = str(error)
        if "field larger than field limit" in problem:
            problem = (f"a field longer than {MAX_CSV_FIELD_CHARS:,} characters; is a quote (\") "
                       "left open? Close it, or remove the field")
        raise UserError(f"{name} line {row_start}: {problem}") from None
    finally:
        csv.field_size_limit(previous)
    return rows


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


def read_fasta_sequences(path: str) -> list[str]:
    """The sequence of every record of the FASTA file ``path`` (its lines joined), for
    prediction; a record without a sequence is refused."""
    checked = require_path(path, "FASTA file", "check the FASTA file's path")
    sequences = []
    for header, lines in read_fasta(read_text(checked, "input"), str(checked)):
        if not lines:
            raise UserError(f"{checked}: record {header or '(no name)'} has no sequence; remove it or add one")
        sequences.append("".join(lines))
    return sequences


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES)


def iter_archive_files(path: Path) -> Iterator[tuple[str, bytes]]:
    """Yield ``(member name, bytes)`` for every regular file in a tar archive, streaming."""
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if member.isfile():
                    if member.size > MAX_BYTES["data"]:
                        raise _too_large(f"{path}:{member.name}", "data")
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


def geometric_boundaries(max_length: int, ratio: float = 1.25, start: int = 8) -> tuple[int, ...]:
    """Length-bucket boundaries ``start, start·ratio, ...`` below ``max_length``: within a
    bucket no sequence is padded to more than ``ratio`` times its length (except the
    shortest, under ``start``)."""
    bounds, bound = [], float(start)
    while round(bound) < max_length:
        if not bounds or round(bound) > bounds[-1]:
            bounds.append(round(bound))
        bound *= ratio
    return tuple(bounds)


def bucketed(dataset, batch_size: int, length, boundaries, *, seed: int, buffer: int, padding_values=None):
    """Shuffled (seeded, differently each epoch), then batched with examples of similar
    ``length(*example)`` together (``Dataset.bucket_by_sequence_length`` over
    ``boundaries``), so short sequences are not padded to long ones."""
    import tensorflow as tf

    bounds = list(boundaries)
    batches = (dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
               .bucket_by_sequence_length(length, bounds, [batch_size] * (len(bounds) + 1),
                                          padding_values=padding_values))
    # Every epoch has the same examples in each bucket, so the same number of batches;
    # telling tf.data so keeps Keras from warning that the data "ran out".
    return batches.apply(tf.data.experimental.assert_cardinality(count(batches))).prefetch(tf.data.AUTOTUNE)


def padded_share(length_batches) -> float:
    """The share of padded steps when batches of sequences with these lengths (one array of
    lengths per batch) are each padded to their longest: the recurrence's wasted work."""
    real = padded = 0
    for lengths in length_batches:
        lengths = [int(n) for n in lengths]
        if lengths:
            real += sum(lengths)
            padded += max(lengths) * len(lengths)
    return 1.0 - real / padded if padded else 0.0


def batched(dataset, batch_size: int, *, shuffle: bool = False, seed: int = 0, buffer: int = 10_000):
    """Batch an unbatched dataset for ``fit``/``evaluate``; shuffling is seeded and
    differs each epoch."""
    import tensorflow as tf

    if shuffle:
        dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)

