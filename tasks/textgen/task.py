"""The text generation task wired onto the lstmkit task contract."""

from __future__ import annotations

import collections
import dataclasses
import math

import numpy as np

from lstmkit import data as data_lib
from lstmkit.errors import UserError
from lstmkit.task import DataSplits, Preprocessing, ServingSignature, Task
from lstmkit.tasks.textgen import config as textgen_config
from lstmkit.tasks.textgen import data as textgen_data
from lstmkit.tasks.textgen import model as textgen_model
from lstmkit.tasks.textgen.config import MAX_PROMPT_CHARACTERS
from lstmkit.tasks.textgen.search_space import search_space


@dataclasses.dataclass(frozen=True)
class TextgenPreprocessing(Preprocessing):
    #: The characters the model reads and writes, found in the training text.
    vocabulary: list[str]


class TextgenTask(Task):
    """Character-level language modelling: predict each next character of raw text."""

    name = "textgen"
    config_class = textgen_config.TextgenConfig
    preprocessing_class = TextgenPreprocessing
    objective = "val_loss"
    headline_metric = "bits_per_char"
    reported_metrics = ("loss", "nats_per_char", "bits_per_char", "perplexity")
    reported_counts = {"characters": "characters"}
    objective_direction = "min"
    default_data = "tfds:tiny_shakespeare"

    def tiny_config(self):
        return textgen_config.TINY

    def load_data(self, source: str, config) -> DataSplits:
        import tensorflow as tf

        settings = config.data
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

    def adapt(self, config, train_dataset) -> Preprocessing:
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

    def encode_labels(self, dataset, config, preprocessing: Preprocessing):
        import tensorflow as tf

        ids = textgen_model.character_ids(preprocessing.vocabulary)
        # Cached: the ids never change, and encoding them again each epoch costs time.
        return dataset.map(lambda text, target: (text, tf.cast(ids(target[None])[0], tf.int32))).cache()

    def training_batches(self, dataset, config, preprocessing: Preprocessing, seed: int):
        """Shuffled windows (``data.batching="windows"``), or batches in stream order for
        truncated backpropagation through time: the windows (in text order) are dealt
        into ``batch_size`` contiguous streams, and batch ``i`` holds window ``i`` of
        every stream. Every epoch sees the same order (the model carries each row's
        state on); the last windows that do not fill a batch are left out."""
        import tensorflow as tf

        if config.data.batching == "windows":
            return super().training_batches(dataset, config, preprocessing, seed)
        texts, targets = dataset.batch(data_lib.count(dataset)).get_single_element()
        streams = config.train.batch_size
        steps = int(texts.shape[0]) // streams
        order = np.arange(streams * steps).reshape(streams, steps).T
        return tf.data.Dataset.from_tensor_slices(
            (tf.gather(texts, order), tf.gather(targets, order))).prefetch(tf.data.AUTOTUNE)

    def placeholder_preprocessing(self, config) -> Preprocessing:
        # The printable ASCII characters and a newline: a typical English corpus.
        return TextgenPreprocessing(["\n"] + [chr(code) for code in range(32, 127)])

    def build_model(self, config, preprocessing: Preprocessing):
        return textgen_model.build_model(config, preprocessing.vocabulary)

    def loss(self, config):
        import keras

        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def search_space(self, hp, config):
        return search_space(hp, config)

    def label_names(self, config, preprocessing: Preprocessing) -> list[str]:
        return []  # the vocabulary is in the run's preprocessing.json and in the model

    def evaluate(self, model, dataset, config, preprocessing: Preprocessing) -> dict:
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
        for texts, targets in dataset.padded_batch(config.train.batch_size):
            loss, count = summed_loss(texts, targets)
            total, characters, windows = total + float(loss), characters + float(count), windows + len(texts)
        nats = total / characters
        return {"examples": windows, "characters": int(characters), "loss": nats,
                "nats_per_char": nats, "bits_per_char": nats / math.log(2), "perplexity": math.exp(nats)}

    def serving_signatures(self, config, preprocessing: Preprocessing,
                           max_generated_length: int | None = None) -> dict[str, ServingSignature]:
        import tensorflow as tf

        from lstmkit.task import MAX_SERVED_GENERATED_LENGTH
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

    def rejected_predict_inputs(self, config, preprocessing: Preprocessing, items: list[str]) -> dict[str, str]:
        return {item: f"{len(item):,} characters; at most {MAX_PROMPT_CHARACTERS:,} are read (keep the end of it)"
                for item in items if len(item) > MAX_PROMPT_CHARACTERS}

    def generate(self, config, model, prompt: str, length: int, sampling: dict, seed: int):
        from lstmkit.tasks.textgen.generation import CharacterSampler

        if len(prompt) > MAX_PROMPT_CHARACTERS:
            raise UserError(f"the prompt has {len(prompt):,} characters; at most {MAX_PROMPT_CHARACTERS:,} are read "
                            "(keep the end of it)")
        return CharacterSampler(model).stream(prompt, length, seed=seed, **sampling)

    def parse_predict_inputs(self, config, items: list[str]):
        import tensorflow as tf

        from lstmkit.tasks.textgen.generation import EMPTY_PROMPT

        return tf.constant([item or EMPTY_PROMPT for item in items], tf.string)

    def prediction_records(self, config, preprocessing: Preprocessing, model, items: list[str], outputs) -> list[dict]:
        """The five most likely next characters after each input."""
        vocabulary = model.get_layer("characters").get_vocabulary()
        records = []
        for item, logits in zip(items, outputs):
            last = logits[max(len(item), 1) - 1, textgen_model.SPECIAL_IDS:].astype(np.float64)
            probabilities = np.exp(last - last.max())
            probabilities /= probabilities.sum()
            top = np.argsort(-probabilities)[:5]
            chars = [str(vocabulary[textgen_model.SPECIAL_IDS + i]) for i in top]
            records.append({
                "input": item,
                "next": {char: float(probabilities[i]) for char, i in zip(chars, top)},
                "text": "\t".join(f"{char!r} {probabilities[i]:.3f}" for char, i in zip(chars, top))
                + f"\t{item if len(item) <= 40 else '...' + item[-37:]}",
            })
        return records


TASK = TextgenTask()
