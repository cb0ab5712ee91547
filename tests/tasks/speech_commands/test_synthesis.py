"""The synthetic keyword-spotting dataset of ``--data builtin`` (eSpeak NG, offline)."""

import re
import sys

import numpy as np
import pytest

from lstmkit.tasks.speech_commands import synthesis
from lstmkit.tasks.speech_commands.synthesis import (
    COMMAND_WORDS,
    SAMPLE_RATE,
    SynthesisUnavailable,
    keyword_clips,
    synthesize,
)

LABELS = COMMAND_WORDS + ("_unknown_", "_silence_")


@pytest.fixture(scope="module")
def clips():
    return keyword_clips(3, seed=0)


def rms(wave):
    return float(np.sqrt(np.mean(wave.astype(np.float64) ** 2)))


def test_a_word_is_audible_float32_speech_of_plausible_length():
    wave = synthesize("marvin", "en-us", 175, 50)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert -1.0 <= wave.min() and wave.max() <= 1.0
    assert 0.2 <= len(wave) / SAMPLE_RATE <= 1.5
    assert rms(wave) > 0.02 and np.abs(wave).max() > 0.1
    # Leading and trailing silence is trimmed.
    assert abs(wave[0]) >= 0.01 and abs(wave[-1]) >= 0.01


def test_same_arguments_give_the_same_samples_and_others_do_not():
    # Whispering uses eSpeak's noise generator; the plain voice its pitch flutter.
    for voice in ("en-gb-x-rp", "en-us+whisper"):
        first = synthesize("stop", voice, 175, 50)
        synthesize("go", "en+f2", 240, 90)  # whatever came before does not matter
        assert np.array_equal(first, synthesize("stop", voice, 175, 50))
    reference = synthesize("stop", "en-us", 175, 50)
    for other in (synthesize("stop", "en-gb-scotland", 175, 50), synthesize("stop", "en-us+m3", 175, 50),
                  synthesize("stop", "en-us", 250, 50), synthesize("stop", "en-us", 175, 90)):
        assert len(other) != len(reference) or not np.array_equal(other, reference)
    # A faster rate is shorter.
    assert len(synthesize("stop", "en-us", 250, 50)) < len(synthesize("stop", "en-us", 120, 50))


def test_unknown_voices_and_out_of_range_arguments_are_refused():
    with pytest.raises(ValueError, match="variant"):
        synthesize("yes", "en+nosuchvariant", 175, 50)  # eSpeak itself would fall back silently
    with pytest.raises(ValueError, match="voice"):
        synthesize("yes", "xx-nosuchvoice", 175, 50)
    with pytest.raises(ValueError, match="rate"):
        synthesize("yes", "en", 20, 50)
    with pytest.raises(ValueError, match="pitch"):
        synthesize("yes", "en", 175, 101)


def test_keyword_clips_are_one_second_each_of_the_twelve_classes(clips):
    waves, labels, speakers = clips
    assert len(waves) == len(labels) == len(speakers) == 36
    assert sorted(labels) == sorted(LABELS * 3)
    for wave in waves:
        assert wave.dtype == np.float32 and wave.shape == (SAMPLE_RATE,)
        assert -1.0 <= wave.min() and wave.max() <= 1.0
    for label, speaker in zip(labels, speakers):
        pattern = r"noise-\d+" if label == "_silence_" else r"en[a-z0-9-]*(\+[a-z0-9]+)?/(low|mid|high)"
        assert re.fullmatch(pattern, speaker), speaker


def test_silence_clips_are_noise_without_a_burst_of_speech(clips):
    waves, labels, _ = clips
    # Peak over RMS: a word stands out of its noise; stationary noise has no peak of its own.
    crest = np.array([np.abs(wave).max() / rms(wave) for wave in waves])
    silence = np.array(labels) == "_silence_"
    assert crest[silence].max() < np.median(crest[~silence])


def test_same_seed_same_clips_other_seed_other_clips(clips):
    waves, labels, speakers = clips
    again = keyword_clips(3, seed=0)
    assert again[1] == labels and again[2] == speakers
    assert all(np.array_equal(a, b) for a, b in zip(waves, again[0]))
    other = keyword_clips(3, seed=1)
    assert other[1] == labels  # same classes in the same order, different speech and noise
    assert not any(np.array_equal(a, b) for a, b in zip(waves, other[0]))


@pytest.fixture
def fresh_engine():
    """The library is located once per process: forget it before and after the test."""
    synthesis._reset()
    yield
    synthesis._reset()


def test_a_library_that_does_not_load_names_the_fix(monkeypatch, tmp_path, fresh_engine):
    import espeakng_loader

    monkeypatch.setattr(espeakng_loader, "get_library_path", lambda: str(tmp_path / "libespeak-ng.so"))
    with pytest.raises(SynthesisUnavailable, match="pip install espeakng-loader") as caught:
        synthesize("yes", "en", 175, 50)
    assert "\n" not in str(caught.value) and "libespeak-ng.so" in str(caught.value)
    with pytest.raises(SynthesisUnavailable):
        keyword_clips(1, seed=0)
    # Once the library is back, the next call finds it.
    monkeypatch.undo()
    assert len(synthesize("yes", "en", 175, 50)) > 0


def test_a_missing_package_names_the_fix(monkeypatch, fresh_engine):
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # import fails
    with pytest.raises(SynthesisUnavailable, match=re.escape('pip install -e ".[dev,speech]"')):
        synthesize("yes", "en", 175, 50)
