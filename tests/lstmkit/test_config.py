import dataclasses
import json
import typing

import pytest

from lstmkit import config as config_lib
from lstmkit.config import TrainingConfig
from lstmkit.errors import UserError
from lstmkit.registry import get_task, task_names
from lstmkit.tasks.sentiment.config import SentimentConfig


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
        ("lstm.unit=3", "unknown config key 'lstm.unit'; did you mean 'lstm.units'?"),
        ("lstm=3", "config key 'lstm' is a section, not a value; the keys of lstm are units, layers"),
        ("lstm.units=many", "lstm.units must be of type int"),
        ("pooling=median", "pooling must be one of 'last', 'max', 'mean', 'attention'"),
        ("lstm.input_dropout=1.5", "input_dropout must be in [0, 1)"),
        ("units", "a config override is KEY=VALUE"),
    ],
)
def test_bad_overrides_name_the_problem(override, message):
    with pytest.raises(UserError) as error:
        config_lib.apply_overrides(SentimentConfig(), [override])
    assert message in str(error.value)


@pytest.mark.parametrize("override, nearest", [
    ("train.epoch=3", "train.epochs"),
    ("trian.epochs=3", "train.epochs"),  # a typo in the section
    ("units=3", "lstm.units"),  # a key of a nested section, given without it
    ("data.split_sed=1", "data.split_seed"),
])
def test_a_mistyped_key_suggests_the_nearest_valid_one(override, nearest):
    with pytest.raises(UserError) as error:
        config_lib.apply_overrides(SentimentConfig(), [override])
    key = override.partition("=")[0]
    assert str(error.value) == f"unknown config key {key!r}; did you mean {nearest!r}?"


def test_a_key_near_no_valid_one_names_the_keys_of_its_section():
    with pytest.raises(UserError) as error:
        config_lib.apply_overrides(SentimentConfig(), ["nope=1"])
    assert str(error.value).startswith("unknown config key 'nope'; the top-level keys are standardize, vocab_size,")
    assert str(error.value).endswith("lstm.*, data.*, train.*, pretrain.*")
    # A key whose section is right lists that section only; a shared "lstm." prefix is
    # no reason to suggest lstm.l2 for lstm.zzz.
    with pytest.raises(UserError) as error:
        config_lib.apply_overrides(SentimentConfig(), ["lstm.zzz=1"])
    assert str(error.value).startswith("unknown config key 'lstm.zzz'; the keys of lstm are units, layers,")
    assert "epochs" not in str(error.value) and len(str(error.value)) < 300


def test_unknown_keys_in_json_get_the_same_suggestions():
    with pytest.raises(UserError, match=r"^unknown config key 'train.epoch'; did you mean 'train.epochs'\?$"):
        config_lib.from_dict(SentimentConfig, {"train": {"epoch": 3}})
    with pytest.raises(UserError, match=r"^unknown config key 'trian'; did you mean 'train'\?$"):
        config_lib.from_dict(SentimentConfig, {"trian": {"epochs": 3}})


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


def _numeric_fields(cls, prefix=""):
    """(key, field, type) of every int/float field of a config class, nested ones too;
    for a tuple or optional field of numbers, the key names its first item (``key[0]``)."""
    types = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        kind = types[field.name]
        if dataclasses.is_dataclass(kind):
            yield from _numeric_fields(kind, f"{prefix}{field.name}.")
            continue
        kind, first = _unwrapped(kind), ""
        if typing.get_origin(kind) is tuple:
            kind, first = typing.get_args(kind)[0], "[0]"
        if kind in (int, float):
            yield f"{prefix}{field.name}{first}", field, kind


def _unwrapped(kind):
    """X for X | None, otherwise kind."""
    args = [arg for arg in typing.get_args(kind) if arg is not type(None)]
    return args[0] if type(None) in typing.get_args(kind) else kind


