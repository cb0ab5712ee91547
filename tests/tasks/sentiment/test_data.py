"""Every --data format of the sentiment task, on real files and tiny hand-made ones."""

import tarfile

import pytest

from lstmkit.errors import UserError
from lstmkit.tasks.sentiment import data
from lstmkit.tasks.sentiment.task import TASK


def _write_aclimdb(root, per_folder=3):
    for split in ("train", "test"):
        for folder in ("pos", "neg"):
            (root / split / folder).mkdir(parents=True)
            for index in range(per_folder):
                word = "great" if folder == "pos" else "awful"
                (root / split / folder / f"{index}_7.txt").write_text(f"{split} {word} film {index}<br />")


def test_polarity_pair_from_folder_and_from_either_file(shared_data):
    folder = shared_data / "mr_polarity"
    raw = data.read_source(str(folder))
    assert len(raw.train.texts) == 10_662 and raw.test is None
    assert raw.train.labels.count(1) == raw.train.labels.count(0) == 5_331
    from_file = data.read_source(str(folder / "rt-polarity.pos"))
    assert from_file.train.texts == raw.train.texts


def test_glue_tsv_with_quotes_in_sentences(shared_data):
    raw = data.read_source(str(shared_data / "sst2_glue" / "dev.tsv"))
    assert len(raw.train.texts) == 872
    assert raw.train.labels.count(1) == 444 and raw.train.labels.count(0) == 428


def test_aclimdb_folder_and_archive_keep_their_test_split(tmp_path):
    _write_aclimdb(tmp_path / "aclImdb")
    folder = data.read_source(str(tmp_path))
    assert len(folder.train.texts) == 6 and len(folder.test.texts) == 6
    assert all(("great" in text) == bool(label) for text, label in zip(folder.test.texts, folder.test.labels))
    archive = tmp_path / "aclImdb.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "aclImdb", arcname="aclImdb")
    packed = data.read_source(str(archive))
    assert sorted(packed.train.texts) == sorted(folder.train.texts)
    assert sorted(zip(packed.test.texts, packed.test.labels)) == sorted(zip(folder.test.texts, folder.test.labels))


def test_csv_with_named_columns_and_word_labels(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('body,stars\n"good, really",pos\nbad,negative\nfine,1\n')
    with pytest.raises(UserError, match=r"no text column .*columns: body, stars.*config value data.text_column"):
        data.read_source(str(path))
    raw = data.read_source(str(path), text_column="body", label_column="stars")
    assert raw.train.texts == ["good, really", "bad", "fine"] and raw.train.labels == [1, 0, 1]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.csv", b"", "is empty"),
        ("bad.csv", b"text,label\ncaf\xe9,1\n", "is not UTF-8"),
        ("three.csv", b"text,label\ngood,1\nbad,2\n", "line 3: label '2' is not one of the two classes"),
        ("notes.txt", b"hello", "cannot tell the format"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        data.read_source(str(path))


def test_a_review_over_csvs_default_field_limit_is_read(tmp_path):
    """Before: _csv.Error: field larger than field limit (131072)."""
    review = "a long, long review " * 10_000  # 200 KB
    path = tmp_path / "long.csv"
    path.write_text(f'text,label\n"{review}",1\nshort,0\n')
    assert data.read_source(str(path)).train.texts == [review, "short"]


def test_missing_path_lists_the_accepted_sources(tmp_path):
    with pytest.raises(UserError, match=r"does not exist; the data source must be tfds:imdb_reviews"):
        data.read_source(str(tmp_path / "nowhere"))


def test_splits_are_seeded_disjoint_and_validation_comes_from_train(shared_data):
    config = TASK.tiny_config()
    splits = TASK.bind(config).load_data(str(shared_data / "mr_polarity"))
    again = TASK.bind(config).load_data(str(shared_data / "mr_polarity"))

    def texts(dataset):
        return [text.decode() for text, _ in dataset.as_numpy_iterator()]

    train, validation, test = texts(splits.train), texts(splits.validation), texts(splits.test)
    assert len(test) == 1_066 and len(validation) == 960 and len(train) == 400
    assert texts(again.test) == test and texts(again.train) == train
    assert not set(test) & set(train) and not set(validation) & set(train)


def test_training_batches_group_texts_by_token_count_and_cut_the_padding(shared_data):
    import dataclasses

    import numpy as np

    from lstmkit.data import padded_share
    from lstmkit.tasks.sentiment.model import token_count
    from lstmkit.tasks.sentiment.task import bucket_boundaries

    config = TASK.default_config()
    assert config.data.bucket_boundaries == ()  # off by default
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, max_train_examples=2000,
                                                                  bucket_boundaries=None))
    splits = TASK.bind(config).load_data(str(shared_data / "mr_polarity"))
    count = token_count(config)
    bounds = bucket_boundaries(config)

    def token_lengths(batches):
        return [[min(int(count(text)), config.max_length) for text in texts.numpy()] for texts, _ in batches]

    bucketed = token_lengths(TASK.bind(config).batches(splits.train, training=True, seed=5))
    assert sum(map(len, bucketed)) == 2000
    for lengths in bucketed:  # one bucket per batch
        assert len(set(np.digitize(lengths, bounds).tolist())) == 1
    off = dataclasses.replace(config, data=dataclasses.replace(config.data, bucket_boundaries=()))
    shuffled = token_lengths(TASK.bind(off).batches(splits.train, training=True, seed=5))
    assert padded_share(bucketed) < 0.1 < 0.3 < padded_share(shuffled)


