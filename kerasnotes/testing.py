"""A test harness every registered model passes: `check_model("cnn")`.

For one model name and channel ordering it checks: the model builds and gives the
output shape its task promises; `get_config` / `from_config` and `.keras` files rebuild
it with the same outputs; one training step runs and changes the weights with a finite
loss; the export's tensor signature answers like the model in this process; and a
channels_first model with the same weights gives the same answers as channels_last on
the transposed input. Plugin authors can call it on their own builders.
"""

from __future__ import annotations

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from kerasnotes.registry import create_model, get_spec
from kerasnotes.tasks import get_task

# Small data descriptions per task, used instead of loading a dataset.
_EXAMPLE_INFO = {
    "image_classification": {
        "class_names": ["a", "b", "c"],
        "image_shape": [24, 24, 3],
        "num_examples": {},
        "source": "harness",
    },
}


def _example_batch(task_name: str, info: dict, data_format: str, batch_size: int = 4):
    rng = np.random.default_rng(0)
    if task_name == "image_classification":
        images = rng.uniform(0, 255, size=(batch_size, *info["image_shape"])).astype("float32")
        if data_format == "channels_first":
            images = images.transpose(0, 3, 1, 2)
        labels = rng.integers(0, len(info["class_names"]), size=batch_size)
        return images, labels
    raise NotImplementedError(f"No example batch for task {task_name!r}.")


def _build(name, task, info, data_format, hyperparameters):
    config = {"data_format": data_format}
    return create_model(
        name,
        **{**hyperparameters, "data_format": data_format},
        **task.builder_arguments(info, config),
    )


def check_model(name: str, data_format: str = "channels_last", **hyperparameters) -> None:
    """Run every check on the model registered as `name`; raises AssertionError."""
    spec = get_spec(name)
    task = get_task(spec.task)
    info = _EXAMPLE_INFO[task.name]
    x, y = _example_batch(task.name, info, data_format)
    model = _build(name, task, info, data_format, hyperparameters)

    # Output shape.
    outputs = keras.ops.convert_to_numpy(model(x, training=False))
    assert outputs.shape == (len(x), len(info["class_names"])), outputs.shape
    assert np.all(np.isfinite(outputs))

    # get_config / from_config round trip.
    clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(x, training=False), outputs, atol=1e-6)

    with tempfile.TemporaryDirectory() as tmp:
        # .keras round trip.
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        np.testing.assert_allclose(loaded(x, training=False), outputs, atol=1e-6)

        # Export round trip through the tensor signature.
        archive = keras.export.ExportArchive()
        archive.track(model)
        config = {"data_format": data_format}
        for signature, (fn, input_signature) in task.signatures(model, info, config).items():
            archive.add_endpoint(signature, fn, input_signature=input_signature)
        archive.write_out(os.path.join(tmp, "export"), verbose=False)
        served = tf.saved_model.load(os.path.join(tmp, "export"))
        scores = served.signatures["serving_images"](images=tf.constant(x))["scores"]
        np.testing.assert_allclose(scores.numpy(), outputs, atol=1e-5)

    # One training step changes the weights and gives a finite loss.
    task.compile(model, keras.optimizers.Adam(1e-2))
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, y)
    loss = loss[0] if isinstance(loss, (list, tuple)) else loss
    assert np.isfinite(loss), loss
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights(), strict=True)), (
        "a training step did not change any weight"
    )

    # The other channel ordering: same weights, same answers on transposed input.
    if data_format == "channels_last" and "data_format" in spec.hyperparameters():
        first = _build(name, task, info, "channels_first", hyperparameters)
        first.set_weights(model.get_weights())
        expected = keras.ops.convert_to_numpy(model(x, training=False))
        got = keras.ops.convert_to_numpy(first(x.transpose(0, 3, 1, 2), training=False))
        np.testing.assert_allclose(got, expected, atol=1e-5)
