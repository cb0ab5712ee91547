"""A small keyword-spotting dataset, synthesized offline with eSpeak NG (``--data builtin``).

The speech is synthetic: eSpeak NG (the library and voice data shipped by the
``espeakng-loader`` wheel, driven through ctypes) says each word with one of several
English accents and voice variants, at a random speed and pitch. Each clip is one
second long, like Google's Speech Commands, with the word at a random offset over
background noise. Everything is drawn from ``numpy.random.default_rng(seed)``, so the
same seed gives bit-identical clips on the same machine and library version.

Labels are the 12 classes of the Speech Commands benchmark: the ten command words,
``_unknown_`` (other words) and ``_silence_`` (background noise only).
"""

from __future__ import annotations

import _ctypes
import ctypes
import threading
from pathlib import Path

import numpy as np

COMMAND_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
# Speech Commands' own auxiliary words, said for the "_unknown_" class.
UNKNOWN_WORDS = (
    "bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin",
    "nine", "one", "seven", "sheila", "six", "three", "tree", "two", "wow", "zero",
)
SAMPLE_RATE = 22_050  # what eSpeak NG produces; checked when the library first loads

_UNKNOWN = "_unknown_"
_SILENCE = "_silence_"
_LABELS = COMMAND_WORDS + (_UNKNOWN, _SILENCE)

# English accents shipped in espeak-ng-data/lang/gmw, and voice variants shipped in
# espeak-ng-data/voices/!v ("" is the accent's own voice). Fixed lists, not read from
# the data folder, so the dataset of a seed does not change with what is installed.
_ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan",
            "en-gb-x-gbcwmd", "en-us-nyc")
_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4",
             "croak", "whisper", "klatt")
_WORDS_PER_MINUTE = (120, 260)  # words per minute, inclusive
_PITCH_BUCKETS = ("low", "mid", "high")  # eSpeak pitch 0-33, 34-67, 68-100

_CLIP = SAMPLE_RATE  # samples in a one-second clip
_TRIM_THRESHOLD = 0.01  # |sample| below this (1% of full scale) counts as silence
_NOISE_COLORS = (0.0, 1.0, 2.0)  # spectral exponent: white, pink, brown
_WORD_NOISE = (0.0, 0.05)  # noise RMS under a word
_SILENCE_NOISE = (0.005, 0.1)  # noise RMS of a "_silence_" clip
_GAIN = (0.3, 1.0)

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ESPEAK_RATE, _ESPEAK_PITCH = 1, 3  # espeak_PARAMETER
_EE_OK = 0
_NOISE_SEED = 1

_INSTALL_HINT = 'install it with `pip install espeakng-loader` (or `pip install -e ".[dev,speech]"`)'

# int callback(short *wav, int numsamples, espeak_EVENT *events)
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.c_void_p)


class SynthesisUnavailable(Exception):
    """eSpeak NG cannot be loaded in this environment."""


def _locate() -> tuple[str, str]:
    """(shared library, data folder) of eSpeak NG; replaced in tests."""
    try:
        import espeakng_loader
    except ImportError as error:
        raise SynthesisUnavailable(f"speech synthesis needs eSpeak NG ({error}); {_INSTALL_HINT}") from None
    try:
        return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
    except (RuntimeError, OSError) as error:  # RuntimeError: the data folder is missing
        raise SynthesisUnavailable(f"eSpeak NG data is missing ({error}); {_INSTALL_HINT}") from None


class _Espeak:
    """Says one utterance at a time through a freshly loaded copy of the library.

    eSpeak NG keeps synthesis state in C statics that carry from one utterance to the
    next and that no API call resets (the pitch-flutter phase, the gain control), so the
    same word twice comes out slightly different. Loading the
    library, initializing it, speaking and unloading it again (``dlclose``: the next load
    maps fresh statics) makes every utterance depend on its arguments only, for ~3 ms.
    This holds while nothing else in the process keeps libespeak-ng loaded.
    """

    def __init__(self, library_path: str, data_path: str):
        self.library_path = library_path
        self.data_path = data_path
        self.variants_dir = Path(data_path) / "voices" / "!v"
        self.lock = threading.Lock()  # the library is global state: one utterance at a time
        self.chunks: list[np.ndarray] = []
        self.callback = _CALLBACK(self._collect)  # kept alive as long as the library may call it
        # Fail here, with the install hint, rather than on the first word.
        with self.lock:
            lib = self._load()
            _ctypes.dlclose(lib._handle)

    def _collect(self, wav, numsamples, events) -> int:
        if numsamples > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, (numsamples,)).copy())
        return 0  # 0: go on synthesizing

    def _load(self) -> ctypes.CDLL:
        """Load and initialize the library; the caller unloads it."""
        try:
            lib = ctypes.CDLL(self.library_path)
        except OSError as error:
            raise SynthesisUnavailable(f"eSpeak NG does not load ({error}); {_INSTALL_HINT}") from None
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Terminate.argtypes = []
        lib.espeak_Terminate.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        # buflength 0: the default 60 ms chunks handed to the callback.
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data_path.encode(), 0)
        if rate != SAMPLE_RATE:
            _ctypes.dlclose(lib._handle)
            raise SynthesisUnavailable(
                f"eSpeak NG initialized at {rate} Hz, not {SAMPLE_RATE} Hz (data folder "
                f"{self.data_path}); {_INSTALL_HINT}")
        # Initialization seeds the breath-noise generator (whispering and breathy voices)
        # from the clock; a fixed seed makes those voices repeatable too.
        lib.espeak_ng_SetRandSeed(_NOISE_SEED)
        lib.espeak_SetSynthCallback(self.callback)
        return lib

    def say(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        _, _, variant = voice.partition("+")
        # eSpeak quietly falls back to the plain voice for an unknown variant.
        if variant and not (self.variants_dir / variant).is_file():
            raise ValueError(f"no eSpeak NG voice variant {variant!r} in {self.variants_dir}")
        encoded = text.encode("utf-8")
        with self.lock:
            lib = self._load()
            try:
                self.chunks = []
                if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                    raise ValueError(f"eSpeak NG has no voice {voice!r}")
                lib.espeak_SetParameter(_ESPEAK_RATE, rate, 0)
                lib.espeak_SetParameter(_ESPEAK_PITCH, pitch, 0)
                status = lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                          None, None)
                if status != _EE_OK or lib.espeak_Synchronize() != _EE_OK:
                    raise RuntimeError(f"eSpeak NG failed (status {status}) to say {text!r}")
                samples = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
            finally:
                self.chunks = []
                lib.espeak_Terminate()
                _ctypes.dlclose(lib._handle)
        return samples


