"""The protein search space: Keras Tuner's ``hp`` mapped onto ``ProteinConfig``.

The number of states is what the labels hold, so it is not searched.
"""

import dataclasses

from lstmkit.tuning import choice, dropout_multiplier, rate
from tasks.protein_ss.config import ProteinConfig


def search_space(hp, config: ProteinConfig) -> ProteinConfig:
    lstm = dataclasses.replace(
        config.lstm,
        units=choice(hp, "lstm.units", [64, 128, 256], config.lstm.units),
        layers=choice(hp, "lstm.layers", [1, 2, 3], config.lstm.layers),
        hidden_dropout=rate(hp, "lstm.hidden_dropout", config.lstm.hidden_dropout),
        output_dropout=rate(hp, "lstm.output_dropout", config.lstm.output_dropout),
        weight_drop=rate(hp, "lstm.weight_drop", config.lstm.weight_drop),
    )
    train = dataclasses.replace(
        config.train,
        learning_rate=hp.Float("train.learning_rate", 3e-4, 1e-2, sampling="log",
                               default=min(max(config.train.learning_rate, 3e-4), 1e-2)),
        batch_size=choice(hp, "train.batch_size", [16, 32, 64], config.train.batch_size),
    )
    return dataclasses.replace(
        config,
        dropout_multiplier=dropout_multiplier(hp, lstm, config.dropout_multiplier),
        embedding_dim=choice(hp, "embedding_dim", [16, 32, 64], config.embedding_dim),
        conv_filters=choice(hp, "conv_filters", [32, 64, 128], config.conv_filters),
        conv_dropout=rate(hp, "conv_dropout", config.conv_dropout),
        lstm=lstm,
        train=train,
    )
