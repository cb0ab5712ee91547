"""MaskedAccuracy counts only the positions that are scored."""

import numpy as np
import pytest

from lstmkit.metrics import MaskedAccuracy


def test_ignored_positions_count_neither_way():
    metric = MaskedAccuracy(ignore_class=-1)
    labels = np.array([[0, 1, -1, -1], [2, -1, -1, -1]])
    # Right, wrong, (ignored, predicted anything), right.
    predictions = np.eye(3)[[[0, 2, 1, 1], [2, 0, 0, 0]]].astype("float32")
    metric.update_state(labels, predictions)
    assert float(metric.result()) == pytest.approx(2 / 3)
    # Were padding counted, the same predictions would score 2/8 or 6/8, not 2/3.
    metric.reset_state()
    metric.update_state(np.array([[1, -1]]), np.eye(3)[[[1, 0]]].astype("float32"))
    assert float(metric.result()) == 1.0


def test_config_round_trip():
    metric = MaskedAccuracy(ignore_class=0, name="q3")
    again = MaskedAccuracy.from_config(metric.get_config())
    assert again.ignore_class == 0 and again.name == "q3"
