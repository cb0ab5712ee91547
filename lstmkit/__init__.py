"""lstmkit: regularized LSTM networks in Keras, trained, tuned, evaluated and exported
against one task contract.

This package knows no task. Tasks live in the top-level ``tasks`` package and
implement :class:`lstmkit.task.Task`. Importing ``lstmkit`` itself is cheap; the
TensorFlow-heavy modules (``layers``, ``training``, ``export``...) are imported on use.
"""

__version__ = "0.1.0"
