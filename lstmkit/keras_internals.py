"""The only module that touches Keras's or Keras Tuner's private code, and why.

Everywhere else lstmkit uses the public API (``keras.tree``, ``keras.ops``,
``keras_tuner.engine.trial``...); ``tests/lstmkit/test_keras_internals.py`` checks that
no other module under ``lstmkit/`` or ``tasks/`` imports ``keras.src`` or
``keras_tuner.src``. What follows has no public equivalent:

Keras (``keras.src``)
- ``fused_lstm`` and ``rnn``: the backend's fused LSTM (cuDNN on a GPU) and its generic
  masked time loop, the two functions ``keras.layers.LSTM.inner_loop`` itself calls.
  ``RegularizedLSTM`` hands the fused one a weight-dropped recurrent kernel and runs its
  own step on the loop; neither is in ``keras.ops`` or ``keras.backend``.
- ``patch_trainer_for_multi_worker``: a process-wide fix to the TensorFlow trainer,
  without which ``fit`` fails under ``MultiWorkerMirroredStrategy``.

Keras Tuner (``keras_tuner.src``)
- ``bound_oracle_calls``: the timeout of a worker's calls to the chief, a module global
  of the oracle client (process-wide) that no argument reaches.
- ``OracleServicer`` and ``add_oracle_servicer``: the chief's gRPC service and its
  registration, which ``lstmkit.tuning.cluster`` serves itself to notice silent workers.

The process-wide patches check the installed version first against the range they were
written for (``KERAS_CHECKED``, ``KERAS_TUNER_CHECKED``); ``pyproject.toml`` pins the same
upper bounds, so that a new release is taken only after these pieces are checked again.
Nothing here imports Keras until it is called: the CLI's ``--help`` stays instant.
"""

from __future__ import annotations

import importlib
import logging

from lstmkit.errors import UserError

logger = logging.getLogger("lstmkit")

# The private code below is source-identical in these releases (compared file by file;
# keras 3.10's trainer unpacks its epoch iterator differently) and was run on keras
# 3.15.1 and keras-tuner 1.4.8. Widen a range only after reading the new release's code.
KERAS_CHECKED = ">=3.11,<3.16"
KERAS_TUNER_CHECKED = ">=1.4.7,<1.5"


def installed_version(package: str) -> str:
    """The version of ``package`` this process runs (what the guards compare)."""
    return importlib.import_module(package).__version__


def unchecked_version(package: str, checked: str) -> str | None:
    """``None`` when the installed ``package`` is in the range ``checked``; otherwise
    the installed version."""
    from packaging.specifiers import SpecifierSet

    version = installed_version(package)
    return None if SpecifierSet(checked).contains(version, prereleases=True) else version


# ----------------------------------------------------------------------------- Keras
def fused_lstm(*args, **kwargs):
    """``keras.src.backend.lstm``: raises ``NotImplementedError`` where the backend has no
    fused kernel for these arguments (always on CPU)."""
    from keras.src import backend

    return backend.lstm(*args, **kwargs)


def rnn(*args, **kwargs):
    """``keras.src.backend.rnn``: the backend's time loop, with masks and ``go_backwards``
    handled as for ``keras.layers.LSTM``."""
    from keras.src import backend

    return backend.rnn(*args, **kwargs)


_TRAINER_PATCHED = False


def patch_trainer_for_multi_worker() -> None:
    """Make Keras 3's ``fit`` work under ``MultiWorkerMirroredStrategy``.

    Keras's TensorFlow trainer fails there in two places
    (https://github.com/keras-team/keras/issues/20585): before the first step it averages
    a whole input batch across workers just to learn its shapes (and cannot convert the
    per-replica batch), and after every step it averages scalar metrics "along axis 0".
    The fix keeps both behaviours and changes only those two reductions: shapes come from
    this worker's own part of the batch, and scalars are averaged as scalars.

    On a Keras outside ``KERAS_CHECKED`` this refuses rather than skips: without the fix
    multi-worker training fails or reports wrong metrics, and a replaced function whose
    original has changed could break every worker's ``fit`` silently.
    """
    global _TRAINER_PATCHED
    version = unchecked_version("keras", KERAS_CHECKED)
    if version is not None:
        raise UserError(f"the multiworker strategy needs lstmkit's fix to Keras's trainer, written for keras"
                        f"{KERAS_CHECKED}, but keras {version} is installed; install "
                        f"'keras{KERAS_CHECKED}' or train with another strategy")
    if _TRAINER_PATCHED:
        return
    import tensorflow as tf
    from keras import tree
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
    _TRAINER_PATCHED = True


# ----------------------------------------------------------------------- Keras Tuner
def bound_oracle_calls(seconds: float) -> bool:
    """Bound every call a worker makes to the chief to ``seconds`` (Keras Tuner's own
    bound is an hour); whether it was set.

    On a Keras Tuner outside ``KERAS_TUNER_CHECKED`` this skips with a warning rather than
    refuses: the bound only makes a lost chief noticed sooner, the search's results are the
    same without it, and setting a module global that a new release no longer reads would
    mislead.
    """
    version = unchecked_version("keras_tuner", KERAS_TUNER_CHECKED)
    if version is not None:
        logger.warning("keras-tuner %s is not one lstmkit was checked with (%s): calls to the tuning "
                       "chief keep Keras Tuner's own timeout (an hour), not %g s", version,
                       KERAS_TUNER_CHECKED, seconds)
        return False
    from keras_tuner.src.distribute import oracle_client

    oracle_client.TIMEOUT = seconds
    return True


def oracle_servicer_class():
    """Keras Tuner's gRPC servicer of an oracle (the chief's side of a distributed search)."""
    from keras_tuner.src.distribute.oracle_chief import OracleServicer

    return OracleServicer


def add_oracle_servicer(servicer, server) -> None:
    """Register ``servicer`` on the ``grpc.server`` ``server``, as Keras Tuner's chief does."""
    from keras_tuner.src import protos

    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