def test_token_count_matches_the_vectorizer():
    import tensorflow as tf

    from lstmkit.tasks.sentiment.model import token_count, vectorizer

    config = TASK.default_config()
    layer = vectorizer(config)
    texts = ["A film, truly -- great!", "  spaced   out  ", "one"]
    layer.adapt(tf.constant(texts))
    for text in texts:
        ids = layer(tf.constant([text])).numpy()[0]
        assert int(token_count(config)(tf.constant(text))) == int((ids != 0).sum())


def _write_tsv(path, rows):
    path.write_text("sentence\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in rows))
    return path


def _with_test_source(test_source):
    from lstmkit import config as config_lib

    return config_lib.apply_overrides(TASK.tiny_config(), [f"data.test_source={test_source}"])


def test_test_source_is_the_whole_test_split_and_validation_comes_from_the_source(tmp_path):
    train = _write_tsv(tmp_path / "train.tsv", [(f"train sentence {index}", index % 2) for index in range(40)])
    test = _write_tsv(tmp_path / "test.tsv", [(f"test sentence {index}", int(index % 3 == 0)) for index in range(7)])
    splits = TASK.bind(_with_test_source(test)).load_data(str(train))

    def examples(dataset):
        return [(text.decode(), int(label)) for text, label in dataset.as_numpy_iterator()]

    tested, validation, trained = examples(splits.test), examples(splits.validation), examples(splits.train)
    assert tested == [(f"test sentence {index}", int(index % 3 == 0)) for index in range(7)]
    assert len(validation) == 4 and len(trained) == 36  # no test_fraction held out of train.tsv
    assert {text for text, _ in trained + validation} == {f"train sentence {index}" for index in range(40)}
    assert f"test split: table {test}" in splits.description
    # Without it, the same file holds out data.test_fraction as before.
    assert len(examples(TASK.bind(TASK.tiny_config()).load_data(str(train)).test)) == 4


def test_test_source_joins_both_parts_of_an_aclimdb_source(tmp_path):
    _write_aclimdb(tmp_path / "aclImdb")
    train = _write_tsv(tmp_path / "train.tsv", [(f"sentence {index}", index % 2) for index in range(20)])
    splits = TASK.bind(_with_test_source(tmp_path / "aclImdb")).load_data(str(train))
    assert len(list(splits.test.as_numpy_iterator())) == 12


def test_test_source_missing_or_without_labels_is_refused(tmp_path):
    train = _write_tsv(tmp_path / "train.tsv", [(f"sentence {index}", index % 2) for index in range(20)])
    with pytest.raises(UserError, match=r"data.test_source .*nowhere.tsv does not exist; the data source must be"):
        TASK.bind(_with_test_source(tmp_path / "nowhere.tsv")).load_data(str(train))
    unlabelled = tmp_path / "unlabelled.tsv"
    unlabelled.write_text("index\tsentence\n0\ta fine film\n")
    with pytest.raises(UserError, match=r"^data.test_source: .*unlabelled.tsv has no label column"):
        TASK.bind(_with_test_source(unlabelled)).load_data(str(train))


def test_test_source_that_is_the_source_itself_is_refused(tmp_path):
    train = _write_tsv(tmp_path / "train.tsv", [(f"sentence {index}", index % 2) for index in range(20)])
    (tmp_path / "sub").mkdir()
    for same in (train, tmp_path / "sub" / ".." / "train.tsv"):
        with pytest.raises(UserError, match=r"data.test_source .* is the data source itself; give a separate"):
            TASK.bind(_with_test_source(same)).load_data(str(train))
    pair = tmp_path / "mr"
    pair.mkdir()
    (pair / "rt.pos").write_text("good\nfine\n")
    (pair / "rt.neg").write_text("bad\ndull\n")
    with pytest.raises(UserError, match="is the data source itself"):
        TASK.bind(_with_test_source(pair / "rt.neg")).load_data(str(pair))
