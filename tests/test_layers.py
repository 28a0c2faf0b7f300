import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasnotes.layers import (
    AUGMENTATIONS,
    ClassicFilters,
    FusedBatchNormalization,
    MinPooling2D,
    augmentation,
)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_min_pooling(data_format):
    x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    if data_format == "channels_first":
        x = x.transpose(0, 3, 1, 2)
    layer = MinPooling2D(2, data_format=data_format)
    out = keras.ops.convert_to_numpy(layer(x)).reshape(2, 2)
    np.testing.assert_array_equal(out, [[0, 2], [8, 10]])
    assert (
        layer.compute_output_shape(x.shape)
        == out.reshape((1, 2, 2, 1) if data_format == "channels_last" else (1, 1, 2, 2)).shape
    )


def test_min_pooling_round_trips(tmp_path):
    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, MinPooling2D(2, padding="same", name="minpool")(inputs))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    layer = loaded.get_layer("minpool")
    assert isinstance(layer, MinPooling2D) and layer.padding == "same"
    restored = MinPooling2D.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()


def test_classic_filters_apply_the_textbook_kernels():
    image = np.zeros((1, 5, 5, 3), "float32")
    image[:, :, 2:, :] = 1.0  # a vertical edge
    conv = keras.layers.Conv2D(
        3,
        3,
        use_bias=False,
        kernel_initializer=ClassicFilters(["identity", "edge_vertical", "edge_horizontal"]),
    )
    out = keras.ops.convert_to_numpy(conv(image))[0]
    np.testing.assert_allclose(out[..., 0], image[0, 1:-1, 1:-1, 0], atol=1e-6)
    assert out[1, 0, 1] == pytest.approx(4.0)  # Sobel response at the edge
    np.testing.assert_allclose(out[..., 2], 0, atol=1e-6)  # no horizontal edge
    assert ClassicFilters.from_config(ClassicFilters(["sharpen"]).get_config()).filters == [
        "sharpen"
    ]


def test_classic_filters_need_3x3():
    with pytest.raises(ValueError, match="3x3"):
        ClassicFilters("identity")((5, 5, 1, 1))


def test_augmentation_only_in_training():
    x = np.random.default_rng(0).uniform(0, 1, (2, 16, 16, 3)).astype("float32")
    layers = augmentation(list(AUGMENTATIONS))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layers(x, training=False)), x)
    assert not np.allclose(keras.ops.convert_to_numpy(layers(x, training=True)), x)


@pytest.mark.parametrize("center, scale", [(True, True), (False, False)])
def test_fused_batch_norm_matches_keras_batch_norm(center, scale, tmp_path):
    x = np.random.default_rng(0).normal(3, 2, (8, 6, 6, 5)).astype("float32")
    keras_bn = keras.layers.BatchNormalization(momentum=0.8, center=center, scale=scale)
    fused = FusedBatchNormalization(momentum=0.8, center=center, scale=scale)
    for layer in (keras_bn, fused):
        layer.build(x.shape)
    rng = np.random.default_rng(1)
    keras_bn.set_weights([rng.uniform(0.5, 1.5, w.shape) for w in keras_bn.get_weights()])
    fused.set_weights(keras_bn.get_weights())
    for training in (True, True, False):
        grads = []
        for layer in (keras_bn, fused):
            inputs = tf.constant(x)
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                loss = tf.reduce_sum(layer(inputs, training=training) ** 3)
            grads.append(tape.gradient(loss, [inputs, *layer.trainable_weights]))
        for ours, theirs in zip(grads[1], grads[0], strict=True):
            np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-3)
        # Outputs and the moving statistics they updated agree.
        np.testing.assert_allclose(fused(x), keras_bn(x), atol=1e-5)
        for ours, theirs in zip(fused.get_weights(), keras_bn.get_weights(), strict=True):
            np.testing.assert_allclose(ours, theirs, atol=1e-5)
    model = keras.Sequential([keras.Input(x.shape[1:]), fused])
    model.save(tmp_path / "bn.keras")
    loaded = keras.models.load_model(tmp_path / "bn.keras")
    assert isinstance(loaded.layers[0], FusedBatchNormalization)
    np.testing.assert_allclose(loaded(x), fused(x), atol=1e-6)
