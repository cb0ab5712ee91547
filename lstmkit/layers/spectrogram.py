"""An audio front end as Keras layers, so an exported model takes raw waveforms.

``FixedLength`` pads or crops a batch of waveforms to one length, ``LogMelSpectrogram``
turns them into log-mel frames with Keras's own ``MelSpectrogram`` (TensorFlow's STFT
underneath), and ``SpecAugment`` masks frequency bands and time spans while training
(Park et al. 2019).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="lstmkit")
class FixedLength(keras.layers.Layer):
    """Pad (with zeros, keeping the audio centred) or crop (around the centre) a
    ``[batch, samples]`` waveform to ``length`` samples."""

    def __init__(self, length, **kwargs):
        super().__init__(**kwargs)
        self.length = int(length)

    def call(self, waveform):
        size = ops.shape(waveform)[1]
        missing = ops.maximum(self.length - size, 0)
        before = missing // 2
        waveform = ops.pad(waveform, [[0, 0], [before, missing - before]])
        start = ops.maximum(size - self.length, 0) // 2
        return ops.slice(waveform, [0, start], [ops.shape(waveform)[0], self.length])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.length)

    def get_config(self):
        config = super().get_config()
        config.update(length=self.length)
        return config


@keras.saving.register_keras_serializable(package="lstmkit")
class LogMelSpectrogram(keras.layers.Layer):
    """``[batch, samples]`` → ``[batch, frames, num_mel_bins]`` natural-log mel energies.

    ``log(mel_power + floor)`` is taken clip by clip; Keras's decibel scaling is not
    used because its ``top_db`` clamp looks at the whole batch, so a clip's features
    would depend on the clips batched with it.
    """

    def __init__(self, sample_rate=16_000, frame_length=400, frame_step=160, fft_length=512,
                 num_mel_bins=40, lower_hertz=20.0, upper_hertz=7_600.0, floor=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.sample_rate, self.frame_length, self.frame_step = sample_rate, frame_length, frame_step
        self.fft_length, self.num_mel_bins, self.floor = fft_length, num_mel_bins, floor
        self.lower_hertz, self.upper_hertz = lower_hertz, upper_hertz
        self.mel = keras.layers.MelSpectrogram(
            fft_length=fft_length, sequence_stride=frame_step, sequence_length=frame_length,
            sampling_rate=sample_rate, num_mel_bins=num_mel_bins, min_freq=lower_hertz,
            max_freq=upper_hertz, power_to_db=False, dtype="float32",
        )

    def build(self, input_shape):
        self.mel.build(input_shape)

    def call(self, waveform):
        power = self.mel(waveform)  # [batch, mel, frames]
        return ops.transpose(ops.log(power + self.floor), (0, 2, 1))

    def compute_output_shape(self, input_shape):
        samples = input_shape[1]
        # The STFT is centred: one frame per frame_step, plus one.
        frames = None if samples is None else samples // self.frame_step + 1
        return (input_shape[0], frames, self.num_mel_bins)

    def get_config(self):
        config = super().get_config()
        config.update(sample_rate=self.sample_rate, frame_length=self.frame_length,
                      frame_step=self.frame_step, fft_length=self.fft_length,
                      num_mel_bins=self.num_mel_bins, lower_hertz=self.lower_hertz,
                      upper_hertz=self.upper_hertz, floor=self.floor)
        return config


@keras.saving.register_keras_serializable(package="lstmkit")
class SpecAugment(keras.layers.Layer):
    """Zero ``frequency_masks`` bands of up to ``frequency_mask_width`` mel bins and
    ``time_masks`` spans of up to ``time_mask_width`` frames in each example of a
    ``[batch, frames, bins]`` input, only while training (identity at inference).

    Put it after normalization, where zero is the average feature value.
    """

    def __init__(self, frequency_masks=2, frequency_mask_width=7, time_masks=2, time_mask_width=12,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self.frequency_masks, self.frequency_mask_width = frequency_masks, frequency_mask_width
        self.time_masks, self.time_mask_width = time_masks, time_mask_width
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _masks(self, batch, size, count, max_width):
        """``[batch, size]`` booleans, true inside ``count`` random spans per row."""
        positions = ops.arange(size)[None, :]
        masked = ops.zeros((batch, size), dtype="bool")
        for _ in range(count):
            width = ops.floor(keras.random.uniform((batch, 1), 0, max_width + 1, seed=self.seed_generator))
            start = ops.floor(keras.random.uniform((batch, 1), seed=self.seed_generator)
                              * (ops.cast(size, "float32") - width + 1))
            width, start = ops.cast(width, "int32"), ops.cast(start, "int32")
            masked = ops.logical_or(masked, ops.logical_and(positions >= start, positions < start + width))
        return masked

    def call(self, features, training=False):
        if not training:
            return features
        batch, frames, bins = ops.shape(features)[0], ops.shape(features)[1], ops.shape(features)[2]
        time = self._masks(batch, frames, self.time_masks, self.time_mask_width)
        frequency = self._masks(batch, bins, self.frequency_masks, self.frequency_mask_width)
        masked = ops.logical_or(time[:, :, None], frequency[:, None, :])
        return ops.where(masked, ops.zeros_like(features), features)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(frequency_masks=self.frequency_masks, frequency_mask_width=self.frequency_mask_width,
                      time_masks=self.time_masks, time_mask_width=self.time_mask_width, seed=self.seed)
        return config
