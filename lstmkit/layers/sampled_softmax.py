"""The word-prediction loss of a language model whose output layer is its embedding."""

import math

import keras


class SampledSoftmaxLoss(keras.layers.Layer):
    """Next-word cross-entropy (nats per word) of per-step features against the
    embedding matrix plus a learned bias (tied input and output embeddings): a sampled
    softmax while training (TensorFlow's, given word ids drawn log-uniformly, which
    suits a vocabulary sorted by frequency), the exact softmax otherwise. The draws come
    from a Keras seed generator, not TensorFlow's stateful sampler op, so that they are
    part of the model's saved state and a resumed run draws what an uninterrupted one
    would have.

    Called on ``(features [batch, time, width], targets [batch, time])``, it returns the
    per-word losses and adds their mean to the model's losses. ``embeddings`` is a
    function returning the embedding matrix, so that the matrix stays tracked by its own
    layer only. Used inside ``lstmkit.training.pretrain``'s language model, which is
    never saved as a whole (only its encoder's weights move on), so it is not registered
    for serialization. TensorFlow backend only.
    """

    def __init__(self, embeddings, sampled_words: int, seed=None, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self._embeddings = embeddings
        self.sampled_words = sampled_words
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, features_shape, targets_shape=None):
        vocabulary = self._embeddings().shape[0]
        self.bias = self.add_weight(shape=(vocabulary,), initializer="zeros", name="bias")

    def call(self, features, targets, training=False):
        import tensorflow as tf

        embeddings = tf.convert_to_tensor(self._embeddings())
        vocabulary, width = embeddings.shape
        flat = tf.reshape(tf.cast(features, "float32"), [-1, width])
        labels = tf.reshape(tf.cast(targets, "int64"), [-1, 1])
        if training:
            losses = tf.nn.sampled_softmax_loss(
                weights=embeddings, biases=self.bias, labels=labels, inputs=flat,
                num_sampled=self.sampled_words, num_classes=vocabulary, remove_accidental_hits=True,
                sampled_values=self._log_uniform_draws(labels, vocabulary))
        else:
            logits = tf.matmul(flat, embeddings, transpose_b=True) + self.bias
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels[:, 0], logits=logits)
        self.add_loss(tf.reduce_mean(losses))
        return tf.reshape(losses, tf.shape(targets))

    def _log_uniform_draws(self, labels, vocabulary):
        """``sampled_words`` ids drawn with replacement, P(k) = log((k + 2) / (k + 1)) /
        log(vocabulary + 1) (the distribution of tf.random.log_uniform_candidate_sampler),
        and the expected counts of the true and the drawn ids, as sampled_softmax_loss
        takes them."""
        import tensorflow as tf

        log_range = math.log(vocabulary + 1)
        uniform = keras.random.uniform((self.sampled_words,), seed=self.seed_generator)
        drawn = tf.clip_by_value(tf.cast(tf.floor(tf.exp(uniform * log_range)), "int64") - 1, 0, vocabulary - 1)

        def expected_count(ids):
            ids = tf.cast(ids, "float32")
            return self.sampled_words * (tf.math.log(ids + 2.0) - tf.math.log(ids + 1.0)) / log_range

        return drawn, expected_count(labels), expected_count(drawn)

    def compute_output_spec(self, features, targets, training=False):
        return keras.KerasTensor(targets.shape, dtype="float32")
