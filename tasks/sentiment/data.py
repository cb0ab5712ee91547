"""Reading sentiment data from every supported source into texts and 0/1 labels.

Sources (the ``--data`` value):
    ``tfds:imdb_reviews``           TensorFlow Datasets (downloads when online);
    an aclImdb folder or archive    ``train/{pos,neg}/*.txt`` and ``test/{pos,neg}/*.txt``;
    a CSV or TSV file               a text column and a label column;
    ``*.pos`` + ``*.neg`` files      one sentence per line (Pang & Lee "rt-polarity"),
                                    given as either file or their folder.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path

from lstmkit.data import (
    decode_utf8,
    is_archive,
    iter_archive_files,
    load_tfds,
    read_csv_rows,
    read_text,
    require_path,
)
from lstmkit.errors import UserError

LABEL_NAMES = ("negative", "positive")
_LABEL_VALUES = {"0": 0, "neg": 0, "negative": 0, "1": 1, "pos": 1, "positive": 1}
TEXT_COLUMNS = ("text", "sentence", "review")
LABEL_COLUMNS = ("label", "sentiment", "polarity")
SOURCES_HINT = (
    "the data source must be tfds:imdb_reviews, an aclImdb folder or .tar.xz/.tar.gz archive, "
    "a CSV/TSV file with text and label columns, or a *.pos/*.neg pair of files"
)
OFFLINE_HINT = (
    "use local files as the data source instead, e.g. aclImdb_v1.tar.gz from ai.stanford.edu/~amaas/data/sentiment "
    "or an extracted aclImdb folder"
)
_ACLIMDB_MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg)/[^/]+\.txt$")


@dataclasses.dataclass
class Examples:
    texts: list[str]
    labels: list[int]


@dataclasses.dataclass
class RawData:
    train: Examples
    # None when the source has no test split of its own.
    test: Examples | None
    description: str


def read_source(source: str, text_column: str = "auto", label_column: str = "auto") -> RawData:
    if source.startswith("tfds:"):
        return _read_tfds(source[len("tfds:"):])
    path = require_path(source, "data source", SOURCES_HINT)
    if path.is_dir():
        if (path / "aclImdb").is_dir():
            path = path / "aclImdb"
        if (path / "train" / "pos").is_dir():
            return _read_aclimdb_folder(path)
        if list(path.glob("*.pos")) or list(path.glob("*.neg")):
            return _read_polarity_pair(path)
        raise UserError(f"folder {path} holds neither an aclImdb layout nor *.pos/*.neg files; {SOURCES_HINT}")
    if is_archive(path):
        return _read_aclimdb_archive(path)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return _read_table(path, text_column, label_column)
    if suffix in (".pos", ".neg"):
        return _read_polarity_pair(path.parent, stem=path.stem)
    raise UserError(f"cannot tell the format of {path}; {SOURCES_HINT}")


def check_test_source(test_source: str, source: str) -> None:
    """Refuse ``data.test_source`` at once, before a long read of ``source``: missing,
    or ``source`` itself."""
    if _identity(test_source) == _identity(source):
        raise UserError(f"data.test_source {test_source} is the data source itself; give a separate labelled "
                        "test file, or leave data.test_source empty to hold out data.test_fraction")
    if not test_source.startswith("tfds:"):
        require_path(test_source, "data.test_source", SOURCES_HINT)


def read_test_source(test_source: str, text_column: str = "auto", label_column: str = "auto") -> RawData:
    """``data.test_source`` read as a source, all of it in ``train`` (its own train and
    test parts joined) and ``test`` None: every example is a test example."""
    try:
        raw = read_source(test_source, text_column, label_column)
    except UserError as error:  # say which setting the file came from
        raise UserError(f"data.test_source: {error}") from None
    parts = [raw.train] if raw.test is None else [raw.train, raw.test]
    examples = Examples([text for part in parts for text in part.texts],
                        [label for part in parts for label in part.labels])
    return RawData(examples, None, raw.description)


def _identity(source: str):
    """What a source reads, so that two spellings of one compare equal: a tfds name, or
    the resolved path (a *.pos or *.neg file, or their folder, stands for the pair)."""
    if source.startswith("tfds:"):
        return source
    path = Path(source).expanduser().resolve()
    if path.is_dir() and len(pairs := list(path.glob("*.pos"))) == 1:
        path = pairs[0]
    return path.with_suffix("") if path.suffix.lower() in (".pos", ".neg") else path


def _read_tfds(name: str) -> RawData:
    train, test = load_tfds(name, ["train", "test"], OFFLINE_HINT)

    def examples(dataset):
        texts, labels = [], []
        for text, label in dataset.as_numpy_iterator():
            texts.append(text.decode("utf-8"))
            labels.append(int(label))
        return Examples(texts, labels)

    return RawData(examples(train), examples(test), f"tfds:{name} (train/test)")


def _read_aclimdb_folder(root: Path) -> RawData:
    splits = {}
    for split in ("train", "test"):
        texts, labels = [], []
        for label, folder in enumerate(("neg", "pos")):
            for file in sorted((root / split / folder).glob("*.txt")):
                texts.append(read_text(file))
                labels.append(label)
        splits[split] = Examples(texts, labels)
    _check_not_empty(splits["train"], root)
    test = splits["test"] if splits["test"].texts else None
    return RawData(splits["train"], test, f"aclImdb folder {root}")


def _read_aclimdb_archive(path: Path) -> RawData:
    members: dict[str, list[tuple[str, str, int]]] = {"train": [], "test": []}
    for name, data in iter_archive_files(path):
        match = _ACLIMDB_MEMBER.search(name)
        if match:
            split, folder = match.groups()
            members[split].append((name, decode_utf8(data, f"{path}:{name}"), int(folder == "pos")))
    if not members["train"]:
        raise UserError(f"archive {path} has no train/pos or train/neg .txt files; {SOURCES_HINT}")
    splits = {}
    for split, items in members.items():
        items.sort()
        splits[split] = Examples([text for _, text, _ in items], [label for _, _, label in items])
    test = splits["test"] if splits["test"].texts else None
    return RawData(splits["train"], test, f"aclImdb archive {path}")


def _parse_label(value: str, where: str) -> int:
    label = _LABEL_VALUES.get(value.strip().lower())
    if label is None:
        raise UserError(
            f"{where}: label {value!r} is not one of the two classes; use 0/1, neg/pos or negative/positive"
        )
    return label


def _pick_column(header: list[str], wanted: str, usual: tuple[str, ...], kind: str, path: Path) -> int:
    lowered = [name.strip().lower() for name in header]
    candidates = usual if wanted == "auto" else (wanted.lower(),)
    for name in candidates:
        if name in lowered:
            return lowered.index(name)
    key = f"data.{kind}_column"
    raise UserError(
        f"{path} has no {kind} column {' or '.join(map(repr, candidates))} (columns: {', '.join(header)}); "
        f"name it in the config value {key}"
    )


def _read_table(path: Path, text_column: str, label_column: str) -> RawData:
    content = read_text(path)
    if not content.strip():
        raise UserError(f"{path} is empty; give a CSV/TSV file with a header and one example per row")
    if path.suffix.lower() == ".tsv":
        # GLUE-style TSVs are unquoted and their sentences contain stray quote marks.
        rows = iter(read_csv_rows(content, str(path), delimiter="\t", quoting=csv.QUOTE_NONE))
    else:
        rows = iter(read_csv_rows(content, str(path)))
    header = next(rows)
    text_index = _pick_column(header, text_column, TEXT_COLUMNS, "text", path)
    label_index = _pick_column(header, label_column, LABEL_COLUMNS, "label", path)
    texts, labels = [], []
    for line_number, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) <= max(text_index, label_index):
            raise UserError(f"{path}, line {line_number}: expected {len(header)} columns, found {len(row)}")
        texts.append(row[text_index])
        labels.append(_parse_label(row[label_index], f"{path}, line {line_number}"))
    examples = Examples(texts, labels)
    _check_not_empty(examples, path)
    return RawData(examples, None, f"table {path}")


def _read_polarity_pair(folder: Path, stem: str | None = None) -> RawData:
    pattern = f"{stem}" if stem else "*"
    positives = sorted(folder.glob(f"{pattern}.pos"))
    negatives = sorted(folder.glob(f"{pattern}.neg"))
    if len(positives) != 1 or len(negatives) != 1:
        raise UserError(
            f"{folder} must hold exactly one *.pos and one *.neg file with the same name, "
            f"found {len(positives)} and {len(negatives)}"
        )
    texts, labels = [], []
    for label, file in ((0, negatives[0]), (1, positives[0])):
        lines = [line for line in read_text(file).splitlines() if line.strip()]
        if not lines:
            raise UserError(f"{file} is empty; it needs one sentence per line")
        texts.extend(lines)
        labels.extend([label] * len(lines))
    return RawData(Examples(texts, labels), None, f"sentence polarity files {positives[0]} + {negatives[0]}")


def _check_not_empty(examples: Examples, where: Path) -> None:
    if not examples.texts:
        raise UserError(f"{where} holds no examples; {SOURCES_HINT}")


def check_both_classes(examples: Examples, where: str) -> None:
    """Training needs both classes; scoring an outside file does not."""
    if len(set(examples.labels)) < 2:
        raise UserError(f"{where} holds only one class ({LABEL_NAMES[examples.labels[0]]}); training needs both")
