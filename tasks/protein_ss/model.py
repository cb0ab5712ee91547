"""The secondary-structure tagger: raw amino-acid strings in, per-residue states out.

Letters → ids inside the model (``TextVectorization`` split into characters, upper-cased,
a fixed vocabulary of ``ALPHABET`` plus padding and an out-of-vocabulary id) → embedding
(joined by the per-residue sequence profile when the data has one) → parallel 1-D convolutions of several widths → stacked bidirectional ``RegularizedLSTM``
→ a softmax over the states at every residue.
"""

import keras

from lstmkit.layers import LockedDropout, PaddingMask, scaled_rate
from lstmkit.tasks.protein_ss.config import ProteinConfig
from lstmkit.tasks.protein_ss.data import ALPHABET

# TextVectorization's ids: 0 padding, 1 out of vocabulary, then ALPHABET in order.
SPECIAL_IDS = 2


def vectorizer() -> keras.layers.TextVectorization:
    return keras.layers.TextVectorization(
        standardize="lower", split="character", vocabulary=list(ALPHABET.lower()), name="residues",
    )


def build_model(config: ProteinConfig, profile_features: int = 0) -> keras.Model:
    """``profile_features`` > 0 adds a ``profile`` input (batch x residues x that many)."""
    sequence = keras.Input(shape=(), dtype="string", name="sequence")
    inputs = sequence
    ids = vectorizer()(sequence)
    # No mask on the embedding: convolutions drop masks (with a warning); PaddingMask
    # attaches it again before the LSTM, which must skip padding.
    x = keras.layers.Embedding(len(ALPHABET) + SPECIAL_IDS, config.embedding_dim, name="embedding")(ids)
    if profile_features:
        profile = keras.Input(shape=(None, profile_features), name="profile")
        inputs = {"sequence": sequence, "profile": profile}
        x = keras.layers.Concatenate(name="embedding_and_profile")([x, profile])
    multiplier = config.dropout_multiplier
    convolved = [keras.layers.Conv1D(config.conv_filters, size, padding="same", activation="relu",
                                     name=f"conv_{size}")(x) for size in config.conv_kernel_sizes]
    x = keras.layers.Concatenate(name="motifs")([x, *convolved])
    x = PaddingMask(name="padding_mask")([x, ids])
    x = LockedDropout(scaled_rate(config.conv_dropout, multiplier), name="conv_dropout")(x)
    x = config.lstm.apply(x, return_sequences=True, dropout_multiplier=multiplier)
    probabilities = keras.layers.Dense(config.states, activation="softmax", name="states",
                                       dtype="float32")(x)
    return keras.Model(inputs, probabilities, name="protein_ss")
