"""`cnn`: the conv-ReLU-pool image classifier of the CNN notes.

Blocks of convolution, (batch norm), ReLU and pooling, each block with its own filters,
kernel size, stride, padding and dilation; max, average, min or no pooling; optional
residual blocks (ResNet, lecture 10); L1/L2 weight and activity regularizers; dropout;
classic fixed filters (identity, edges, sharpen, blurs) as a first layer that can be
frozen; augmentation layers that act only in training.

Input: `images`, float pixel values in [0, 255],
`(batch, height, width, channels)` for channels_last or
`(batch, channels, height, width)` for channels_first.
Output: `scores`, class probabilities `(batch, num_classes)`.
"""

from __future__ import annotations

import math

import keras
from keras import layers

from kerasnotes.layers import (
    ClassicFilters,
    FusedBatchNormalization,
    MinPooling2D,
    augmentation,
    check_positive_ints,
    to_channels_last,
)
from kerasnotes.registry import register_model

POOLINGS = ("max", "avg", "min", "none")
GLOBAL_POOLINGS = ("avg", "max", "flatten")


def _per_block(name: str, value, num_blocks: int) -> list:
    """A value for each block: a list of the right length, or one value for all."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * num_blocks
    if len(values) != num_blocks:
        raise ValueError(
            f"Invalid {name} {value!r}: give one value or one per block "
            f"({num_blocks} blocks, from filters)."
        )
    return values


def _regularizer(l1: float, l2: float):
    for name, value in (("l1", l1), ("l2", l2)):
        if value < 0:
            raise ValueError(f"Invalid {name} factor {value!r}: must be >= 0.")
    return keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None


def _conv_output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    if padding == "same":
        return math.ceil(size / stride)
    return (size - kernel) // stride + 1


@register_model(
    "cnn",
    task="image_classification",
    training_defaults={"epochs": 8, "batch_size": 64, "learning_rate": 2e-3},
)
def cnn(
    input_shape=(32, 32, 3),
    num_classes=6,
    data_format="channels_last",
    filters=(32, 64, 128),
    kernel_size=3,
    strides=1,
    padding="same",
    dilation_rate=1,
    convs_per_block=1,
    pooling="max",
    pool_size=2,
    batch_norm=True,
    batch_norm_momentum=0.9,
    residual=False,
    block_dropout=0.0,
    global_pooling="avg",
    dense_units=128,
    dropout=0.3,
    kernel_l1=0.0,
    kernel_l2=0.0,
    activity_l1=0.0,
    activity_l2=0.0,
    classic_filters=None,
    trainable_classic_filters=False,
    augmentations=(),
    rescale=1 / 255,
    name="cnn",
):
    """Conv-ReLU-pool image classifier with residual, regularizer and augmentation options.

    Args:
        input_shape: image shape in `data_format` order, e.g. `(32, 32, 3)` or
            `(3, 32, 32)`.
        num_classes: number of classes.
        data_format: `"channels_last"` or `"channels_first"`: the layout of the input.
        filters: filters of each block; its length is the number of blocks.
        kernel_size, strides, padding, dilation_rate, pooling: one value for all
            blocks or a list with one per block. `pooling` is `"max"`, `"avg"`,
            `"min"` or `"none"`.
        convs_per_block: convolutions in each block (two in a residual block).
        pool_size: pooling window.
        batch_norm: batch normalization after each convolution.
        batch_norm_momentum: momentum of its moving statistics.
        residual: ResNet basic blocks with a projection shortcut where shapes change.
        block_dropout: dropout rate after each block.
        global_pooling: how the last feature map becomes a vector: `"avg"`,
            `"max"` or `"flatten"`.
        dense_units: width of the hidden dense layer (0 for none).
        dropout: dropout rate before the classifier.
        kernel_l1, kernel_l2: weight regularization factors of every hidden kernel
            (the convolutions and the dense layer; not the classifier's).
        activity_l1, activity_l2: activity regularization factors of every block.
        classic_filters: names from `kerasnotes.layers.CLASSIC_FILTERS` for a first
            3x3 convolution initialized with those filters, or `None`.
        trainable_classic_filters: whether those filters are trained (initial
            kernels) or frozen.
        augmentations: names from `kerasnotes.layers.AUGMENTATIONS`, applied in
            training only.
        rescale: factor applied to the input pixels.
        name: the model's name.

    Example:

    >>> model = cnn(input_shape=(3, 32, 32), data_format="channels_first",
    ...             filters=[16, 32], pooling=["max", "min"])
    >>> model.output_shape
    (None, 6)
    """
    check_positive_ints("num_classes", [num_classes])
    if global_pooling not in GLOBAL_POOLINGS:
        raise ValueError(
            f"Invalid global_pooling {global_pooling!r}: expected one of {GLOBAL_POOLINGS}."
        )
    if not 0 <= dropout < 1:
        raise ValueError(f"Invalid dropout {dropout!r}: must be in [0, 1).")
    if len(input_shape) != 3:
        raise ValueError(f"Invalid input_shape {input_shape!r}: expected 3 dimensions.")

    kernel_regularizer = _regularizer(kernel_l1, kernel_l2)
    inputs = keras.Input(tuple(input_shape), name="images")
    x = to_channels_last(inputs, data_format)  # (batch, height, width, channels)
    x = layers.Rescaling(rescale, name="rescale")(x)
    if augmentations:
        x = augmentation(augmentations)(x)
    if classic_filters:
        x = layers.Conv2D(
            len(classic_filters),
            3,
            padding="same",
            use_bias=False,
            kernel_initializer=ClassicFilters(classic_filters),
            trainable=trainable_classic_filters,
            name="classic_filters",
        )(x)

    x = conv_blocks(
        x,
        filters=filters,
        kernel_size=kernel_size,
        strides=strides,
        padding=padding,
        dilation_rate=dilation_rate,
        convs_per_block=convs_per_block,
        pooling=pooling,
        pool_size=pool_size,
        batch_norm=batch_norm,
        batch_norm_momentum=batch_norm_momentum,
        residual=residual,
        block_dropout=block_dropout,
        kernel_l1=kernel_l1,
        kernel_l2=kernel_l2,
        activity_l1=activity_l1,
        activity_l2=activity_l2,
    )
    if global_pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    elif global_pooling == "max":
        x = layers.GlobalMaxPooling2D(name="global_pool")(x)
    else:
        x = layers.Flatten(name="flatten")(x)
    if dense_units:
        x = layers.Dense(
            dense_units, activation="relu", kernel_regularizer=kernel_regularizer, name="dense"
        )(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="scores")(x)
    return keras.Model(inputs, outputs, name=name)


def conv_blocks(
    x,
    *,
    filters=(32, 64, 128),
    kernel_size=3,
    strides=1,
    padding="same",
    dilation_rate=1,
    convs_per_block=1,
    pooling="max",
    pool_size=2,
    batch_norm=True,
    batch_norm_momentum=0.9,
    residual=False,
    block_dropout=0.0,
    kernel_l1=0.0,
    kernel_l2=0.0,
    activity_l1=0.0,
    activity_l2=0.0,
):
    """The convolution blocks of the CNN family, applied to a channels_last tensor.

    Shared by the `cnn` classifier and the image encoders of the captioner and VQA
    models. The arguments are those of `cnn`; layers are named `block1_conv1`, ...

    Args:
        x: a Keras tensor `(batch, height, width, channels)`.

    Returns:
        The last feature map, `(batch, height', width', filters[-1])`.
    """
    if not isinstance(filters, (list, tuple)) or not filters:
        raise ValueError(f"Invalid filters {filters!r}: expected a non-empty list.")
    check_positive_ints("filters", list(filters))
    num_blocks = len(filters)
    kernel_sizes = _per_block("kernel_size", kernel_size, num_blocks)
    strides = _per_block("strides", strides, num_blocks)
    dilations = _per_block("dilation_rate", dilation_rate, num_blocks)
    paddings = _per_block("padding", padding, num_blocks)
    poolings = _per_block("pooling", pooling, num_blocks)
    check_positive_ints("kernel_size", kernel_sizes)
    check_positive_ints("strides", strides)
    check_positive_ints("dilation_rate", dilations)
    check_positive_ints("convs_per_block", [convs_per_block])
    check_positive_ints("pool_size", [pool_size])
    for p in paddings:
        if p not in ("same", "valid"):
            raise ValueError(f"Invalid padding {p!r}: expected 'same' or 'valid'.")
        if residual and p != "same":
            raise ValueError("Residual blocks need padding 'same'.")
    for p in poolings:
        if p not in POOLINGS:
            raise ValueError(f"Invalid pooling {p!r}: expected one of {POOLINGS}.")
    if not 0 <= block_dropout < 1:
        raise ValueError(f"Invalid block_dropout {block_dropout!r}: must be in [0, 1).")
    height, width = x.shape[1], x.shape[2]
    kernel_regularizer = _regularizer(kernel_l1, kernel_l2)
    activity_regularizer = _regularizer(activity_l1, activity_l2)
    conv_kwargs = dict(
        use_bias=not batch_norm,
        kernel_initializer="he_normal",
        kernel_regularizer=kernel_regularizer,
    )

    for block in range(num_blocks):
        prefix = f"block{block + 1}"
        kernel, stride, dilation = kernel_sizes[block], strides[block], dilations[block]
        effective = dilation * (kernel - 1) + 1
        if effective > min(height, width):
            dilated = f" (dilated to {effective})" if dilation > 1 else ""
            raise ValueError(
                f"Invalid kernel_size {kernel}{dilated} in {prefix}: larger than its "
                f"{height}x{width} input. Use a smaller kernel_size, fewer blocks or "
                "larger images."
            )
        if stride > 1 and dilation > 1:
            raise ValueError(f"{prefix}: strides and dilation_rate cannot both be > 1.")
        shortcut = x
        for conv in range(2 if residual else convs_per_block):
            x = layers.Conv2D(
                filters[block],
                kernel,
                strides=stride if conv == 0 else 1,
                padding=paddings[block],
                dilation_rate=dilation,
                name=f"{prefix}_conv{conv + 1}",
                **conv_kwargs,
            )(x)
            height = _conv_output_size(
                height, effective, stride if conv == 0 else 1, paddings[block]
            )
            width = _conv_output_size(
                width, effective, stride if conv == 0 else 1, paddings[block]
            )
            if min(height, width) < 1:
                raise ValueError(
                    f"{prefix}: the feature map vanished (kernel_size {kernel} with "
                    f"padding 'valid'). Use padding 'same' or a smaller kernel_size."
                )
            if batch_norm:
                x = FusedBatchNormalization(
                    momentum=batch_norm_momentum, name=f"{prefix}_bn{conv + 1}"
                )(x)
            if not (residual and conv == 1):
                x = layers.Activation("relu", name=f"{prefix}_relu{conv + 1}")(x)
        if residual:
            if shortcut.shape[-1] != filters[block] or stride > 1:
                shortcut = layers.Conv2D(
                    filters[block], 1, strides=stride, name=f"{prefix}_shortcut", **conv_kwargs
                )(shortcut)
                if batch_norm:
                    shortcut = FusedBatchNormalization(
                        momentum=batch_norm_momentum, name=f"{prefix}_shortcut_bn"
                    )(shortcut)
            x = layers.Add(name=f"{prefix}_add")([x, shortcut])
            x = layers.Activation("relu", name=f"{prefix}_out")(x)
        if activity_regularizer is not None:
            x = layers.ActivityRegularization(activity_l1, activity_l2, name=f"{prefix}_activity")(
                x
            )
        if poolings[block] != "none":
            if min(height, width) < pool_size:
                raise ValueError(
                    f"{prefix}: its {height}x{width} feature map is smaller than "
                    f"pool_size {pool_size}. Use fewer blocks, pooling 'none' or larger "
                    "images."
                )
            pool = {"max": layers.MaxPooling2D, "avg": layers.AveragePooling2D}.get(
                poolings[block], MinPooling2D
            )
            x = pool(pool_size, name=f"{prefix}_pool")(x)
            height, width = height // pool_size, width // pool_size
        if block_dropout:
            x = layers.Dropout(block_dropout, name=f"{prefix}_dropout")(x)

    return x
