import dataclasses
import json

import pytest

from lstmkit import config as config_lib
from lstmkit.errors import UserError
from tasks.sentiment.config import SentimentConfig


def test_overrides_are_typed_and_nested():
    config = config_lib.apply_overrides(
        SentimentConfig(),
        ["lstm.units=256", "lstm.bidirectional=false", "train.learning_rate=0.01", "pooling=attention"],
    )
    assert config.lstm.units == 256 and isinstance(config.lstm.units, int)
    assert config.lstm.bidirectional is False
    assert config.train.learning_rate == 0.01
    assert config.pooling == "attention"
    # Untouched fields keep their defaults.
    assert config.vocab_size == SentimentConfig().vocab_size


@pytest.mark.parametrize(
    "override, message",
    [
        ("lstm.unit=3", "unknown config key 'lstm.unit'; valid keys: standardize, vocab_size"),
        ("lstm=3", "unknown config key 'lstm'"),
        ("lstm.units=many", "lstm.units must be of type int"),
        ("pooling=median", "pooling must be one of 'last', 'max', 'mean', 'attention'"),
        ("lstm.input_dropout=1.5", "input_dropout must be in [0, 1)"),
        ("units", "--set takes KEY=VALUE"),
    ],
)
def test_bad_overrides_name_the_problem(override, message):
    with pytest.raises(UserError) as error:
        config_lib.apply_overrides(SentimentConfig(), [override])
    assert message in str(error.value)


def test_unknown_key_lists_valid_keys():
    with pytest.raises(UserError) as error:
        config_lib.apply_overrides(SentimentConfig(), ["nope=1"])
    assert "lstm.units" in str(error.value) and "train.epochs" in str(error.value)


def test_json_round_trip_and_partial_files(tmp_path):
    config = config_lib.apply_overrides(SentimentConfig(), ["lstm.layers=2", "embedding_dim=64"])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config_lib.to_dict(config)))
    loaded = config_lib.merge(SentimentConfig(), config_lib.load_json(path))
    assert loaded == config
    partial = config_lib.merge(SentimentConfig(), {"lstm": {"units": 32}})
    assert partial.lstm.units == 32 and partial.lstm.layers == 1


def test_json_types_are_not_coerced():
    with pytest.raises(UserError, match="lstm.units must be of type int"):
        config_lib.from_dict(SentimentConfig, {"lstm": {"units": "32"}})


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SentimentConfig().vocab_size = 3
