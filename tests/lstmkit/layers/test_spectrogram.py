"""The audio front-end layers: shapes, batch independence, training-only masking."""

import keras
import numpy as np

from lstmkit.layers import FixedLength, LogMelSpectrogram, SpecAugment


def test_fixed_length_centres_short_clips_and_crops_long_ones_around_the_centre():
    layer = FixedLength(6)
    short = layer(np.array([[1.0, 2.0]], np.float32)).numpy()
    np.testing.assert_array_equal(short, [[0, 0, 1, 2, 0, 0]])
    long = layer(np.arange(10, dtype=np.float32)[None]).numpy()
    np.testing.assert_array_equal(long, [[2, 3, 4, 5, 6, 7]])
    assert layer.compute_output_shape((None, None)) == (None, 6)


def test_log_mel_shapes_and_each_clip_independent_of_its_batch():
    layer = LogMelSpectrogram(num_mel_bins=40)
    rng = np.random.default_rng(0)
    quiet = (0.01 * rng.standard_normal((1, 16_000))).astype(np.float32)
    loud = rng.standard_normal((1, 16_000)).astype(np.float32)
    alone = layer(quiet).numpy()
    assert alone.shape == (1, 101, 40) == layer.compute_output_shape((1, 16_000))
    together = layer(np.concatenate([quiet, loud])).numpy()
    np.testing.assert_allclose(together[:1], alone, atol=1e-4)
    assert together[1].mean() > alone.mean() + 5  # 100x the amplitude: about +9 in log power


def test_spec_augment_masks_only_while_training():
    layer = SpecAugment(frequency_masks=2, frequency_mask_width=5, time_masks=2, time_mask_width=10, seed=3)
    features = np.ones((8, 50, 20), np.float32)
    np.testing.assert_array_equal(layer(features, training=False).numpy(), features)
    masked = layer(features, training=True).numpy()
    zeros = masked == 0
    assert zeros.any() and not zeros.all()
    # Masks are whole frames or whole bands: every zero lies in an all-zero row or column.
    full_frames = zeros.all(axis=2, keepdims=True)
    full_bands = zeros.all(axis=1, keepdims=True)
    assert np.array_equal(zeros, full_frames | full_bands)
    # At most 2 x 10 frames and 2 x 5 bands per example.
    assert full_frames.sum(axis=(1, 2)).max() <= 20 and full_bands.sum(axis=(1, 2)).max() <= 10


def test_layers_round_trip_through_their_config(tmp_path):
    inputs = keras.Input((None,))
    x = FixedLength(8000)(inputs)
    x = LogMelSpectrogram(num_mel_bins=16, frame_length=200, frame_step=80, fft_length=256)(x)
    x = SpecAugment(1, 3, 1, 4)(x)
    model = keras.Model(inputs, x)
    path = tmp_path / "front.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    clip = np.random.default_rng(1).standard_normal((2, 7000)).astype(np.float32)
    np.testing.assert_allclose(loaded(clip).numpy(), model(clip).numpy(), atol=1e-5)
    assert loaded.layers[2].get_config()["num_mel_bins"] == 16
