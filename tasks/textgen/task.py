"""The text generation task wired onto the lstmkit task contract."""

from __future__ import annotations

import collections
import dataclasses
import math

import numpy as np

from lstmkit import data as data_lib
from lstmkit.errors import UserError
from lstmkit.task import (DataSplits, Generative, Objective, PreparedInputs, Preprocessing, Report,
                          ServingSignature, Task)
from lstmkit.tasks.textgen import config as textgen_config
from lstmkit.tasks.textgen import data as textgen_data
from lstmkit.tasks.textgen.config import MAX_PROMPT_CHARACTERS
from lstmkit.tasks.textgen.search_space import search_space


@dataclasses.dataclass(frozen=True)
class TextgenPreprocessing(Preprocessing):
    #: The characters the model reads and writes, found in the training text.
    vocabulary: list[str]


class TextgenTask(Task, Generative):
    """Character-level language modelling: predict each next character of raw text."""

    name = "textgen"
    config_class = textgen_config.TextgenConfig
    preprocessing_class = TextgenPreprocessing
    objective = Objective("val_loss", "min")
    # No figures: the evaluation has no confusion matrix and no forecast to draw.
    report = Report(headline="bits_per_char", metrics=("loss", "nats_per_char", "bits_per_char", "perplexity"),
                    counts={"characters": "characters"})
    default_data = "tfds:tiny_shakespeare"
    # The model's module imports Keras (and registers CharacterModel): it is imported
    # where a model is built, or before one is loaded, never when the CLI only checks a
    # command line. generation.py registers no Keras objects.
    custom_object_modules = ("lstmkit.tasks.textgen.model",)

    def tiny_config(self):
        return textgen_config.TINY

    def search_space(self, hp, config):
        return search_space(hp, config)

    def load_data(self, source: str) -> DataSplits:
        import tensorflow as tf

        settings = self.config.data
        corpus = textgen_data.read_source(source, settings.validation_fraction, settings.test_fraction)
        train_text = corpus.train
        if settings.max_train_characters:
            train_text = train_text[:settings.max_train_characters]

        def dataset(text, key, part=None):
            window = getattr(settings, key)
            inputs, targets = textgen_data.windows(text, window)
            if not inputs and part:
                raise UserError(
                    f"the {part} text of {source} has {len(text):,} characters, fewer than one window of "
                    f"data.{key} + 1 = {window + 1}; use a longer text or lower the config value data.{key}"
                )
            return tf.data.Dataset.from_tensor_slices(
                (tf.constant(inputs, tf.string, shape=[len(inputs)]),
                 tf.constant(targets, tf.string, shape=[len(targets)])))

        # Too little training text is refused by adapt (before training), so that
        # evaluate can still score a short text.
        train = dataset(train_text, "sequence_length")
        validation = dataset(corpus.validation, "validation_length", "validation")
        test = validation if corpus.test is None else dataset(corpus.test, "validation_length", "test")
        return DataSplits(train, validation, test, f"{corpus.description}; {len(train_text):,} to train on")

    def adapt(self, train_dataset) -> Preprocessing:
        config = self.config
        windows, streams = data_lib.count(train_dataset), config.train.batch_size
        if windows == 0:
            raise UserError(
                f"the training text is shorter than one window of data.sequence_length + 1 = "
                f"{config.data.sequence_length + 1} characters; use a longer text or lower the config value "
                "data.sequence_length"
            )
        if config.data.batching == "streams" and windows < streams:
            raise UserError(
                f"the training text makes {windows} windows of {config.data.sequence_length} characters, "
                f"fewer than train.batch_size = {streams} streams; use a longer text or lower "
                "the config value train.batch_size or data.sequence_length"
            )
        counts = collections.Counter()
        for inputs, targets in train_dataset.as_numpy_iterator():
            # Each target is its input shifted by one: its last character is the only new one.
            counts.update(inputs.decode("utf-8") + targets.decode("utf-8")[-1:])
        # The most frequent characters (ties: code point order), listed in code point order.
        kept = sorted(counts, key=lambda char: (-counts[char], char))[:config.data.max_vocabulary]
        return TextgenPreprocessing(sorted(kept))

    def encode_labels(self, dataset):
        import tensorflow as tf

        from lstmkit.tasks.textgen import model as textgen_model

        ids = textgen_model.character_ids(self.preprocessing.vocabulary)
        # Cached: the ids never change, and encoding them again each epoch costs time.
        return dataset.map(lambda text, target: (text, tf.cast(ids(target[None])[0], tf.int32))).cache()

    def batches(self, dataset, *, training: bool = False, seed: int = 0):
        """For training: shuffled windows (``data.batching="windows"``), or batches in
        stream order for truncated backpropagation through time: the windows (in text
        order) are dealt into ``batch_size`` contiguous streams, and batch ``i`` holds
        window ``i`` of every stream. Every epoch sees the same order (the model carries
        each row's state on); the last windows that do not fill a batch are left out.
        For validation and evaluation: in order, the default."""
        config = self.config
        if not training or config.data.batching == "windows":
            return super().batches(dataset, training=training, seed=seed)
        import tensorflow as tf

        texts, targets = dataset.batch(data_lib.count(dataset)).get_single_element()
        streams = config.train.batch_size
        steps = int(texts.shape[0]) // streams
        order = np.arange(streams * steps).reshape(streams, steps).T
        return tf.data.Dataset.from_tensor_slices(
            (tf.gather(texts, order), tf.gather(targets, order))).prefetch(tf.data.AUTOTUNE)

    def placeholder_preprocessing(self) -> Preprocessing:
        # The printable ASCII characters and a newline: a typical English corpus.
        return TextgenPreprocessing(["\n"] + [chr(code) for code in range(32, 127)])

    def build_model(self):
        from lstmkit.tasks.textgen.model import build_model

        return build_model(self.config, self.preprocessing.vocabulary)

    def loss(self):
        import keras

        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def label_names(self) -> list[str]:
        return []  # the vocabulary is in the run's preprocessing.json and in the model

    def evaluate(self, model, dataset) -> dict:
        """Mean negative log-likelihood of every target character, from a zero state at
        each window's start, in nats, bits and perplexity."""
        import tensorflow as tf

        @tf.function
        def summed_loss(texts, targets):
            logits = tf.cast(model(texts, training=False), tf.float32)
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
            counted = tf.cast(tf.not_equal(targets, 0), tf.float32)
            return tf.reduce_sum(losses * counted), tf.reduce_sum(counted)

        total, characters, windows = 0.0, 0.0, 0
        # Padded: "--split all" joins training windows and longer validation windows;
        # padding targets (id 0) are not counted.
        for texts, targets in dataset.padded_batch(self.config.train.batch_size):
            loss, count = summed_loss(texts, targets)
            total, characters, windows = total + float(loss), characters + float(count), windows + len(texts)
        nats = total / characters
        return {"examples": windows, "characters": int(characters), "loss": nats,
                "nats_per_char": nats, "bits_per_char": nats / math.log(2), "perplexity": math.exp(nats)}

    def serving_signatures(self, max_generated_length: int | None = None) -> dict[str, ServingSignature]:
        import tensorflow as tf

        from lstmkit.task import MAX_SERVED_GENERATED_LENGTH
        from lstmkit.tasks.textgen import model as textgen_model
        from lstmkit.tasks.textgen.generation import CharacterSampler

        most = max_generated_length or MAX_SERVED_GENERATED_LENGTH

        def next_character(model):
            sampler = CharacterSampler(model)
            characters = sampler.vocabulary[textgen_model.SPECIAL_IDS:]

            def serve(text):
                logits, _ = sampler.start(text)
                probabilities = tf.nn.softmax(logits[:, textgen_model.SPECIAL_IDS:])
                batch = tf.shape(text)[0]
                return {
                    "probabilities": probabilities,
                    "next_character": tf.gather(characters, tf.argmax(probabilities, axis=-1)),
                    # One copy per row, so row-format (``instances``) requests work too.
                    "vocabulary": tf.tile(characters[None], [batch, 1]),
                }

            return serve

        def generate(model):
            sampler = CharacterSampler(model)

            def serve(prompt, length, temperature, seed):
                checks = [
                    tf.debugging.Assert(length >= 1, ["length must be >= 1"]),
                    tf.debugging.Assert(length <= most, [f"length must be <= {most:,} (the most this export "
                                                         "generates; export --max-generate-length raises it)"]),
                    tf.debugging.Assert(temperature >= 0, ["temperature must be >= 0"]),
                ]
                with tf.control_dependencies(checks):
                    generated = sampler.generate(prompt, length, temperature, tf.constant(0),
                                                 tf.constant(1.0), seed)
                return {"generated": generated}

            return serve

        prompt_limit = (MAX_PROMPT_CHARACTERS, "characters")
        return {
            "serving_default": ServingSignature(
                [tf.TensorSpec(shape=(None,), dtype=tf.string, name="text")], next_character,
                max_lengths={"text": prompt_limit}),
            "generate": ServingSignature([
                tf.TensorSpec(shape=(None,), dtype=tf.string, name="prompt"),
                tf.TensorSpec(shape=(), dtype=tf.int32, name="length"),
                tf.TensorSpec(shape=(), dtype=tf.float32, name="temperature"),
                tf.TensorSpec(shape=(), dtype=tf.int64, name="seed"),
            ], generate, batchable=False,  # random draws depend on the whole batch
                max_lengths={"prompt": prompt_limit}),
        }

    def generate(self, model, prompt: str, length: int, sampling: dict, seed: int):
        from lstmkit.tasks.textgen.generation import CharacterSampler

        if len(prompt) > MAX_PROMPT_CHARACTERS:
            raise UserError(f"the prompt has {len(prompt):,} characters; at most {MAX_PROMPT_CHARACTERS:,} are read "
                            "(keep the end of it)")
        return CharacterSampler(model).stream(prompt, length, seed=seed, **sampling)

    def preprocess(self, items: list[str], options: dict) -> PreparedInputs:
        """Prompts over ``MAX_PROMPT_CHARACTERS`` are refused; an empty one reads as a
        newline (the start of a line of text)."""
        rejected = {item: f"{len(item):,} characters; at most {MAX_PROMPT_CHARACTERS:,} are read (keep the end of it)"
                    for item in items if len(item) > MAX_PROMPT_CHARACTERS}
        items = [item for item in items if item not in rejected]
        if not items:
            return PreparedInputs([], None, rejected)
        import tensorflow as tf

        from lstmkit.tasks.textgen.generation import EMPTY_PROMPT

        return PreparedInputs(items, tf.constant([item or EMPTY_PROMPT for item in items], tf.string), rejected)

    def postprocess(self, items: list[str], outputs, options: dict, notes: dict | None = None) -> list[dict]:
        """The five most likely next characters after each input."""
        from lstmkit.tasks.textgen.model import SPECIAL_IDS

        # The model's "characters" layer holds padding and out-of-vocabulary, then this
        # vocabulary in order (model.character_ids): logit SPECIAL_IDS + i is vocabulary[i].
        vocabulary = self.preprocessing.vocabulary
        records = []
        for item, logits in zip(items, outputs):
            last = logits[max(len(item), 1) - 1, SPECIAL_IDS:].astype(np.float64)
            probabilities = np.exp(last - last.max())
            probabilities /= probabilities.sum()
            top = np.argsort(-probabilities)[:5]
            chars = [str(vocabulary[i]) for i in top]
            records.append({
                "input": item,
                "next": {char: float(probabilities[i]) for char, i in zip(chars, top)},
                "text": "\t".join(f"{char!r} {probabilities[i]:.3f}" for char, i in zip(chars, top))
                + f"\t{item if len(item) <= 40 else '...' + item[-37:]}",
            })
        return records


TASK = TextgenTask()
