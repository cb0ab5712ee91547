"""The speech-command search space: Keras Tuner's ``hp`` mapped onto ``SpeechConfig``.

The front end (clip length, frames, mel bands) is fixed before the search: the
normalization statistics are adapted on it once.
"""

import dataclasses

from lstmkit.tuning import choice, dropout_multiplier, rate
from tasks.speech_commands.config import SpeechConfig


def search_space(hp, config: SpeechConfig) -> SpeechConfig:
    lstm = dataclasses.replace(
        config.lstm,
        units=choice(hp, "lstm.units", [32, 64, 128], config.lstm.units),
        layers=choice(hp, "lstm.layers", [1, 2, 3], config.lstm.layers),
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
    return dataclasses.replace(
        config,
        dropout_multiplier=dropout_multiplier(hp, lstm, config.dropout_multiplier),
        conv_filters=choice(hp, "conv_filters", [10, 16, 32], config.conv_filters),
        dense_units=choice(hp, "dense_units", [32, 64, 128], config.dense_units),
        classifier_dropout=rate(hp, "classifier_dropout", config.classifier_dropout),
        time_masks=choice(hp, "time_masks", [0, 1, 2, 3], config.time_masks),
        frequency_masks=choice(hp, "frequency_masks", [0, 1, 2, 3], config.frequency_masks),
        lstm=lstm,
        train=train,
    )
