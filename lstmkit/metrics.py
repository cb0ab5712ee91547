"""Keras metrics that skip positions a task does not score (padding, unresolved
residues), to go with ``SparseCategoricalCrossentropy(ignore_class=...)``."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lstmkit")
class MaskedAccuracy(keras.metrics.Mean):
    """Accuracy of ``argmax(y_pred)`` over the positions whose label is not
    ``ignore_class``; ignored positions count neither as right nor as wrong."""

    def __init__(self, ignore_class=-1, name="accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.ignore_class = ignore_class

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        counted = ops.cast(ops.not_equal(y_true, self.ignore_class), self.dtype)
        if sample_weight is not None:
            counted = counted * ops.cast(sample_weight, self.dtype)
        correct = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true), self.dtype)
        return super().update_state(correct, sample_weight=counted)

    def get_config(self):
        return {**super().get_config(), "ignore_class": self.ignore_class}
