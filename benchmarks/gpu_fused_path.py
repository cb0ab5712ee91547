"""Device check: on a CUDA GPU, which LSTM variants reach cuDNN, and how fast they train.

Runs Keras on the PyTorch backend (``KERAS_BACKEND=torch``; TensorFlow's GPU wheel is
not available on the lent GPU machines), where ``keras.layers.LSTM`` hands its weights
to cuDNN through ``keras.src.backend.torch.rnn._cudnn_lstm``. The check counts calls to
that function during one training step of each variant, then times training in tokens
per second with the ``lstm_throughput`` shapes (batch 64, 200 steps, embedding 128,
hidden 128, vocabulary 20,000). Usage: ``KERAS_BACKEND=torch python
benchmarks/gpu_fused_path.py``; the last line is one JSON object.
"""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import importlib  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from lstmkit.layers import RegularizedLSTM  # noqa: E402

BATCH, STEPS, EMBEDDING, HIDDEN, VOCABULARY = 64, 200, 128, 128, 20_000
# The module, not the `rnn` function that keras.src.backend.torch exports under that name.
torch_rnn = importlib.import_module("keras.src.backend.torch.rnn")
calls = {"cudnn": 0}
original = torch_rnn._cudnn_lstm


def counting_cudnn_lstm(*args, **kwargs):
    calls["cudnn"] += 1
    return original(*args, **kwargs)


torch_rnn._cudnn_lstm = counting_cudnn_lstm

VARIANTS = {
    "keras LSTM": lambda: keras.layers.LSTM(HIDDEN),
    "keras LSTM(recurrent_dropout=0.25)": lambda: keras.layers.LSTM(HIDDEN, recurrent_dropout=0.25),
    "RegularizedLSTM(weight_drop=0.5, variational=0.25, output=0.25)": lambda: RegularizedLSTM(
        HIDDEN, weight_drop=0.5, variational_dropout=0.25, output_dropout=0.25),
    "RegularizedLSTM(+AR/TAR, L2)": lambda: RegularizedLSTM(
        HIDDEN, weight_drop=0.5, variational_dropout=0.25, output_dropout=0.25, activation_l2=2.0,
        temporal_activation_l2=1.0, kernel_regularizer="l2", recurrent_regularizer="l2"),
    "RegularizedLSTM(zoneout=0.1)": lambda: RegularizedLSTM(HIDDEN, zoneout_cell=0.1, zoneout_hidden=0.1),
    "RegularizedLSTM(layer_norm)": lambda: RegularizedLSTM(HIDDEN, layer_norm=True),
}


def main():
    quick = "--quick" in sys.argv
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, VOCABULARY, (BATCH, STEPS), dtype=np.int32)
    labels = rng.integers(0, 2, (BATCH, 1)).astype(np.float32)
    results = {}
    for name, make in VARIANTS.items():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((STEPS,), dtype="int32"),
                                  keras.layers.Embedding(VOCABULARY, EMBEDDING), make(),
                                  keras.layers.Dense(1)])
        model.compile(keras.optimizers.Adam(1e-3), keras.losses.BinaryCrossentropy(from_logits=True))
        model.train_on_batch(tokens, labels)
        calls["cudnn"] = 0
        model.train_on_batch(tokens, labels)
        fused = calls["cudnn"] > 0
        steps = 3 if quick else (20 if fused else 5)
        best = float("inf")
        for _ in range(2):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            started = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(tokens, labels)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - started)
        results[name] = {"fused_cudnn": fused, "tokens_per_second": round(steps * BATCH * STEPS / best)}
        print(f"{name:<66} fused={fused!s:<5} {results[name]['tokens_per_second']:>12,} tokens/s", flush=True)
    keras_rate = results["keras LSTM"]["tokens_per_second"]
    ours = results["RegularizedLSTM(weight_drop=0.5, variational=0.25, output=0.25)"]["tokens_per_second"]
    slow = results["keras LSTM(recurrent_dropout=0.25)"]["tokens_per_second"]
    print(json.dumps({
        "benchmark": "gpu_fused_path", "backend": keras.config.backend(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "versions": {"keras": keras.__version__, "torch": torch.__version__},
        "metric": "ratio_vs_keras", "value": round(ours / keras_rate, 3),
        "ratio_vs_keras_recurrent_dropout": round(ours / slow, 3),
        "variants": results, "env_backend": os.environ.get("KERAS_BACKEND"),
    }))


if __name__ == "__main__":
    main()
