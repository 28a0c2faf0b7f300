"""Layered, strictly validated configuration.

One flat namespace of keys: the training settings below plus the builder's
hyperparameters. Layers, each overriding the one before:

1. the global training defaults and the builder's defaults (and the model's own
   `training_defaults`),
2. a `--config` YAML or JSON file,
3. repeated `--set key=value` (values parsed as YAML: `3`, `0.5`, `[32, 64]`, `true`),
4. explicit command-line flags (`None` means "not given").

Unknown keys are an error that names the known ones; values are checked against the
type of their default. The resolved configuration is written to every run and export.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from kerasnotes.errors import ConfigError
from kerasnotes.registry import ModelSpec

# Settings every model shares. `None` means "decided by the task or the dataset".
TRAINING_DEFAULTS: dict[str, Any] = {
    "dataset": None,
    "epochs": 10,
    "batch_size": 64,
    "learning_rate": 1e-3,
    "optimizer": "adam",
    "seed": 0,
    "strategy": "default",
    "skip_bad_records": False,
    # The optimizer: SGD's momentum and Nesterov momentum, gradient clipping.
    "momentum": None,
    "nesterov": False,
    "clipnorm": None,
    "clipvalue": None,
    # The learning-rate schedule over the run (see `kerasnotes.training`).
    "lr_schedule": "cosine",
    "warmup_epochs": 1.0,
    "lr_decay_rate": 0.1,
    "lr_decay_epochs": None,
    # Which weights the run keeps: the best validation loss's, and early stopping.
    "restore_best": True,
    "early_stopping": 0,
    # Stop training at the first batch past this many seconds (None: no limit).
    "time_limit": None,
}

STRATEGIES = ("default", "mirrored")
LR_SCHEDULES = ("cosine", "constant", "step", "exponential", "warmup_cosine")
MOMENTUM_OPTIMIZERS = ("sgd", "rmsprop")

# Keys for which `None` is a valid value and any type is accepted (checked below).
_FREE_KEYS = {
    "dataset", "image_size", "cache_memory_limit", "momentum", "clipnorm", "clipvalue",
    "lr_decay_epochs", "time_limit",
}  # fmt: skip


def training_keys() -> tuple[str, ...]:
    return tuple(TRAINING_DEFAULTS)


def defaults_for(
    spec: ModelSpec,
    derived_keys: Iterable[str] = (),
    task_settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Builder defaults plus training defaults for one model, as plain JSON values.

    `derived_keys` are builder arguments that the task sets from the data (such as
    `input_shape`); they are not user settings. `task_settings` are the task's own
    settings and their defaults (such as a captioner's `vocabulary_size`).
    """
    task_settings = dict(task_settings or {})
    hyperparameters = {
        k: v for k, v in spec.hyperparameters().items() if k not in set(derived_keys)
    }
    clash = set(hyperparameters) & (set(TRAINING_DEFAULTS) | set(task_settings))
    if clash:
        raise ConfigError(
            f"Model {spec.name!r} has hyperparameters named like training settings: "
            f"{sorted(clash)}."
        )
    unknown = set(spec.training_defaults) - set(TRAINING_DEFAULTS)
    if unknown:
        raise ConfigError(
            f"Model {spec.name!r} declares unknown training defaults {sorted(unknown)}."
        )
    merged = {**TRAINING_DEFAULTS, **task_settings, **spec.training_defaults, **hyperparameters}
    return {k: _to_plain(v) for k, v in merged.items()}


