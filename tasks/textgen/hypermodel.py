"""The text generation search space: Keras Tuner's ``hp`` mapped onto ``TextgenConfig``.

The vocabulary is adapted once before the search and the window length stays the
config's (it sets what the validation loss measures), so neither is searched.
"""

import dataclasses

from lstmkit.tuning import choice, dropout_multiplier, rate
from tasks.textgen.config import TextgenConfig


def search_space(hp, config: TextgenConfig) -> TextgenConfig:
    lstm = dataclasses.replace(
        config.lstm,
        units=choice(hp, "lstm.units", [256, 512, 1024], config.lstm.units),
        layers=choice(hp, "lstm.layers", [1, 2, 3], config.lstm.layers),
        input_dropout=rate(hp, "lstm.input_dropout", config.lstm.input_dropout),
        hidden_dropout=rate(hp, "lstm.hidden_dropout", config.lstm.hidden_dropout),
        output_dropout=rate(hp, "lstm.output_dropout", config.lstm.output_dropout),
        weight_drop=rate(hp, "lstm.weight_drop", config.lstm.weight_drop),
    )
    train = dataclasses.replace(
        config.train,
        learning_rate=hp.Float("train.learning_rate", 3e-4, 1e-2, sampling="log",
                               default=min(max(config.train.learning_rate, 3e-4), 1e-2)),
        batch_size=choice(hp, "train.batch_size", [32, 64, 128], config.train.batch_size),
    )
    multiplier = dropout_multiplier(hp, lstm, config.dropout_multiplier)
    # Tied embeddings share one matrix, so their width is the LSTM's.
    embedding_dim = lstm.units if config.tie_embeddings else choice(
        hp, "embedding_dim", [32, 64, 128, 256], config.embedding_dim)
    return dataclasses.replace(
        config,
        dropout_multiplier=multiplier,
        embedding_dim=embedding_dim,
        embedding_dropout=rate(hp, "embedding_dropout", config.embedding_dropout, high=0.2),
        lstm=lstm,
        train=train,
    )
