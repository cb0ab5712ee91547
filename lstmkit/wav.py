"""Reading WAV files with clear errors, and resampling in the TensorFlow graph.

``read_wav`` accepts what ``tf.audio.decode_wav`` (the op a served model decodes WAV
bytes with) reads: mono 16-bit PCM. Everything else gets a one-line reason and the
command that converts it, so a file is refused the same way on the command line and
in training folders. ``resample`` is written with TensorFlow ops so that the exported
model resamples WAV bytes at any common rate by itself.
"""

from __future__ import annotations

import io
import math
import wave

import numpy as np

# Rates recorders and datasets use; anything else is more likely a broken header.
STANDARD_SAMPLE_RATES = (8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000)
CONVERT_HINT = "convert it with: ffmpeg -i IN -ac 1 -ar 16000 -c:a pcm_s16le OUT.wav"


class AudioFileError(ValueError):
    """A WAV file lstmkit cannot use; the message is the reason, in one line."""


def read_wav(data: bytes, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode mono 16-bit PCM WAV bytes into float32 samples in [-1, 1) and the rate.

    Raises ``AudioFileError`` for anything else: not a WAV, a truncated header or
    body, more than one channel, 8/24/32-bit or float samples, a sample rate outside
    ``STANDARD_SAMPLE_RATES``, no samples, or more than ``max_seconds`` of audio.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFileError("not a WAV file (no RIFF/WAVE header); " + CONVERT_HINT)
    try:
        with wave.open(io.BytesIO(data)) as reader:
            channels, width = reader.getnchannels(), reader.getsampwidth()
            rate, frames = reader.getframerate(), reader.getnframes()
            pcm = reader.readframes(frames)
    except EOFError:
        raise AudioFileError("truncated WAV header; the file is cut short or damaged") from None
    except wave.Error as error:
        reason = str(error)
        if reason.startswith("unknown format"):
            # wave reads only plain PCM; 3 is IEEE float, 65534 "extensible" (24/32-bit).
            reason = f"not 16-bit PCM ({reason})"
        raise AudioFileError(f"unreadable WAV: {reason}; {CONVERT_HINT}") from None
    if channels != 1:
        raise AudioFileError(f"{channels} channels; lstmkit needs mono audio, {CONVERT_HINT}")
    if width != 2:
        raise AudioFileError(f"{8 * width}-bit samples; lstmkit needs 16-bit PCM, {CONVERT_HINT}")
    if rate not in STANDARD_SAMPLE_RATES:
        rates = ", ".join(map(str, STANDARD_SAMPLE_RATES))
        raise AudioFileError(f"sample rate {rate} Hz is not one of {rates}; {CONVERT_HINT}")
    if frames == 0:
        raise AudioFileError("no audio (zero samples)")
    if len(pcm) < frames * width:
        raise AudioFileError(f"truncated: the header promises {frames} samples, the file holds {len(pcm) // width}")
    seconds = frames / rate
    if max_seconds is not None and seconds > max_seconds:
        raise AudioFileError(f"{seconds:.1f} s long; at most {max_seconds:g} s is accepted "
                             "(cut the keyword out first)")
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    return samples, rate


def decode_wav_in_graph(contents, max_seconds: float):
    """``tf.audio.decode_wav`` of one WAV file (channels averaged) with ``read_wav``'s
    checks on what the header claims, for exported models: a sample rate outside
    ``STANDARD_SAMPLE_RATES`` or more than ``max_seconds`` of audio stops the graph with
    InvalidArgument before anything is resampled (a header claiming 1 Hz would
    otherwise make ``resample`` allocate 16,000 outputs per input sample)."""
    import tensorflow as tf

    audio, rate = tf.audio.decode_wav(contents)
    rates = ", ".join(map(str, STANDARD_SAMPLE_RATES))
    seconds = tf.cast(tf.shape(audio)[0], tf.float64) / tf.cast(tf.maximum(rate, 1), tf.float64)
    checks = [
        tf.debugging.Assert(tf.reduce_any(tf.equal(rate, STANDARD_SAMPLE_RATES)),
                            [f"the WAV sample rate is not one of {rates} Hz; {CONVERT_HINT}"]),
        tf.debugging.Assert(seconds <= max_seconds,
                            [f"the WAV file is longer than {max_seconds:g} s; cut the keyword out first"]),
    ]
    with tf.control_dependencies(checks):
        return tf.reduce_mean(audio, axis=1), tf.identity(rate)


# Zero crossings of the windowed sinc on each side of a resampled point: more is
# sharper (and slower); 16 keeps the passband within 0.1 dB and aliasing below -60 dB.
SINC_ZERO_CROSSINGS = 16


def resample(waveform, rate, target_rate: int):
    """Resample a 1-D float ``waveform`` from ``rate`` (a scalar tensor or int) to
    ``target_rate`` Hz by band-limited (Hann-windowed sinc) interpolation.

    Written with TensorFlow ops so it runs inside a SavedModel, with the rate known
    only when a WAV file arrives. Downsampling low-passes at the new Nyquist rate.
    """
    import tensorflow as tf

    waveform = tf.convert_to_tensor(waveform, tf.float32)
    rate = tf.cast(rate, tf.float64)

    def interpolate():
        ratio = tf.cast(target_rate, tf.float64) / rate
        cutoff = tf.minimum(ratio, 1.0)
        half_width = tf.cast(tf.math.ceil(SINC_ZERO_CROSSINGS / cutoff), tf.int32)
        length = tf.shape(waveform, out_type=tf.int32)[0]
        out_length = tf.cast(tf.math.ceil(tf.cast(length, tf.float64) * ratio), tf.int32)
        # Where each output sample falls on the input's time axis, in input samples.
        position = tf.range(out_length, dtype=tf.float64) / ratio
        base = tf.cast(tf.floor(position), tf.int32)
        taps = tf.range(1 - half_width, half_width + 1)
        index = base[:, None] + taps[None, :]
        distance = position[:, None] - tf.cast(index, tf.float64)
        window = 0.5 * (1.0 + tf.cos(math.pi * distance / tf.cast(half_width, tf.float64)))
        weights = cutoff * _sinc(cutoff * distance) * window
        inside = (index >= 0) & (index < length)
        values = tf.gather(waveform, tf.clip_by_value(index, 0, tf.maximum(length - 1, 0)))
        values = tf.where(inside, values, 0.0)
        return tf.reduce_sum(values * tf.cast(weights, tf.float32), axis=1)

    return tf.cond(tf.equal(rate, float(target_rate)), lambda: waveform, interpolate)


def _sinc(x):
    import tensorflow as tf

    safe = tf.where(tf.equal(x, 0.0), tf.ones_like(x), x)
    return tf.where(tf.equal(x, 0.0), tf.ones_like(x), tf.sin(math.pi * safe) / (math.pi * safe))
