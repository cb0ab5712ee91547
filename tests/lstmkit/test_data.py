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
