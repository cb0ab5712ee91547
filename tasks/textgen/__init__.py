"""Character-level text generation: a stacked, regularized LSTM language model."""
