"""The speech-command task's config: one frozen dataclass per concern."""

from __future__ import annotations

import dataclasses

from lstmkit.config import (
    TrainingConfig,
    check_non_negative,
    check_positive,
    check_rate,
    check_scaled_rates,
)
from lstmkit.errors import UserError
from lstmkit.layers import LSTMStackConfig

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
    validation_percentage: float = 10.0
    testing_percentage: float = 10.0
    # Cross-validation by speaker instead (for small data such as one test set):
    # speakers are dealt into `folds` groups; group `fold` is the test split, and
    # validation_percentage of the other speakers are validation. 0 turns it off.
    folds: int = 0
    fold: int = 0
    # Seeds the speaker folds, the Free Spoken Digit Dataset's validation part and
    # the builtin synthetic clips.
    split_seed: int = 1337
    # Comma-separated words to keep as classes (e.g. the benchmark's ten:
    # "yes,no,up,down,left,right,on,off,stop,go"); every other word folder becomes
    # _unknown_. Empty: every label folder is a class.
    keywords: str = ""
    # Files longer than this are refused (listed and skipped in training folders).
    max_seconds: float = 3.0
    # --data builtin: synthetic clips per class (12 classes).
    builtin_clips_per_class: int = 200

    def __post_init__(self):
        check_non_negative(self, "validation_percentage", "testing_percentage", "folds", "fold")
        check_positive(self, "max_seconds", "builtin_clips_per_class")
        if self.validation_percentage + self.testing_percentage >= 100:
            raise UserError("validation_percentage + testing_percentage must stay below 100")
        if self.folds == 1 or (self.folds and self.fold >= self.folds):
            raise UserError(f"data.fold must be below data.folds (>= 2), got fold {self.fold} of {self.folds}")


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Input-pipeline augmentation of training clips (never of validation or test)."""

    # Shift each clip by up to this many milliseconds either way (zeros fill in).
    time_shift_ms: float = 100.0
    # Share of clips mixed with background noise: slices of the training data's
    # _silence_ clips when it has them, otherwise Gaussian noise (RMS a tenth of the volume).
    noise_probability: float = 0.8
    # Largest noise amplitude, relative to full scale.
    noise_volume: float = 0.1

    def __post_init__(self):
        check_non_negative(self, "time_shift_ms", "noise_volume")
        check_rate(self, "noise_probability")


@dataclasses.dataclass(frozen=True)
class SpeechConfig:
    clip_seconds: float = 1.0
    # Log-mel front end: 25 ms frames every 10 ms, 40 mel bands from 20 Hz to 7.6 kHz.
    frame_ms: float = 25.0
    frame_step_ms: float = 10.0
    num_mel_bins: int = 40
    # SpecAugment (training only): masks per clip and their largest widths.
    frequency_masks: int = 2
    frequency_mask_width: int = 7
    time_masks: int = 2
    time_mask_width: int = 12
    # Convolutions over (time, frequency) before the LSTM; the last one has one filter,
    # as in the attention RNN, so each frame stays num_mel_bins wide.
    conv_layers: int = 2
    conv_filters: int = 10
    conv_kernel_frames: int = 5
    dense_units: int = 64
    classifier_dropout: float = 0.3
    # Scales every dropout rate above and in lstm at once (one knob for tuning).
    dropout_multiplier: float = 1.0
    lstm: LSTMStackConfig = SPEECH_LSTM
    augment: AugmentConfig = AugmentConfig()
    data: DataConfig = DataConfig()
    train: TrainingConfig = TrainingConfig(epochs=40, batch_size=64, learning_rate=2e-3, lr_schedule="cosine",
                                           warmup_epochs=1.0, patience=10)

    def __post_init__(self):
        check_positive(self, "clip_seconds", "frame_ms", "frame_step_ms", "num_mel_bins", "conv_layers",
                       "conv_filters", "conv_kernel_frames", "dense_units", "dropout_multiplier")
        check_non_negative(self, "frequency_masks", "frequency_mask_width", "time_masks", "time_mask_width")
        check_rate(self, "classifier_dropout")
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
    train=TrainingConfig(epochs=2, batch_size=16, learning_rate=3e-3),
)
