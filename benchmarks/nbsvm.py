"""NBSVM-bi, the bag-of-n-grams baseline of the sentiment benchmarks.

Wang & Manning (2012), "Baselines and Bigrams: Simple, Good Sentiment and Topic
Classification" (ACL): a linear SVM on binarized unigram + bigram indicators, each scaled
by its naive Bayes log-count ratio, with the SVM's weights interpolated towards their mean
magnitude. The hyperparameters are the paper's (alpha=1, C=1, beta=0.25) and stay fixed:
nothing here is tuned on any split. Needs scikit-learn (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import time

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.svm import LinearSVC

NAME = "NBSVM-bi"
ALPHA = 1.0  # add-one smoothing of the feature counts
C = 1.0  # the SVM's regularization
BETA = 0.25  # weight of the SVM's own weights against their mean magnitude

# Words, keeping apostrophes inside them and the clitics of tokenized text (don't, n't,
# 's), and every other non-space character as a token of its own: "!", "?" and ":)" carry
# sentiment, and MR / SST-2 are already tokenized that way.
TOKEN_PATTERN = r"\w+(?:'\w+)*|'\w+|[^\w\s]"


def _standardize(text: str) -> str:
    # Lower-cased, and IMDB's line breaks dropped, as the LSTM's own standardization does.
    return text.replace("<br />", " ").lower()


def vectorizer() -> CountVectorizer:
    # binary=True: the paper's x = 1{count > 0}; presence beats frequency for sentiment.
    return CountVectorizer(ngram_range=(1, 2), binary=True, token_pattern=TOKEN_PATTERN,
                           preprocessor=_standardize, dtype=np.float64)


def log_count_ratio(features, labels, alpha: float = ALPHA) -> np.ndarray:
    """r = log((p / |p|_1) / (q / |q|_1)), p and q the smoothed feature counts of the
    positive and the negative examples: above 0 for features seen more in positive ones."""
    positive = np.asarray(labels) == 1
    p = alpha + np.asarray(features[positive].sum(axis=0)).ravel()
    q = alpha + np.asarray(features[~positive].sum(axis=0)).ravel()
    return np.log(p / p.sum()) - np.log(q / q.sum())


def fit_and_score(train_texts, train_labels, test_texts, test_labels) -> dict:
    """Fit on the training texts only (vocabulary, ratios and SVM) and score the test
    texts. Returns ``name``, ``accuracy``, ``seconds`` (fitting and scoring, from raw
    text) and ``features`` (the n-gram vocabulary's size)."""
    started = time.perf_counter()
    ngrams = vectorizer()
    train = ngrams.fit_transform(train_texts)
    # x~ = r o x: every feature scaled by its naive Bayes evidence.
    scale = sparse.diags(log_count_ratio(train, train_labels))
    # The paper's SVM: L2-regularized, squared hinge loss, LIBLINEAR's dual solver.
    svm = LinearSVC(C=C, loss="squared_hinge", dual=True, max_iter=10_000, random_state=0)
    svm.fit(train @ scale, np.asarray(train_labels))
    # w' = (1 - beta) * mean(|w|) + beta * w: leans on the naive Bayes ratios (a constant
    # weight on r o x) unless the SVM weights are large; the bias is kept as fitted.
    weights = svm.coef_.ravel()
    weights = (1 - BETA) * np.abs(weights).mean() + BETA * weights
    scores = ngrams.transform(test_texts) @ scale @ weights + svm.intercept_[0]
    accuracy = float(np.mean((scores > 0) == (np.asarray(test_labels) == 1)))
    return {"name": NAME, "accuracy": round(accuracy, 4), "seconds": round(time.perf_counter() - started, 1),
            "features": len(ngrams.vocabulary_)}
