"""WAV reading refuses every unusable file with its reason; resampling is band-limited."""

import io
import wave

import numpy as np
import pytest

from lstmkit.wav import AudioFileError, read_wav, resample


def wav_bytes(samples=None, rate=16_000, channels=1, width=2, frames=None):
    """A PCM WAV file; ``samples`` in [-1, 1], or ``frames`` of silence."""
    if samples is None:
        samples = np.zeros(frames if frames is not None else rate // 2)
    integers = np.round(np.repeat(np.asarray(samples)[:, None], channels, axis=1) * (2 ** (8 * width - 1) - 1))
    if width == 1:
        data = (integers + 128).astype(np.uint8).tobytes()
    else:
        data = b"".join(int(value).to_bytes(width, "little", signed=True) for value in integers.reshape(-1)) \
            if width == 3 else integers.astype(f"<i{width}").tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(data)
    return buffer.getvalue()


def test_reads_mono_16_bit_pcm():
    tone = 0.5 * np.sin(np.linspace(0, 100, 8000))
    samples, rate = read_wav(wav_bytes(tone, rate=8000))
    assert rate == 8000 and samples.dtype == np.float32 and samples.shape == (8000,)
    np.testing.assert_allclose(samples, tone, atol=1e-4)


@pytest.mark.parametrize("data, reason", [
    (b"just some text, not audio", "not a WAV file"),
    (wav_bytes()[:30], "truncated WAV header"),
    (wav_bytes(channels=2), "2 channels"),
    (wav_bytes(width=1), "8-bit samples"),
    (wav_bytes(width=3), "24-bit samples"),
    (wav_bytes(rate=12_345), "sample rate 12345 Hz"),
    (wav_bytes(frames=0), "no audio"),
    (wav_bytes(frames=30 * 16_000), "30.0 s long"),
    (wav_bytes(frames=16_000)[:20_000], "truncated: the header promises 16000 samples"),
])
def test_refuses_unusable_files_with_one_line(data, reason):
    with pytest.raises(AudioFileError) as error:
        read_wav(data, max_seconds=3.0)
    assert reason in str(error.value) and "\n" not in str(error.value)


def test_long_files_pass_without_a_limit():
    samples, _ = read_wav(wav_bytes(frames=30 * 8000, rate=8000))
    assert len(samples) == 30 * 8000


def tone(frequency, rate, seconds=0.5):
    return np.sin(2 * np.pi * frequency * np.arange(int(rate * seconds)) / rate).astype(np.float32)


def test_upsampling_matches_the_tone_at_the_new_rate():
    resampled = resample(tone(440, 8000), 8000, 16_000).numpy()
    assert resampled.shape == (16_000 // 2,)
    # Away from the edges (where the input's zero padding matters) it is the same tone.
    np.testing.assert_allclose(resampled[200:-200], tone(440, 16_000)[200:-200], atol=2e-3)


def test_same_rate_is_unchanged():
    wave_ = tone(1000, 16_000)
    np.testing.assert_array_equal(resample(wave_, 16_000, 16_000).numpy(), wave_)


def test_downsampling_keeps_the_passband_and_removes_what_would_alias():
    kept = resample(tone(3000, 48_000), 48_000, 16_000).numpy()
    assert kept.shape == (8000,)
    np.testing.assert_allclose(kept[300:-300], tone(3000, 16_000)[300:-300], atol=5e-3)
    # 10 kHz is above the new Nyquist frequency (8 kHz): without a low-pass it would
    # fold to 6 kHz at full volume.
    aliased = resample(tone(10_000, 48_000), 48_000, 16_000).numpy()
    assert np.abs(aliased[300:-300]).max() < 0.01