@pytest.mark.parametrize("task_name", task_names())
def test_every_numeric_key_declares_a_range_its_presets_respect(task_name):
    task = get_task(task_name)
    fields = list(_numeric_fields(task.config_class))
    assert len(fields) > 10
    missing = [key for key, field, _ in fields if config_lib.RANGE not in field.metadata]
    assert missing == []
    for preset in (task.default_config(), task.tiny_config()):
        assert config_lib.from_dict(task.config_class, config_lib.to_dict(preset)) == preset


@pytest.mark.parametrize("task_name", task_names())
def test_every_range_is_checked_and_the_error_names_the_whole_key(task_name):
    """Values just outside each end, and NaN, are refused for every numeric key; the
    check runs in each config class, so one that forgot it would fail here."""
    task = get_task(task_name)
    for key, field, kind in _numeric_fields(task.config_class):
        bounds = field.metadata[config_lib.RANGE]
        step = 1 if kind is int else 1e-9 * max(1.0, abs(bounds.high))
        outside = [bounds.low if bounds.low_open else bounds.low - step,
                   bounds.high if bounds.high_open else bounds.high + step]
        outside += [float("nan"), float("inf")] if kind is float else []
        for value in outside:
            with pytest.raises(config_lib.OutOfRange) as error:
                # key[0]=v sets a tuple field to the one item v.
                config_lib.apply_overrides(task.default_config(), [f"{key.removesuffix('[0]')}={value!r}"])
            assert str(error.value).startswith(f"{key} must be in {bounds}, got "), str(error.value)


@pytest.mark.parametrize("override, message", [
    ("lstm.units=100000000", "lstm.units must be in [1, 8192], got 100000000"),
    ("lstm.units=1e8", "lstm.units must be in [1, 8192], got 100000000"),
    ("embedding_dim=2000000000", "embedding_dim must be in [1, 8192], got 2000000000"),
    ("train.batch_size=1e20", "train.batch_size must be in [1, 65536], got 100000000000000000000"),
    ("train.shuffle_buffer=1000000000000000000",
     "train.shuffle_buffer must be in [1, 10000000], got 1000000000000000000"),
    ("train.learning_rate=inf", "train.learning_rate must be in (0, 10], got inf"),
    ("train.global_clipnorm=nan", "train.global_clipnorm must be in [0, 1000000], got nan"),
    (f"train.epochs={10**30}", f"train.epochs must be in [1, 100000], got {10**30}"),
    ("data.split_seed=-1", "data.split_seed must be in [0, 2147483647], got -1"),
])
def test_absurd_values_are_refused_naming_key_range_and_value(override, message):
    with pytest.raises(UserError) as error:
        config_lib.apply_overrides(SentimentConfig(), [override])
    assert str(error.value).startswith(message)


def test_whole_numbers_may_use_exponent_notation():
    config = config_lib.apply_overrides(SentimentConfig(), ["train.shuffle_buffer=1e5", "lstm.units=2.56e2"])
    assert config.train.shuffle_buffer == 100_000 and config.lstm.units == 256
    assert isinstance(config.lstm.units, int)
    with pytest.raises(UserError, match="lstm.units must be of type int, got '1.5'"):
        config_lib.apply_overrides(SentimentConfig(), ["lstm.units=1.5"])


def test_direct_construction_checks_ranges_too():
    with pytest.raises(config_lib.OutOfRange, match=r"^batch_size must be in \[1, 65536\], got 0$"):
        TrainingConfig(batch_size=0)


