"""The speech-command search space: Keras Tuner's ``hp`` mapped onto ``SpeechConfig``.

The front end (clip length, frames, mel bands) is fixed before the search: the
normalization statistics are adapted on it once.
"""

import dataclasses

from lstmkit.tuning.space import choice, dropout_multiplier, lstm_space, rate, training_space
from lstmkit.tasks.speech_commands.config import SpeechConfig


def search_space(hp, config: SpeechConfig) -> SpeechConfig:
    lstm = lstm_space(hp, config.lstm, [32, 64, 128], [1, 2, 3], ("hidden_dropout", "output_dropout", "weight_drop"))
    train = training_space(hp, config.train, (3e-4, 1e-2), [32, 64, 128])
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
