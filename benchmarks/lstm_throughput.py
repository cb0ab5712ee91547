"""``lstm_throughput``: LSTM training tokens per second, same machine, same process.

Two shapes:

* **128 units** (the sentiment shape): token ids [64, 200] -> Embedding(20,000 x 128) -> one
  LSTM of 128 units -> Dense(1), trained with Adam on random tokens.
* **512 units** (the text-generation shape): [32, 128] -> Embedding(20,000 x 128) -> LSTM(512,
  return_sequences) -> Dense(1) per step, where the matrix products dominate.

Variants (each a fresh model):

  keras                         keras.layers.LSTM, Keras's default compile (XLA on CPU)
  keras_no_xla                  the same without XLA (like for like: RegularizedLSTM opts out)
  keras_recurrent_dropout(_no_xla)  keras.layers.LSTM(recurrent_dropout=0.25)
  lstmkit_regularized           RegularizedLSTM(weight_drop=0.5, variational_dropout=0.25,
                                output_dropout=0.25), its default CPU kernel for the width
  lstmkit_step_loop             the same forced onto the per-step loop (cpu_kernel="step")
  lstmkit_sequence_kernel       the same forced onto the sequence kernel (cpu_kernel="sequence")
  block_kernel                  TensorFlow's fused tf.raw_ops.BlockLSTMV2 (and its registered
                                gradient), weight-dropped kernel handed in: the path tried
  *_bf16                        the same under the mixed_bfloat16 policy
  torch                         torch.nn.LSTM without dropout (skipped, and said so, when
                                PyTorch is not installed), denormals flushed to zero as in TF

Variants are timed in interleaved rounds (a b c ... a b c ...) so drift in a shared
machine's speed hits all of them alike; each variant's figure is its best round.
GFLOP/s counts the LSTM's own work, 24·h·(x+h) FLOPs per training token (forward
8·h·(x+h), backward twice that), against large float32 and bfloat16 matrix products timed
here (the machine's practical peaks).
"""

from __future__ import annotations

import time

import numpy as np

VOCABULARY = 20_000
SHAPES = {
    "128": dict(batch=64, time_steps=200, embedding=128, hidden=128, sequences=False),
    "512": dict(batch=32, time_steps=128, embedding=128, hidden=512, sequences=True),
}
REGULARIZERS = dict(weight_drop=0.5, variational_dropout=0.25, output_dropout=0.25)


def flops_per_token(shape) -> int:
    return 24 * shape["hidden"] * (shape["embedding"] + shape["hidden"])


def block_kernel_layer(units: int, return_sequences: bool, weight_drop: float):
    """An LSTM layer on TensorFlow's BlockLSTMV2 op (gate order i, c, f, o; no forget bias
    inside, so Keras's unit forget bias is in the bias vector)."""
    import keras
    import tensorflow as tf

    class BlockKernelLSTM(keras.layers.Layer):
        def build(self, shape):
            self.kernel = self.add_weight(shape=(shape[-1] + units, 4 * units), initializer="glorot_uniform")
            bias = np.zeros(4 * units, "float32")
            bias[2 * units:3 * units] = 1.0
            self.bias = self.add_weight(shape=(4 * units,), initializer=keras.initializers.Constant(bias))
            self.seed = keras.random.SeedGenerator(1)

        def call(self, x, training=False):
            dtype = x.dtype
            kernel = tf.convert_to_tensor(self.kernel)
            if training and weight_drop:
                features = kernel.shape[0] - units
                recurrent = keras.random.dropout(kernel[features:], weight_drop, seed=self.seed)
                kernel = tf.concat([kernel[:features], recurrent], 0)
            time_major = tf.transpose(x, [1, 0, 2])
            zeros = tf.zeros((tf.shape(x)[0], units), dtype)
            peephole = tf.zeros((units,), dtype)
            h = tf.raw_ops.BlockLSTMV2(
                seq_len_max=tf.cast(tf.shape(x)[1], tf.int64), x=time_major, cs_prev=zeros, h_prev=zeros,
                w=tf.cast(kernel, dtype), wci=peephole, wcf=peephole, wco=peephole,
                b=tf.cast(self.bias, dtype), cell_clip=-1.0, use_peephole=False)[6]
            return tf.transpose(h, [1, 0, 2]) if return_sequences else h[-1]

    return BlockKernelLSTM()