@pytest.mark.parametrize("text, message", [
    ('{"train": {"learning_rate": NaN}}', r"train.learning_rate must be in \(0, 10\], got nan"),
    ('{"train": {"epochs": 1e400}}', "train.epochs must be of type int"),
    ('{"lstm": {"units": ' + "9" * 5000 + "}}", "is not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "is nested too deeply to be a config"),
    ('{"lstm": ', "is not valid JSON"),
])
def test_bad_config_files_name_the_problem(tmp_path, text, message):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        config_lib.merge(SentimentConfig(), config_lib.load_json(path))


def test_config_files_are_regular_files_of_at_most_1_mib(tmp_path):
    with pytest.raises(UserError, match="is a folder; expected a file"):
        config_lib.load_json(tmp_path)
    with pytest.raises(UserError, match="/dev/zero is a device, not a regular file"):
        config_lib.load_json("/dev/zero")
    big = tmp_path / "big.json"
    big.write_text('{"pooling": "max"' + " " * (1 << 20) + "}")
    with pytest.raises(UserError, match="larger than 1 MiB, the most lstmkit reads from one config file"):
        config_lib.load_json(big)


@dataclasses.dataclass(frozen=True)
class ListsAndOptionals:
    """Every list and optional shape the config system supports."""

    sizes: tuple[int, ...] = config_lib.in_range((1, 2), 1, 10)
    names: tuple[str, ...] = ()
    limit: int | None = config_lib.in_range(None, 1, 100)
    rates: typing.Optional[tuple[float, ...]] = config_lib.in_range(None, 0.0, 1.0)

    def __post_init__(self):
        config_lib.check_ranges(self)


def test_tuples_are_comma_separated_in_overrides_and_lists_in_json():
    config = config_lib.apply_overrides(ListsAndOptionals(), ["sizes=3, 4,5", "names=yes,no", "rates=0.5"])
    assert config == ListsAndOptionals(sizes=(3, 4, 5), names=("yes", "no"), rates=(0.5,))
    assert config_lib.apply_overrides(config, ["sizes="]).sizes == ()
    assert config_lib.from_dict(ListsAndOptionals, {"sizes": [7, 8]}).sizes == (7, 8)
    # Saved as JSON lists (as a run's config.json is), read back as tuples.
    saved = json.loads(json.dumps(config_lib.to_dict(config)))
    assert saved["sizes"] == [3, 4, 5]
    assert config_lib.from_dict(ListsAndOptionals, saved) == config


def test_optional_fields_take_none_or_null():
    config = config_lib.apply_overrides(ListsAndOptionals(), ["limit=5", "rates=0.1,0.2"])
    assert config.limit == 5 and config.rates == (0.1, 0.2)
    for word in ("none", "null", "None"):
        unset = config_lib.apply_overrides(config, [f"limit={word}", f"rates={word}"])
        assert unset.limit is None and unset.rates is None
    assert config_lib.from_dict(ListsAndOptionals, {"limit": None, "rates": None}) == ListsAndOptionals()
    assert config_lib.from_dict(ListsAndOptionals, {"limit": 7}).limit == 7


@pytest.mark.parametrize("override, message", [
    ("sizes=1,x", "sizes[1] must be of type int, got 'x'"),
    ("sizes=1,,2", "sizes[1] must be of type int, got ''"),
    ("sizes=1,11", "sizes[1] must be in [1, 10], got 11"),
    ("sizes=0", "sizes[0] must be in [1, 10], got 0"),
    ("rates=0.5,1.5", "rates[1] must be in [0, 1], got 1.5"),
    ("limit=many", "limit must be of type int or none, got 'many'"),
    ("limit=0", "limit must be in [1, 100], got 0"),
])
def test_every_item_is_type_and_range_checked(override, message):
    with pytest.raises(UserError) as error:
        config_lib.apply_overrides(ListsAndOptionals(), [override])
    assert str(error.value) == message


@pytest.mark.parametrize("data, message", [
    ({"sizes": ["1"]}, "sizes[0] must be of type int, got '1'"),
    ({"sizes": [1, True]}, "sizes[1] must be of type int, got True"),
    ({"sizes": 3}, "sizes must be a list of int, got 3"),
    ({"rates": {"a": 1}}, "rates must be a list of float or none, got {'a': 1}"),
    ({"limit": "5"}, "limit must be of type int or none, got '5'"),
])
def test_json_items_are_not_coerced(data, message):
    with pytest.raises(UserError) as error:
        config_lib.from_dict(ListsAndOptionals, data)
    assert str(error.value) == message