_engine: _Espeak | None = None
_engine_lock = threading.Lock()


def _espeak() -> _Espeak:
    """The process's eSpeak NG, located and checked on first use."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _Espeak(*_locate())
        return _engine


def _reset() -> None:
    """Forget the located library, so the next call locates it again (for tests)."""
    global _engine
    with _engine_lock:
        _engine = None


def synthesize(text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
    """One utterance as float32 in [-1, 1] at SAMPLE_RATE, leading/trailing silence trimmed.

    ``voice`` is an eSpeak NG voice name with an optional variant ("en-us+f2"), ``rate``
    is in words per minute (80-450) and ``pitch`` is eSpeak's 0-100 scale (50: the
    voice's own). The same arguments give the same samples.
    """
    if not 80 <= rate <= 450:
        raise ValueError(f"rate must be 80-450 words per minute, not {rate}")
    if not 0 <= pitch <= 100:
        raise ValueError(f"pitch must be 0-100, not {pitch}")
    audio = _espeak().say(text, voice, int(rate), int(pitch)).astype(np.float32) / 32768.0
    loud = np.flatnonzero(np.abs(audio) >= _TRIM_THRESHOLD)
    if loud.size == 0:
        return np.zeros(0, np.float32)
    return audio[loud[0]:loud[-1] + 1]


def _noise(rng: np.random.Generator, rms: float) -> np.ndarray:
    """One second of white, pink or brown noise at the given RMS level."""
    exponent = _NOISE_COLORS[rng.integers(len(_NOISE_COLORS))]
    spectrum = np.fft.rfft(rng.standard_normal(_CLIP))
    frequencies = np.fft.rfftfreq(_CLIP)
    frequencies[0] = frequencies[1]  # no division by zero; the DC term is dropped below anyway
    spectrum /= frequencies ** (exponent / 2)  # power falls as 1/f**exponent
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, _CLIP)
    return noise * (rms / np.sqrt(np.mean(noise**2)))


def keyword_clips(clips_per_word: int, seed: int) -> tuple[list[np.ndarray], list[str], list[str]]:
    """(waveforms, labels, speaker ids): ``clips_per_word`` one-second clips of each label.

    Waveforms are float32, exactly SAMPLE_RATE samples, in [-1, 1]. Labels follow the
    12 Speech Commands classes, ``clips_per_word`` clips of each, in the order of the
    command words, then "_unknown_" (a random word of UNKNOWN_WORDS), then "_silence_"
    (noise only). A speaker id is "<voice>/<pitch bucket>" ("en-us+f2/high"), so
    training and test sets can be split by speaker; each "_silence_" clip is a speaker
    of its own ("noise-<n>"), so a split by speaker spreads them like a random split.
    """
    rng = np.random.default_rng(seed)
    waveforms, labels, speakers = [], [], []
    for label in _LABELS:
        for n in range(clips_per_word):
            if label == _SILENCE:
                clip = _noise(rng, rng.uniform(*_SILENCE_NOISE))
                speaker = f"noise-{n}"
            else:
                word = UNKNOWN_WORDS[rng.integers(len(UNKNOWN_WORDS))] if label == _UNKNOWN else label
                accent = _ACCENTS[rng.integers(len(_ACCENTS))]
                variant = _VARIANTS[rng.integers(len(_VARIANTS))]
                voice = f"{accent}+{variant}" if variant else accent
                rate = int(rng.integers(_WORDS_PER_MINUTE[0], _WORDS_PER_MINUTE[1] + 1))
                pitch = int(rng.integers(0, 101))
                speech = synthesize(word, voice, rate, pitch)[:_CLIP]
                clip = _noise(rng, rng.uniform(*_WORD_NOISE))
                offset = int(rng.integers(0, _CLIP - len(speech) + 1))
                clip[offset:offset + len(speech)] += speech
                speaker = f"{voice}/{_PITCH_BUCKETS[min(pitch // 34, 2)]}"
            clip *= rng.uniform(*_GAIN)
            waveforms.append(np.clip(clip, -1.0, 1.0).astype(np.float32))
            labels.append(label)
            speakers.append(speaker)
    return waveforms, labels, speakers
