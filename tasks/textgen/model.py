"""The character language model: raw text in, next-character logits at every position out."""

import keras

from lstmkit.layers import EmbeddingDropout, scaled_rate
from tasks.textgen.config import TextgenConfig

# TextVectorization's own first two ids: 0 pads (and masks), 1 is out of vocabulary.
PADDING_ID, OUT_OF_VOCABULARY_ID = 0, 1
SPECIAL_IDS = 2


def character_ids(vocabulary: list[str], name: str = "characters") -> keras.layers.TextVectorization:
    """Splits raw strings into Unicode characters and maps them to ids (no
    standardization: case, spacing and punctuation are what the model learns)."""
    return keras.layers.TextVectorization(standardize=None, split="character",
                                          vocabulary=vocabulary, name=name)


def build_model(config: TextgenConfig, vocabulary: list[str]) -> keras.Model:
    """``vocabulary`` is the training text's characters, without the special ids."""
    text = keras.Input(shape=(), dtype="string", name="text")
    ids = character_ids(vocabulary)(text)
    size = len(vocabulary) + SPECIAL_IDS
    multiplier = config.dropout_multiplier
    embedding = EmbeddingDropout(size, config.embedding_dim,
                                 rate=scaled_rate(config.embedding_dropout, multiplier),
                                 mask_zero=True, reverse_bias=config.tie_embeddings, name="embedding")
    # The layers return their states so that generation can run them a step at a time.
    x, _ = config.lstm.apply(embedding(ids), return_sequences=True, dropout_multiplier=multiplier,
                             return_state=True)
    if config.tie_embeddings:
        logits = embedding(x, reverse=True)
    else:
        logits = keras.layers.Dense(size, name="logits")(x)
    return keras.Model(text, logits, name="textgen")
