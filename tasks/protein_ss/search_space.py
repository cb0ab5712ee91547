"""The protein search space: Keras Tuner's ``hp`` mapped onto ``ProteinConfig``.

The number of states is what the labels hold, so it is not searched.
"""

import dataclasses

from lstmkit.tuning.space import choice, dropout_multiplier, lstm_space, rate, training_space
from lstmkit.tasks.protein_ss.config import ProteinConfig


def search_space(hp, config: ProteinConfig) -> ProteinConfig:
    lstm = lstm_space(hp, config.lstm, [64, 128, 256], [1, 2, 3], ("hidden_dropout", "output_dropout", "weight_drop"))
    train = training_space(hp, config.train, (3e-4, 1e-2), [16, 32, 64])
    return dataclasses.replace(
        config,
        dropout_multiplier=dropout_multiplier(hp, lstm, config.dropout_multiplier),
        embedding_dim=choice(hp, "embedding_dim", [16, 32, 64], config.embedding_dim),
        conv_filters=choice(hp, "conv_filters", [32, 64, 128], config.conv_filters),
        conv_dropout=rate(hp, "conv_dropout", config.conv_dropout),
        lstm=lstm,
        train=train,
    )
