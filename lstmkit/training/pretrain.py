"""Language-model pretraining of a text task's encoder (ULMFiT, Howard & Ruder 2018;
ELMo's two directions, Peters et al. 2018), from the run's own training texts only.

Before a text task trains on its labels, its embedding and LSTM stack (``PretrainsText.text_encoder``)
learn to predict the next word of the training texts, joined into one stream and cut
into windows of ``pretrain.sequence_length`` words; a bidirectional stack's backward
direction learns to predict the previous word. The stack keeps every regularizer the
task configured (weight drop, variational and embedding dropout, AR/TAR). The output
layer is the embedding matrix itself (tied weights) with a bias, and training uses a
sampled softmax: with a vocabulary of tens of thousands of words, a full softmax costs
far more than the LSTM on a CPU, while ``pretrain.sampled_words`` candidates drawn
log-uniformly (the vocabulary is sorted by frequency) cost about as much as the LSTM.
Validation scores the exact softmax on the validation texts.

The pretrained weights then move into the task's model by layer name. A run keeps the
language model's ``pretrain_history.csv``; a killed run resumes pretraining from its
last complete epoch (``backup/pretrain``), like training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstmkit import precision
from lstmkit.errors import UserError

# The most validation windows scored with the exact softmax after each epoch: enough for
# a stable loss, a few seconds on 2 cores.
VALIDATION_WINDOWS = 256
# Share of the steps spent warming the learning rate up, and where its cosine ends.
WARMUP_SHARE = 0.1
FINAL_RATE_SHARE = 0.1
HISTORY_FILE = "pretrain_history.csv"


def word_stream(encoder, dataset) -> np.ndarray:
    """The word ids of every text of ``dataset`` (a split), in order, padding dropped."""
    import tensorflow as tf

    tokenizer = encoder.tokenizer()
    pieces = []
    for batch in encoder.texts(dataset).batch(1024).prefetch(tf.data.AUTOTUNE):
        ids = np.asarray(tokenizer(batch))
        pieces.append(ids[ids != 0])
    return np.concatenate(pieces).astype(np.int32) if pieces else np.zeros(0, np.int32)


def windows(stream: np.ndarray, length: int) -> np.ndarray:
    """Rows of ``length + 2`` consecutive words, starting every ``length`` words: each
    row's inner ``length`` words are the inputs, and every word of the stream is a
    target once per direction (the row's first and last words are targets only)."""
    count = (len(stream) - 2) // length
    starts = np.arange(count)[:, None] * length
    return stream[starts + np.arange(length + 2)[None, :]]


def language_model(encoder):
    """A Keras model from windows of ``sequence_length + 2`` word ids to the per-word
    loss, summed over directions; its losses are the cross-entropies' means."""
    import keras

    from lstmkit.layers import SampledSoftmaxLoss

    settings = encoder.settings
    ids = keras.Input(shape=(settings.sequence_length + 2,), dtype="int32", name="word_windows")
    features = encoder.build(ids[:, 1:-1])
    embedding = keras.Model(ids, features).get_layer(encoder.embedding_layer)
    width = embedding.output_dim
    directions = [("forward", ids[:, 2:])]
    if encoder.bidirectional:
        directions.append(("backward", ids[:, :-2]))
    units = features.shape[-1] // len(directions)
    losses = []
    for index, (direction, targets) in enumerate(directions):
        part = features[..., index * units:(index + 1) * units]
        if units != width:  # the tied output needs the embedding's width
            part = keras.layers.Dense(width, name=f"lm_{direction}_projection")(part)
        losses.append(SampledSoftmaxLoss(lambda: embedding.embeddings, settings.sampled_words,
                                 name=f"lm_{direction}_loss")(part, targets))
    total = losses[0] if len(losses) == 1 else keras.layers.Add(name="lm_loss", dtype="float32")(losses)
    return keras.Model(ids, total, name="language_model")


def compiled_language_model(encoder, steps_per_epoch: int, policy: str):
    """``language_model`` built under the dtype ``policy`` and compiled with Adam: a
    linear warm-up over the first tenth of the steps to ``pretrain.learning_rate``, then
    cosine decay to a tenth of it (about ULMFiT's slanted triangle)."""
    import keras

    from lstmkit.optimization import warmup_cosine

    settings = encoder.settings
    schedule = warmup_cosine(settings.learning_rate, steps_per_epoch * settings.epochs, WARMUP_SHARE,
                             FINAL_RATE_SHARE)
    with precision.dtype_policy(policy):
        language = language_model(encoder)
        language.compile(optimizer=keras.optimizers.Adam(schedule, global_clipnorm=settings.global_clipnorm or None))
    return language


def check(encoder, stream: np.ndarray) -> None:
    """Refuse, in one line, what pretraining cannot run on."""
    settings = encoder.settings
    needed = settings.sequence_length + 2
    if len(stream) < needed:
        raise UserError(f"the training texts hold {len(stream):,} words of the vocabulary, fewer than one "
                        f"pretraining window ({needed:,}); lower pretrain.sequence_length or give more text")
    if settings.sampled_words >= encoder.vocabulary_size:
        raise UserError(f"pretrain.sampled_words ({settings.sampled_words:,}) must be smaller than the vocabulary "
                        f"({encoder.vocabulary_size:,} words); lower pretrain.sampled_words")
    if encoder.bidirectional and encoder.layers > 1:
        raise UserError("language-model pretraining of a bidirectional stack needs a single layer (a second "
                        "layer would see both directions); set lstm.layers=1 or lstm.bidirectional=false")


def transfer_weights(source, target) -> list[str]:
    """Copy the weights of every layer of ``source`` that ``target`` has by name; the
    names of the layers copied."""
    names = {layer.name for layer in target.layers}
    copied = []
    for layer in source.layers:
        if layer.weights and layer.name in names:
            target.get_layer(layer.name).set_weights(layer.get_weights())
            copied.append(layer.name)
    return copied


def pretrain_encoder(task, model, splits, run_dir: Path, seed: int) -> list[str]:
    """Pretrain the text encoder of ``task`` (bound to its config and preprocessing) as a
    language model on ``splits.train`` (or continue a killed pretraining in ``run_dir``),
    then copy its weights into ``model``; the names of the layers copied ([] when the
    task has no encoder or pretraining is off)."""
    import keras

    from lstmkit.callbacks import EpochTimer, RunBackup
    from lstmkit.data import batched
    from lstmkit.training.epochs import keep_history_epochs, progress_verbosity, skip_used_shuffles

    from lstmkit.task import PretrainsText

    if not isinstance(task, PretrainsText):
        return []
    encoder = task.text_encoder()
    if encoder.settings.epochs == 0:
        return []
    import tensorflow as tf

    settings = encoder.settings
    stream = word_stream(encoder, splits.train)
    check(encoder, stream)
    train = batched(tf.data.Dataset.from_tensor_slices(windows(stream, settings.sequence_length)),
                    settings.batch_size, shuffle=True, seed=seed, buffer=1_000_000)
    validation = None
    if splits.validation is not None:
        held_out = windows(word_stream(encoder, splits.validation), settings.sequence_length)[:VALIDATION_WINDOWS]
        if len(held_out):
            validation = batched(tf.data.Dataset.from_tensor_slices(held_out), settings.batch_size)
    steps = len(train)
    language = compiled_language_model(encoder, steps, task.config.train.precision)
    backup = RunBackup(run_dir / "backup" / "pretrain")
    history = run_dir / HISTORY_FILE
    if backup.training_done:
        backup.set_model(language)
        backup.on_train_begin()  # the last epoch's weights
    else:
        keep_history_epochs(history, backup.completed_epochs)
        skip_used_shuffles(train, backup.completed_epochs)
        print(f"pretraining the encoder as a language model: {len(stream):,} training words, "
              f"{settings.epochs} epochs of {steps:,} batches", flush=True)
        language.fit(train, validation_data=validation, epochs=settings.epochs,
                     initial_epoch=backup.completed_epochs, shuffle=False, verbose=progress_verbosity(),
                     callbacks=[backup, keras.callbacks.TerminateOnNaN(), EpochTimer(),
                                keras.callbacks.CSVLogger(str(history), append=True), backup.committer])
        if not all(np.isfinite(variable.numpy()).all() for variable in language.trainable_variables):
            raise UserError("language-model pretraining diverged (non-finite weights); lower "
                            f"pretrain.learning_rate and start a new run. The unfinished run is in {run_dir}")
        backup.mark_training_done()
    return transfer_weights(language, model)
