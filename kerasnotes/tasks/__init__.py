"""Tasks: what a family of models learns, and how it is fed, measured and served.

A model's builder makes the network; its task (named when the builder is registered)
loads the data, derives builder arguments from it (input shape, number of classes),
compiles, evaluates, draws plots and defines the serving signatures of the export.
Any builder registered with an existing task trains, evaluates and exports like the
built-in models of that task.
"""

from __future__ import annotations

import importlib

from kerasnotes.errors import UsageError

# Task name -> module defining `TASK`.
_TASK_MODULES = {
    "captioning": "kerasnotes.tasks.captioning",
    "image_classification": "kerasnotes.tasks.image_classification",
    "vqa": "kerasnotes.tasks.vqa",
}


def task_names() -> list[str]:
    return sorted(_TASK_MODULES)


def get_task(name: str):
    """The task object registered as `name`."""
    if name not in _TASK_MODULES:
        raise UsageError(f"Unknown task {name!r}: expected one of {', '.join(task_names())}.")
    return importlib.import_module(_TASK_MODULES[name]).TASK


def task_for_model(model: str):
    """The task that trains the model registered as `model`."""
    from kerasnotes.registry import get_spec

    return get_task(get_spec(model).task)
