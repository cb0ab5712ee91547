"""The sentiment search space: Keras Tuner's ``hp`` mapped onto ``SentimentConfig``.

Preprocessing (the vocabulary) is adapted once before the search, so ``vocab_size``
and ``max_length`` are not searched. Each hyperparameter's default is the starting
config's value where that value is one of the choices.
"""

import dataclasses

from lstmkit.tuning import choice, dropout_multiplier, rate
from tasks.sentiment.config import SentimentConfig


def search_space(hp, config: SentimentConfig) -> SentimentConfig:
    lstm = dataclasses.replace(
        config.lstm,
        units=choice(hp, "lstm.units", [32, 64, 128, 256], config.lstm.units),
        layers=choice(hp, "lstm.layers", [1, 2], config.lstm.layers),
        bidirectional=hp.Boolean("lstm.bidirectional", default=config.lstm.bidirectional),
        input_dropout=rate(hp, "lstm.input_dropout", config.lstm.input_dropout),
        output_dropout=rate(hp, "lstm.output_dropout", config.lstm.output_dropout),
        weight_drop=rate(hp, "lstm.weight_drop", config.lstm.weight_drop),
    )
    train = dataclasses.replace(
        config.train,
        learning_rate=hp.Float("train.learning_rate", 1e-4, 1e-2, sampling="log",
                               default=min(max(config.train.learning_rate, 1e-4), 1e-2)),
        batch_size=choice(hp, "train.batch_size", [32, 64, 128], config.train.batch_size),
    )
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