def _to_plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    if isinstance(value, list):
        return [_to_plain(v) for v in value]
    return value


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML or JSON mapping (a run's saved `config.json` works too)."""
    import yaml

    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"Config file {path!r} does not exist.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"Config file {path!r} cannot be read: {e}.") from None
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        first = str(e).strip().splitlines()[0]
        raise ConfigError(f"Config file {path!r} is not valid: {first}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"Config file {path!r} must hold a mapping of keys to values, "
            f"not a {type(data).__name__}."
        )
    return data


def parse_set(item: str) -> tuple[str, Any]:
    """Parse one `key=value` override; the value is read as YAML."""
    import yaml

    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects key=value, got {item!r}.")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def _type_name(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, list):
        inner = {_type_name(v) for v in default}
        if len(inner) == 1:
            one = inner.pop()
            return f"a list of {one.removeprefix('an ').removeprefix('a ')}s or {one}"
        return "a list"
    return "a value"


def _matches(value: Any, default: Any) -> bool:
    """Whether `value` has the type the key's `default` asks for."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list):
        # A list of the same element type, or one element applied everywhere.
        if not default:
            return isinstance(value, list)
        if isinstance(value, list):
            return all(_matches(v, default[0]) for v in value)
        return _matches(value, default[0])
    return True  # `None` defaults take any value; the builder checks it.


def _coerce(key: str, value: Any, default: Any, source: str) -> Any:
    """Check `value` against the type of `default`.

    A hyperparameter with a scalar default also takes a list of that type: builders
    accept one value per block (`kernel_size=[3, 5]`) and check the length themselves.
    """
    if value is None or key in _FREE_KEYS or default is None:
        return _to_plain(value)
    value = _to_plain(value)
    if isinstance(default, float) and not isinstance(default, bool) and isinstance(value, str):
        # YAML 1.1 reads `1e-3` (no dot) as a string.
        try:
            value = float(value)
        except ValueError:
            pass
    per_block = (
        key not in TRAINING_DEFAULTS
        and isinstance(value, list)
        and not isinstance(default, (list, bool))
        and _matches(value, [default])
    )
    if not (per_block or _matches(value, default)):
        raise ConfigError(
            f"Invalid value {value!r} for {key!r} (from {source}): expected "
            f"{_type_name(default)}, like {default!r}."
        )
    if isinstance(default, float) and isinstance(value, int):
        value = float(value)
    return value


def resolve_config(
    spec: ModelSpec,
    *,
    derived_keys: Iterable[str] = (),
    task_settings: Mapping[str, Any] | None = None,
    config_file: str | os.PathLike | None = None,
    overrides: Iterable[str] = (),
    flags: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge the configuration layers for `spec` and validate every key and type."""
    config = defaults_for(spec, derived_keys, task_settings)
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if config_file is not None:
        data = dict(read_config_file(config_file))
        saved_model = data.pop("model", spec.name)
        if saved_model != spec.name:
            raise ConfigError(
                f"Config file {os.fspath(config_file)!r} is for model {saved_model!r}, "
                f"not {spec.name!r}."
            )
        layers.append((f"config file {os.fspath(config_file)!r}", data))
    sets = dict(parse_set(item) for item in overrides)
    layers.append(("--set", sets))
    layers.append(
        ("command-line flags", {k: v for k, v in (flags or {}).items() if v is not None})
    )
    for source, layer in layers:
        for key, value in layer.items():
            if key not in config:
                raise ConfigError(
                    f"Unknown configuration key {key!r} (from {source}) for model "
                    f"{spec.name!r}. Known keys: {', '.join(sorted(config))}."
                )
            config[key] = _coerce(key, value, config[key], source)
    validate_training(config)
    return config


def validate_training(config: Mapping[str, Any]) -> None:
    """Range checks for the shared training settings."""
    for key in ("epochs", "batch_size"):
        if config[key] < 1:
            raise ConfigError(f"Invalid {key} {config[key]!r}: must be at least 1.")
    if not config["learning_rate"] > 0:
        raise ConfigError(f"Invalid learning_rate {config['learning_rate']!r}: must be positive.")
    if config["strategy"] not in STRATEGIES:
        raise ConfigError(
            f"Invalid strategy {config['strategy']!r}: expected one of {', '.join(STRATEGIES)}."
        )
    for key in ("early_stopping", "warmup_epochs"):
        if config[key] < 0:
            raise ConfigError(f"Invalid {key} {config[key]!r}: must be at least 0.")
    if config["lr_schedule"] not in LR_SCHEDULES:
        raise ConfigError(
            f"Invalid lr_schedule {config['lr_schedule']!r}: expected one of "
            f"{', '.join(LR_SCHEDULES)}."
        )
    if not 0 < config["lr_decay_rate"] <= 1:
        raise ConfigError(f"Invalid lr_decay_rate {config['lr_decay_rate']!r}: must be in (0, 1].")
    decay_epochs = config["lr_decay_epochs"]
    if decay_epochs is not None and not (_is_int(decay_epochs) and decay_epochs >= 1):
        raise ConfigError(
            f"Invalid lr_decay_epochs {decay_epochs!r}: expected a positive integer (or "
            "null: a third of the epochs)."
        )
    for key in ("clipnorm", "clipvalue", "time_limit"):
        value = config[key]
        if value is not None and not (_is_number(value) and value > 0):
            raise ConfigError(f"Invalid {key} {value!r}: expected a positive number or null.")
    if config["clipnorm"] is not None and config["clipvalue"] is not None:
        raise ConfigError(
            f"Invalid clipnorm {config['clipnorm']!r} with clipvalue {config['clipvalue']!r}: "
            "set one of them, not both."
        )
    optimizer = str(config["optimizer"]).lower()
    momentum = config["momentum"]
    if momentum is not None:
        if not (_is_number(momentum) and 0 <= momentum < 1):
            raise ConfigError(f"Invalid momentum {momentum!r}: must be a number in [0, 1).")
        if optimizer not in MOMENTUM_OPTIMIZERS:
            raise ConfigError(
                f"Invalid momentum {momentum!r} for optimizer {config['optimizer']!r}: "
                f"momentum applies to {' and '.join(MOMENTUM_OPTIMIZERS)}."
            )
    if config["nesterov"] and optimizer != "sgd":
        raise ConfigError(
            f"Invalid nesterov true for optimizer {config['optimizer']!r}: Nesterov "
            "momentum applies to sgd."
        )
    size = config.get("image_size")  # Models of images and clips only.
    if size is not None and not (
        (isinstance(size, int) and not isinstance(size, bool) and size > 0)
        or (
            isinstance(size, list)
            and len(size) == 2
            and all(isinstance(s, int) and s > 0 for s in size)
        )
    ):
        raise ConfigError(
            f"Invalid image_size {size!r}: expected a positive integer or [height, width]."
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def split(config: Mapping[str, Any], task_settings: Iterable[str] = ()) -> tuple[dict, dict]:
    """Split a resolved configuration into (training and task settings, hyperparameters)."""
    settings = set(TRAINING_DEFAULTS) | set(task_settings)
    training = {k: v for k, v in config.items() if k in settings}
    hyperparameters = {k: v for k, v in config.items() if k not in settings}
    return training, hyperparameters
