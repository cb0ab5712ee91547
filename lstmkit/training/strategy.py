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

from lstmkit import keras_internals
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
        # Keras's own fit fails under this strategy without lstmkit's fix (keras_internals).
        keras_internals.patch_trainer_for_multi_worker()
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
