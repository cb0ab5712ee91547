"""The training pipeline's augmentation: speed perturbation moves a tone's pitch within
its range, keeps the clip length, changes from epoch to epoch; volume perturbation
scales clips within its decibel range; both are off by default."""

import dataclasses

import numpy as np
import tensorflow as tf

from lstmkit.tasks.speech_commands.config import SAMPLE_RATE, AugmentConfig, SpeechConfig
from lstmkit.tasks.speech_commands.task import TASK

TONE_HZ = 1000.0


def tone_batches(speed_change, gain_db=0.0):
    """Eight copies of a 1 kHz tone, through training_batches with only speed and volume
    perturbation on."""
    config = SpeechConfig(augment=AugmentConfig(time_shift_ms=0.0, noise_probability=0.0,
                                                speed_change=speed_change, gain_db=gain_db))
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=8))
    tone = 0.1 * np.sin(2 * np.pi * TONE_HZ * np.arange(config.clip_samples) / SAMPLE_RATE).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((np.stack([tone] * 8), np.zeros(8, np.int32)))
    preprocessing = TASK.placeholder_preprocessing(config)
    return config, TASK.training_batches(dataset, config, preprocessing, seed=3)


def peak_frequencies(waveforms):
    """The strongest frequency of the middle half of each clip (padding left out)."""
    middle = waveforms[:, waveforms.shape[1] // 4: 3 * waveforms.shape[1] // 4]
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(middle.shape[1]), axis=1))
    return spectrum.argmax(axis=1) * SAMPLE_RATE / middle.shape[1]


def test_speed_perturbation_moves_the_pitch_within_its_range_and_anew_each_epoch():
    config, batches = tone_batches(0.2)
    epochs = [next(iter(batches))[0].numpy() for _ in range(2)]
    assert all(epoch.shape == (8, config.clip_samples) for epoch in epochs)
    peaks = np.concatenate([peak_frequencies(epoch) for epoch in epochs])
    # Played faster, a tone rises: 1 kHz × speeds in [0.8, 1.2] (± one FFT bin of 2 Hz).
    assert peaks.min() >= 0.8 * TONE_HZ - 4 and peaks.max() <= 1.2 * TONE_HZ + 4
    assert np.ptp(peaks) > 50  # eight clips, two epochs: the speeds differ
    assert not np.allclose(epochs[0], epochs[1])


def test_without_speed_perturbation_the_tone_is_unchanged():
    config, batches = tone_batches(0.0)
    waveforms = next(iter(batches))[0].numpy()
    np.testing.assert_allclose(peak_frequencies(waveforms), TONE_HZ, atol=4)
    assert AugmentConfig().speed_change == 0.0


def test_volume_perturbation_scales_each_clip_within_its_decibel_range():
    _, batches = tone_batches(0.0, gain_db=12.0)
    waveforms = np.concatenate([next(iter(batches))[0].numpy() for _ in range(2)])
    # The tone's RMS is 0.1 / sqrt(2); every clip keeps its shape, scaled by one gain.
    decibels = 20 * np.log10(np.sqrt((waveforms ** 2).mean(axis=1)) / (0.1 / np.sqrt(2)))
    assert decibels.min() >= -12.01 and decibels.max() <= 12.01 and np.ptp(decibels) > 6
    np.testing.assert_allclose(peak_frequencies(waveforms), TONE_HZ, atol=4)
    assert AugmentConfig().gain_db == 0.0
