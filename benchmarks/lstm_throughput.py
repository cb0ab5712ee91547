"""``lstm_throughput``: LSTM training tokens per second, same machine, same process.

Model: token ids [64, 200] -> Embedding(20,000 x 128) -> one LSTM of 128 units -> Dense(1),
trained with Adam on random tokens. Variants:

  (a) keras.layers.LSTM
  (b) keras.layers.LSTM(recurrent_dropout=0.25)
  (c) lstmkit RegularizedLSTM(weight_drop=0.5, variational_dropout=0.25, output_dropout=0.25)
  (d) torch.nn.LSTM without dropout (skipped, and said so, when PyTorch is not installed),
      with denormals flushed to zero as TensorFlow does

Every Keras model is compiled with Keras's defaults (``jit_compile="auto"``: XLA on CPU
for (a) and (b); RegularizedLSTM opts out of XLA, measured slower for it); (a) and (b)
are also timed without XLA, for a like-for-like ratio. Variants are timed in
interleaved rounds (a b c d a b c d ...) so drift in a shared machine's speed hits all
of them alike; each variant's figure is its best round.
GFLOP/s counts the LSTM's own work, 24·h·(x+h) FLOPs per training token (forward
8·h·(x+h), backward twice that), against a large float32 matrix product timed here.
"""

from __future__ import annotations

import time

import numpy as np

BATCH, TIME_STEPS, EMBEDDING, HIDDEN, VOCABULARY = 64, 200, 128, 128, 20_000
FLOPS_PER_TOKEN = 24 * HIDDEN * (EMBEDDING + HIDDEN)


def keras_variant(kind: str, seed: int, jit_compile="auto"):
    import keras

    from lstmkit.layers import RegularizedLSTM

    keras.utils.set_random_seed(seed)
    if kind == "keras":
        lstm = keras.layers.LSTM(HIDDEN)
    elif kind == "keras_recurrent_dropout":
        lstm = keras.layers.LSTM(HIDDEN, recurrent_dropout=0.25)
    else:
        lstm = RegularizedLSTM(HIDDEN, weight_drop=0.5, variational_dropout=0.25,
                               output_dropout=0.25)
    model = keras.Sequential([
        keras.Input((TIME_STEPS,), dtype="int32"),
        keras.layers.Embedding(VOCABULARY, EMBEDDING),
        lstm,
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True), jit_compile=jit_compile)
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, VOCABULARY, (BATCH, TIME_STEPS), dtype=np.int32)
    labels = rng.integers(0, 2, (BATCH, 1)).astype(np.float32)

    def run(steps: int) -> float:
        started = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(tokens, labels)
        return time.perf_counter() - started

    return run


def torch_variant(seed: int):
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(seed)
    # TensorFlow flushes denormal floats to zero; PyTorch does not by default, and on this
    # CPU its LSTM backward then runs about 20x slower (measured: 7k vs 150k tokens/s).
    torch.set_flush_denormal(True)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(VOCABULARY, EMBEDDING)
            self.lstm = torch.nn.LSTM(EMBEDDING, HIDDEN, batch_first=True)
            self.dense = torch.nn.Linear(HIDDEN, 1)

        def forward(self, tokens):
            outputs, _ = self.lstm(self.embedding(tokens))
            return self.dense(outputs[:, -1])

    model = Model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, VOCABULARY, (BATCH, TIME_STEPS), generator=generator)
    labels = torch.randint(0, 2, (BATCH, 1), generator=generator).float()

    def run(steps: int) -> float:
        started = time.perf_counter()
        for _ in range(steps):
            optimizer.zero_grad()
            loss_fn(model(tokens), labels).backward()
            optimizer.step()
        return time.perf_counter() - started

    return run


def matmul_peak_gflops(size: int = 2048, repeats: int = 10) -> float:
    """A large float32 matrix product through TensorFlow: the practical peak here."""
    import tensorflow as tf

    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    tf.matmul(a, b).numpy()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeats):
            c = tf.matmul(a, b)
        c.numpy()
        best = min(best, (time.perf_counter() - started) / repeats)
    return 2 * size**3 / best / 1e9


def run(quick: bool, seed: int) -> dict:
    steps, rounds = (5, 2) if quick else (20, 3)
    variants = {
        "keras": keras_variant("keras", seed),
        "keras_recurrent_dropout": keras_variant("keras_recurrent_dropout", seed),
        "lstmkit_regularized": keras_variant("lstmkit", seed),
        # Like for like: Keras's default compile uses XLA on CPU for (a) and (b), while
        # RegularizedLSTM opts out of XLA (it is slower there); these two run without it.
        "keras_no_xla": keras_variant("keras", seed, jit_compile=False),
        "keras_recurrent_dropout_no_xla": keras_variant("keras_recurrent_dropout", seed,
                                                        jit_compile=False),
    }
    torch_run = torch_variant(seed)
    if torch_run is None:
        print("torch not installed: variant (d) skipped (pip install torch==2.13.0 to add it)")
    else:
        variants["torch"] = torch_run
    for name, variant in variants.items():  # compile / warm up
        variant(3)
    best = {name: float("inf") for name in variants}
    for round_index in range(rounds):
        for name, variant in variants.items():
            seconds = variant(steps)
            best[name] = min(best[name], seconds)
            print(f"round {round_index + 1}: {name:<24} {steps * BATCH * TIME_STEPS / seconds:>9,.0f} tokens/s")
    tokens_per_second = {name: steps * BATCH * TIME_STEPS / seconds for name, seconds in best.items()}
    peak = matmul_peak_gflops()
    gflops = {name: rate * FLOPS_PER_TOKEN / 1e9 for name, rate in tokens_per_second.items()}
    ours = tokens_per_second["lstmkit_regularized"]
    ratio_vs_torch = ours / tokens_per_second["torch"] if "torch" in tokens_per_second else None
    return {
        "metric": "ratio_vs_keras",
        "value": round(ours / tokens_per_second["keras"], 3),
        "ratio_vs_keras": round(ours / tokens_per_second["keras"], 3),
        "ratio_vs_keras_recurrent_dropout": round(ours / tokens_per_second["keras_recurrent_dropout"], 3),
        "ratio_vs_torch": None if ratio_vs_torch is None else round(ratio_vs_torch, 3),
        "ratio_vs_keras_no_xla": round(ours / tokens_per_second["keras_no_xla"], 3),
        "ratio_vs_keras_recurrent_dropout_no_xla": round(
            ours / tokens_per_second["keras_recurrent_dropout_no_xla"], 3),
        "tokens_per_second": {name: round(rate) for name, rate in tokens_per_second.items()},
        "gflops": {name: round(value, 1) for name, value in gflops.items()},
        "matmul_peak_gflops": round(peak, 1),
        "fraction_of_peak": {name: round(value / peak, 3) for name, value in gflops.items()},
        "shape": {"batch": BATCH, "time_steps": TIME_STEPS, "embedding": EMBEDDING,
                  "hidden": HIDDEN, "vocabulary": VOCABULARY},
        "steps_per_round": steps,
        "rounds": rounds,
    }
