import keras
import numpy as np
import pytest

import kerasnotes
from kerasnotes.testing import check_model


def _every_model_in_every_layout():
    from kerasnotes.tasks import task_for_model

    for name in kerasnotes.list_models():
        key, layouts = task_for_model(name).layout
        if key is None:  # One layout only.
            yield pytest.param(name, {}, id=name)
        for layout in layouts if key else ():
            yield pytest.param(name, {key: layout}, id=f"{name}-{key}={layout}")


# Shallower than the defaults where depth only slows the harness down (its checks are
# the same at any depth); every other model is checked with its defaults.
SHALLOWER = {"transformer-lm": {"num_layers": 1}, "wavenet-generator": {"layers_per_block": 4}}


@pytest.mark.parametrize("name, layout", list(_every_model_in_every_layout()))
def test_every_registered_model_passes_the_harness(name, layout):
    check_model(name, **SHALLOWER.get(name, {}), **layout)


@pytest.mark.parametrize(
    "options",
    [
        {"residual": True, "filters": [8, 16], "strides": [1, 2]},
        {"pooling": ["min", "avg"], "filters": [8, 8], "global_pooling": "flatten"},
        {"pooling": "none", "filters": [8], "dilation_rate": 2, "padding": "valid"},
        {
            "classic_filters": [
                "identity",
                "edge_horizontal",
                "edge_vertical",
                "sharpen",
                "box_blur",
                "gaussian_blur",
            ],
            "filters": [8],
        },
        {
            "kernel_l1": 1e-4,
            "kernel_l2": 1e-4,
            "activity_l1": 1e-5,
            "activity_l2": 1e-5,
            "filters": [8],
        },
        {
            "augmentations": [
                "translate",
                "rotate",
                "zoom",
                "flip",
                "noise",
                "cutout",
                "invert",
                "blur",
            ],
            "filters": [8],
            "block_dropout": 0.1,
        },
        {"batch_norm": False, "convs_per_block": 2, "kernel_size": [5, 3], "filters": [8, 8]},
    ],
    ids=[
        "residual",
        "min-avg-pool",
        "dilated-valid",
        "classic",
        "regularizers",
        "augmentations",
        "vgg-style",
    ],
)
def test_cnn_options_pass_the_harness(options):
    # In channels_last the harness also builds the channels_first model, gives it the
    # same weights and holds its answers equal (both layouts of every option).
    check_model("cnn", **options)


def test_channels_first_matches_channels_last_after_training():
    x = np.random.default_rng(1).uniform(0, 255, (8, 20, 20, 3)).astype("float32")
    y = np.arange(8) % 6
    last = kerasnotes.create_model("cnn", input_shape=(20, 20, 3), filters=[8, 16])
    last.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    last.fit(x, y, epochs=2, verbose=0)
    first = kerasnotes.create_model(
        "cnn", input_shape=(3, 20, 20), data_format="channels_first", filters=[8, 16]
    )
    first.set_weights(last.get_weights())
    np.testing.assert_allclose(
        first.predict(x.transpose(0, 3, 1, 2), verbose=0), last.predict(x, verbose=0), atol=1e-5
    )


def test_frozen_classic_filters_are_not_trained():
    model = kerasnotes.create_model("cnn", classic_filters=["edge_vertical"], filters=[4])
    layer = model.get_layer("classic_filters")
    assert not layer.trainable
    kernel = keras.ops.convert_to_numpy(layer.kernel)[:, :, 0, 0] * 3  # mean of 3 channels
    np.testing.assert_allclose(kernel, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], atol=1e-6)
    trainable = kerasnotes.create_model(
        "cnn", classic_filters=["sharpen"], trainable_classic_filters=True, filters=[4]
    )
    assert trainable.get_layer("classic_filters").trainable


def test_regularizers_add_their_penalties():
    """kernel_l2 adds 0.1 * sum(w^2) of every hidden kernel (each convolution and the
    dense layer, not the classifier); activity_l1 adds a penalty proportional to its
    factor, on the same weights."""
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    model = kerasnotes.create_model("cnn", filters=[4, 8], kernel_l2=0.1)
    model(x, training=True)
    names = ["block1_conv1", "block2_conv1", "dense"]
    kernels = [model.get_layer(name).kernel for name in names]
    expected = sum(0.1 * float(np.sum(keras.ops.convert_to_numpy(k) ** 2)) for k in kernels)
    got = sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses)
    assert got == pytest.approx(expected, rel=1e-4)

    def activity_penalty(factor):
        keras.utils.set_random_seed(1)  # The same weights for both factors.
        model = kerasnotes.create_model("cnn", filters=[4, 8], activity_l1=factor)
        model(x, training=True)
        return sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses)

    small, large = activity_penalty(0.1), activity_penalty(0.3)
    assert small > 0 and large == pytest.approx(3 * small, rel=1e-4)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"filters": [0, 8]}, "Invalid filters 0"),
        ({"filters": [-4]}, "Invalid filters -4"),
        ({"filters": []}, "non-empty"),
        ({"kernel_size": 40}, "kernel_size 40 in block1: larger than its 32x32 input"),
        ({"kernel_size": 3, "dilation_rate": 20}, "dilated to 41"),
        ({"filters": [8] * 6, "kernel_size": 1}, "smaller than pool_size"),
        ({"kernel_size": [3, 3]}, "one per block"),
        ({"pooling": "median"}, "Invalid pooling 'median'"),
        ({"padding": "full"}, "Invalid padding"),
        ({"residual": True, "padding": "valid"}, "Residual blocks need padding 'same'"),
        ({"dropout": 1.5}, "Invalid dropout"),
        ({"augmentations": ["shear"]}, "Unknown augmentation 'shear'"),
        ({"classic_filters": ["emboss"]}, "classic filters"),
        ({"data_format": "nchw"}, "Invalid data_format"),
    ],
)
def test_cnn_rejects_bad_hyperparameters(options, message):
    with pytest.raises(ValueError, match=message):
        kerasnotes.create_model("cnn", **options)


def test_the_harness_fails_a_builder_that_ignores_data_format(clean_registry):
    @kerasnotes.register_model("ignores-data-format", task="image_classification")
    def ignores_data_format(
        input_shape=(32, 32, 3), num_classes=6, data_format="channels_last", units=16
    ):
        """The README's tiny MLP: it flattens whatever layout it is given."""
        inputs = keras.Input(input_shape)
        x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
        x = keras.layers.Dense(units, activation="relu")(x)
        return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))

    with pytest.raises(AssertionError, match="channels_first disagrees"):
        check_model("ignores-data-format")
