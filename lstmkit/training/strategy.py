"""``tf.distribute`` strategies for ``train --strategy``: default, mirrored, multiworker.

- ``default``: TensorFlow's default strategy (one device).
- ``mirrored``: ``MirroredStrategy`` over every local GPU (one CPU replica without GPUs).
- ``multiworker``: ``MultiWorkerMirroredStrategy``; the cluster and this process's place
  in it come from ``TF_CONFIG``, checked first so that a bad one is one clear line.

The model and optimizer are built under ``strategy.scope()``; ``train.batch_size`` is the
batch per replica, so the global batch is ``batch_size * replicas``; the input pipeline is
sharded by batch across workers (every worker reads the same data and keeps its share).
"""

from __future__ import annotations

import json
import os

from lstmkit.errors import UserError

STRATEGIES = ("default", "mirrored", "multiworker")


def make_strategy(name: str):
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        check_tf_config(os.environ.get("TF_CONFIG"))
        patch_keras_for_multi_worker()
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")


def check_tf_config(text: str | None) -> dict:
    """The parsed ``TF_CONFIG``, or a UserError naming what is wrong with it."""
    fix = ('set TF_CONFIG to {"cluster": {"worker": ["host1:port", "host2:port"]}, '
           '"task": {"type": "worker", "index": 0}} (index: this process\'s place in the list)')
    if not text:
        raise UserError(f"the multiworker strategy needs TF_CONFIG; {fix}")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"TF_CONFIG is not valid JSON ({error.msg} at character {error.pos}); {fix}") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) \
            or not isinstance(config.get("task"), dict):
        raise UserError(f"TF_CONFIG needs a 'cluster' and a 'task' object; {fix}")
    cluster, task = config["cluster"], config["task"]
    addresses = []
    for job, members in cluster.items():
        if not isinstance(members, list) or not all(isinstance(member, str) for member in members):
            raise UserError(f"TF_CONFIG cluster.{job} must be a list of 'host:port' strings; {fix}")
        addresses += members
    repeated = sorted({address for address in addresses if addresses.count(address) > 1})
    if repeated:
        raise UserError(f"TF_CONFIG names {', '.join(repeated)} more than once; every worker needs its own "
                        "host:port")
    job, index = task.get("type"), task.get("index")
    if job not in cluster:
        raise UserError(f"TF_CONFIG task.type {job!r} is not a job of the cluster ({', '.join(cluster)}); {fix}")
    if not isinstance(index, int) or not 0 <= index < len(cluster[job]):
        raise UserError(f"TF_CONFIG task.index must be 0..{len(cluster[job]) - 1} for job {job!r}, "
                        f"got {index!r}")
    return config


def is_chief(strategy) -> bool:
    """Whether this process writes what the cluster shares (the run that counts)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs)


def shard_by_batch(dataset):
    """Each worker keeps every n-th batch (the data is not read from files, so TF's
    default of sharding by file would fall back to this with a warning)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


_PATCHED = False


def patch_keras_for_multi_worker() -> None:
    """Make Keras 3's ``fit`` work under ``MultiWorkerMirroredStrategy``.

    Keras 3.15's TensorFlow trainer fails there in two places
    (https://github.com/keras-team/keras/issues/20585): before the first step it averages
    a whole input batch across workers just to learn its shapes (and cannot convert the
    per-replica batch), and after every step it averages scalar metrics "along axis 0".
    The fix keeps both behaviours and changes only those two reductions: shapes come from
    this worker's own part of the batch, and scalars are averaged as scalars.
    """
    global _PATCHED
    if _PATCHED:
        return
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    reduce_per_replica = trainer.reduce_per_replica

    def reduce_scalars_too(values, strategy, reduction):
        if trainer._collective_all_reduce_multi_worker(strategy) and reduction in ("auto", "mean"):
            return tree.map_structure(
                lambda value: strategy.reduce("MEAN", value, axis=0 if value.shape.rank else None), values)
        return reduce_per_replica(values, strategy, reduction)

    def symbolic_build_from_local_batch(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None:
            return
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(
                    lambda value: self.distribute_strategy.experimental_local_results(value)[0]
                    if isinstance(value, tf.distribute.DistributedValues) else value, next(batches))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    trainer.reduce_per_replica = reduce_scalars_too
    trainer.TensorFlowTrainer._maybe_symbolic_build = symbolic_build_from_local_batch
    _PATCHED = True


def free_loopback_ports(count: int) -> list[int]:
    """``count`` TCP ports free on 127.0.0.1 right now, for a cluster of processes on one
    machine (the multi-worker test and benchmark)."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports
