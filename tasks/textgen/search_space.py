"""The text generation search space: Keras Tuner's ``hp`` mapped onto ``TextgenConfig``.

The vocabulary is adapted once before the search and the window length stays the
config's (it sets what the validation loss measures), so neither is searched.
"""

import dataclasses

from lstmkit.tuning.space import choice, dropout_multiplier, lstm_space, rate, training_space
from lstmkit.tasks.textgen.config import TextgenConfig


def search_space(hp, config: TextgenConfig) -> TextgenConfig:
    lstm = lstm_space(hp, config.lstm, [256, 512, 1024], [1, 2, 3],
                      ("input_dropout", "hidden_dropout", "output_dropout", "weight_drop"), bidirectional=False)
    train = training_space(hp, config.train, (3e-4, 1e-2), [32, 64, 128])
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
