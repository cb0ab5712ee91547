"""PaddingMask attaches ids != padding as the Keras mask: a masked LSTM ignores padding."""

import keras
import numpy as np

from lstmkit.layers import PaddingMask


def test_lstm_after_padding_mask_ignores_padded_steps(tmp_path):
    features = keras.Input((None, 3))
    ids = keras.Input((None,), dtype="int32")
    x = keras.layers.Conv1D(4, 3, padding="same")(features)
    x = PaddingMask()([x, ids])
    model = keras.Model([features, ids], keras.layers.LSTM(5, go_backwards=True)(x))
    rng = np.random.default_rng(0)
    short = rng.standard_normal((1, 4, 3)).astype("float32")
    padded = np.concatenate([short, rng.standard_normal((1, 3, 3)).astype("float32")], axis=1)
    # The convolution sees the padded values next to the last real step, so compare the
    # mask's effect on the LSTM alone: padding positions must not change the result.
    alone = model([padded, np.array([[1, 1, 1, 1, 0, 0, 0]])]).numpy()
    changed = padded.copy()
    changed[:, 6:] = 100.0  # beyond the convolution's reach of the real steps
    again = model([changed, np.array([[1, 1, 1, 1, 0, 0, 0]])]).numpy()
    np.testing.assert_allclose(alone, again, atol=1e-6)
    unmasked = model([changed, np.ones((1, 7), "int32")]).numpy()
    assert not np.allclose(unmasked, alone)
    path = tmp_path / "m.keras"
    model.save(path)
    assert keras.saving.load_model(path).layers[3].get_config()["padding_id"] == 0
