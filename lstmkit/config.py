"""Frozen-dataclass configs: strict loading from JSON, type-checked ``--set`` overrides.

A task's config is a frozen dataclass, possibly nesting other dataclasses (``lstm``,
``train``, ``data``). Every mistake in a key or a value is a ``UserError`` that names the
key and what would have been valid (for a mistyped key, the nearest valid one).

Field types: ``bool``, ``int``, ``float``, ``str``, ``Literal[...]``, ``tuple[X, ...]`` of
one of those, and ``X | None`` (or ``Optional[X]``) of any of them. In JSON a tuple is a
list (``[100, 200]``) and None is ``null``. As a ``--set`` value (a string) a tuple is
comma-separated (``data.bucket_boundaries=100,200``; an empty value is the empty tuple,
so items cannot contain commas) and ``none`` or ``null`` sets an optional field to None.
A comma-separated string is also accepted for a tuple in JSON: runs saved before a field
became a tuple wrote it that way.

Every numeric field declares the range it may take, next to the field (``in_range``,
``rate``); for a tuple the range holds for each item, and None is in every range. A
config's ``__post_init__`` calls ``check_ranges`` first, so an absurd value
(``lstm.units=100000000``, ``train.learning_rate=inf``, a NaN) is refused when the config
is resolved, before any data is read or model built.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal

from lstmkit.data import decode_utf8, read_bytes, require_path
from lstmkit.errors import UserError

# NumPy's generators refuse negative seeds; 2**31 - 1 fits every seed argument of NumPy and TensorFlow.
MAX_SEED = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class Range:
    """Where a numeric config value may lie; an open end excludes its bound. NaN is in no range."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        def shown(bound):  # 1000000, not 1e+06; 0.5 stays 0.5
            return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"

        return (f"{'(' if self.low_open else '['}{shown(self.low)}, "
                f"{shown(self.high)}{')' if self.high_open else ']'}")


RANGE = "range"  # the key of a field's Range in its dataclass field metadata


def in_range(default, low, high, *, low_open: bool = False, high_open: bool = False):
    """A config field whose value must lie in [low, high] (an open end excludes the bound)."""
    return dataclasses.field(default=default, metadata={RANGE: Range(low, high, low_open, high_open)})


def rate(default: float):
    """A dropout-like rate, fraction or momentum: a field in [0, 1)."""
    return in_range(default, 0.0, 1.0, high_open=True)


def seed(default: int):
    """A random seed: a field in [0, MAX_SEED]."""
    return in_range(default, 0, MAX_SEED)


class OutOfRange(UserError):
    """A config value outside its field's declared range."""

    def __init__(self, key: str, bounds: Range, value):
        super().__init__(f"{key} must be in {bounds}, got {value!r}")
        self.key, self.bounds, self.value = key, bounds, value

    def under(self, prefix: str) -> "OutOfRange":
        """The same error, naming the key from the top of the config (``lstm.units``)."""
        return OutOfRange(prefix + self.key, self.bounds, self.value)


