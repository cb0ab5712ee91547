"""The forecasting search space: Keras Tuner's ``hp`` mapped onto ``ForecastConfig``.

The horizon, the quantiles and the data's splits are the question, not the answer: they
are not searched. Nor is the context length: a search cuts the windows once, before its
trials.
"""

import dataclasses

from lstmkit.tuning.space import dropout_multiplier, lstm_space, training_space
from lstmkit.tasks.forecasting.config import ForecastConfig


def search_space(hp, config: ForecastConfig) -> ForecastConfig:
    # The whole history is known at the origin, so reading it both ways leaks nothing.
    lstm = lstm_space(hp, config.lstm, [32, 64, 128], [1, 2], ("input_dropout", "output_dropout", "weight_drop"))
    train = training_space(hp, config.train, (3e-4, 1e-2), [16, 32, 64])
    return dataclasses.replace(
        config,
        dropout_multiplier=dropout_multiplier(hp, lstm, config.dropout_multiplier),
        autoregressive=hp.Boolean("autoregressive", default=config.autoregressive),
        lstm=lstm,
        train=train,
    )
