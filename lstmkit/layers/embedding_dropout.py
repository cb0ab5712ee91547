"""Embedding dropout: drop whole words (vocabulary rows) rather than single features."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lstmkit")
class EmbeddingDropout(keras.layers.Embedding):
    """A ``keras.layers.Embedding`` that, while training, drops whole vocabulary rows.

    Each batch draws one keep/drop decision per vocabulary entry, so every occurrence of
    a dropped word in the batch becomes the zero vector, and kept rows are scaled by
    ``1 / (1 - rate)`` (Gal & Ghahramani 2016; the ``embedded_dropout`` of AWD-LSTM).
    At inference it is an ordinary embedding lookup. Only the rows the batch uses are
    masked, which costs one extra gather instead of touching the whole matrix.
    """

    def __init__(self, input_dim, output_dim, rate=0.0, seed=None, **kwargs):
        super().__init__(input_dim, output_dim, **kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be in [0, 1), got {rate!r}")
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        outputs = super().call(inputs)
        if not training or self.rate == 0:
            return outputs
        row_keep = keras.random.dropout(
            ops.ones((self.input_dim, 1), dtype=outputs.dtype), self.rate, seed=self.seed_generator
        )
        return outputs * ops.take(row_keep, ops.cast(inputs, "int32"), axis=0)

    def compute_output_spec(self, inputs, training=False):
        # keras.layers.Embedding's version takes no ``training`` argument.
        return super().compute_output_spec(inputs)

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config
