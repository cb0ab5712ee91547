"""The speech-command task's config: one frozen dataclass per concern."""

from __future__ import annotations

import dataclasses

from lstmkit.config import LSTMStackConfig, TrainingConfig, check_ranges, check_scaled_rates, in_range, rate, seed
from lstmkit.errors import UserError


# The attention-RNN keyword spotter (de Andrade et al. 2018): two bidirectional LSTM
# layers of 64 units over convolved log-mel frames.
SPEECH_LSTM = LSTMStackConfig(units=64, layers=2, bidirectional=True, hidden_dropout=0.1,
                              output_dropout=0.1, weight_drop=0.1)

# Every clip is resampled to this rate; serving_default takes waveforms at this rate.
SAMPLE_RATE = 16_000


@dataclasses.dataclass(frozen=True)
class DataConfig:
    # Splits of a folder without validation_list.txt/testing_list.txt, by speaker (the
    # file name before "_nohash_"), with Speech Commands' hashing (salted with
    # split_seed): a speaker's split does not depend on which other files are there.
    validation_percentage: float = in_range(10.0, 0.0, 100.0, high_open=True)
    testing_percentage: float = in_range(10.0, 0.0, 100.0, high_open=True)
    # Cross-validation by speaker instead (for small data such as one test set):
    # speakers are dealt into `folds` groups; group `fold` is the test split, and
    # validation_percentage of the other speakers are validation (of their clips, when
    # that share of speakers rounds to none: FSDD has six). 0 turns it off.
    folds: int = in_range(0, 0, 1_000)
    fold: int = in_range(0, 0, 999)
    # Seeds the speaker folds, the Free Spoken Digit Dataset's validation part and
    # the builtin synthetic clips.
    split_seed: int = seed(1337)
    # Words to keep as classes (e.g. the benchmark's ten: --set
    # data.keywords=yes,no,up,down,left,right,on,off,stop,go); every other word folder
    # becomes _unknown_. Empty: every label folder is a class.
    keywords: tuple[str, ...] = ()
    # Files longer than this are refused (listed and skipped in training folders).
    max_seconds: float = in_range(3.0, 0.0, 600.0, low_open=True)
    # --data builtin: synthetic clips per class (12 classes).
    builtin_clips_per_class: int = in_range(200, 1, 100_000)

    def __post_init__(self):
        check_ranges(self)
        if self.validation_percentage + self.testing_percentage >= 100:
            raise UserError("validation_percentage + testing_percentage must stay below 100")
        if self.folds == 1 or (self.folds and self.fold >= self.folds):
            raise UserError(f"data.fold must be below data.folds (>= 2), got fold {self.fold} of {self.folds}")
        if "" in self.keywords:  # "yes,,no": a word left out, probably
            raise UserError(f"data.keywords holds an empty word: {self.keywords}; name each word once")


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Input-pipeline augmentation of training clips (never of validation or test)."""

    # Shift each clip by up to this many milliseconds either way (zeros fill in).
    time_shift_ms: float = in_range(100.0, 0.0, 10_000.0)
    # Share of clips mixed with background noise: slices of the training data's
    # _silence_ clips when it has them, otherwise Gaussian noise (RMS a tenth of the volume).
    noise_probability: float = rate(0.8)
    # Largest noise amplitude, relative to full scale.
    noise_volume: float = in_range(0.1, 0.0, 10.0)
    # Volume perturbation: each clip is scaled by a random gain from -gain_db to +gain_db
    # decibels before the noise is mixed in, so that a quieter or louder speaker or
    # microphone than the training ones is no surprise (FSDD's six speakers' median RMS
    # levels differ 13-fold). 20 dB raised each of the five Speech Commands speaker folds
    # (+0.011 to +0.023; BENCHMARKS.md). 0 turns it off.
    gain_db: float = in_range(20.0, 0.0, 60.0)

    def __post_init__(self):
        check_ranges(self)


@dataclasses.dataclass(frozen=True)
class SpeechConfig:
    clip_seconds: float = in_range(1.0, 0.0, 60.0, low_open=True)
    # Log-mel front end: 25 ms frames every 10 ms, 40 mel bands from 20 Hz to 7.6 kHz.
    frame_ms: float = in_range(25.0, 0.0, 1_000.0, low_open=True)
    frame_step_ms: float = in_range(10.0, 0.0, 1_000.0, low_open=True)
    num_mel_bins: int = in_range(40, 1, 512)
    # SpecAugment (training only): masks per clip and their largest widths.
    frequency_masks: int = in_range(2, 0, 100)
    frequency_mask_width: int = in_range(7, 0, 512)
    time_masks: int = in_range(2, 0, 100)
    time_mask_width: int = in_range(12, 0, 10_000)
    # Convolutions over (time, frequency) before the LSTM; the last one has one filter,
    # as in the attention RNN, so each frame stays num_mel_bins wide.
    conv_layers: int = in_range(2, 1, 32)
    conv_filters: int = in_range(10, 1, 8_192)
    conv_kernel_frames: int = in_range(5, 1, 1_000)
    dense_units: int = in_range(64, 1, 65_536)
    classifier_dropout: float = rate(0.3)
    # Scales every dropout rate above and in lstm at once (one knob for tuning).
    dropout_multiplier: float = in_range(1.0, 0.0, 100.0, low_open=True)
    lstm: LSTMStackConfig = SPEECH_LSTM
    augment: AugmentConfig = AugmentConfig()
    data: DataConfig = DataConfig()
    train: TrainingConfig = TrainingConfig(epochs=40, batch_size=64, learning_rate=2e-3, lr_schedule="cosine",
                                           warmup_epochs=1.0, patience=10)

    def __post_init__(self):
        check_ranges(self)
        check_scaled_rates(self, self.dropout_multiplier, "classifier_dropout")
        self.lstm.check_multiplier(self.dropout_multiplier)
        if self.frame_step_ms > self.frame_ms:
            raise UserError("frame_step_ms must not exceed frame_ms (frames would skip audio)")
        if self.frequency_mask_width >= self.num_mel_bins:
            raise UserError("frequency_mask_width must be below num_mel_bins")

    @property
    def clip_samples(self) -> int:
        return int(round(self.clip_seconds * SAMPLE_RATE))


TINY = SpeechConfig(
    num_mel_bins=16,
    frequency_mask_width=3,
    time_mask_width=5,
    conv_filters=4,
    dense_units=16,
    lstm=dataclasses.replace(SPEECH_LSTM, units=8, layers=1),
    data=DataConfig(builtin_clips_per_class=6),
    # A few epochs on a few clips: volume perturbation's ±20 dB kept the loss from
    # falling within them (a smoke run checks that training learns at all).
    augment=AugmentConfig(gain_db=0.0),
    train=TrainingConfig(epochs=2, batch_size=16, learning_rate=3e-3),
)
