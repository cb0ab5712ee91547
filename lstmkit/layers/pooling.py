"""Mask-aware pooling of a sequence of vectors into one vector."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lstmkit")
class SequencePooling(keras.layers.Layer):
    """Pool ``[batch, time, features]`` into ``[batch, features]``, ignoring masked steps.

    Modes:
        ``"max"``: element-wise maximum over valid steps (0 for a fully masked row);
        ``"mean"``: average over valid steps (0 for a fully masked row);
        ``"attention"``: a learned softmax weighting of steps, ``v·tanh(W h_t)``
        (attention pooling as in Raffel & Ellis 2015 and attention-RNN keyword spotting).
    """

    MODES = ("max", "mean", "attention")

    def __init__(self, mode="max", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        self.supports_masking = True
        if mode == "attention":
            # Sub-layers take this layer's policy, not the global one (which is float32 when
            # a mixed precision model is loaded).
            self.attention_softmax = keras.layers.Softmax(axis=1, dtype=self.dtype_policy)

    def build(self, input_shape):
        if self.mode == "attention":
            features = input_shape[-1]
            self.attention_hidden = keras.layers.Dense(features, activation="tanh",
                                                       dtype=self.dtype_policy)
            self.attention_hidden.build(input_shape)
            self.attention_score = keras.layers.Dense(1, use_bias=False, dtype=self.dtype_policy)
            self.attention_score.build(tuple(input_shape[:-1]) + (features,))

    def call(self, inputs, mask=None):
        if mask is None and self.mode != "attention":
            return ops.max(inputs, axis=1) if self.mode == "max" else ops.mean(inputs, axis=1)
        if self.mode == "mean":
            # keras.layers.GlobalAveragePooling1D divides by zero on a fully masked row.
            weights = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
            count = ops.maximum(ops.sum(weights, axis=1), 1.0)
            return ops.sum(inputs * weights, axis=1) / count
        if self.mode == "max":
            valid = ops.expand_dims(ops.cast(mask, "bool"), -1)
            lowest = ops.full_like(inputs, float("-inf"))
            pooled = ops.max(ops.where(valid, inputs, lowest), axis=1)
            any_valid = ops.any(valid, axis=1)
            return ops.where(any_valid, pooled, ops.zeros_like(pooled))
        scores = self.attention_score(self.attention_hidden(inputs))[..., 0]
        weights = self.attention_softmax(scores, mask=mask)
        return ops.sum(inputs * ops.expand_dims(weights, -1), axis=1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(mode=self.mode)
        return config
