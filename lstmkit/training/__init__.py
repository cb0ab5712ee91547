"""Training, written once for every task.

- ``fit``: ``train(task, config, data_source)`` writes a run folder (resumable until it
  finishes), evaluates its best checkpoint and returns it as a ``lstmkit.run.Run``;
- ``setup``: what a run and a search both start from (data read, preprocessing adapted);
- ``pretrain``: language-model pretraining of a text task's encoder;
- ``epochs``: resuming a killed fit where it stopped;
- ``strategy``: ``tf.distribute`` strategies (one device, every local GPU, several
  machines) and the fixes multi-worker training needs in Keras.
"""

from lstmkit.training.fit import train

__all__ = ["train"]
