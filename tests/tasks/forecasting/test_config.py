import re

import pytest

from lstmkit import config as config_lib
from lstmkit.errors import UserError
from lstmkit.tasks.forecasting.config import ForecastConfig


@pytest.mark.parametrize("overrides, message", [
    (["quantiles=0.1,0.9"], "include 0.5"),
    (["quantiles=0.9,0.5,0.1"], "increasing"),
    (["quantiles=0,0.5"], "quantiles\\[0\\]"),
    (["horizon=0"], "horizon"),
    (["context=inf"], "context"),
    (["data.validation_fraction=0.5", "data.test_fraction=0.45"], "leave at least 10%"),
])
def test_bad_settings_are_refused_when_the_config_is_resolved(overrides, message):
    with pytest.raises(UserError, match=message):
        config_lib.apply_overrides(ForecastConfig(), overrides)


def test_the_default_quantiles_hold_the_median():
    assert 0.5 in ForecastConfig().quantiles


@pytest.mark.parametrize("settings, fragment", [
    (["anchor=season"], "anchor=season repeats the last season of the history: it needs data.season above 1"),
    (["anchor=season", "data.season=60", "context=48"], "at most context (48)"),
    (["transform=log", "scaling=run"], "transform=log needs scaling=window"),
])
def test_an_anchor_without_a_season_and_a_log_with_a_run_scale_are_refused(settings, fragment):
    with pytest.raises(UserError, match=re.escape(fragment)):
        config_lib.apply_overrides(ForecastConfig(), settings)
