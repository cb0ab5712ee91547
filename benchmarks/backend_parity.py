"""Check RegularizedLSTM on the active Keras backend: ``KERAS_BACKEND=jax python
benchmarks/backend_parity.py``.

With every option off it must match keras.layers.LSTM with the same weights (plain,
go_backwards, masked + bidirectional); with every option on, a training step must run
and give a finite loss. The last line is one JSON object.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from lstmkit.layers import RegularizedLSTM  # noqa: E402

EVERY_OPTION = dict(variational_dropout=0.2, output_dropout=0.2, weight_drop=0.3, zoneout_cell=0.1,
                    zoneout_hidden=0.1, layer_norm=True, activation_l2=0.5,
                    temporal_activation_l2=0.5, recurrent_dropout=0.1)


def model(make_lstm, seed=7):
    keras.utils.set_random_seed(seed)
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(50, 8, mask_zero=True)(tokens)
    x = keras.layers.Bidirectional(make_lstm(return_sequences=True))(x)
    x = make_lstm(return_sequences=False, go_backwards=True)(x)
    return keras.Model(tokens, keras.layers.Dense(1)(x))


def main():
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 50, (16, 12)).astype("int32")
    tokens[:, 8:] = 0  # right padding
    reference = model(lambda **kw: keras.layers.LSTM(6, **kw))
    ours = model(lambda **kw: RegularizedLSTM(6, **kw))
    ours.set_weights(reference.get_weights())
    difference = float(np.abs(ours.predict(tokens, verbose=0) - reference.predict(tokens, verbose=0)).max())

    regularized = model(lambda **kw: RegularizedLSTM(6, seed=3, **EVERY_OPTION, **kw))
    regularized.compile(keras.optimizers.Adam(1e-2), "mse")
    history = regularized.fit(tokens, np.ones((16, 1)), epochs=3, batch_size=8, verbose=0)
    losses = [float(v) for v in history.history["loss"]]
    ok = difference < 1e-5 and all(np.isfinite(losses))
    print(json.dumps({"benchmark": "backend_parity", "backend": keras.config.backend(),
                      "metric": "max_abs_difference_vs_keras_lstm", "value": difference,
                      "every_option_losses": losses, "ok": bool(ok)}))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
