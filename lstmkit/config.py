"""Frozen-dataclass configs: strict loading from JSON, type-checked ``--set`` overrides.

A task's config is a frozen dataclass, possibly nesting other dataclasses (``lstm``,
``train``, ``data``). Every mistake in a key or a value is a ``UserError`` that lists
what would have been valid.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, Literal

from lstmkit.errors import UserError


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Optimisation settings every task shares."""

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    # Gradient clipping by the global norm of all gradients together; 0 turns it off.
    global_clipnorm: float = 1.0
    # Learning-rate schedule: "constant"; "cosine" (linear warm-up over warmup_epochs,
    # then cosine decay to min_learning_rate at the last epoch); "plateau" (multiply by
    # plateau_factor when the objective stalls for plateau_patience epochs, down to
    # min_learning_rate). warmup_epochs also works with "constant".
    lr_schedule: Literal["constant", "cosine", "plateau"] = "constant"
    warmup_epochs: float = 0.0
    min_learning_rate: float = 0.0
    plateau_factor: float = 0.5
    plateau_patience: int = 1
    # Early stopping patience, in epochs without improvement of the task's objective.
    patience: int = 3
    shuffle_buffer: int = 50_000
    # Polyak averaging: validate, checkpoint and export an exponential moving average of
    # the weights with this momentum (e.g. 0.99); 0 turns it off.
    ema_momentum: float = 0.0
    # Weight averaging (lstmkit.callbacks.WeightAveraging): "swa" averages the weights
    # at the end of every epoch from averaging_start_epoch (1-based) on; "nt_asgd" starts
    # averaging after every batch once the objective has not improved for
    # averaging_patience epochs (AWD-LSTM's trigger). Validation, checkpoints and export
    # see the average.
    weight_averaging: Literal["none", "swa", "nt_asgd"] = "none"
    averaging_start_epoch: int = 2
    averaging_patience: int = 2

    def __post_init__(self):
        check_positive(self, "epochs", "batch_size", "learning_rate", "shuffle_buffer",
                       "plateau_factor", "averaging_start_epoch")
        check_non_negative(self, "global_clipnorm", "patience", "warmup_epochs",
                           "min_learning_rate", "plateau_patience", "averaging_patience")
        check_rate(self, "ema_momentum")
        if self.plateau_factor >= 1:
            raise UserError(f"plateau_factor must be < 1, got {self.plateau_factor!r}")
        if self.lr_schedule == "plateau" and self.warmup_epochs:
            raise UserError("warmup_epochs works with lr_schedule 'constant' or 'cosine', not "
                            "'plateau'; set one of them differently")
        if self.ema_momentum and self.weight_averaging != "none":
            raise UserError("ema_momentum and weight_averaging both average the weights; "
                            "turn one off (ema_momentum=0 or weight_averaging=none)")


def check_positive(config, *names: str) -> None:
    for name in names:
        if not getattr(config, name) > 0:
            raise UserError(f"{name} must be > 0, got {getattr(config, name)!r}")


def check_non_negative(config, *names: str) -> None:
    for name in names:
        if getattr(config, name) < 0:
            raise UserError(f"{name} must be >= 0, got {getattr(config, name)!r}")


def check_rate(config, *names: str) -> None:
    """Dropout-like rates live in [0, 1)."""
    for name in names:
        value = getattr(config, name)
        if not 0.0 <= value < 1.0:
            raise UserError(f"{name} must be in [0, 1), got {value!r}")


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


def _coerce(value: Any, kind: Any, key: str, from_string: bool) -> Any:
    """Return ``value`` as ``kind`` or raise a UserError naming the key and the type."""
    if typing.get_origin(kind) is Literal:
        choices = typing.get_args(kind)
        if value not in choices:
            raise UserError(
                f"{key} must be one of {', '.join(map(repr, choices))}, got {value!r}"
            )
        return value
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
    raise UserError(f"{key} must be of type {getattr(kind, '__name__', kind)}, got {value!r}")


def from_dict(cls, data: dict[str, Any], prefix: str = ""):
    """Build ``cls`` from a (possibly partial) nested dict; unknown keys are errors."""
    if not isinstance(data, dict):
        raise UserError(f"{prefix.rstrip('.') or 'config'} must be a JSON object")
    types = _field_types(cls)
    unknown = sorted(set(data) - set(types))
    if unknown:
        raise UserError(
            f"unknown config key {prefix}{unknown[0]!r}; valid keys: "
            + ", ".join(_valid_keys(cls, prefix))
        )
    values = {}
    for name, value in data.items():
        kind = types[name]
        if dataclasses.is_dataclass(kind):
            values[name] = from_dict(kind, value, f"{prefix}{name}.")
        else:
            values[name] = _coerce(value, kind, f"{prefix}{name}", from_string=False)
    return cls(**values)


def load_json(path: str | Path) -> dict:
    """Read a config JSON file (for example ``best_config.json`` from ``tune``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist; pass an existing JSON file to --config") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"config file {path} is not valid JSON ({error}); fix the file or drop --config") from None
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
    """Apply ``key.sub=value`` strings (the CLI's ``--set``) to a config, type-checked."""
    cls = type(config)
    update: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set takes KEY=VALUE (for example lstm.units=256), got {item!r}")
        path = key.split(".")
        owner, types = cls, _field_types(cls)
        for depth, part in enumerate(path):
            if part not in types or (depth < len(path) - 1) != dataclasses.is_dataclass(types[part]):
                raise UserError(
                    f"unknown config key {key!r}; valid keys: " + ", ".join(_valid_keys(cls))
                )
            if depth < len(path) - 1:
                owner = types[part]
                types = _field_types(owner)
        value = _coerce(raw, types[path[-1]], key, from_string=True)
        target = update
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return merge(config, update)
