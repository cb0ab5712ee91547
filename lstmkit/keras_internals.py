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
- ``all_layers``: every layer inside a model, as ``Layer._flatten_layers`` lists them
  (Keras 3 has no public way to reach sublayers a layer keeps in its own attributes,
  such as ``SequencePooling``'s attention layers).

Keras Tuner (``keras_tuner.src``)
- ``bound_oracle_calls``: the timeout of a worker's calls to the chief, a module global
  of the oracle client (process-wide) that no argument reaches.
- ``OracleServicer`` and ``add_oracle_servicer``: the chief's gRPC service and its
  registration, which ``lstmkit.tuning.cluster`` serves itself to notice silent workers.
- ``trials_to_retry``: an oracle's queue of trials it will hand out again (``_retry_queue``),
  which no public method returns.

Each piece checks the installed version first against the range it was written for
(``KERAS_CHECKED``, ``KERAS_TUNER_CHECKED``) and then refuses, or falls back to what the
public API gives with a warning where that is safe (each says which); ``pyproject.toml``
pins the same upper bounds, so that a new release is taken only after these pieces are
checked again. uvicorn's private code has a module of its own in the same style
(``lstmkit.serving.uvicorn_internals``).
Nothing here imports Keras until it is called: the CLI's ``--help`` stays instant.
"""

from __future__ import annotations

import importlib
import logging

from lstmkit.errors import UserError

logger = logging.getLogger("lstmkit")

# The private code below is source-identical in these releases (compared file by file;
# keras 3.10's trainer unpacks its epoch iterator differently; Layer._flatten_layers and
# keras-tuner's oracle.py compared between keras 3.11.0 and 3.15.1, keras-tuner 1.4.7 and
# 1.4.8) and was run on keras 3.15.1 and keras-tuner 1.4.8. Widen a range only after
# reading the new release's code.
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


_WARNED: set = set()


def _warn_once(key: str, message: str, *args) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        logger.warning(message, *args)


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


def all_layers(model) -> list:
    """Every layer inside ``model`` at any depth, each once, without ``model`` itself:
    the layers of nested models, wrapped and bidirectional layers, RNN cells, and the
    sublayers a custom layer keeps in its attributes (``model._flatten_layers``).

    On a Keras outside ``KERAS_CHECKED`` (or without ``_flatten_layers``) this falls
    back, with a warning, to a walk over public attributes: ``Model.layers`` and each
    layer's attributes not named with an underscore that hold layers or lists of them.
    That finds the same layers in lstmkit's models but a nested ``Sequential``'s
    ``InputLayer``, which has no weights and no mask (tests/lstmkit/test_keras_internals.py
    compares the two); it misses sublayers kept in private attributes.
    """
    version = unchecked_version("keras", KERAS_CHECKED)
    if version is None and callable(getattr(model, "_flatten_layers", None)):
        return list(model._flatten_layers(include_self=False))
    _warn_once("all_layers", "keras %s is not one lstmkit was checked with (%s): a model's layers are listed by "
               "their public attributes, so a layer kept in a private attribute is missed",
               version or installed_version("keras"), KERAS_CHECKED)
    return public_layers(model)


def public_layers(model) -> list:
    """``all_layers`` without Keras's private code (its fallback)."""
    import keras

    def children(layer) -> list:
        found = list(layer.layers) if isinstance(layer, keras.Model) else []
        for name, value in vars(layer).items():
            if not name.startswith("_"):
                found += [item for item in (value if isinstance(value, (list, tuple)) else [value])
                          if isinstance(item, keras.layers.Layer)]
        return found

    layers, seen, pending = [], {id(model)}, children(model)
    while pending:
        layer = pending.pop(0)
        if id(layer) not in seen:
            seen.add(id(layer))
            layers.append(layer)
            pending[:0] = children(layer)
    return layers


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


def _check_keras_tuner_for_the_chief() -> None:
    version = unchecked_version("keras_tuner", KERAS_TUNER_CHECKED)
    if version is not None:
        raise UserError(f"lstmkit's search chief extends Keras Tuner's oracle service, written for keras-tuner"
                        f"{KERAS_TUNER_CHECKED}, but keras-tuner {version} is installed; install "
                        f"'keras-tuner{KERAS_TUNER_CHECKED}'")


def oracle_servicer_class():
    """Keras Tuner's gRPC servicer of an oracle (the chief's side of a distributed search).

    On a Keras Tuner outside ``KERAS_TUNER_CHECKED`` this refuses: the chief overrides
    the servicer's methods and reads its ``stop_triggered`` to notice silent workers and
    to end the search, and a renamed method would leave a search waiting for ever."""
    _check_keras_tuner_for_the_chief()
    from keras_tuner.src.distribute.oracle_chief import OracleServicer

    return OracleServicer


def add_oracle_servicer(servicer, server) -> None:
    """Register ``servicer`` on the ``grpc.server`` ``server``, as Keras Tuner's chief does
    (refused as ``oracle_servicer_class`` is)."""
    _check_keras_tuner_for_the_chief()
    from keras_tuner.src import protos

    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)


def trials_to_retry(oracle) -> list | None:
    """The ids of the trials ``oracle`` will hand out again (ended as INVALID, or taken
    back from a lost worker), or ``None`` where that cannot be read.

    On a Keras Tuner outside ``KERAS_TUNER_CHECKED`` (or an oracle without the queue)
    this is ``None``, with a warning: callers then assume a retry may be waiting, which
    costs at most one trial process that hears the search is over."""
    version = unchecked_version("keras_tuner", KERAS_TUNER_CHECKED)
    queue = getattr(oracle, "_retry_queue", None) if version is None else None
    if isinstance(queue, list):
        return list(queue)
    _warn_once("trials_to_retry", "keras-tuner %s is not one lstmkit was checked with (%s), or its oracle keeps "
               "no retry queue: a local search may start one trial process more than it needs",
               version or installed_version("keras_tuner"), KERAS_TUNER_CHECKED)
    return None
