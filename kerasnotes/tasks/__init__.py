"""Tasks: what a family of models learns, and how it is fed, measured and served.

A model's builder makes the network; its task (named when the builder is registered)
loads the data, derives builder arguments from it (input shape, number of classes),
compiles, evaluates, draws plots and defines the serving signatures of the export.
Any builder registered with an existing task trains, evaluates and exports like the
built-in models of that task, and a plugin can register a task of its own with
`register_task`, as it registers a builder.
"""

from __future__ import annotations

import importlib
from typing import Any

from kerasnotes.errors import UsageError

# The built-in tasks: name -> module defining `TASK`, imported on first use so that
# `import kerasnotes` stays free of TensorFlow.
_BUILTIN_TASKS = {
    "captioning": "kerasnotes.tasks.captioning",
    "image_classification": "kerasnotes.tasks.image_classification",
    "language_modelling": "kerasnotes.tasks.language_modelling",
    "sequence_tagging": "kerasnotes.tasks.text:TAGGING",
    "text_classification": "kerasnotes.tasks.text:CLASSIFICATION",
    "video_classification": "kerasnotes.tasks.video_classification",
    "vqa": "kerasnotes.tasks.vqa",
    "waveform_classification": "kerasnotes.tasks.waveform_classification",
    "waveform_modelling": "kerasnotes.tasks.waveform_modelling",
}
_REGISTERED: dict[str, Any] = {}


def register_task(name: str, task: Any) -> Any:
    """Register `task` under `name`, so builders registered with `task=name` train.

    A task is an object with the methods the built-in ones have (see
    `kerasnotes.tasks.image_classification.ImageClassification`): `load_data`,
    `example_info`, `data_info`, `builder_arguments`, `batches`, `compile`,
    `evaluate`, `plots`, `signatures`, `signature_contract`, `export_examples`,
    `predict_export` and `datasets_help`, and optionally `training_model` (what `fit`
    trains, if not the model: a part of it that the batches feed, or a wrapper) and
    `callbacks(trained, config)` (Keras callbacks of its own for `fit`). Registering a
    name twice is an error.
    """
    if name in _BUILTIN_TASKS or name in _REGISTERED:
        raise ValueError(f"A task named {name!r} is already registered. Choose another name.")
    _REGISTERED[name] = task
    return task


def task_names() -> list[str]:
    return sorted({*_BUILTIN_TASKS, *_REGISTERED})


def get_task(name: str):
    """The task object registered as `name`."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in _BUILTIN_TASKS:
        raise UsageError(f"Unknown task {name!r}: expected one of {', '.join(task_names())}.")
    module, _, attribute = _BUILTIN_TASKS[name].partition(":")
    return getattr(importlib.import_module(module), attribute or "TASK")


def task_for_model(model: str):
    """The task that trains the model registered as `model`."""
    from kerasnotes.registry import get_spec

    return get_task(get_spec(model).task)
