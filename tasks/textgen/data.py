"""Reading a text corpus from every supported source and cutting it into windows.

Sources (the ``--data`` value):
    ``tfds:tiny_shakespeare``     TensorFlow Datasets (downloads when online; its own
                                  train/validation/test splits);
    ``builtin``                   the English prose of the Python documentation topics
                                  that ship with every Python (``pydoc_data.topics``);
    a ``.txt`` (or any UTF-8) file, a ``.txt.gz``, or a folder of ``.txt`` files
                                  (joined in name order, one newline between files).

A corpus without splits of its own is cut into contiguous parts: the first
``1 - validation_fraction - test_fraction`` for training, then validation, then test
(the last 10% as validation is the split of nanoGPT's character-level baseline).
"""

from __future__ import annotations

import dataclasses
import gzip
import io
from pathlib import Path

from lstmkit.data import decode_utf8, load_tfds, read_bytes, read_stream, require_path
from lstmkit.errors import UserError

BUILTIN = "builtin"
SOURCES_HINT = (
    "the data source must be tfds:tiny_shakespeare, 'builtin', a UTF-8 text file, a .txt.gz, "
    "or a folder of .txt files"
)
OFFLINE_HINT = (
    "use a local UTF-8 text file as the data source instead (e.g. tiny shakespeare's input.txt), "
    "or the data source 'builtin'"
)


@dataclasses.dataclass
class Corpus:
    """Text per split; ``test`` is None when the source has no test text of its own."""

    train: str
    validation: str
    test: str | None
    description: str


def read_source(source: str, validation_fraction: float, test_fraction: float) -> Corpus:
    if source.startswith("tfds:"):
        return _read_tfds(source[len("tfds:"):])
    if source == BUILTIN:
        text, description = _builtin_text(), "builtin: Python documentation topics (pydoc_data)"
    else:
        path = require_path(source, "data source", SOURCES_HINT)
        text, description = _read_path(path), str(path)
    # Newlines joining empty files (or blank files) are no text to learn from.
    if not text.strip():
        raise UserError(f"{source} holds no text (only empty or blank files); give UTF-8 text to learn from")
    return split_text(text, validation_fraction, test_fraction, description)


def split_text(text: str, validation_fraction: float, test_fraction: float, description: str) -> Corpus:
    """Contiguous train / validation / test parts, in that order."""
    validation_size = round(len(text) * validation_fraction)
    test_size = round(len(text) * test_fraction)
    train_end = len(text) - validation_size - test_size
    validation = text[train_end:train_end + validation_size]
    test = text[train_end + validation_size:] if test_size else None
    parts = f"first {1 - validation_fraction - test_fraction:.0%} train, next {validation_fraction:.0%} validation"
    parts += f", last {test_fraction:.0%} test" if test_size else " (also reported as test)"
    return Corpus(text[:train_end], validation, test, f"{description}, {len(text):,} characters: {parts}")


def _read_path(path: Path) -> str:
    if path.is_dir():
        files = sorted(path.rglob("*.txt"))
        if not files:
            raise UserError(f"folder {path} holds no .txt files; {SOURCES_HINT}")
        return "\n".join(decode_utf8(read_bytes(file), str(file)) for file in files)
    data = read_bytes(path)
    if path.name.endswith(".gz"):
        data = _gunzip(data, path)
    return decode_utf8(data, str(path))


def _gunzip(data: bytes, path: Path) -> bytes:
    """Decompressed ``data``, refused beyond the data-file cap (a small .gz can hold gigabytes)."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            return read_stream(stream, f"{path} decompressed", "data")
    except (OSError, EOFError) as error:
        raise UserError(f"cannot decompress {path} ({error}); check it is a complete .gz file") from None


def _builtin_text() -> str:
    # The help texts of pydoc ("help('assert')"): about 465,000 characters of English
    # prose and code samples, in every CPython installation, offline.
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name] for name in sorted(topics))


def _read_tfds(name: str) -> Corpus:
    splits = load_tfds(name, ["train", "validation", "test"], OFFLINE_HINT, as_supervised=False)
    texts = []
    for split in splits:
        element = next(iter(split.take(1).as_numpy_iterator()), None)
        if element is None or "text" not in element:
            raise UserError(f"tfds:{name} has no 'text' feature; text generation reads tfds:tiny_shakespeare-like datasets")
        texts.append(decode_utf8(element["text"], f"tfds:{name}"))
    return Corpus(*texts, description=f"tfds:{name} (its own train/validation/test splits)")


def windows(text: str, length: int) -> tuple[list[str], list[str]]:
    """Non-overlapping ``length``-character inputs and their next-character targets
    (the input shifted by one); a tail shorter than a window is left out."""
    count = (len(text) - 1) // length
    starts = range(0, count * length, length)
    return [text[i:i + length] for i in starts], [text[i + 1:i + length + 1] for i in starts]
