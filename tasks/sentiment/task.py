"""The sentiment task wired onto the lstmkit task contract."""

from __future__ import annotations

import dataclasses

import numpy as np

from lstmkit.data import bucketed, geometric_boundaries, seeded_split, take
from lstmkit.errors import UserError
from lstmkit.task import (ClassificationTask, DataSplits, PreparedInputs, Preprocessing, PretrainsText,
                          ReadsWholeSource, ServingSignature, TextEncoder)
from lstmkit.tasks.sentiment import config as sentiment_config
from lstmkit.tasks.sentiment import data as sentiment_data
from lstmkit.tasks.sentiment.search_space import search_space


def bucket_boundaries(config) -> tuple[int, ...]:
    """``data.bucket_boundaries``; for none, geometric ones below ``max_length``."""
    bounds = config.data.bucket_boundaries
    return geometric_boundaries(config.max_length) if bounds is None else bounds


def examples_dataset(examples):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(
        (tf.constant(examples.texts, tf.string), tf.constant(examples.labels, tf.int32)))


@dataclasses.dataclass(frozen=True)
class SentimentPreprocessing(Preprocessing):
    #: TextVectorization's vocabulary, adapted on the training texts (padding and
    #: out-of-vocabulary first).
    vocabulary: list[str]
    #: The wide part's n-grams (``wide_ngrams`` > 0), adapted on the training texts
    #: (out-of-vocabulary first); empty without one.
    ngram_vocabulary: list[str] = dataclasses.field(default_factory=list)


class SentimentTask(ClassificationTask, PretrainsText, ReadsWholeSource):
    """Binary sentiment classification of raw text (negative / positive)."""

    name = "sentiment"
    config_class = sentiment_config.SentimentConfig
    preprocessing_class = SentimentPreprocessing
    default_data = "tfds:imdb_reviews"
    sources_hint = sentiment_data.SOURCES_HINT
    # The model's module imports Keras: it is imported where a model is built, or before
    # one is loaded, never when the CLI only checks a command line.
    custom_object_modules = ("lstmkit.tasks.sentiment.model",)

    def tiny_config(self):
        return sentiment_config.TINY

    def search_space(self, hp, config):
        return search_space(hp, config)

    def load_data(self, source: str) -> DataSplits:
        settings = self.config.data
        if settings.test_source:
            sentiment_data.check_test_source(settings.test_source, source)
        raw = sentiment_data.read_source(source, settings.text_column, settings.label_column)
        sentiment_data.check_both_classes(raw.train, source)
        train, test, description = raw.train, raw.test, raw.description
        if settings.test_source:  # a second file instead of the source's own test split
            tested = sentiment_data.read_test_source(settings.test_source, settings.text_column,
                                                     settings.label_column)
            test, description = tested.train, f"{description}; test split: {tested.description}"
        elif test is None:
            kept, held_out = seeded_split(len(train.texts), settings.test_fraction, settings.split_seed)
            test = sentiment_data.Examples(take(train.texts, held_out), take(train.labels, held_out))
            train = sentiment_data.Examples(take(train.texts, kept), take(train.labels, kept))
        kept, held_out = seeded_split(len(train.texts), settings.validation_fraction, settings.split_seed + 1)
        validation = sentiment_data.Examples(take(train.texts, held_out), take(train.labels, held_out))
        if 0 < settings.max_train_examples < len(kept):
            sample = np.random.default_rng(settings.split_seed + 2).permutation(kept)
            kept = np.sort(sample[: settings.max_train_examples])
        train = sentiment_data.Examples(take(train.texts, kept), take(train.labels, kept))
        if not validation.texts or not test.texts:
            raise UserError(
                f"{source} has too few examples ({len(raw.train.texts)}) to hold out validation and test sets"
            )
        return DataSplits(examples_dataset(train), examples_dataset(validation), examples_dataset(test),
                          description)

    def load_all(self, source: str):
        # The source alone: a run's data.test_source does not join the file being scored.
        settings = self.config.data
        raw = sentiment_data.read_source(source, settings.text_column, settings.label_column)
        parts = [raw.train] if raw.test is None else [raw.train, raw.test]
        return examples_dataset(sentiment_data.Examples([text for part in parts for text in part.texts],
                                                        [label for part in parts for label in part.labels]))

    def adapt(self, train_dataset) -> Preprocessing:
        from lstmkit.tasks.sentiment import model as sentiment_model

        config = self.config
        layer = sentiment_model.vectorizer(config)
        layer.adapt(train_dataset.map(lambda text, label: text).batch(1024))
        vocabulary = [str(token) for token in layer.get_vocabulary()]
        if len(vocabulary) <= 2:  # padding and out-of-vocabulary only
            raise UserError("the training texts hold no words; give a source whose text column has text")
        ngrams = []
        if config.wide_ngrams:
            bag = sentiment_model.ngram_vectorizer(config)
            bag.adapt(train_dataset.map(lambda text, label: text).batch(1024))
            ngrams = [str(token) for token in bag.get_vocabulary()]
        return SentimentPreprocessing(vocabulary, ngrams)

    def batches(self, dataset, *, training: bool = False, seed: int = 0):
        """For training: shuffled, then grouped by length in tokens (``data.bucket_boundaries``)."""
        config = self.config
        bounds = bucket_boundaries(config)
        if not training or not bounds:
            return super().batches(dataset, training=training, seed=seed)
        import tensorflow as tf

        from lstmkit.tasks.sentiment.model import token_count

        count = token_count(config)
        return bucketed(dataset, config.train.batch_size,
                        lambda text, label: tf.minimum(count(text), config.max_length), bounds,
                        seed=seed, buffer=config.train.shuffle_buffer)

    def placeholder_preprocessing(self) -> Preprocessing:
        config = self.config
        # TextVectorization's own first two entries: padding and out-of-vocabulary.
        ngrams = ["[UNK]"] + [f"ngram{i}" for i in range(config.wide_vocab_size - 1)] if config.wide_ngrams else []
        return SentimentPreprocessing(["", "[UNK]"] + [f"word{i}" for i in range(config.vocab_size - 2)], ngrams)

    def build_model(self):
        from lstmkit.tasks.sentiment.model import build_model

        preprocessing = self.preprocessing
        return build_model(self.config, preprocessing.vocabulary, preprocessing.ngram_vocabulary)

    def text_encoder(self) -> TextEncoder:
        from lstmkit.tasks.sentiment import model as sentiment_model

        config, vocabulary = self.config, self.preprocessing.vocabulary
        return TextEncoder(
            settings=config.pretrain,
            tokenizer=lambda: sentiment_model.vectorizer(config, vocabulary),
            build=lambda tokens: sentiment_model.encode(config, len(vocabulary), tokens),
            embedding_layer="embedding",
            vocabulary_size=len(vocabulary),
            bidirectional=config.lstm.bidirectional,
            layers=config.lstm.layers,
            texts=lambda dataset: dataset.map(lambda text, label: text),
        )

    def label_names(self) -> list[str]:
        return list(sentiment_data.LABEL_NAMES)

    def serving_signatures(self, max_generated_length: int | None = None) -> dict[str, ServingSignature]:
        import tensorflow as tf

        outputs = self.classifier_outputs()

        def build(model):
            def serve(text):
                return outputs(model(text, training=False))

            return serve

        return {
            "serving_default": ServingSignature(
                [tf.TensorSpec(shape=(None,), dtype=tf.string, name="text")], build
            )
        }

    def preprocess(self, items: list[str], options: dict) -> PreparedInputs:
        import tensorflow as tf

        return PreparedInputs(items, tf.constant(items, tf.string))


TASK = SentimentTask()
