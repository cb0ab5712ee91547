"""Truncated backpropagation through time vs shuffled independent windows, for the
character language model: which way of cutting the training text trains better?

Both arms train the textgen model's own layers with the same custom step (Adam,
global-norm clipping, same learning rate, batch, window and number of characters):

- ``tbptt``: the training text is cut into ``batch`` contiguous streams; batch ``i``
  holds window ``i`` of every stream and starts from the (gradient-stopped) states the
  previous batch ended with, as AWD-LSTM and char-rnn train;
- ``windows``: the text is cut into non-overlapping windows, shuffled every epoch,
  each starting from a zero state (what ``train textgen`` does).

Each model is then scored on the validation text twice: in windows of
``validation_length`` characters from a zero state (the protocol of ``train textgen``
and of nanoGPT's block-256 baseline), and as one stream with the state carried over.
"""

from __future__ import annotations

import time

import numpy as np


def _layers(model):
    from lstmkit.layers import RegularizedLSTM

    recurrent = [layer for layer in model.layers if isinstance(layer, RegularizedLSTM)]
    return model.get_layer("embedding"), recurrent, model.get_layer("logits")


def _forward(model, ids, states, training):
    import tensorflow as tf

    embedding, recurrent, output = _layers(model)
    x = embedding(ids, training=training)
    new_states = []
    for index, layer in enumerate(recurrent):
        initial = None if states is None else states[2 * index:2 * index + 2]
        x, hidden, cell = layer(x, initial_state=initial, training=training)
        new_states += [hidden, cell]
    return tf.cast(output(x), tf.float32), new_states


def _stream_batches(ids, batch, window):
    """Batch i: window i of each of ``batch`` contiguous streams."""
    length = (len(ids) - 1) // batch
    streams = np.stack([ids[b * length:b * length + length + 1] for b in range(batch)])
    for start in range(0, length - window + 1, window):
        yield streams[:, start:start + window], streams[:, start + 1:start + window + 1]


def _window_batches(ids, batch, window, rng):
    count = (len(ids) - 1) // window
    order = rng.permutation(count)
    for first in range(0, count - batch + 1, batch):
        starts = order[first:first + batch] * window
        yield (np.stack([ids[s:s + window] for s in starts]),
               np.stack([ids[s + 1:s + window + 1] for s in starts]))


def _train(arm, config, vocabulary, train_ids, epochs, seed):
    import keras
    import tensorflow as tf

    from lstmkit.tasks.textgen.model import build_model

    keras.utils.set_random_seed(seed)
    model = build_model(config, vocabulary)
    optimizer = keras.optimizers.Adam(config.train.learning_rate, global_clipnorm=config.train.global_clipnorm)
    batch, window = config.train.batch_size, config.data.sequence_length

    @tf.function
    def step(inputs, targets, states):
        with tf.GradientTape() as tape:
            logits, new_states = _forward(model, inputs, states, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss, [tf.stop_gradient(state) for state in new_states]

    units = config.lstm.units
    zeros = [tf.zeros((batch, units)) for _ in range(2 * config.lstm.layers)]
    rng = np.random.default_rng(seed)
    characters, started = 0, time.perf_counter()
    for _ in range(epochs):
        states = zeros
        batches = (_stream_batches(train_ids, batch, window) if arm == "tbptt"
                   else _window_batches(train_ids, batch, window, rng))
        for inputs, targets in batches:
            # Windows start from zero; TBPTT carries the state on.
            _, carried = step(tf.constant(inputs), tf.constant(targets), states)
            states = carried if arm == "tbptt" else zeros
            characters += inputs.size
    return model, characters, time.perf_counter() - started


def _score(model, ids, window, carry):
    """Mean nats per character of ``ids`` (every character after the first)."""
    import tensorflow as tf

    forward = tf.function(lambda inputs, states: _forward(model, inputs, states, training=False))
    total, count, states = 0.0, 0, None
    for start in range(0, len(ids) - 1 - window + 1, window):
        inputs = tf.constant(ids[None, start:start + window])
        logits, new_states = forward(inputs, states) if states is not None else forward(inputs, None)
        targets = ids[None, start + 1:start + window + 1]
        total += float(tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)))
        count += targets.size
        states = new_states if carry else None
    return total / count


def run(text: str, overrides: list[str], epochs: int, seed: int, arms=("windows", "tbptt")) -> dict:
    from lstmkit import config as config_lib
    from lstmkit.tasks.textgen.config import TextgenConfig
    from lstmkit.tasks.textgen.data import split_text

    config = config_lib.apply_overrides(TextgenConfig(), overrides)
    corpus = split_text(text, config.data.validation_fraction, 0.0, "benchmark")
    vocabulary = sorted(set(corpus.train))
    index = {char: i + 2 for i, char in enumerate(vocabulary)}
    train_ids = np.array([index[c] for c in corpus.train], np.int32)
    validation_ids = np.array([index.get(c, 1) for c in corpus.validation], np.int32)
    results = {}
    for arm in arms:
        model, characters, seconds = _train(arm, config, vocabulary, train_ids, epochs, seed)
        window = config.data.validation_length
        results[arm] = {
            "validation_nats_windows": round(_score(model, validation_ids, window, carry=False), 4),
            "validation_nats_stream": round(_score(model, validation_ids, window, carry=True), 4),
            "train_characters": characters,
            "train_seconds": round(seconds, 1),
            "characters_per_second": round(characters / seconds),
        }
        print(arm, results[arm], flush=True)
    better = min(results, key=lambda arm: results[arm]["validation_nats_windows"])
    return {"metric": "validation_nats_per_char (windows from a zero state)",
            "value": results[better]["validation_nats_windows"], "better": better,
            "epochs": epochs, "config": config_lib.to_dict(config), **results,
            }
