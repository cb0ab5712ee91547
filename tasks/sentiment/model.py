"""The sentiment classifier: raw text in, class probabilities out."""

import keras

from lstmkit.layers import EmbeddingDropout, SequencePooling, TruncateSequence, stacked_lstm

from tasks.sentiment.config import SentimentConfig
from tasks.sentiment.data import LABEL_NAMES


def vectorizer(config: SentimentConfig, vocabulary=None) -> keras.layers.TextVectorization:
    """Lower-cases, strips punctuation, splits on whitespace, maps words to ids
    (0 = padding, 1 = out of vocabulary)."""
    return keras.layers.TextVectorization(
        max_tokens=config.vocab_size, vocabulary=vocabulary, name="vectorize"
    )


def build_model(config: SentimentConfig, vocabulary: list[str]) -> keras.Model:
    text = keras.Input(shape=(), dtype="string", name="text")
    tokens = vectorizer(config, vocabulary)(text)
    tokens = TruncateSequence(config.max_length, name="truncate")(tokens)
    x = EmbeddingDropout(len(vocabulary), config.embedding_dim, rate=config.embedding_dropout,
                         mask_zero=True, name="embedding")(tokens)
    lstm = config.lstm
    x = stacked_lstm(
        x,
        lstm.units,
        num_layers=lstm.layers,
        bidirectional=lstm.bidirectional,
        variational_dropout=lstm.variational_dropout,
        output_dropout=lstm.output_dropout,
        l2=lstm.l2,
        return_sequences=config.pooling != "last",
    )
    if config.pooling != "last":
        x = SequencePooling(config.pooling, name="pooling")(x)
    x = keras.layers.Dropout(config.classifier_dropout, name="classifier_dropout")(x)
    probabilities = keras.layers.Dense(len(LABEL_NAMES), activation="softmax", name="probabilities")(x)
    return keras.Model(text, probabilities, name="sentiment")
