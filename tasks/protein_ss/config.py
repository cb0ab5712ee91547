"""The protein secondary-structure task's config: one frozen dataclass per concern."""

from __future__ import annotations

import dataclasses
from typing import Literal

from lstmkit.config import LSTMStackConfig, TrainingConfig, check_ranges, check_scaled_rates, in_range, rate, seed
from lstmkit.errors import UserError


PROTEIN_LSTM = LSTMStackConfig(units=128, layers=2, bidirectional=True, input_dropout=0.1,
                               hidden_dropout=0.25, output_dropout=0.25, weight_drop=0.1)
# The longest chain accepted anywhere: the PDB chains of the training data reach 1,632
# residues; far beyond that the model would be guessing (and one chain holds a server).
MAX_RESIDUES = 10_000
# Parallel convolutions before the LSTM, at most (one per kernel size).
MAX_CONV_BRANCHES = 16


@dataclasses.dataclass(frozen=True)
class DataConfig:
    # Sources without their own validation split (a labelled FASTA/TSV): a seeded share.
    validation_fraction: float = rate(0.1)
    test_fraction: float = rate(0.1)
    split_seed: int = seed(1337)
    # Batches group chains of similar length (tf.data bucket_by_sequence_length):
    # bucket upper bounds, in residues; the last bucket takes everything longer.
    bucket_boundaries: tuple[int, ...] = in_range((100, 200, 300, 400, 600, 800), 1, MAX_RESIDUES)
    # Training chains longer than this are cut into pieces of at most this length.
    max_train_length: int = in_range(800, 1, MAX_RESIDUES)
    # Keep at most this many training chains (for smoke runs); 0 keeps all.
    max_train_chains: int = in_range(0, 0, 10**9)

    def __post_init__(self):
        check_ranges(self)
        if list(self.bucket_boundaries) != sorted(set(self.bucket_boundaries)):
            raise UserError(f"data.bucket_boundaries must be increasing, got {self.bucket_boundaries}")


@dataclasses.dataclass(frozen=True)
class ProteinConfig:
    # 3: H/E/C. 8: DSSP's eight states (needs 8-state training labels); Q3 is then
    # also reported, from the 8-state predictions mapped to three.
    states: Literal[3, 8] = 3
    embedding_dim: int = in_range(32, 1, 8_192)
    # Parallel 1-D convolutions of these widths see local motifs before the LSTM.
    conv_kernel_sizes: tuple[int, ...] = in_range((3, 7, 11), 1, MAX_RESIDUES)
    conv_filters: int = in_range(64, 1, 8_192)
    conv_dropout: float = rate(0.1)
    dropout_multiplier: float = in_range(1.0, 0.0, 100.0, low_open=True)
    lstm: LSTMStackConfig = PROTEIN_LSTM
    data: DataConfig = DataConfig()
    train: TrainingConfig = TrainingConfig(epochs=15, batch_size=32, learning_rate=2e-3, lr_schedule="cosine",
                                           warmup_epochs=0.5, patience=15)

    def __post_init__(self):
        check_ranges(self)
        check_scaled_rates(self, self.dropout_multiplier, "conv_dropout")
        self.lstm.check_multiplier(self.dropout_multiplier)
        if not 1 <= len(self.conv_kernel_sizes) <= MAX_CONV_BRANCHES:
            raise UserError(f"conv_kernel_sizes must hold 1 to {MAX_CONV_BRANCHES} sizes, "
                            f"got {len(self.conv_kernel_sizes)}")
        # One branch per size, named after it (conv_3): a repeated size would repeat a name.
        if len(set(self.conv_kernel_sizes)) != len(self.conv_kernel_sizes):
            raise UserError(f"conv_kernel_sizes must not repeat a size, got {self.conv_kernel_sizes}")


TINY = ProteinConfig(
    embedding_dim=8,
    conv_kernel_sizes=(3, 5),
    conv_filters=8,
    lstm=dataclasses.replace(PROTEIN_LSTM, units=8, layers=1),
    data=DataConfig(max_train_chains=120, bucket_boundaries=(100, 200)),
    train=TrainingConfig(epochs=2, batch_size=16, learning_rate=5e-3),
)
