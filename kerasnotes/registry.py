"""The model registry: builders registered by name, created by name.

A builder is a plain function that returns a `keras.Model`. Its keyword arguments with
defaults are the model's hyperparameters; `create_model` validates names against them
and drops `None` values so that an unset option never overrides a builder default.

Builders come from three places: the families shipped in `kerasnotes.models`, other
installed packages through the `kerasnotes.models` entry-point group, and modules that
the user names (`kerasnotes --plugin my_models train my-model`).
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from kerasnotes.errors import ConfigError, UsageError

ENTRY_POINT_GROUP = "kerasnotes.models"

# Modules that register the built-in families. Imported on first use so that
# `import kerasnotes` (and `kerasnotes --help`) stays free of TensorFlow.
_BUILTIN_MODULES = (
    "kerasnotes.models.cnn",
    "kerasnotes.models.captioner",
    "kerasnotes.models.vqa",
    "kerasnotes.models.rnn",
    "kerasnotes.models.ngram",
    "kerasnotes.models.char_rnn",
    "kerasnotes.models.transformer_lm",
    "kerasnotes.models.video",
    "kerasnotes.models.wavenet",
)

_REGISTRY: dict[str, ModelSpec] = {}
_builtins_loaded = False
_entry_points_loaded = False


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one builder.

    Attributes:
        name: the name used by `create_model` and the CLI.
        builder: the function that returns the model.
        task: the name of the task (`kerasnotes.tasks`) that trains, evaluates and
            exports the model: its data, loss, metrics and serving signatures.
        description: one line for `kerasnotes models`.
        training_defaults: training settings (epochs, batch_size, ...) that this
            model prefers over the global defaults.
        module: the module the builder was defined in.
    """

    name: str
    builder: Callable[..., Any]
    task: str
    description: str
    training_defaults: dict[str, Any]
    module: str

    def hyperparameters(self) -> dict[str, Any]:
        """The builder's keyword arguments and their defaults."""
        params = {}
        for param in inspect.signature(self.builder).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if param.default is param.empty:
                raise TypeError(
                    f"Builder {self.name!r}: every argument needs a default; "
                    f"{param.name!r} has none."
                )
            params[param.name] = param.default
        return params


def register_model(
    name: str,
    builder: Callable[..., Any] | None = None,
    *,
    task: str,
    description: str | None = None,
    training_defaults: dict[str, Any] | None = None,
):
    """Register a model builder under `name`.

    Use as a decorator, or call with the builder as second argument.

    Args:
        name: the registry name, e.g. `"cnn"`. Registering a name twice is an error.
        builder: the builder function; omit it to use `register_model` as a decorator.
        task: the task that trains the model, e.g. `"image_classification"`.
        description: one line for `kerasnotes models`; defaults to the first line
            of the builder's docstring.
        training_defaults: training settings this model prefers, e.g.
            `{"epochs": 5}`.

    Example:

    >>> import keras, kerasnotes
    >>> @kerasnotes.register_model("tiny-mlp", task="image_classification")
    ... def tiny_mlp(input_shape=(32, 32, 3), num_classes=6,
    ...              data_format="channels_last", units=32):
    ...     inputs = keras.Input(input_shape)
    ...     x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    ...     x = keras.layers.Dense(units, activation="relu")(x)
    ...     return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
    """

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(
                f"A model named {name!r} is already registered "
                f"(by {_REGISTRY[name].module}). Choose another name."
            )
        doc = (inspect.getdoc(fn) or "").strip().splitlines()
        spec = ModelSpec(
            name=name,
            builder=fn,
            task=task,
            description=description or (doc[0] if doc else ""),
            training_defaults=dict(training_defaults or {}),
            module=fn.__module__,
        )
        spec.hyperparameters()  # Fails now, not at training time, without defaults.
        _REGISTRY[name] = spec
        return fn

    if builder is not None:
        return decorator(builder)
    return decorator


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)


def load_entry_points() -> None:
    """Import the modules that installed packages list in the entry-point group."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        entry_point.load()


def load_plugin(module: str) -> None:
    """Import a user module that registers builders (`--plugin`)."""
    _load_builtins()
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            raise UsageError(
                f"Plugin module {module!r} was not found; give an importable module "
                "name (on sys.path or in the current directory)."
            ) from None
        raise


def _all_specs() -> dict[str, ModelSpec]:
    _load_builtins()
    load_entry_points()
    return _REGISTRY


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names that match a shell-style `pattern`, sorted."""
    return sorted(n for n in _all_specs() if fnmatch.fnmatch(n, pattern))


def get_spec(name: str) -> ModelSpec:
    """The `ModelSpec` registered as `name`; unknown names suggest close matches."""
    specs = _all_specs()
    if name not in specs:
        close = difflib.get_close_matches(name, specs, n=3)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise UsageError(
            f"Unknown model {name!r}.{hint} Known models: {', '.join(sorted(specs))}."
        )
    return specs[name]


def create_model(name: str, /, **hyperparameters: Any):
    """Build the model registered as `name`.

    `None` values are dropped, so the builder's defaults apply to them. Unknown
    hyperparameter names are an error that lists the known ones.

    Example:

    >>> import kerasnotes
    >>> model = kerasnotes.create_model("cnn", filters=[16, 32], num_classes=4)
    >>> model.output_shape
    (None, 4)
    """
    spec = get_spec(name)
    known = spec.hyperparameters()
    kwargs = {k: v for k, v in hyperparameters.items() if v is not None}
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise ConfigError(
            f"Unknown hyperparameter(s) {', '.join(map(repr, unknown))} for model "
            f"{name!r}. Known: {', '.join(sorted(known))}."
        )
    return spec.builder(**kwargs)
