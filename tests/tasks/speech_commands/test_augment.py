"""The training pipeline's volume perturbation: each clip is scaled by one gain within
its decibel range, new from epoch to epoch, its shape kept; on by default (±20 dB), off at 0."""

import dataclasses

import numpy as np
import tensorflow as tf

from lstmkit.tasks.speech_commands.config import SAMPLE_RATE, AugmentConfig, SpeechConfig
from lstmkit.tasks.speech_commands.task import TASK

TONE_HZ = 1000.0
TONE_RMS = 0.1 / np.sqrt(2)


def tone_epochs(gain_db, epochs=2):
    """Eight copies of a 1 kHz tone of amplitude 0.1 through the training batches with only
    volume perturbation on: one batch per epoch."""
    config = SpeechConfig(augment=AugmentConfig(time_shift_ms=0.0, noise_probability=0.0, gain_db=gain_db))
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=8))
    tone = 0.1 * np.sin(2 * np.pi * TONE_HZ * np.arange(config.clip_samples) / SAMPLE_RATE).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((np.stack([tone] * 8), np.zeros(8, np.int32)))
    task = TASK.bind(config)
    task = task.bind(preprocessing=task.placeholder_preprocessing())
    batches = task.batches(dataset, training=True, seed=3)
    return tone, [next(iter(batches))[0].numpy() for _ in range(epochs)]


def gains_db(waveforms):
    return 20 * np.log10(np.sqrt((waveforms ** 2).mean(axis=1)) / TONE_RMS)


def test_volume_perturbation_scales_each_clip_within_its_decibel_range_anew_each_epoch():
    tone, epochs = tone_epochs(12.0)
    first, second = gains_db(epochs[0]), gains_db(epochs[1])
    both = np.concatenate([first, second])
    assert both.min() >= -12.01 and both.max() <= 12.01 and np.ptp(both) > 6
    assert not np.allclose(first, second)
    # One gain per clip: the waveform is the tone scaled (no clipping at these levels).
    for waveform, gain in zip(epochs[0], first):
        np.testing.assert_allclose(waveform, tone * 10 ** (gain / 20), atol=1e-5)


def test_volume_perturbation_is_on_by_default_and_zero_turns_it_off():
    assert AugmentConfig().gain_db == 20.0
    _, (waveforms,) = tone_epochs(0.0, epochs=1)
    np.testing.assert_allclose(gains_db(waveforms), 0.0, atol=1e-3)
