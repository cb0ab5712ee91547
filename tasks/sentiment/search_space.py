"""The sentiment search space: Keras Tuner's ``hp`` mapped onto ``SentimentConfig``.

Preprocessing (the vocabularies) is adapted once before the search, so ``vocab_size``,
``max_length`` and the wide part's ``wide_ngrams`` / ``wide_vocab_size`` are not searched. Each hyperparameter's default is the starting
config's value where that value is one of the choices.
"""

import dataclasses

from lstmkit.tuning.space import choice, dropout_multiplier, lstm_space, rate, training_space
from lstmkit.tasks.sentiment.config import SentimentConfig


def search_space(hp, config: SentimentConfig) -> SentimentConfig:
    lstm = lstm_space(hp, config.lstm, [32, 64, 128, 256], [1, 2], ("input_dropout", "output_dropout", "weight_drop"))
    train = training_space(hp, config.train, (1e-4, 1e-2), [32, 64, 128])
    multiplier = dropout_multiplier(hp, lstm, config.dropout_multiplier)
    return dataclasses.replace(
        config,
        dropout_multiplier=multiplier,
        embedding_dim=choice(hp, "embedding_dim", [64, 128, 256], config.embedding_dim),
        embedding_dropout=rate(hp, "embedding_dropout", config.embedding_dropout),
        pooling=choice(hp, "pooling", ["last", "max", "mean", "attention"], config.pooling),
        classifier_dropout=rate(hp, "classifier_dropout", config.classifier_dropout),
        lstm=lstm,
        train=train,
    )
