"""A test harness every registered model passes: `check_model("cnn")`.

For one model name and channel ordering it checks: the model builds and gives the
output shape its task promises; `get_config` / `from_config` and `.keras` files rebuild
it with the same outputs; one training step runs and changes the weights with a finite
loss; the export's tensor signature answers like the model in this process; and a
channels_first model with the same weights gives the same answers as channels_last on
the transposed input (untrained, with non-zero biases, where a builder that ignores
`data_format` fails). Plugin authors can call it on their own builders.
"""

from __future__ import annotations

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from kerasnotes.registry import create_model, get_spec
from kerasnotes.tasks import get_task


def _example_batch(task_name: str, info: dict, data_format: str, batch_size: int = 4):
    """`(x, y, sample_weight)` for one training step, and the images in `x`."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(batch_size, *info["image_shape"])).astype("float32")
    if data_format == "channels_first":
        images = images.transpose(0, 3, 1, 2)
    if task_name == "image_classification":
        labels = rng.integers(0, len(info["class_names"]), size=batch_size)
        return (images, labels, None), images
    if task_name == "captioning":
        steps = info["max_length"] + 1
        ids = rng.integers(4, len(info["vocabulary"]), size=(batch_size, steps + 1))
        ids[:, 0] = 2  # [start]
        weights = np.ones((batch_size, steps), "float32")
        weights[:, -2:] = 0  # Padding.
        x = {"images": images, "token_ids": ids[:, :-1]}
        return (x, ids[:, 1:], weights), images
    if task_name == "vqa":
        ids = rng.integers(3, len(info["vocabulary"]), size=(batch_size, info["max_length"] + 1))
        ids[:, 0] = 2  # [start]
        ids[0, 3:] = 0  # Padding.
        answers = rng.integers(0, len(info["answers"]), size=batch_size)
        targets = np.eye(len(info["answers"]), dtype="float32")[answers]
        return ({"images": images, "question_ids": ids}, targets, None), images
    raise NotImplementedError(f"No example batch for task {task_name!r}.")


def _expected_output_shape(task_name: str, info: dict, batch_size: int) -> tuple:
    if task_name == "image_classification":
        return (batch_size, len(info["class_names"]))
    if task_name == "vqa":
        return (batch_size, len(info["answers"]))
    return (batch_size, info["max_length"] + 1, len(info["vocabulary"]))


def _served_and_predicted(task_name: str, model, served, images) -> tuple:
    """What the export's tensor signature answers, and what the model says in process."""
    signature = served.signatures["serving_images"]
    if task_name == "image_classification":
        scores = signature(images=tf.constant(images))["scores"].numpy()
        return scores, keras.ops.convert_to_numpy(model(images, training=False))
    if task_name == "vqa":
        questions = tf.constant(["what colour is the circle"] * (len(images) - 1) + [""])
        scores = signature(images=tf.constant(images), question=questions)["top_scores"]
        return scores.numpy(), model.answer(tf.constant(images), questions)["top_scores"].numpy()
    captions = signature(images=tf.constant(images))["caption"].numpy()
    return captions, model.caption(tf.constant(images)).numpy()


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
    info = task.example_info()
    (x, y, sample_weight), images = _example_batch(task.name, info, data_format)
    model = _build(name, task, info, data_format, hyperparameters)
    _offset_zero_vectors(model)

    # Output shape.
    outputs = keras.ops.convert_to_numpy(model(x, training=False))
    assert outputs.shape == _expected_output_shape(task.name, info, len(images)), outputs.shape
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
        got, want = _served_and_predicted(task.name, model, served, images)
        if got.dtype == object:
            assert got.tolist() == want.tolist(), (got, want)
        else:
            np.testing.assert_allclose(got, want, atol=1e-5)

    # The other channel ordering: same weights, same answers on transposed input.
    # Compared untrained, with non-zero biases, on random (asymmetric) images, where a
    # builder that ignores `data_format` gives other answers.
    if data_format == "channels_last" and "data_format" in spec.hyperparameters():
        first = _build(name, task, info, "channels_first", hyperparameters)
        first.set_weights(model.get_weights())
        got = keras.ops.convert_to_numpy(first(_transposed(x), training=False))
        np.testing.assert_allclose(
            got, outputs, atol=1e-5, err_msg="channels_first disagrees with channels_last"
        )

    # One training step changes the weights and gives a finite loss.
    task.compile(model, keras.optimizers.Adam(1e-2))
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(x, y, sample_weight=sample_weight)
    loss = loss[0] if isinstance(loss, (list, tuple)) else loss
    assert np.isfinite(loss), loss
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights(), strict=True)), (
        "a training step did not change any weight"
    )


def _offset_zero_vectors(model, seed: int = 0) -> None:
    """Give the vectors that start at zero (biases, normalization offsets and means)
    small random values, so that comparisons see them."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        value = keras.ops.convert_to_numpy(weight)
        if value.ndim == 1 and np.issubdtype(value.dtype, np.floating) and not value.any():
            weight.assign(rng.normal(0, 0.1, value.shape).astype(value.dtype))


def _transposed(x):
    """The model input `x` with its images moved to channels_first."""
    if isinstance(x, dict):
        return {**x, "images": x["images"].transpose(0, 3, 1, 2)}
    return x.transpose(0, 3, 1, 2)