def check_ranges(config) -> None:
    """Raise ``OutOfRange`` for the first of ``config``'s own fields outside its range
    (nested configs check theirs when they are built). A tuple's items are checked one
    by one (the error names ``key[index]``); None, an unset optional, is not checked."""
    for field in dataclasses.fields(config):
        bounds = field.metadata.get(RANGE)
        value = getattr(config, field.name)
        if bounds is None or value is None:
            continue
        if isinstance(value, tuple):
            for index, item in enumerate(value):
                if item not in bounds:
                    raise OutOfRange(f"{field.name}[{index}]", bounds, item)
        elif value not in bounds:
            raise OutOfRange(field.name, bounds, value)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Optimisation settings every task shares."""

    epochs: int = in_range(10, 1, 100_000)
    batch_size: int = in_range(64, 1, 65_536)
    learning_rate: float = in_range(1e-3, 0.0, 10.0, low_open=True)
    # Gradient clipping by the global norm of all gradients together; 0 turns it off.
    global_clipnorm: float = in_range(1.0, 0.0, 1e6)
    # Learning-rate schedule: "constant"; "cosine" (linear warm-up over warmup_epochs,
    # then cosine decay to min_learning_rate at the last epoch); "plateau" (multiply by
    # plateau_factor when the objective stalls for plateau_patience epochs, down to
    # min_learning_rate). warmup_epochs also works with "constant".
    lr_schedule: Literal["constant", "cosine", "plateau"] = "constant"
    warmup_epochs: float = in_range(0.0, 0.0, 100_000.0)
    min_learning_rate: float = in_range(0.0, 0.0, 10.0)
    plateau_factor: float = in_range(0.5, 0.0, 1.0, low_open=True, high_open=True)
    plateau_patience: int = in_range(1, 0, 100_000)
    # Early stopping patience, in epochs without improvement of the task's objective.
    patience: int = in_range(3, 0, 100_000)
    # Examples in tf.data's shuffle buffer, which reserves about 24 bytes per slot up
    # front whatever the data's size (10,000,000: 0.2 GiB; measured).
    shuffle_buffer: int = in_range(50_000, 1, 10_000_000)
    # Polyak averaging: validate, checkpoint and export an exponential moving average of
    # the weights with this momentum (e.g. 0.99); 0 turns it off.
    ema_momentum: float = rate(0.0)
    # Weight averaging (lstmkit.callbacks.WeightAveraging): "swa" averages the weights
    # at the end of every epoch from averaging_start_epoch (1-based) on; "nt_asgd" starts
    # averaging after every batch once the objective has not improved for
    # averaging_patience epochs (AWD-LSTM's trigger). Validation, checkpoints and export
    # see the average.
    weight_averaging: Literal["none", "swa", "nt_asgd"] = "none"
    averaging_start_epoch: int = in_range(2, 1, 100_000)
    averaging_patience: int = in_range(2, 0, 100_000)
    # The Keras dtype policy the model is built under (lstmkit.precision): "float32",
    # "mixed_bfloat16" (CPUs with AMX/AVX-512 BF16, TPUs), "mixed_float16" (GPUs), or
    # "auto", which picks per machine.
    precision: Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"] = "auto"

    def __post_init__(self):
        check_ranges(self)
        if self.lr_schedule == "plateau" and self.warmup_epochs:
            raise UserError("warmup_epochs works with lr_schedule 'constant' or 'cosine', not "
                            "'plateau'; set one of them differently")
        if self.ema_momentum and self.weight_averaging != "none":
            raise UserError("ema_momentum and weight_averaging both average the weights; "
                            "turn one off (ema_momentum=0 or weight_averaging=none)")


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """Language-model pretraining of a text task's encoder (lstmkit.training.pretrain):
    the embedding and LSTM stack learn to predict the next word (and, in a
    bidirectional stack, the backward direction the previous word) on the training
    texts before the task trains on its labels. ``epochs`` 0 turns it off."""

    epochs: int = in_range(0, 0, 100_000)
    # Tokens per training window (each window starts from a zero state).
    sequence_length: int = in_range(70, 2, 100_000)
    batch_size: int = in_range(64, 1, 65_536)
    # Peak rate of a linear warm-up (the first tenth of the steps) then cosine decay.
    learning_rate: float = in_range(3e-3, 0.0, 10.0, low_open=True)
    global_clipnorm: float = in_range(1.0, 0.0, 1e6)
    # Words drawn per batch for the sampled softmax (log-uniform over the vocabulary,
    # which is sorted by frequency); must be smaller than the vocabulary.
    sampled_words: int = in_range(1_024, 1, 10_000_000)

    def __post_init__(self):
        check_ranges(self)


def check_scaled_rates(config, multiplier: float, *names: str, prefix: str = "") -> None:
    """Rates that ``dropout_multiplier`` scales must stay in [0, 1) after scaling."""
    for name in names:
        value = getattr(config, name) * multiplier
        if not 0.0 <= value < 1.0:
            raise UserError(
                f"dropout_multiplier {multiplier:g} makes {prefix}{name} "
                f"{getattr(config, name):g} -> {value:g}; scaled rates must stay below 1, "
                "so lower one of them"
            )



@dataclasses.dataclass(frozen=True)
class LSTMStackConfig:
    """The recurrent part of a task's config: the arguments of ``stacked_lstm``.

    Rates are before ``dropout_multiplier``, which lives in the task config because it
    scales the task's other dropouts (embedding, classifier) too.
    """

    # 8,192 units: a 1 GiB recurrent kernel per direction and layer, already past sense.
    units: int = in_range(128, 1, 8_192)
    layers: int = in_range(1, 1, 32)
    bidirectional: bool = False
    input_dropout: float = rate(0.0)
    hidden_dropout: float = rate(0.0)
    output_dropout: float = rate(0.0)
    weight_drop: float = rate(0.0)
    # Keras's per-step recurrent dropout: slow (no fused kernel); weight_drop is the fast alternative.
    recurrent_dropout: float = rate(0.0)
    zoneout_cell: float = rate(0.0)
    zoneout_hidden: float = rate(0.0)
    layer_norm: bool = False
    # AR / TAR weights on the last layer's output (AWD-LSTM uses 2 and 1).
    activation_l2: float = in_range(0.0, 0.0, 1_000.0)
    temporal_activation_l2: float = in_range(0.0, 0.0, 1_000.0)
    l2: float = in_range(0.0, 0.0, 1_000.0)

    RATES = ("input_dropout", "hidden_dropout", "output_dropout", "weight_drop",
             "recurrent_dropout", "zoneout_cell", "zoneout_hidden")

    def __post_init__(self):
        check_ranges(self)

    def check_multiplier(self, multiplier: float, prefix: str = "lstm.") -> None:
        """Raise a UserError if ``multiplier`` would push a rate to 1 or beyond."""
        check_scaled_rates(self, multiplier, *self.RATES, prefix=prefix)

    def apply(self, inputs, return_sequences=True, dropout_multiplier=1.0, seed=None, name="lstm",
              return_state=False):
        """``stacked_lstm(inputs, ...)`` with this config's settings."""
        from lstmkit.layers.stack import stacked_lstm  # Keras: imported only to build a model

        settings = dataclasses.asdict(self)
        settings["num_layers"] = settings.pop("layers")
        return stacked_lstm(inputs, **settings, dropout_multiplier=dropout_multiplier,
                            return_sequences=return_sequences, return_state=return_state,
                            seed=seed, name=name)


