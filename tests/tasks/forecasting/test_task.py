"""The task's own data on small files, with a stand-in for a trained model (no
training): predict's history files."""

import numpy as np
import pandas as pd
import pytest

from lstmkit.errors import UserError
from lstmkit.tasks.forecasting.task import TASK


def test_a_history_file_with_and_without_utc_offsets_is_refused_for_predict(tmp_path):
    path = tmp_path / "history.csv"
    stamps = list(pd.date_range("2020-01-01", periods=30, freq="D").strftime("%Y-%m-%d"))
    stamps[7] = "2020-01-08T00:00:00+05:00"
    pd.DataFrame({"date": stamps, "y": np.arange(30.0)}).to_csv(path, index=False)
    config = TASK.tiny_config()
    with pytest.raises(UserError, match="row 9 of the time column 'date' holds '2020-01-08T00:00:00\\+05:00'"):
        TASK.read_history(config, str(path))
    (message,) = TASK.rejected_predict_inputs(config, TASK.placeholder_preprocessing(config), [str(path)]).values()
    assert "row 9" in message and "\n" not in message
