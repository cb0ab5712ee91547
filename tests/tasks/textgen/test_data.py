"""Reading corpora and cutting them into windows for the character language model."""

import gzip

import pytest

from lstmkit.errors import UserError
from lstmkit.registry import get_task
from lstmkit.tasks.textgen import data
from lstmkit.tasks.textgen.config import TINY, DataConfig
from lstmkit.tasks.textgen.task import TextgenPreprocessing


def test_windows_are_inputs_and_their_next_characters():
    inputs, targets = data.windows("abcdefghij", 3)
    assert inputs == ["abc", "def", "ghi"]
    assert targets == ["bcd", "efg", "hij"]
    # A tail too short for a whole window (input and one more character) is dropped.
    assert data.windows("abcdefghi", 3) == (["abc", "def"], ["bcd", "efg"])


def test_split_is_contiguous_train_then_validation_then_test():
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    corpus = data.split_text(text, 0.1, 0.05, "x")
    assert corpus.train + corpus.validation + corpus.test == text
    assert (len(corpus.train), len(corpus.validation), len(corpus.test)) == (850, 100, 50)
    no_test = data.split_text(text, 0.1, 0.0, "x")
    assert no_test.test is None and no_test.train == text[:900] and no_test.validation == text[900:]


def test_shakespeare_split_is_nanogpt_90_10(shared_data):
    corpus = data.read_source(str(shared_data / "tinyshakespeare" / "input.txt"), 0.1, 0.0)
    assert len(corpus.train) == 1_003_855 and len(corpus.validation) == 111_539
    assert corpus.train.startswith("First Citizen:")


def test_gzip_file_and_folder_of_txt_files(tmp_path):
    (tmp_path / "b.txt").write_text("second file", encoding="utf-8")
    (tmp_path / "a.txt").write_text("first file", encoding="utf-8")
    (tmp_path / "notes.md").write_text("not read", encoding="utf-8")
    assert data._read_path(tmp_path) == "first file\nsecond file"
    packed = tmp_path / "corpus.txt.gz"
    packed.write_bytes(gzip.compress("héllo wörld".encode()))
    assert data._read_path(packed) == "héllo wörld"


def test_builtin_corpus_is_offline_english_prose():
    corpus = data.read_source("builtin", 0.1, 0.0)
    assert len(corpus.train) > 300_000 and "statement" in corpus.train
    assert "pydoc_data" in corpus.description


@pytest.mark.parametrize("content, message", [
    (b"", "holds no text"),
    (b"\n \n\t\n", "holds no text"),
    (b"caf\xe9 au lait " * 100, r"not UTF-8 \(byte 3"),
    (b"too short for one window", "fewer than one window"),
])
def test_bad_corpora_get_one_clear_line(tmp_path, content, message):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(content)
    with pytest.raises(UserError, match=message):
        get_task("textgen").bind(TINY).load_data(str(corpus))


def test_bad_gzip_and_missing_paths(tmp_path):
    broken = tmp_path / "x.txt.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(UserError, match="cannot decompress"):
        data.read_source(str(broken), 0.1, 0.0)
    with pytest.raises(UserError, match="does not exist"):
        data.read_source(str(tmp_path / "missing.txt"), 0.1, 0.0)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no .txt files"):
        data.read_source(str(empty), 0.1, 0.0)


def test_bad_split_fractions_are_refused():
    with pytest.raises(UserError, match="validation_fraction must be > 0"):
        DataConfig(validation_fraction=0.0)
    with pytest.raises(UserError, match="leave text to train on"):
        DataConfig(validation_fraction=0.5, test_fraction=0.5)


def test_tfds_shakespeare_fails_fast_offline(offline):
    with pytest.raises(UserError, match="cannot download tfds:tiny_shakespeare.*the data source 'builtin'"):
        data.read_source("tfds:tiny_shakespeare", 0.1, 0.0)


def test_vocabulary_is_the_training_texts_characters(tmp_path):
    task = get_task("textgen").bind(TINY)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abcab\n" * 200 + "z" * 100, encoding="utf-8")
    splits = task.load_data(str(corpus))
    vocabulary = task.adapt(splits.train).vocabulary
    # "z" only occurs in the validation part (the last 10%).
    assert vocabulary == ["\n", "a", "b", "c"]
    encoded = task.bind(preprocessing=TextgenPreprocessing(vocabulary)).encode_labels(splits.train)
    text, ids = next(iter(encoded))
    # ids: 0 padding, 1 out of vocabulary, then the vocabulary in order.
    expected = [vocabulary.index(char) + 2 for char in text.numpy().decode()[1:]]
    assert ids.numpy().tolist()[:-1] == expected


def test_a_folder_of_empty_files_is_no_corpus(tmp_path):
    """Before: the newlines that join the files were the corpus."""
    for number in range(300):
        (tmp_path / f"{number:03}.txt").touch()
    with pytest.raises(UserError, match="holds no text"):
        data.read_source(str(tmp_path), 0.1, 0.0)


def test_a_gzip_that_decompresses_past_the_cap_is_refused(tmp_path, monkeypatch):
    from lstmkit import data as lstmkit_data

    monkeypatch.setitem(lstmkit_data.MAX_BYTES, "data", 1_000)
    packed = tmp_path / "bomb.txt.gz"
    packed.write_bytes(gzip.compress(b"a" * 1_001))  # 29 bytes on disk
    with pytest.raises(UserError, match="bomb.txt.gz decompressed is larger than 1000 bytes"):
        data.read_source(str(packed), 0.1, 0.0)
    packed.write_bytes(gzip.compress(b"a" * 1_000))
    assert len(data._read_path(packed)) == 1_000
