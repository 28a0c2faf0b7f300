"""A test harness every registered model passes: `check_model("cnn")`.

For one model name and channel ordering it checks: the model builds and gives the
output shape its task promises; `get_config` / `from_config` and `.keras` files rebuild
it with the same outputs; one training step runs and changes the weights with a finite
loss; the export's tensor signature answers like the model in this process; and a
channels_first model with the same weights gives the same answers as channels_last on
the transposed input, and a time-major text model the same answers as a batch-major one
(untrained, with non-zero biases, where a builder that ignores its layout argument
fails). A model that learns by counting (an n-gram model) counts the example batch
first, and counting other data must change its answers. The task supplies the example batch, the expected output shape and the layouts
(`example_batch`, `example_output_shape`, `layout`), so a plugin's task is checked the
same way. Plugin authors can call it on their own builders.
"""

from __future__ import annotations

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from kerasnotes.exports import write_saved_model
from kerasnotes.registry import create_model, get_spec
from kerasnotes.tasks import get_task
from kerasnotes.training import learns_by_counting


def _build(name, task, info, hyperparameters, data=None):
    """The model; one that learns by counting has counted `data` already."""
    layout_key, layouts = task.layout
    config = {layout_key: hyperparameters.get(layout_key, layouts[0])}
    model = create_model(name, **hyperparameters, **task.builder_arguments(info, config))
    if learns_by_counting(model):
        model.adapt(data)
    return model


def check_model(name: str, **hyperparameters) -> None:
    """Run every check on the model registered as `name`; raises AssertionError.

    `hyperparameters` go to the builder; the task's layout argument among them
    (`data_format` for images, `time_major` for text) chooses the layout checked.
    """
    spec = get_spec(name)
    task = get_task(spec.task)
    info = task.example_info()
    layout_key, layouts = task.layout
    has_layout = layout_key in spec.hyperparameters()
    if has_layout:
        hyperparameters.setdefault(layout_key, layouts[0])
    config = {layout_key: hyperparameters.get(layout_key, layouts[0])}
    x, y, sample_weight = task.example_batch(info, np.random.default_rng(0))
    model_x = task.model_input(x, config)
    model = _build(name, task, info, hyperparameters, data=model_x)
    _offset_zero_vectors(model)

    # Output shape.
    outputs = keras.ops.convert_to_numpy(model(model_x, training=False))
    assert outputs.shape == task.example_output_shape(info, len(y)), outputs.shape
    assert np.all(np.isfinite(outputs))

    # get_config / from_config round trip.
    clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    if learns_by_counting(clone):
        clone.adapt(model_x)
    np.testing.assert_allclose(clone(model_x, training=False), outputs, atol=1e-6)

    with tempfile.TemporaryDirectory() as tmp:
        # .keras round trip.
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        np.testing.assert_allclose(loaded(model_x, training=False), outputs, atol=1e-6)

        # Export round trip through the tensor signature.
        write_saved_model(model, task, info, config, os.path.join(tmp, "export"))
        served = tf.saved_model.load(os.path.join(tmp, "export"))
        got, want = task.served_and_predicted(model, served, x, config)
        if got.dtype == object:
            assert got.tolist() == want.tolist(), (got, want)
        else:
            np.testing.assert_allclose(got, want, atol=1e-5)

    # The other layout: same weights, same answers on the same example given in it.
    # Compared untrained, with non-zero biases, on random (asymmetric) input, where a
    # builder that ignores its layout argument gives other answers.
    if has_layout and config[layout_key] == layouts[0]:
        other = {**hyperparameters, layout_key: layouts[1]}
        second = _build(name, task, info, other, data=model_x)
        second.set_weights(model.get_weights())
        np.testing.assert_allclose(
            task.layout_outputs(second, x, {layout_key: layouts[1]}),
            task.layout_outputs(model, x, config),
            atol=1e-5,
            err_msg=f"{layouts[1]} disagrees with {layouts[0]} ({layout_key})",
        )

    if learns_by_counting(model):  # Counting other data changes the answers.
        model.adapt(np.asarray(y)[:, ::-1])
        changed = keras.ops.convert_to_numpy(model(model_x, training=False))
        assert np.all(np.isfinite(changed)) and not np.allclose(changed, outputs), (
            "counting other data did not change the answers"
        )
        return

    # One training step changes the weights and gives a finite loss.
    task.compile(model, keras.optimizers.Adam(1e-2))
    before = [w.copy() for w in model.get_weights()]
    loss = model.train_on_batch(model_x, y, sample_weight=sample_weight)
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
