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

    Called with ``reverse=True`` on vectors of ``output_dim`` features, it returns their
    logits over the vocabulary against the same matrix (tied input and output
    embeddings, Press & Wolf 2017), plus a learned per-entry bias when
    ``reverse_bias`` is set (AWD-LSTM's tied decoder has one).
    """

    def __init__(self, input_dim, output_dim, rate=0.0, seed=None, reverse_bias=False, **kwargs):
        super().__init__(input_dim, output_dim, **kwargs)
        self.reverse_bias = reverse_bias
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be in [0, 1), got {rate!r}")
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape=None):
        super().build(input_shape)
        if self.reverse_bias:
            self.output_bias = self.add_weight(shape=(self.input_dim,), initializer="zeros",
                                               name="output_bias")

    def call(self, inputs, training=False, reverse=False):
        if reverse:
            # In the inputs' dtype: 16 bits under mixed precision, where the float32
            # weights are not cast for us on this path.
            logits = ops.matmul(inputs, ops.transpose(ops.cast(self.embeddings, inputs.dtype)))
            return logits + ops.cast(self.output_bias, logits.dtype) if self.reverse_bias else logits
        outputs = super().call(inputs)
        if not training or self.rate == 0:
            return outputs
        row_keep = keras.random.dropout(
            ops.ones((self.input_dim, 1), dtype=outputs.dtype), self.rate, seed=self.seed_generator
        )
        return outputs * ops.take(row_keep, ops.cast(inputs, "int32"), axis=0)

    def compute_output_spec(self, inputs, training=False, reverse=False):
        # keras.layers.Embedding's version takes no ``training`` argument.
        if reverse:
            return keras.KerasTensor((*inputs.shape[:-1], self.input_dim), dtype=self.compute_dtype)
        return super().compute_output_spec(inputs)

    def compute_mask(self, inputs, mask=None):
        # Keras passes no call arguments here: a float input is the reverse call, whose
        # positions are those of the incoming mask; ids are masked where they are 0.
        if "int" not in str(inputs.dtype):
            return mask
        return super().compute_mask(inputs, mask)

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed, reverse_bias=self.reverse_bias)
        return config