def to_dict(config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls)}


def _valid_keys(cls, prefix: str = "") -> list[str]:
    keys = []
    for name, kind in _field_types(cls).items():
        if dataclasses.is_dataclass(kind):
            keys.extend(_valid_keys(kind, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _unknown_key(key: str, cls, prefix: str = "") -> UserError:
    """The error for ``key``, which the config ``cls`` (the section at ``prefix``) does not
    have: "did you mean" the nearest valid key, else the keys of the section it reached.

    Each dotted part is corrected in turn to the closest name in its section (matching
    whole keys would rate any key of the right section close, for its shared prefix);
    failing that, the last part may be a key of a nested section (``units``: ``lstm.units``).
    """
    parts = key[len(prefix):].split(".")
    section, reached = cls, prefix
    for depth, part in enumerate(parts):
        names = _field_types(section)
        last = depth == len(parts) - 1
        fitting = list(names) if last else [name for name, kind in names.items() if dataclasses.is_dataclass(kind)]
        nearest = difflib.get_close_matches(part, fitting, n=1)
        if not nearest:
            break
        if last:
            return UserError(f"unknown config key {key!r}; did you mean {reached + nearest[0]!r}?")
        section, reached = names[nearest[0]], f"{reached}{nearest[0]}."
    keys = _valid_keys(section, reached)
    last_parts = [valid.rpartition(".")[2] for valid in keys]
    nearest = difflib.get_close_matches(parts[-1], last_parts, n=1)
    if nearest:
        return UserError(f"unknown config key {key!r}; did you mean {keys[last_parts.index(nearest[0])]!r}?")
    return UserError(f"unknown config key {key!r}; {_section_keys(section, reached)}")


def _section_keys(cls, prefix: str) -> str:
    """'the keys of lstm are units, layers, ...' (a nested section shown as ``train.*``)."""
    names = [f"{name}.*" if dataclasses.is_dataclass(kind) else name for name, kind in _field_types(cls).items()]
    where = f"the keys of {prefix.rstrip('.')}" if prefix else "the top-level keys"
    return f"{where} are {', '.join(names)}"


NONE_WORDS = ("none", "null")  # what --set takes for None


def _optional_of(kind) -> Any:
    """``X`` for an ``X | None`` or ``Optional[X]`` field type, otherwise None."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        others = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        if len(others) == 1 and len(typing.get_args(kind)) == 2:
            return others[0]
    return None


def _items_of(kind) -> Any:
    """``X`` for a ``tuple[X, ...]`` field type, otherwise None."""
    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
    return None


def _type_name(kind) -> str:
    """'int', 'list of int', 'int or none': how a field type reads in an error message."""
    if _optional_of(kind) is not None:
        return f"{_type_name(_optional_of(kind))} or none"
    if _items_of(kind) is not None:
        return f"list of {_type_name(_items_of(kind))}"
    if typing.get_origin(kind) is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(kind)))
    return getattr(kind, "__name__", str(kind))


def _coerce(value: Any, kind: Any, key: str, from_string: bool, shown: str | None = None) -> Any:
    """Return ``value`` as ``kind`` or raise a UserError naming the key and the type
    (``shown``, if given: the field's whole type, when ``kind`` is the X of ``X | None``).

    ``from_string``: ``value`` is a ``--set`` string, to be parsed; otherwise it came
    from JSON (or a dataclass) and must already have the right type.
    """
    shown = shown or _type_name(kind)
    optional = _optional_of(kind)
    if optional is not None:
        if value is None or (from_string and value.strip().lower() in NONE_WORDS):
            return None
        return _coerce(value, optional, key, from_string, shown=_type_name(kind))
    items = _items_of(kind)
    if items is not None:
        if isinstance(value, str):  # --set's form, and that of runs saved before tuples
            parts = [part.strip() for part in value.split(",")] if value.strip() else []
            return tuple(_coerce(part, items, f"{key}[{index}]", from_string=True)
                         for index, part in enumerate(parts))
        if isinstance(value, (list, tuple)):  # JSON gives lists; merge() passes tuples
            return tuple(_coerce(item, items, f"{key}[{index}]", from_string)
                         for index, item in enumerate(value))
        raise UserError(f"{key} must be a {shown}, got {value!r}")
    if typing.get_origin(kind) is Literal:
        for choice in typing.get_args(kind):
            # A --set string names a number choice by its digits: states=8.
            if value == choice or (from_string and isinstance(value, str) and value.strip() == str(choice)):
                return choice
        raise UserError(f"{key} must be {shown}, got {value!r}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if from_string and str(value).lower() in ("true", "1", "yes"):
            return True
        if from_string and str(value).lower() in ("false", "0", "no"):
            return False
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_string:
            try:
                return int(value)
            except ValueError:
                pass
            try:  # whole numbers in exponent notation: --set train.shuffle_buffer=1e5
                number = float(value)
            except ValueError:
                pass
            else:
                if number.is_integer():
                    return int(number)
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if from_string:
            try:
                return float(value)
            except ValueError:
                pass
    elif kind is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"config field {key} has type {kind}, which lstmkit.config does not support")
    raise UserError(f"{key} must be of type {shown}, got {value!r}")


def from_dict(cls, data: dict[str, Any], prefix: str = ""):
    """Build ``cls`` from a (possibly partial) nested dict; unknown keys are errors."""
    if not isinstance(data, dict):
        raise UserError(f"{prefix.rstrip('.') or 'config'} must be a JSON object")
    field_types = _field_types(cls)
    unknown = sorted(set(data) - set(field_types))
    if unknown:
        raise _unknown_key(f"{prefix}{unknown[0]}", cls, prefix)
    values = {}
    for name, value in data.items():
        kind = field_types[name]
        if dataclasses.is_dataclass(kind):
            values[name] = from_dict(kind, value, f"{prefix}{name}.")
        else:
            values[name] = _coerce(value, kind, f"{prefix}{name}", from_string=False)
    try:
        return cls(**values)
    except OutOfRange as error:
        raise error.under(prefix) from None


def load_json(path: str | Path) -> dict:
    """Read a config JSON file (for example ``best_config.json`` from ``tune``)."""
    path = require_path(path, "config file", "name an existing JSON file")
    text = decode_utf8(read_bytes(path, "config"), f"config file {path}")
    try:
        data = json.loads(text)
    except RecursionError:
        raise UserError(f"config file {path} is nested too deeply to be a config; a config is a "
                        "JSON object of sections and values, like best_config.json") from None
    except ValueError as error:  # JSONDecodeError, and integers too long to convert
        raise UserError(f"config file {path} is not valid JSON ({error}); fix the file or use another") from None
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a JSON object of config keys, like best_config.json")
    return data


def merge(config, data: dict[str, Any]):
    """Return ``config`` with the fields in the nested dict ``data`` replaced."""
    merged = _deep_update(to_dict(config), data)
    return from_dict(type(config), merged)


def _deep_update(base: dict, update: dict) -> dict:
    result = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _deep_update(result[key], value)
        else:
            result[key] = value
    return result


def apply_overrides(config, overrides: list[str]):
    """Apply ``key.sub=value`` strings (the CLI's ``--set``) to a config, type-checked.

    A value is parsed for its field's type: ``100,200`` for a tuple, ``none`` or ``null``
    for None (see the module docstring).
    """
    cls = type(config)
    update: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"a config override is KEY=VALUE (for example lstm.units=256), got {item!r}")
        *sections, name = key.split(".")
        section = cls
        for part in sections:
            section = _field_types(section).get(part)
            if not dataclasses.is_dataclass(section):
                raise _unknown_key(key, cls)
        kind = _field_types(section).get(name)
        if kind is None:
            raise _unknown_key(key, cls)
        if dataclasses.is_dataclass(kind):
            raise UserError(f"config key {key!r} is a section, not a value; {_section_keys(kind, key + '.')}")
        value = _coerce(raw, kind, key, from_string=True)
        target = update
        for part in sections:
            target = target.setdefault(part, {})
        target[name] = value
    return merge(config, update)
