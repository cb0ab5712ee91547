"""The speech-command task wired onto the lstmkit task contract."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from lstmkit.data import load_tfds, read_bytes
from lstmkit.errors import UserError
from lstmkit.task import (ClassificationTask, DataSplits, PreparedInputs, Preprocessing, ServingSignature,
                          TFLiteExportable)
from lstmkit.tasks.speech_commands import config as speech_config
from lstmkit.tasks.speech_commands import data as speech_data
from lstmkit.tasks.speech_commands.config import SAMPLE_RATE
from lstmkit.tasks.speech_commands.search_space import search_space

# The 12 classes of the Speech Commands benchmark (and of --data builtin).
SPEECH_COMMANDS_12 = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
                      speech_data.SILENCE, speech_data.UNKNOWN)
# Gaussian stand-in noise, relative to augment.noise_volume: at 0.1 x 0.1, an RMS of
# -40 dBFS at most. Louder (0.3 x 0.1) buried FSDD's quiet digits and filled the silent
# padding that validation clips keep: after 4 epochs 0.18, against 0.37 at this scale
# and 0.67 without noise (BENCHMARKS.md).
GAUSSIAN_NOISE_SCALE = 0.1
TFDS_HINT = ("use a Speech Commands folder or archive as the data source (e.g. "
             "speech_commands_test_set_v0.02.tar.gz from download.tensorflow.org), "
             "or the data source 'builtin' (synthetic speech, works offline)")


def to_clip(waveform, rate, clip_samples: int):
    """One waveform at ``rate`` → ``clip_samples`` samples at 16 kHz, with the graph
    code (and the model's own FixedLength layer) the exported model uses."""
    from lstmkit.layers import FixedLength
    from lstmkit.wav import resample

    return FixedLength(clip_samples)(resample(waveform, rate, SAMPLE_RATE)[None])[0]


@dataclasses.dataclass(frozen=True)
class SpeechPreprocessing(Preprocessing):
    #: The class names found in the training data, sorted.
    labels: list[str]
    #: Per-mel-band mean and variance of the training clips' log-mel frames.
    mean: list[float]
    variance: list[float]


class SpeechCommandsTask(ClassificationTask, TFLiteExportable):
    """Keyword spotting on one-second clips: raw audio in, keyword out."""

    name = "speech_commands"
    config_class = speech_config.SpeechConfig
    preprocessing_class = SpeechPreprocessing
    default_data = "tfds:speech_commands"
    sources_hint = speech_data.SOURCE_HINT
    # The model's module (imported where a model is built, never when the CLI only checks
    # a command line) registers no Keras objects of its own: its layers are lstmkit's,
    # which the library registers before loading a model. So custom_object_modules stays ().

    def tiny_config(self):
        return speech_config.TINY

    def search_space(self, hp, config):
        return search_space(hp, config)

    # --- data ----------------------------------------------------------------------
    def load_data(self, source: str) -> DataSplits:
        config = self.config
        if source.startswith("tfds:"):
            return self._load_tfds(source[len("tfds:"):])
        settings = config.data
        if source == "builtin":
            from lstmkit.tasks.speech_commands import synthesis

            try:
                waveforms, labels, speakers = synthesis.keyword_clips(settings.builtin_clips_per_class,
                                                                      settings.split_seed)
            except synthesis.SynthesisUnavailable as error:
                raise UserError(str(error)) from None
            clips = speech_data.Clips(waveforms, [synthesis.SAMPLE_RATE] * len(labels), labels, speakers,
                                      [None] * len(labels))
            skipped, layout = [], "synthetic eSpeak NG keywords"
        else:
            clips, skipped, layout = speech_data.read_folder(source, settings, config.clip_seconds)
        # The refused files are listed (as warnings) only once the data is accepted: a
        # refusal is one line on stderr, so the errors below name them themselves.
        example = f"e.g. {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        if not clips:
            raise UserError(f"no usable clips in {source}: all {len(skipped)} .wav files were refused"
                            + (f" ({example})" if skipped else ""))
        refused = (f"; {len(skipped)} of {len(clips) + len(skipped)} .wav files "
                   f"{'was' if len(skipped) == 1 else 'were'} refused, {example}" if skipped else "")
        assigned = speech_data.assign_splits(clips, settings)
        parts = {split: [i for i, name in enumerate(assigned) if name == split]
                 for split in ("train", "validation", "test")}
        for split, indices in parts.items():
            if not indices:
                raise UserError(f"{source} leaves no clips for the {split} split ({len(clips)} usable clips"
                                f"{refused}); add data or change data.validation_percentage/testing_percentage")
        train_labels = {clips.labels[i] for i in parts["train"]}
        if len(train_labels) < 2:
            raise UserError(f"{source} has {len(train_labels)} class in its training split ({len(clips)} usable "
                            f"clips{refused}); keyword spotting needs at least 2 label folders")
        for split in ("validation", "test"):
            unseen = sorted({clips.labels[i] for i in parts[split]} - train_labels)
            if unseen:
                raise UserError(f"the {split} split of {source} has classes the training split lacks: "
                                f"{', '.join(unseen)}{refused}; add training clips for them")
        speech_data.report_skipped(skipped, len(clips) + len(skipped), source)
        counts = ", ".join(f"{split} {len(indices)}" for split, indices in parts.items())
        description = f"{source}: {layout}; {len(clips)} clips ({counts}), {len(train_labels)} classes"
        return DataSplits(*(self._dataset(clips, parts[split]) for split in parts), description)

    def _dataset(self, clips, indices):
        """Unbatched (16 kHz clip, label) pairs, resampled and cut once and cached."""
        import tensorflow as tf

        waveforms = tf.RaggedTensor.from_row_lengths(
            np.concatenate([clips.waveforms[i] for i in indices]).astype(np.float32),
            [len(clips.waveforms[i]) for i in indices])
        rates = tf.constant([clips.rates[i] for i in indices], tf.int32)
        labels = tf.constant([clips.labels[i] for i in indices], tf.string)
        samples = self.config.clip_samples
        return (tf.data.Dataset.from_tensor_slices((waveforms, rates, labels))
                .map(lambda waveform, rate, label: (to_clip(waveform, rate, samples), label))
                .cache())

    def _load_tfds(self, name: str) -> DataSplits:
        import tensorflow as tf
        import tensorflow_datasets as tfds

        try:
            features = tfds.builder(name).info.features
        except Exception:  # an unknown name: load_tfds says so in one line
            features = None
        if features is not None and not {"audio", "label"} <= set(features.keys()):
            raise UserError(f"tfds:{name} has no 'audio' and 'label' features; use tfds:speech_commands "
                            f"or {TFDS_HINT}")
        train, validation, test = load_tfds(name, ["train", "validation", "test"], TFDS_HINT)
        samples = self.config.clip_samples
        names = tf.constant(features["label"].names)
        rate = getattr(features["audio"], "sample_rate", None) or SAMPLE_RATE

        def prepare(audio, label):
            waveform = tf.cast(audio, tf.float32) / 32768.0
            return to_clip(waveform, rate, samples), tf.gather(names, label)

        return DataSplits(*(split.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
                            for split in (train, validation, test)),
                          f"tfds:{name} (train/validation/test as published)")

    def adapt(self, train_dataset) -> Preprocessing:
        """The class names (in sorted order) and per-mel-band mean and variance of the
        training clips' log-mel frames."""
        import keras

        from lstmkit.tasks.speech_commands import model as speech_model

        config = self.config
        labels = sorted({label.decode("utf-8") for label in train_dataset.map(lambda w, label: label)
                         .as_numpy_iterator()})
        layers = speech_model.front_end(config)
        normalization = keras.layers.Normalization(axis=-1)
        frames = train_dataset.batch(256).map(lambda waveform, label: layers[1](layers[0](waveform)))
        normalization.adapt(frames)
        return SpeechPreprocessing(labels, np.asarray(normalization.mean).reshape(-1).tolist(),
                                   np.asarray(normalization.variance).reshape(-1).tolist())

    def placeholder_preprocessing(self) -> Preprocessing:
        config = self.config
        return SpeechPreprocessing(sorted(SPEECH_COMMANDS_12), [0.0] * config.num_mel_bins,
                                   [1.0] * config.num_mel_bins)

    def encode_labels(self, dataset):
        import keras
        import tensorflow as tf

        ids = keras.layers.StringLookup(vocabulary=self.preprocessing.labels, num_oov_indices=0)
        return dataset.map(lambda waveform, label: (waveform, tf.cast(ids(label), tf.int32)))

    def batches(self, dataset, *, training: bool = False, seed: int = 0):
        """For training, shuffled, augmented batches: each clip scaled to a random volume
        (with ``augment.gain_db``), shifted in time and, with
        ``augment.noise_probability``, mixed with background noise (a random training
        ``_silence_`` clip where there are some, else Gaussian noise) at a random
        volume. The randomness is stateless, from ``seed``, and new every epoch.
        Otherwise (validation, evaluation) the default: in order, unchanged."""
        if not training:
            return super().batches(dataset, training=False, seed=seed)
        import tensorflow as tf

        config, preprocessing = self.config, self.preprocessing
        settings = config.augment
        samples = config.clip_samples
        shift = int(round(settings.time_shift_ms * SAMPLE_RATE / 1000))
        noise_clips = None
        if speech_data.SILENCE in preprocessing.labels:
            silence = preprocessing.labels.index(speech_data.SILENCE)
            pool = [waveform for waveform, label in dataset.as_numpy_iterator() if label == silence]
            if pool:
                noise_clips = tf.constant(np.stack(pool[:1000]))

        def augment(example, random):
            waveform, label = example
            # seeds[4] is unused: it drew the speed of a speed perturbation that was tried
            # and dropped (BENCHMARKS.md); seeds[5] keeps the gains the figures were measured with.
            seeds = tf.random.experimental.stateless_split(tf.stack([random, tf.constant(seed, tf.int64)]), 6)
            if settings.gain_db:
                decibels = tf.random.stateless_uniform([], seeds[5], -settings.gain_db, settings.gain_db)
                waveform = waveform * tf.pow(10.0, decibels / 20.0)
            offset = tf.random.stateless_uniform([], seeds[0], 0, 2 * shift + 1, tf.int32)
            waveform = tf.pad(waveform, [[shift, shift]])[offset:offset + samples]
            if noise_clips is not None:
                pick = tf.random.stateless_uniform([], seeds[1], 0, tf.shape(noise_clips)[0], tf.int32)
                noise = noise_clips[pick]
            else:
                noise = tf.random.stateless_normal([samples], seeds[1]) * GAUSSIAN_NOISE_SCALE
            volume = tf.random.stateless_uniform([], seeds[2], 0.0, settings.noise_volume)
            mixed = tf.random.stateless_uniform([], seeds[3]) < settings.noise_probability
            waveform = waveform + tf.where(mixed, volume, 0.0) * noise
            return tf.clip_by_value(waveform, -1.0, 1.0), label

        randomness = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        shuffled = dataset.shuffle(config.train.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        return (tf.data.Dataset.zip(shuffled, randomness)
                .map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .batch(config.train.batch_size)
                .prefetch(tf.data.AUTOTUNE))

    # --- model ---------------------------------------------------------------------
    def build_model(self):
        from lstmkit.tasks.speech_commands.model import build_model

        return build_model(self.config, self.preprocessing)

    # --- evaluation, prediction, export ---------------------------------------------
    def label_names(self) -> list[str]:
        return list(self.preprocessing.labels)

    def serving_signatures(self, max_generated_length: int | None = None) -> dict[str, ServingSignature]:
        import tensorflow as tf

        from lstmkit.wav import decode_wav_in_graph

        config = self.config
        outputs = self.classifier_outputs()
        samples = config.clip_samples

        def from_waveforms(model):
            def serve(waveform):
                return outputs(model(waveform, training=False))

            return serve

        def from_wav_bytes(model):
            def decode(contents):
                # decode_wav itself refuses anything but 16-bit PCM.
                waveform, rate = decode_wav_in_graph(contents, config.data.max_seconds)
                return to_clip(waveform, rate, samples)

            def serve(wav):
                waveforms = tf.map_fn(decode, wav, fn_output_signature=tf.TensorSpec([samples], tf.float32))
                return outputs(model(waveforms, training=False))

            return serve

        return {
            "serving_default": ServingSignature(
                [tf.TensorSpec(shape=(None, None), dtype=tf.float32, name="waveform")], from_waveforms,
                # As long as the longest WAV file accepted (the model crops it to clip_seconds).
                max_lengths={"waveform": (int(config.data.max_seconds * SAMPLE_RATE), "samples")}),
            "wav_bytes": ServingSignature(
                [tf.TensorSpec(shape=(None,), dtype=tf.string, name="wav")], from_wav_bytes),
        }

    def tflite_signature(self) -> ServingSignature:
        """One clip of ``clip_seconds`` at 16 kHz → probabilities (fixed shapes, as
        microcontroller and phone runtimes want)."""
        import tensorflow as tf

        config = self.config

        def build(model):
            def serve(waveform):
                return {"probabilities": model(waveform, training=False)}

            return serve

        return ServingSignature([tf.TensorSpec(shape=(1, config.clip_samples), dtype=tf.float32,
                                               name="waveform")], build)

    def preprocess(self, items: list[str], options: dict) -> PreparedInputs:
        """Each item is a WAV file, read and cut to a clip; a file that is missing or that
        ``read_wav`` refuses is set aside with the reason."""
        from lstmkit.wav import AudioFileError, read_wav

        config = self.config
        rejected, waveforms = {}, {}
        for item in items:
            path = Path(item)
            if not path.is_file():
                rejected[item] = "no such file" if not path.exists() else "not a file"
                continue
            try:
                waveforms[item] = read_wav(read_bytes(path, "input"), config.data.max_seconds)
            except (AudioFileError, UserError) as error:
                rejected[item] = str(error)
        kept = [item for item in items if item not in rejected]
        if not kept:
            return PreparedInputs([], None, rejected)
        import tensorflow as tf

        clips = [to_clip(*waveforms[item], config.clip_samples) for item in kept]
        return PreparedInputs(kept, tf.stack(clips), rejected)

    def postprocess(self, items: list[str], outputs, options: dict, notes: dict | None = None) -> list[dict]:
        records = super().postprocess(items, outputs, options, notes)
        for record in records:  # the whole file name, however long
            record["text"] = f"{record['label']}\t{record['probabilities'][record['label']]:.4f}\t{record['input']}"
        return records


TASK = SpeechCommandsTask()
