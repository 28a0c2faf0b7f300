"""kerasnotes: the models of a deep-learning course's notes, built by name.

The public Python API:

    import kerasnotes
    kerasnotes.list_models()                      # ['cnn', ...]
    model = kerasnotes.create_model("cnn", filters=[16, 32])
    kerasnotes.register_model("my-model", my_builder, task="image_classification")
    kerasnotes.register_task("my_task", MyTask())  # and builders with task="my_task"
    result = kerasnotes.train("cnn", overrides=["epochs=2"])

Importing kerasnotes does not import TensorFlow; building or training a model does.
"""

from kerasnotes.errors import ConfigError, DataError, KerasnotesError, TrainingError, UsageError
from kerasnotes.registry import create_model, get_spec, list_models, register_model
from kerasnotes.tasks import register_task

__version__ = "0.1.0"


def train(model, **kwargs):
    """Train, evaluate and export `model`; see `kerasnotes.training.train`."""
    from kerasnotes.training import train as _train

    return _train(model, **kwargs)


def evaluate(path, **kwargs):
    """Held-out metrics of a run directory or export; see `kerasnotes.runs.evaluate`."""
    from kerasnotes.runs import evaluate as _evaluate

    return _evaluate(path, **kwargs)


def export(run_dir, **kwargs):
    """Export a finished run; see `kerasnotes.runs.export_run`."""
    from kerasnotes.runs import export_run

    return export_run(run_dir, **kwargs)


def predict(export_dir, inputs, **kwargs):
    """Run an export on raw inputs; see `kerasnotes.runs.predict`."""
    from kerasnotes.runs import predict as _predict

    return _predict(export_dir, inputs, **kwargs)


__all__ = [
    "ConfigError",
    "DataError",
    "KerasnotesError",
    "TrainingError",
    "UsageError",
    "create_model",
    "evaluate",
    "export",
    "get_spec",
    "list_models",
    "predict",
    "register_model",
    "register_task",
    "train",
]
