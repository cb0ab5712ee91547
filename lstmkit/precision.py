"""``train.precision``: the Keras dtype policy a model is built under.

``mixed_bfloat16`` keeps the weights in float32 and computes in bfloat16: on CPUs with AMX
or AVX-512 BF16, oneDNN runs bfloat16 matrix products at about twice the float32 rate
(../shared/FACTS.md). ``mixed_float16`` is the GPU's counterpart (Keras adds loss scaling
for it at compile time). Whatever the policy, each task's output layer computes in float32
(softmax and losses need the range), the activation regularizers are float32 losses, and
exported signatures keep float32 inputs and outputs.

``auto`` resolves per machine, from measurement (BENCHMARKS.md, "Mixed precision").
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

from lstmkit import keras_internals

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
# What "auto" picks where bfloat16 matrix products are fast. Measured on the quick
# benchmarks of three tasks (BENCHMARKS.md): see that section for why this is the choice.
AUTO_ON_BF16_CPU = "float32"


@functools.cache
def cpu_bf16_features() -> tuple[str, ...]:
    """The CPU's bfloat16 matrix features (Linux ``/proc/cpuinfo`` flags), if any."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return tuple(flag for flag in ("amx_bf16", "avx512_bf16") if flag in flags)
    return ()


def resolve(precision: str) -> tuple[str, str]:
    """The dtype policy for ``precision`` and, in words, why."""
    if precision != "auto":
        return precision, "train.precision"
    if _gpu_present():
        return "float32", "auto: a GPU is visible (mixed precision there is not measured yet)"
    features = cpu_bf16_features()
    if features:
        return AUTO_ON_BF16_CPU, f"auto: this CPU has {'/'.join(features)}"
    return "float32", "auto: this CPU has no bfloat16 matrix instructions"


def _gpu_present() -> bool:
    import keras

    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        # Physical devices: listing logical ones would start TensorFlow's runtime, after
        # which a multi-worker strategy can no longer be set up.
        return bool(tf.config.list_physical_devices("GPU"))
    from lstmkit.layers.regularized_lstm import gpu_visible

    return gpu_visible()


@contextlib.contextmanager
def dtype_policy(precision: str):
    """Build models inside this block under ``precision``'s policy (Keras layers read the
    global policy when they are created); the previous policy comes back afterwards."""
    import keras

    policy, _ = resolve(precision)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield policy
    finally:
        keras.config.set_dtype_policy(previous)


def _weighted_layers(model):
    return [layer for layer in keras_internals.all_layers(model)
            if getattr(layer, "dtype_policy", None) is not None and layer.weights]


def model_precision(model) -> str:
    """The mixed policy a built or loaded model computes under, or "float32"."""
    for layer in _weighted_layers(model):
        if layer.dtype_policy.compute_dtype != "float32":
            return layer.dtype_policy.name
    return "float32"


def layers_in_float32(model) -> list[str]:
    """Names of the layers with weights that compute in float32 while the model's policy is
    mixed (by design for output layers; anything else is a fallback worth knowing)."""
    return [layer.name for layer in _weighted_layers(model)
            if layer.dtype_policy.compute_dtype == "float32"]
