import csv
import errno
import io
import os

import numpy as np
import pytest
import tensorflow as tf

from lstmkit import data
from lstmkit.errors import UserError


def test_seeded_split_is_deterministic_disjoint_and_complete():
    kept, held = data.seeded_split(1000, 0.1, seed=3)
    again_kept, again_held = data.seeded_split(1000, 0.1, seed=3)
    assert len(held) == 100 and len(kept) == 900
    assert np.array_equal(held, again_held) and np.array_equal(kept, again_kept)
    assert not set(kept) & set(held)
    assert sorted(set(kept) | set(held)) == list(range(1000))
    _, other_held = data.seeded_split(1000, 0.1, seed=4)
    assert not np.array_equal(held, other_held)


def test_decode_utf8_names_the_file_and_byte():
    assert data.decode_utf8("\ufeffcafé".encode("utf-8"), "x") == "café"
    with pytest.raises(UserError, match=r"reviews.csv is not UTF-8 \(byte 3"):
        data.decode_utf8(b"caf\xe9", "reviews.csv")


def test_fingerprint_tracks_content_and_order():
    def make(texts, labels):
        return tf.data.Dataset.from_tensor_slices((tf.constant(texts), tf.constant(labels)))

    base = data.fingerprint(make(["a", "b"], [0, 1]))
    assert base == data.fingerprint(make(["a", "b"], [0, 1]))
    assert base != data.fingerprint(make(["a", "b"], [0, 0]))
    assert base != data.fingerprint(make(["b", "a"], [1, 0]))


def test_tfds_fails_fast_when_download_host_is_unreachable(offline):
    import time

    started = time.perf_counter()
    with pytest.raises(UserError, match="cannot download tfds:imdb_reviews.*local files"):
        data.load_tfds("imdb_reviews", ["train"], "use local files")
    assert time.perf_counter() - started < 30


def test_read_bytes_reads_regular_files_only(tmp_path):
    file = tmp_path / "corpus.txt"
    file.write_bytes(b"to be")
    assert data.read_bytes(file) == b"to be"
    assert data.read_text(file) == "to be"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # Each would exhaust memory (/dev/zero never ends) or wait forever for a writer (FIFO).
    for path, message in [(tmp_path, "is a folder; expected a file"),
                          (fifo, "is a FIFO, not a regular file"),
                          ("/dev/zero", "is a device, not a regular file"),
                          (tmp_path / "missing", "does not exist")]:
        with pytest.raises(UserError, match=message):
            data.read_bytes(path)


def test_each_kind_of_file_has_a_size_cap(tmp_path, monkeypatch):
    monkeypatch.setitem(data.MAX_BYTES, "config", 10)
    file = tmp_path / "config.json"
    file.write_bytes(b"x" * 10)
    assert data.read_bytes(file, "config") == b"x" * 10
    assert data.read_bytes(file, "data") == b"x" * 10
    file.write_bytes(b"x" * 11)
    with pytest.raises(UserError, match="config.json is larger than 10 bytes, the most lstmkit reads from one config"):
        data.read_bytes(file, "config")
    # Streams (standard input) have no size to look at first: the cap stops the reading.
    with pytest.raises(UserError, match="standard input is larger than 10 bytes"):
        data.read_stream(io.BytesIO(b"x" * 1000), "standard input", "config")
    assert data.MAX_BYTES["input"] < data.MAX_BYTES["data"]


def test_a_file_without_read_permission_is_one_clear_error(tmp_path, monkeypatch):
    file = tmp_path / "secret.txt"
    file.write_bytes(b"text")

    def refuse(*args, **kwargs):  # what open(2) says to a user without read permission
        raise PermissionError(errno.EACCES, "Permission denied", str(file))

    monkeypatch.setattr(data.os, "open", refuse)
    with pytest.raises(UserError, match=r"cannot read .*secret.txt: permission denied; make it readable"):
        data.read_bytes(file)


def test_csv_fields_over_csvs_limit_are_read_up_to_2_to_the_20_characters():
    long_review = "great " * 40_000  # 240 KB: over the csv module's default limit
    rows = data.read_csv_rows(f"text,label\n{long_review},1\n", "reviews.csv")
    assert rows[1] == [long_review, "1"]
    # A quote left open swallows the rest of the file into one field.
    with pytest.raises(UserError, match=r"reviews.csv line 3: a field longer than 1,048,576 characters; is a quote"):
        data.read_csv_rows('text,label\nfine,1\n"oops,0\n' + "more,1\n" * 200_000, "reviews.csv")
    assert csv.field_size_limit() == 131072  # the process-wide limit is put back


def test_geometric_boundaries_stay_below_the_cap_and_grow_by_the_ratio():
    bounds = data.geometric_boundaries(200)
    assert bounds[0] == 8 and bounds[-1] < 200 and list(bounds) == sorted(set(bounds))
    assert all(b / a <= 1.25 + 1 / a for a, b in zip(bounds, bounds[1:]))  # 1.25, rounded
    assert data.geometric_boundaries(5) == ()


def test_padded_share_counts_the_padding_to_each_batch_longest():
    assert data.padded_share([[3, 3], [5]]) == 0.0
    assert data.padded_share([[1, 3], [2, 2]]) == pytest.approx(1 - 8 / 10)
    assert data.padded_share([]) == 0.0


def test_bucketed_batches_group_lengths_keep_every_example_and_repeat_with_the_seed():
    lengths = np.random.default_rng(0).integers(1, 60, 300)
    dataset = tf.data.Dataset.from_tensor_slices(lengths)

    def epochs(seed):
        batches = data.bucketed(dataset, 16, lambda n: tf.cast(n, tf.int32), (10, 20, 40), seed=seed, buffer=300)
        return [[list(b.numpy()) for b in batches] for _ in range(2)]

    first, second = epochs(3)
    assert sorted(n for b in first for n in b) == sorted(lengths.tolist())
    assert first != second  # reshuffled each epoch
    assert epochs(3) == [first, second]  # and repeatable
    for batch in first:
        assert len({int(np.digitize(n, (10, 20, 40))) for n in batch}) == 1
    plain = [lengths[i:i + 16] for i in range(0, 300, 16)]
    assert data.padded_share(first) < data.padded_share(plain) / 2
