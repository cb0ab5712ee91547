"""Keras layers for regularized recurrent networks.

Every layer here is registered serializable under the ``lstmkit`` package, so models
that use them save to and load from ``.keras`` files once ``lstmkit.layers`` is imported;
SampledSoftmaxLoss, part of a language model that is never saved, is the exception.
"""

from lstmkit.layers.spectrogram import FixedLength, LogMelSpectrogram, SpecAugment
from lstmkit.layers.embedding_dropout import EmbeddingDropout
from lstmkit.layers.locked_dropout import LockedDropout
from lstmkit.layers.masking import PaddingMask
from lstmkit.layers.pooling import SequencePooling
from lstmkit.layers.regularized_lstm import RegularizedLSTM
from lstmkit.layers.sampled_softmax import SampledSoftmaxLoss
from lstmkit.config import LSTMStackConfig  # keras-free, so that task configs import no Keras
from lstmkit.layers.stack import scaled_rate, stacked_lstm
from lstmkit.layers.truncate import TruncateSequence

__all__ = [
    "EmbeddingDropout",
    "FixedLength",
    "LogMelSpectrogram",
    "PaddingMask",
    "LSTMStackConfig",
    "LockedDropout",
    "RegularizedLSTM",
    "SampledSoftmaxLoss",
    "SequencePooling",
    "SpecAugment",
    "TruncateSequence",
    "scaled_rate",
    "stacked_lstm",
]
