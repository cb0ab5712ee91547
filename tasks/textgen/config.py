"""The text generation task's config: one frozen dataclass per concern."""

from __future__ import annotations

import dataclasses
from typing import Literal

from lstmkit.config import LSTMStackConfig, TrainingConfig, check_ranges, check_scaled_rates, in_range, rate
from lstmkit.errors import UserError


# The longest prompt read, on the command line and by an exported model: the model reads
# one character per step, and a prompt far beyond its training windows only holds a
# server (a 7 MB one held a worker for 172 s).
MAX_PROMPT_CHARACTERS = 10_000

# A 512-unit LSTM memorizes tiny shakespeare within a few epochs under light dropout
# (0.1 each: training loss 1.48, validation 1.73 after 4 epochs; BENCHMARKS.md), so
# the defaults regularize harder, weight drop most: the recurrent path is where it memorized.
TEXTGEN_LSTM = LSTMStackConfig(units=512, layers=1, input_dropout=0.2, output_dropout=0.2, weight_drop=0.3)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    # How the training text becomes batches: "streams" deals it into train.batch_size
    # contiguous streams and carries each row's LSTM state from batch to batch
    # (truncated backpropagation through time); "windows" shuffles independent windows,
    # each from a zero state. BENCHMARKS.md compares the two.
    batching: Literal["streams", "windows"] = "streams"
    # Characters per training window (each starts from a zero state).
    sequence_length: int = in_range(128, 1, 100_000)
    # Characters per validation and test window, each scored from a zero state: the
    # most context an evaluated character has (256 is nanoGPT's block size, so the
    # losses compare with its character-level baseline).
    validation_length: int = in_range(256, 1, 100_000)
    validation_fraction: float = rate(0.1)
    # 0: no test text of its own; the validation part is reported as test too.
    test_fraction: float = rate(0.0)
    # The most frequent characters of the training text form the vocabulary; any
    # other character is out of vocabulary (one shared id). Unicode has 1,114,112 code points.
    max_vocabulary: int = in_range(1_000, 1, 1_114_112)
    # Train on the first N characters of the training part only; 0 keeps all.
    max_train_characters: int = in_range(0, 0, 2**40)

    def __post_init__(self):
        check_ranges(self)
        if not self.validation_fraction > 0:
            raise UserError("data.validation_fraction must be > 0: validation picks the best epoch")
        if self.validation_fraction + self.test_fraction >= 1:
            raise UserError("data.validation_fraction + data.test_fraction must leave text to train on (< 1)")


@dataclasses.dataclass(frozen=True)
class TextgenConfig:
    embedding_dim: int = in_range(128, 1, 8_192)
    # Drops whole characters (embedding rows) while training.
    embedding_dropout: float = rate(0.0)
    # Share the input embedding with the output layer (needs embedding_dim == lstm.units).
    tie_embeddings: bool = False
    # Scales every dropout rate above and in lstm at once (one knob for tuning).
    dropout_multiplier: float = in_range(1.0, 0.0, 100.0, low_open=True)
    lstm: LSTMStackConfig = TEXTGEN_LSTM
    data: DataConfig = DataConfig()
    # batch_size is also the number of contiguous streams the training text is dealt into.
    train: TrainingConfig = TrainingConfig(epochs=20, batch_size=32, learning_rate=2e-3, patience=3,
                                           lr_schedule="cosine")

    def __post_init__(self):
        check_ranges(self)
        check_scaled_rates(self, self.dropout_multiplier, "embedding_dropout")
        self.lstm.check_multiplier(self.dropout_multiplier)
        if self.lstm.bidirectional:
            raise UserError("lstm.bidirectional must be false: a language model reads left to right")
        if self.tie_embeddings and self.embedding_dim != self.lstm.units:
            raise UserError(f"tie_embeddings needs embedding_dim == lstm.units "
                            f"(now {self.embedding_dim} and {self.lstm.units}); set one to the other")


TINY = TextgenConfig(
    embedding_dim=16,
    lstm=dataclasses.replace(TEXTGEN_LSTM, units=32),
    data=DataConfig(sequence_length=32, validation_length=64, max_train_characters=20_000),
    train=TrainingConfig(epochs=2, batch_size=16, learning_rate=1e-2),
)