def keras_variant(kind: str, shape: dict, seed: int, jit_compile="auto", policy="float32"):
    import keras

    from lstmkit.layers import RegularizedLSTM
    from lstmkit.precision import dtype_policy

    keras.utils.set_random_seed(seed)
    hidden, sequences = shape["hidden"], shape["sequences"]
    with dtype_policy(policy):
        if kind == "keras":
            lstm = keras.layers.LSTM(hidden, return_sequences=sequences)
        elif kind == "keras_recurrent_dropout":
            lstm = keras.layers.LSTM(hidden, recurrent_dropout=0.25, return_sequences=sequences)
        elif kind == "block_kernel":
            lstm = block_kernel_layer(hidden, sequences, REGULARIZERS["weight_drop"])
        else:
            cpu_kernel = {"lstmkit": "auto", "lstmkit_step": "step", "lstmkit_sequence": "sequence"}[kind]
            lstm = RegularizedLSTM(hidden, return_sequences=sequences, cpu_kernel=cpu_kernel, **REGULARIZERS)
        model = keras.Sequential([
            keras.Input((shape["time_steps"],), dtype="int32"),
            keras.layers.Embedding(VOCABULARY, shape["embedding"]),
            lstm,
            keras.layers.Dense(1, dtype="float32"),
        ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True), jit_compile=jit_compile)
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, VOCABULARY, (shape["batch"], shape["time_steps"]), dtype=np.int32)
    label_shape = (shape["batch"], shape["time_steps"], 1) if sequences else (shape["batch"], 1)
    labels = rng.integers(0, 2, label_shape).astype(np.float32)

    def run(steps: int) -> float:
        started = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(tokens, labels)
        return time.perf_counter() - started

    return run


def torch_variant(shape: dict, seed: int):
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(seed)
    # TensorFlow flushes denormal floats to zero; PyTorch does not by default, and on this
    # CPU its LSTM backward then runs about 20x slower (measured: 7k vs 150k tokens/s).
    torch.set_flush_denormal(True)
    sequences = shape["sequences"]

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(VOCABULARY, shape["embedding"])
            self.lstm = torch.nn.LSTM(shape["embedding"], shape["hidden"], batch_first=True)
            self.dense = torch.nn.Linear(shape["hidden"], 1)

        def forward(self, tokens):
            outputs, _ = self.lstm(self.embedding(tokens))
            return self.dense(outputs if sequences else outputs[:, -1])

    model = Model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, VOCABULARY, (shape["batch"], shape["time_steps"]), generator=generator)
    label_shape = (shape["batch"], shape["time_steps"], 1) if sequences else (shape["batch"], 1)
    labels = torch.randint(0, 2, label_shape, generator=generator).float()

    def run(steps: int) -> float:
        started = time.perf_counter()
        for _ in range(steps):
            optimizer.zero_grad()
            loss_fn(model(tokens), labels).backward()
            optimizer.step()
        return time.perf_counter() - started

    return run


def matmul_peak_gflops(dtype: str = "float32", size: int = 2048, repeats: int = 10) -> float:
    """A large matrix product through TensorFlow (oneDNN; AMX for bfloat16 where the CPU has
    it): the practical peak here."""
    import tensorflow as tf

    a = tf.cast(tf.random.normal((size, size)), dtype)
    b = tf.cast(tf.random.normal((size, size)), dtype)
    tf.matmul(a, b).numpy()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeats):
            c = tf.matmul(a, b)
        c.numpy()
        best = min(best, (time.perf_counter() - started) / repeats)
    return 2 * size**3 / best / 1e9


def variants_for(shape_name: str, seed: int) -> dict:
    shape = SHAPES[shape_name]
    variants = {
        "keras": keras_variant("keras", shape, seed),
        "keras_no_xla": keras_variant("keras", shape, seed, jit_compile=False),
        "lstmkit_regularized": keras_variant("lstmkit", shape, seed),
        "lstmkit_step_loop": keras_variant("lstmkit_step", shape, seed),
        "lstmkit_sequence_kernel": keras_variant("lstmkit_sequence", shape, seed),
        "block_kernel": keras_variant("block_kernel", shape, seed, jit_compile=False),
        "keras_no_xla_bf16": keras_variant("keras", shape, seed, jit_compile=False, policy="mixed_bfloat16"),
        "lstmkit_regularized_bf16": keras_variant("lstmkit", shape, seed, policy="mixed_bfloat16"),
    }
    if shape_name == "128":
        variants["keras_recurrent_dropout"] = keras_variant("keras_recurrent_dropout", shape, seed)
        variants["keras_recurrent_dropout_no_xla"] = keras_variant("keras_recurrent_dropout", shape, seed,
                                                                   jit_compile=False)
    torch_run = torch_variant(shape, seed)
    if torch_run is not None:
        variants["torch"] = torch_run
    return variants


