"""Sampling text from a trained character model, written once in TensorFlow ops.

The command line streams characters with ``CharacterSampler.stream`` (one ``advance``
per character); the exported ``generate`` signature runs the same ``start`` / ``pick``
/ ``advance`` steps in a ``tf.while_loop``. Step ``i`` draws from a stateless random
generator seeded with ``(seed, i)``, so the same seed gives the same text both ways.
"""

from __future__ import annotations

import tensorflow as tf

from lstmkit.tasks.textgen.model import PADDING_ID, SPECIAL_IDS, output_logits, run_layers

# An empty prompt starts a new line of text.
EMPTY_PROMPT = "\n"


def prompts_or_newline(prompts):
    return tf.where(tf.equal(prompts, ""), EMPTY_PROMPT, prompts)


class CharacterSampler:
    """The layers of a ``tasks.textgen.model`` model, run for generation."""

    def __init__(self, model):
        self.model = model
        self.characters = model.get_layer("characters")
        self.vocabulary = tf.constant(self.characters.get_vocabulary())

    def start(self, prompts):
        """Read the prompts; return the next-character logits and the LSTM states."""
        ids = self.characters(prompts_or_newline(prompts))
        # Masked (padding) steps carry the state on, so each prompt's final state is
        # the one after its own last character.
        _, states = run_layers(self.model, ids, mask=tf.not_equal(ids, PADDING_ID))
        return output_logits(self.model, states[-2]), states

    def advance(self, ids, states):
        """Feed one character id per row; return the next logits and the new states."""
        outputs, states = run_layers(self.model, ids[:, None], states)
        return output_logits(self.model, outputs[:, 0]), states

    @staticmethod
    def pick(logits, temperature, top_k, top_p, seed, step):
        """The next id per row: greedy at temperature 0, otherwise a draw from the
        temperature-scaled distribution cut to its ``top_k`` most likely characters
        (0: all) and to the smallest set holding ``top_p`` of the probability."""
        logits = tf.cast(logits, tf.float32)
        # Padding and out-of-vocabulary are never generated.
        logits = tf.concat([tf.fill([tf.shape(logits)[0], SPECIAL_IDS], float("-inf")),
                            logits[:, SPECIAL_IDS:]], axis=-1)
        greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
        scaled = logits / tf.maximum(temperature, 1e-6)
        size = tf.shape(scaled)[-1]
        k = tf.where(top_k > 0, tf.minimum(top_k, size), size)
        kth_largest = tf.math.top_k(scaled, k=k).values[:, -1:]
        scaled = tf.where(scaled < kth_largest, float("-inf"), scaled)
        descending = tf.sort(scaled, direction="DESCENDING")
        before = tf.math.cumsum(tf.nn.softmax(descending), axis=-1, exclusive=True)
        # The most likely character always stays; others while the mass before them < top_p.
        kept = tf.where(before < top_p, descending, float("inf"))
        scaled = tf.where(scaled < tf.reduce_min(kept, axis=-1, keepdims=True), float("-inf"), scaled)
        drawn = tf.random.stateless_categorical(
            scaled, 1, seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)]), dtype=tf.int32)[:, 0]
        return tf.where(temperature > 0, drawn, greedy)

    def generate(self, prompts, length, temperature, top_k, top_p, seed):
        """``length`` generated characters per prompt (without the prompt), in the graph."""
        logits, states = self.start(prompts)
        picked = tf.TensorArray(tf.int32, size=length)

        def body(step, logits, states, picked):
            ids = self.pick(logits, temperature, top_k, top_p, seed, step)
            logits, states = self.advance(ids, states)
            return step + 1, logits, states, picked.write(step, ids)

        _, _, _, picked = tf.while_loop(lambda step, *_: step < length, body,
                                        (tf.constant(0), logits, states, picked))
        ids = tf.transpose(picked.stack())
        return tf.strings.reduce_join(tf.gather(self.vocabulary, ids), axis=-1)

    def stream(self, prompt: str, length: int, temperature: float, top_k: int, top_p: float, seed: int):
        """Yield ``length`` characters after ``prompt`` one at a time (the same picks
        as ``generate`` with the same arguments)."""
        start = tf.function(self.start)
        advance = tf.function(self.advance)
        pick = tf.function(self.pick)
        logits, states = start(tf.constant([prompt]))
        arguments = (tf.constant(temperature, tf.float32), tf.constant(top_k, tf.int32),
                     tf.constant(top_p, tf.float32), tf.constant(seed, tf.int64))
        for step in range(length):
            ids = pick(logits, *arguments, tf.constant(step))
            yield self.vocabulary[int(ids[0])].numpy().decode("utf-8")
            if step + 1 < length:
                logits, states = advance(ids, states)
