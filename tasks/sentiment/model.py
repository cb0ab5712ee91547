"""The sentiment classifier: raw text in, class probabilities out."""

import keras

from lstmkit.layers import (
    EmbeddingDropout,
    SequencePooling,
    TruncateSequence,
    scaled_rate,
)
from lstmkit.tasks.sentiment.config import SentimentConfig
from lstmkit.tasks.sentiment.data import LABEL_NAMES


@keras.saving.register_keras_serializable(package="lstmkit")
def lower_and_split_punctuation(text):
    """Lower-case, turn HTML line breaks (IMDB's ``<br />``) into spaces, and make every
    punctuation mark its own token: "great!" and "great" share a word, and "!" and "?"
    still count."""
    import tensorflow as tf

    text = tf.strings.lower(text)
    text = tf.strings.regex_replace(text, r"<br\s*/?>", " ")
    return tf.strings.regex_replace(text, r"([^\w\s'])", r" \1 ")


STANDARDIZERS = {
    "split_punctuation": lower_and_split_punctuation,
    "strip_punctuation": "lower_and_strip_punctuation",
}


def token_count(config: SentimentConfig):
    """A TensorFlow function: the tokens of a text as the vectorizer splits it (for length
    bucketing). Exact for split_punctuation; for strip_punctuation, words between spaces
    (a token of punctuation alone would be removed: rare)."""
    import tensorflow as tf

    @tf.autograph.experimental.do_not_convert  # plain TensorFlow ops; nothing to convert
    def count(text):
        if config.standardize == "split_punctuation":
            text = lower_and_split_punctuation(text)
        return tf.size(tf.strings.split(text))

    return count


def vectorizer(config: SentimentConfig, vocabulary=None) -> keras.layers.TextVectorization:
    """Standardizes text (``config.standardize``), splits on whitespace and maps words to
    ids (0 = padding, 1 = out of vocabulary)."""
    return keras.layers.TextVectorization(
        max_tokens=config.vocab_size, standardize=STANDARDIZERS[config.standardize],
        vocabulary=vocabulary, name="vectorize",
    )


def encode(config: SentimentConfig, vocabulary_size: int, tokens, return_sequences: bool = True):
    """Word ids -> the LSTM stack's outputs: the encoder that language-model
    pretraining trains (``SentimentTask.text_encoder``) and the classifier reuses."""
    multiplier = config.dropout_multiplier
    x = EmbeddingDropout(vocabulary_size, config.embedding_dim,
                         rate=scaled_rate(config.embedding_dropout, multiplier),
                         mask_zero=True, name="embedding")(tokens)
    return config.lstm.apply(x, return_sequences=return_sequences, dropout_multiplier=multiplier)


def ngram_vectorizer(config: SentimentConfig, vocabulary=None) -> keras.layers.TextVectorization:
    """The wide part's input: which of the vocabulary's 1- to ``wide_ngrams``-word
    n-grams a text holds (multi-hot; entry 0 counts the others)."""
    return keras.layers.TextVectorization(
        max_tokens=config.wide_vocab_size, standardize=STANDARDIZERS[config.standardize],
        ngrams=config.wide_ngrams, output_mode="multi_hot", vocabulary=vocabulary, name="vectorize_ngrams",
    )


def build_model(config: SentimentConfig, vocabulary: list[str], ngram_vocabulary=()) -> keras.Model:
    text = keras.Input(shape=(), dtype="string", name="text")
    tokens = vectorizer(config, vocabulary)(text)
    tokens = TruncateSequence(config.max_length, name="truncate")(tokens)
    x = encode(config, len(vocabulary), tokens, return_sequences=config.pooling != "last")
    if config.pooling != "last":
        x = SequencePooling(config.pooling, name="pooling")(x)
    x = keras.layers.Dropout(scaled_rate(config.classifier_dropout, config.dropout_multiplier),
                             name="classifier_dropout")(x)
    if not config.wide_ngrams:
        probabilities = keras.layers.Dense(len(LABEL_NAMES), activation="softmax", name="probabilities",
                                           dtype="float32")(x)
        return keras.Model(text, probabilities, name="sentiment")
    # Wide & deep: the n-gram model's logits join the LSTM's before the softmax.
    bag = ngram_vectorizer(config, list(ngram_vocabulary))(text)
    bag = keras.layers.Dropout(scaled_rate(config.wide_dropout, config.dropout_multiplier), name="wide_dropout")(bag)
    wide = keras.layers.Dense(len(LABEL_NAMES), name="wide_logits", dtype="float32")(bag)
    deep = keras.layers.Dense(len(LABEL_NAMES), name="deep_logits", dtype="float32")(x)
    logits = keras.layers.Add(name="logits", dtype="float32")([deep, wide])
    probabilities = keras.layers.Activation("softmax", name="probabilities", dtype="float32")(logits)
    return keras.Model(text, probabilities, name="sentiment")