def measure(shape_name: str, seed: int, steps: int, rounds: int) -> dict:
    shape = SHAPES[shape_name]
    variants = variants_for(shape_name, seed)
    for variant in variants.values():  # compile / warm up
        variant(2)
    best = {name: float("inf") for name in variants}
    tokens = steps * shape["batch"] * shape["time_steps"]
    for round_index in range(rounds):
        for name, variant in variants.items():
            seconds = variant(steps)
            best[name] = min(best[name], seconds)
            print(f"{shape_name} units, round {round_index + 1}: {name:<32} {tokens / seconds:>9,.0f} tokens/s")
    return {name: tokens / seconds for name, seconds in best.items()}


def ratio(rates: dict, a: str, b: str):
    return round(rates[a] / rates[b], 3) if a in rates and b in rates else None


def run(quick: bool, seed: int) -> dict:
    steps, rounds = (3, 2) if quick else (10, 3)
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        print("torch not installed: the torch variant is skipped (pip install torch to add it)")
    rates = {shape_name: measure(shape_name, seed, steps, rounds) for shape_name in SHAPES}
    peaks = {"float32": matmul_peak_gflops("float32"), "bfloat16": matmul_peak_gflops("bfloat16")}
    small, wide = rates["128"], rates["512"]
    gflops = {shape_name: {name: rate * flops_per_token(SHAPES[shape_name]) / 1e9 for name, rate in by_name.items()}
              for shape_name, by_name in rates.items()}

    def fraction(shape_name, name):
        peak = peaks["bfloat16" if name.endswith("_bf16") else "float32"]
        return round(gflops[shape_name][name] / peak, 3)

    return {
        "metric": "ratio_vs_keras",
        "value": ratio(small, "lstmkit_regularized", "keras"),
        "ratio_vs_keras": ratio(small, "lstmkit_regularized", "keras"),
        "ratio_vs_keras_no_xla": ratio(small, "lstmkit_regularized", "keras_no_xla"),
        "ratio_vs_keras_recurrent_dropout": ratio(small, "lstmkit_regularized", "keras_recurrent_dropout"),
        "ratio_vs_torch": ratio(small, "lstmkit_regularized", "torch"),
        "ratio_vs_keras_512": ratio(wide, "lstmkit_regularized", "keras"),
        "ratio_vs_keras_no_xla_512": ratio(wide, "lstmkit_regularized", "keras_no_xla"),
        "ratio_vs_torch_512": ratio(wide, "lstmkit_regularized", "torch"),
        "sequence_kernel_vs_step_loop": {"128": ratio(small, "lstmkit_sequence_kernel", "lstmkit_step_loop"),
                                         "512": ratio(wide, "lstmkit_sequence_kernel", "lstmkit_step_loop")},
        "block_kernel_vs_lstmkit": {"128": ratio(small, "block_kernel", "lstmkit_regularized"),
                                    "512": ratio(wide, "block_kernel", "lstmkit_regularized")},
        "bf16_speedup": ratio(wide, "lstmkit_regularized_bf16", "lstmkit_regularized"),
        "bf16_speedup_128": ratio(small, "lstmkit_regularized_bf16", "lstmkit_regularized"),
        "keras_bf16_speedup": {"128": ratio(small, "keras_no_xla_bf16", "keras_no_xla"),
                               "512": ratio(wide, "keras_no_xla_bf16", "keras_no_xla")},
        "tokens_per_second": {shape_name: {name: round(rate) for name, rate in by_name.items()}
                              for shape_name, by_name in rates.items()},
        "gflops": {shape_name: {name: round(value, 1) for name, value in by_name.items()}
                   for shape_name, by_name in gflops.items()},
        "matmul_peak_gflops": {dtype: round(peak, 1) for dtype, peak in peaks.items()},
        "fraction_of_peak": {shape_name: {name: fraction(shape_name, name) for name in by_name}
                             for shape_name, by_name in gflops.items()},
        "shapes": SHAPES,
        "steps_per_round": steps,
        "rounds": rounds,
    }
