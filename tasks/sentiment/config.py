"""The sentiment task's config: one frozen dataclass per concern."""

from __future__ import annotations

import dataclasses
from typing import Literal

from lstmkit.config import (LSTMStackConfig, PretrainConfig, TrainingConfig, check_ranges, check_scaled_rates, in_range,
                            rate, seed)
from lstmkit.errors import UserError


# The recurrent encoder's defaults. Regularization: variational input dropout 0.5 and
# nothing else, the winner of the regularizer ablation on MR (BENCHMARKS.md).
SENTIMENT_LSTM = LSTMStackConfig(units=128, bidirectional=True, input_dropout=0.5)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    # CSV/TSV column names; "auto" picks a usual name (text/sentence/review, label/sentiment).
    text_column: str = "auto"
    label_column: str = "auto"
    # Used only when the source has no test split of its own and test_source is empty.
    test_fraction: float = rate(0.1)
    # A second file of the same kind (CSV/TSV, *.pos/*.neg pair, aclImdb...), read with the
    # same column settings, used whole as the test split instead of holding one out.
    # Empty: the source's own test split, or a seeded held-out test_fraction.
    test_source: str = ""
    validation_fraction: float = rate(0.1)
    # Fixed apart from the training seed so every run sees the same test set.
    split_seed: int = seed(1337)
    # Keep at most this many training examples (after shuffling); 0 keeps all.
    max_train_examples: int = in_range(0, 0, 10**9)
    # Length bucketing: training batches group texts of similar length (in tokens, cut at
    # max_length) so that short ones are not padded to long ones. Empty (the default) is
    # off; none picks boundaries 8, 10, 12, 16, ... (each 1.25 times the last) below
    # max_length; or give them (100,200,300). Off by default because, measured on MR and
    # IMDB --quick (BENCHMARKS.md), it cost accuracy (-0.008, -0.012, one seed each) for
    # 5-8 % of wall time at those lengths.
    bucket_boundaries: tuple[int, ...] | None = in_range((), 1, 100_000)

    def __post_init__(self):
        check_ranges(self)
        bounds = self.bucket_boundaries
        if bounds is not None and list(bounds) != sorted(set(bounds)):
            raise UserError(f"data.bucket_boundaries must be increasing, got {bounds}")


@dataclasses.dataclass(frozen=True)
class SentimentConfig:
    # Text standardization before splitting on whitespace: punctuation marks become
    # tokens of their own ("split_punctuation") or are removed ("strip_punctuation").
    standardize: Literal["split_punctuation", "strip_punctuation"] = "split_punctuation"
    # Words, counting the padding and out-of-vocabulary entries.
    vocab_size: int = in_range(20_000, 3, 1_000_000)
    # Reviews are cut to their first max_length tokens.
    max_length: int = in_range(200, 1, 100_000)
    embedding_dim: int = in_range(128, 1, 8_192)
    # Drops whole words (vocabulary rows) while training.
    embedding_dropout: float = rate(0.0)
    pooling: Literal["last", "max", "mean", "attention"] = "max"
    classifier_dropout: float = rate(0.0)
    # Wide & deep (Cheng et al. 2016): a linear model over which word n-grams (1 to
    # wide_ngrams words) a text holds, the field's classic strong baseline, whose logits
    # are added to the LSTM's and trained with them; 0 is the LSTM alone. Its vocabulary
    # (the wide_vocab_size most frequent n-grams) is adapted on training data only.
    # Unigrams and bigrams by default: on IMDB --quick, 0.9040 against 0.8551 for the
    # LSTM alone (BENCHMARKS.md, issue 19).
    wide_ngrams: int = in_range(2, 0, 5)
    wide_vocab_size: int = in_range(200_000, 2, 10_000_000)
    # Dropout on the n-gram indicators while training.
    wide_dropout: float = rate(0.0)
    # Scales every dropout rate above and in lstm at once (one knob for tuning).
    dropout_multiplier: float = in_range(1.0, 0.0, 100.0, low_open=True)
    lstm: LSTMStackConfig = SENTIMENT_LSTM
    data: DataConfig = DataConfig()
    train: TrainingConfig = TrainingConfig()
    # Language-model pretraining of the embedding and LSTM on the training texts before
    # the classifier trains (pretrain.epochs > 0; lstmkit.training.pretrain).
    pretrain: PretrainConfig = PretrainConfig()

    def __post_init__(self):
        check_ranges(self)
        check_scaled_rates(self, self.dropout_multiplier, "embedding_dropout", "classifier_dropout",
                           "wide_dropout")
        self.lstm.check_multiplier(self.dropout_multiplier)


TINY = SentimentConfig(
    vocab_size=2_000,
    wide_vocab_size=5_000,
    max_length=40,
    embedding_dim=16,
    lstm=dataclasses.replace(SENTIMENT_LSTM, units=8),
    train=TrainingConfig(epochs=2, batch_size=32, learning_rate=3e-3),
    data=DataConfig(max_train_examples=400),
)
