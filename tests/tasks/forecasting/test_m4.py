"""The M4 competition's layout, benchmarks and scores (lstmkit.tasks.forecasting.m4)."""

import numpy as np
import pytest

from lstmkit.errors import UserError
from lstmkit.tasks.forecasting import m4


def test_the_published_hourly_scores_of_seasonal_naive_and_naive2_are_reproduced(shared_data):
    """On the 414 hourly series, to the three decimals the competition published: this
    checks the reader, both benchmarks, the seasonality test and both scores at once."""
    train = m4.read_wide(shared_data / "m4_hourly" / "Hourly-train.csv")
    test = m4.read_wide(shared_data / "m4_hourly" / "Hourly-test.csv")
    assert len(train) == len(test) == 414 and set(train) == set(test)
    assert {len(values) for values in test.values()} == {48}
    assert min(map(len, train.values())) == 700 and max(map(len, train.values())) == 960
    snaive = m4.score(train, test, {name: m4.seasonal_naive(train[name], 48, 24) for name in test}, 24)
    naive2 = m4.score(train, test, {name: m4.naive2(train[name], 48, 24) for name in test}, 24)
    assert (round(snaive["smape"], 3), round(snaive["mase"], 3)) == (13.912, 1.193)
    assert (round(naive2["smape"], 3), round(naive2["mase"], 3)) == (18.383, 2.395)
    assert round(m4.owa(snaive, naive2), 4) == 0.6275 and m4.owa(naive2, naive2) == 1.0


def test_naive2_adjusts_a_seasonal_series_and_not_a_flat_one():
    steps = np.arange(24 * 6)
    pattern = 1 + 0.5 * np.sin(2 * np.pi * steps / 24)
    seasonal = 100 * pattern
    assert m4.is_seasonal(seasonal, 24)
    # A purely multiplicative season around a constant level: Naive2 gives the season back.
    np.testing.assert_allclose(m4.naive2(seasonal, 48, 24), 100 * np.resize(pattern[:24], 48), rtol=1e-9)
    noise = np.random.default_rng(0).normal(10, 1, 24 * 6)
    assert not m4.is_seasonal(noise, 24)
    np.testing.assert_array_equal(m4.naive2(noise, 5, 24), np.full(5, noise[-1]))
    assert not m4.is_seasonal(seasonal[: 24 * 3 - 1], 24)  # fewer than three seasons: never seasonal


def test_the_scores_by_hand():
    history = np.array([1.0, 2.0, 3.0, 5.0])  # seasonal differences (m = 2): 2, 3 -> scale 2.5
    truth, forecast = np.array([10.0, 20.0]), np.array([10.0, 30.0])
    assert m4.smape(truth, forecast) == pytest.approx((0 + 200 * 10 / 50) / 2)
    assert m4.mase(history, truth, forecast, 2) == pytest.approx(5 / 2.5)
    np.testing.assert_array_equal(m4.seasonal_naive(history, 5, 2), [3, 5, 3, 5, 3])


def test_rows_of_different_lengths_read_and_bad_fields_name_row_and_column(tmp_path):
    good = tmp_path / "train.csv"
    good.write_text('"V1","V2","V3","V4"\n"H1",1,2,3\n"H2",4,5,\n')
    series = m4.read_wide(good)
    assert list(series) == ["H1", "H2"]
    np.testing.assert_array_equal(series["H2"], [4.0, 5.0])
    for content, fragment in [
        ('"V1","V2","V3"\n"H1",1,x\n', "row 2 (H1), column V3: holds 'x'"),
        ('"V1","V2","V3","V4"\n"H1",1,,3\n', "row 2 (H1), column V3: is empty inside the series"),
        ('"V1","V2"\n"H1",1\n"H1",2\n', "row 3: series H1 appears twice"),
        ('"V1","V2"\n"H1",\n', "row 2 (H1): no values"),
        ('"V1","V2"\n"H1",inf\n', "column V2: holds 'inf', not a finite number"),
        ('"V1","V2"\n"H1",1,2\n', "row 2 has 3 fields, more than the header's 2"),
        ("", "is empty"),
    ]:
        bad = tmp_path / "bad.csv"
        bad.write_text(content)
        with pytest.raises(UserError, match=fragment.replace("(", r"\(").replace(")", r"\)")) as raised:
            m4.read_wide(bad)
        assert "\n" not in str(raised.value)
