"""Training, written once for every task.

- ``fit``: ``train(task, config, data_source)`` writes a run folder (resumable until it
  finishes) and evaluates its best checkpoint;
- ``strategy``: ``tf.distribute`` strategies (one device, every local GPU, several
  machines) and the fixes multi-worker training needs in Keras.
"""

from lstmkit.training.fit import RunResult, train

__all__ = ["RunResult", "train"]
