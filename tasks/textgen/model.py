"""The character language model: raw text in, next-character logits at every position out.

With ``data.batching="streams"`` it trains by truncated backpropagation through time:
the training text is cut into ``batch_size`` contiguous streams, batch ``i`` holds window
``i`` of every stream, and each row starts from the LSTM state the same row ended the
previous batch with (gradients stop at the batch boundary). With ``"windows"`` every
shuffled window starts from a zero state. Validation, evaluation, prediction and export
run the plain functional model: every window or prompt starts from a zero state.
"""

import keras

from lstmkit.layers import EmbeddingDropout, RegularizedLSTM, scaled_rate
from lstmkit.tasks.textgen.config import TextgenConfig

# TextVectorization's own first two ids: 0 pads (and masks), 1 is out of vocabulary.
PADDING_ID, OUT_OF_VOCABULARY_ID = 0, 1
SPECIAL_IDS = 2


def character_ids(vocabulary: list[str], name: str = "characters") -> keras.layers.TextVectorization:
    """Splits raw strings into Unicode characters and maps them to ids (no
    standardization: case, spacing and punctuation are what the model learns)."""
    return keras.layers.TextVectorization(standardize=None, split="character",
                                          vocabulary=vocabulary, name=name)


def recurrent_layers(model) -> list:
    return [layer for layer in model.layers if isinstance(layer, RegularizedLSTM)]


def run_layers(model, ids, states=None, training=False, mask=None):
    """The model's embedding and LSTM layers on character ids, each LSTM starting from
    ``states`` (a flat ``[h, c, h, c, ...]`` list; None: zeros). Returns the last LSTM's
    outputs at every position (``output_logits`` turns them into logits) and the final
    states, in the same flat layout."""
    embedding = model.get_layer("embedding")
    x = embedding(ids, training=training)
    final_states = []
    for index, layer in enumerate(recurrent_layers(model)):
        initial = None if states is None else states[2 * index:2 * index + 2]
        x, hidden, cell = layer(x, initial_state=initial, mask=mask, training=training)
        final_states += [hidden, cell]
    return x, final_states


# The float32 cast after the tied embedding's output projection.
TIED_LOGITS = "tied_logits"


def output_logits(model, outputs):
    """Logits over the vocabulary from LSTM outputs (any leading shape)."""
    names = {layer.name for layer in model.layers}
    if "logits" in names:
        return model.get_layer("logits")(outputs)
    logits = model.get_layer("embedding")(outputs, reverse=True)  # tied embeddings
    # Runs trained before mixed precision existed have no float32 cast layer.
    return model.get_layer(TIED_LOGITS)(logits) if TIED_LOGITS in names else logits


class CarriedStates:
    """Each training row's LSTM states, handed from one batch to the next.

    Plain ``tf.Variable``s on a plain object, so Keras does not track them: they are
    training bookkeeping, neither saved with the model nor exported.
    """

    def __init__(self, batch_size: int, units: list[int]):
        import tensorflow as tf

        self.variables = [tf.Variable(tf.zeros((batch_size, width)), trainable=False)
                          for width in units for _ in ("h", "c")]


@keras.saving.register_keras_serializable(package="lstmkit")
class CharacterModel(keras.Model):
    """The functional character model with a training step that carries state (TBPTT).

    With ``carried`` set, its batches must be the same size and in stream order
    (``TextgenTask.batches`` with ``training=True``); without, it trains as any Keras model.
    The step is written with ``tf.GradientTape``: it trains on the TensorFlow backend.
    """

    # Set by build_model for stream batching; None trains each window from a zero state.
    carried = None

    @property
    def backup_variables(self) -> list:
        """The carried states, which lstmkit's run backup keeps: a resumed run carries
        on from where the interrupted one was, as an uninterrupted run would."""
        return [] if self.carried is None else self.carried.variables

    def train_step(self, data):
        import tensorflow as tf

        if self.carried is None:
            return super().train_step(data)
        texts, targets = data[:2]
        ids = self.get_layer("characters")(texts)
        with tf.GradientTape() as tape:
            outputs, states = run_layers(self, ids, [state.value() for state in self.carried.variables],
                                         training=True)
            logits = output_logits(self, outputs)
            loss = self.compute_loss(x=texts, y=targets, y_pred=logits, training=True)
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        for variable, state in zip(self.carried.variables, states):
            # Kept in float32; under mixed precision the layers return 16-bit states.
            variable.assign(tf.cast(tf.stop_gradient(state), variable.dtype))
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
        return self.compute_metrics(texts, targets, logits)


def build_model(config: TextgenConfig, vocabulary: list[str]) -> keras.Model:
    """``vocabulary`` is the training text's characters, without the special ids."""
    text = keras.Input(shape=(), dtype="string", name="text")
    ids = character_ids(vocabulary)(text)
    size = len(vocabulary) + SPECIAL_IDS
    multiplier = config.dropout_multiplier
    embedding = EmbeddingDropout(size, config.embedding_dim,
                                 rate=scaled_rate(config.embedding_dropout, multiplier),
                                 mask_zero=True, reverse_bias=config.tie_embeddings, name="embedding")
    # The layers return their states, so that training can carry them on and
    # generation can run them a step at a time.
    x, _ = config.lstm.apply(embedding(ids), return_sequences=True, dropout_multiplier=multiplier,
                             return_state=True)
    if config.tie_embeddings:
        # Float32 logits under a mixed precision policy too (sampling and the loss need them).
        logits = keras.layers.Activation("linear", dtype="float32", name=TIED_LOGITS)(
            embedding(x, reverse=True))
    else:
        logits = keras.layers.Dense(size, name="logits", dtype="float32")(x)
    model = CharacterModel(text, logits, name="textgen")
    if config.data.batching == "streams":
        model.carried = CarriedStates(config.train.batch_size, [config.lstm.units] * config.lstm.layers)
    return model
