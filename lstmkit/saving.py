"""Loading saved Keras models with every custom object lstmkit defines registered.

Keras registers a custom class when the module that defines it is imported, so a
model loaded in a fresh process only finds the classes whose modules that process
happened to import: a run trained with ``MaskedAccuracy`` failed to load in a new
``evaluate`` process because nothing there had imported ``lstmkit.metrics``. Every
load of a run goes through ``load_model``, which imports them all first. A task's own
custom objects are registered by importing the modules its ``custom_object_modules``
names (``lstmkit.run.load_model`` does, before calling this); its task module imports
no Keras.
"""

from __future__ import annotations

import importlib
from pathlib import Path

# Every lstmkit module that defines a ``register_keras_serializable`` class (a test
# checks this list against the source).
CUSTOM_OBJECT_MODULES = (
    "lstmkit.layers",
    "lstmkit.metrics",
)


def register_custom_objects() -> None:
    for module in CUSTOM_OBJECT_MODULES:
        importlib.import_module(module)


def load_model(path: str | Path):
    """``keras.saving.load_model`` after registering lstmkit's custom objects."""
    import keras

    register_custom_objects()
    return keras.saving.load_model(path)
