"""The keyword spotter: raw 16 kHz waveforms in, class probabilities out.

The attention-RNN design (de Andrade et al. 2018): log-mel frames, convolutions
along time, bidirectional LSTMs, attention pooling over frames, a small classifier.
The whole front end is Keras layers, so the exported model needs no Python of ours.
"""

import keras
import numpy as np

from lstmkit.layers import (
    FixedLength,
    LogMelSpectrogram,
    SequencePooling,
    SpecAugment,
    scaled_rate,
)
from lstmkit.tasks.speech_commands.config import SAMPLE_RATE, SpeechConfig


def front_end(config: SpeechConfig) -> list:
    """Waveform → fixed length → log-mel frames (before normalization)."""
    frame_length = int(round(config.frame_ms * SAMPLE_RATE / 1000))
    return [
        # The signal processing stays float32 under a mixed precision policy.
        FixedLength(config.clip_samples, name="fixed_length", dtype="float32"),
        LogMelSpectrogram(
            sample_rate=SAMPLE_RATE, frame_length=frame_length,
            frame_step=int(round(config.frame_step_ms * SAMPLE_RATE / 1000)),
            # The next power of two that holds a frame.
            fft_length=1 << (frame_length - 1).bit_length(),
            num_mel_bins=config.num_mel_bins, name="log_mel", dtype="float32",
        ),
    ]


def build_model(config: SpeechConfig, preprocessing) -> keras.Model:
    waveform = keras.Input(shape=(None,), dtype="float32", name="waveform")
    x = waveform
    for layer in front_end(config):
        x = layer(x)
    x = keras.layers.Normalization(axis=-1, mean=np.asarray(preprocessing.mean),
                                   variance=np.asarray(preprocessing.variance), name="normalize",
                                   dtype="float32")(x)
    x = SpecAugment(config.frequency_masks, config.frequency_mask_width, config.time_masks,
                    config.time_mask_width, name="spec_augment")(x)
    x = keras.layers.Reshape((-1, config.num_mel_bins, 1), name="add_channel")(x)
    for index in range(config.conv_layers):
        last = index == config.conv_layers - 1
        x = keras.layers.Conv2D(1 if last else config.conv_filters, (config.conv_kernel_frames, 1),
                                padding="same", name=f"conv_{index}")(x)
        x = keras.layers.BatchNormalization(name=f"conv_{index}_norm")(x)
        x = keras.layers.Activation("relu", name=f"conv_{index}_relu")(x)
    x = keras.layers.Reshape((-1, config.num_mel_bins), name="frames")(x)
    multiplier = config.dropout_multiplier
    x = config.lstm.apply(x, return_sequences=True, dropout_multiplier=multiplier)
    x = SequencePooling("attention", name="attention")(x)
    x = keras.layers.Dense(config.dense_units, activation="relu", name="dense")(x)
    x = keras.layers.Dropout(scaled_rate(config.classifier_dropout, multiplier), name="classifier_dropout")(x)
    probabilities = keras.layers.Dense(len(preprocessing.labels), activation="softmax",
                                       name="probabilities", dtype="float32")(x)
    return keras.Model(waveform, probabilities, name="speech_commands")
