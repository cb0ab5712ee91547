"""The NBSVM-bi baseline of the sentiment benchmarks (needs the bench extra: scikit-learn)."""

import pytest

pytest.importorskip("sklearn")

from benchmarks import nbsvm  # noqa: E402  (after the skip: it imports scikit-learn)


def test_tokens_keep_apostrophes_and_punctuation_and_drop_imdb_line_breaks():
    analyze = nbsvm.vectorizer().build_analyzer()
    tokens = analyze("Don't miss it!<br /><br />It 's great")
    assert tokens[:4] == ["don't", "miss", "it", "!"] and "it 's" in tokens and "don't miss" in tokens
    assert not {"br", "<", "/"} & set(tokens)


def test_separable_corpus_is_learned_and_ratios_have_the_right_sign():
    fillers = ["the film", "this movie", "a story", "the cast", "its ending"]
    train_texts = [f"{filler} was {word}" for filler in fillers for word in ("great", "awful")] * 2
    train_labels = [1, 0] * len(fillers) * 2
    test_texts = ["great , simply great", "awful from start to end", "the plot was great", "an awful mess"]
    result = nbsvm.fit_and_score(train_texts, train_labels, test_texts, [1, 0, 1, 0])
    assert result["name"] == "NBSVM-bi" and result["accuracy"] == 1.0
    ngrams = nbsvm.vectorizer()
    features = ngrams.fit_transform(train_texts)
    assert result["features"] == features.shape[1]
    ratio = nbsvm.log_count_ratio(features, train_labels)
    vocabulary = ngrams.vocabulary_
    assert ratio[vocabulary["great"]] > 0 > ratio[vocabulary["awful"]]
    assert ratio[vocabulary["the film"]] == 0  # in as many positive as negative examples
