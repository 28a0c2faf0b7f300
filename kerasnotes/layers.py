"""Layers and initializers shared by several model families.

Everything here is registered serializable (package `kerasnotes`) and round-trips
through `get_config` and `.keras` files.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

DATA_FORMATS = ("channels_last", "channels_first")


def check_data_format(data_format: str) -> str:
    if data_format not in DATA_FORMATS:
        raise ValueError(
            f"Invalid data_format {data_format!r}: expected one of {', '.join(DATA_FORMATS)}."
        )
    return data_format


def check_positive_ints(name: str, values) -> None:
    """Raise a `ValueError` naming `name` unless every value is a positive integer."""
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"Invalid {name} {v!r}: must be a positive integer.")


def to_channels_last(
    inputs, data_format: str, name: str = "to_channels_last", spatial_rank: int = 2
):
    """Move channels to the last axis of an image, clip or waveform tensor when needed.

    The user's `data_format` is the model's interface. Computation happens in
    channels_last, the only layout TensorFlow's CPU kernels support for convolution
    gradients and pooling (and the one GPUs prefer with mixed precision), so the
    same weights work on every device and the saved model loads anywhere.
    `spatial_rank` is 2 for images and clips (height, width), 1 for waveforms (time).
    """
    if check_data_format(data_format) == "channels_last":
        return inputs
    rank = len(inputs.shape)
    channels = rank - 1 - spatial_rank
    # (batch, [time,] channels, *spatial) -> (batch, [time,] *spatial, channels)
    dims = (*range(1, channels), *range(channels + 1, rank), channels)
    return layers.Permute(dims, name=name)(inputs)


# Classic hand-made 3x3 filters from the CNN notes.
CLASSIC_FILTERS = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "edge_horizontal": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "edge_vertical": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "box_blur": [[1 / 9] * 3] * 3,
    "gaussian_blur": [
        [1 / 16, 2 / 16, 1 / 16],
        [2 / 16, 4 / 16, 2 / 16],
        [1 / 16, 2 / 16, 1 / 16],
    ],
}


@keras.saving.register_keras_serializable(package="kerasnotes")
class ClassicFilters(keras.initializers.Initializer):
    """Initializes a 3x3 convolution kernel with classic image-processing filters.

    Output channel `i` applies `filters[i % len(filters)]` to the mean of the input
    channels, so on a greyscale or colour image it detects edges, sharpens or blurs
    exactly as the textbook kernel does.

    Args:
        filters: names from `CLASSIC_FILTERS`: `identity`, `edge_horizontal`,
            `edge_vertical`, `sharpen`, `box_blur`, `gaussian_blur`.

    Example:

    >>> conv = keras.layers.Conv2D(2, 3, kernel_initializer=ClassicFilters(
    ...     ["identity", "edge_vertical"]))
    """

    def __init__(self, filters):
        filters = [filters] if isinstance(filters, str) else list(filters)
        unknown = [f for f in filters if f not in CLASSIC_FILTERS]
        if not filters or unknown:
            raise ValueError(
                f"Invalid classic filters {unknown or filters!r}: expected names "
                f"from {', '.join(CLASSIC_FILTERS)}."
            )
        self.filters = filters

    def __call__(self, shape, dtype=None):
        kernel_h, kernel_w, in_channels, out_channels = shape
        if (kernel_h, kernel_w) != (3, 3):
            raise ValueError(f"ClassicFilters needs a 3x3 kernel, got {kernel_h}x{kernel_w}.")
        kernel = np.zeros(shape, np.float32)
        for i in range(out_channels):
            name = self.filters[i % len(self.filters)]
            kernel[:, :, :, i] = np.array(CLASSIC_FILTERS[name])[:, :, None] / in_channels
        return ops.convert_to_tensor(kernel, dtype=dtype or "float32")

    def get_config(self):
        return {"filters": self.filters}


@keras.saving.register_keras_serializable(package="kerasnotes")
class FusedBatchNormalization(layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed by TensorFlow's fused kernel.

    Keras 3 normalizes with separate moment, update and normalization ops
    (keras-team/keras-core#225); on this CPU that made batch norm about 45% of a
    small convolutional encoder's training step. For channels_last feature maps
    (rank 4, `axis=-1`) this layer calls `FusedBatchNormV3` instead, with the same
    variables, the same moving-average update (biased batch variance) and the same
    outputs. Anything else (masks, renorm, synchronized statistics, other axes)
    takes the Keras path.
    """

    def call(self, inputs, training=None, mask=None):
        rank = len(inputs.shape)
        if (
            rank != 4
            or self.axis % rank != rank - 1
            or mask is not None
            or self.renorm
            or self.synchronized
            or inputs.dtype not in (tf.float32, tf.float16, tf.bfloat16)
        ):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones([channels])
        beta = self.beta if self.center else tf.zeros([channels])
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, is_training=True
            )
            # The kernel returns the unbiased variance; Keras averages the biased one.
            count = tf.cast(tf.size(inputs) // channels, variance.dtype)
            variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
            self.moving_variance.assign(
                self.moving_variance * momentum + variance * (1.0 - momentum)
            )
        else:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs,
                gamma,
                beta,
                mean=self.moving_mean,
                variance=self.moving_variance,
                epsilon=self.epsilon,
                is_training=False,
            )
        return ops.cast(outputs, self.compute_dtype)


@keras.saving.register_keras_serializable(package="kerasnotes")
class MinPooling2D(layers.Layer):
    """Min pooling: the smallest value in each window (max pooling of `-x`, negated).

    Args:
        pool_size: int or pair, the window size.
        strides: int, pair or `None` (defaults to `pool_size`).
        padding: `"valid"` or `"same"`.
        data_format: `"channels_last"` or `"channels_first"`.

    Input shape:
        channels_last: `(batch, height, width, channels)`;
        channels_first: `(batch, channels, height, width)`.

    Output shape:
        the same layout with pooled height and width.

    Example:

    >>> MinPooling2D(2)(np.ones((1, 4, 4, 3))).shape
    (1, 2, 2, 3)
    """

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pool_size
        self.strides = strides
        self.padding = padding
        self.data_format = data_format
        self._max_pool = layers.MaxPooling2D(
            pool_size, strides, padding, data_format, dtype=self.dtype_policy
        )

    def build(self, input_shape):
        self._max_pool.build(input_shape)
        self.built = True

    def call(self, inputs):
        return -self._max_pool(-inputs)

    def compute_output_shape(self, input_shape):
        return self._max_pool.compute_output_shape(input_shape)

    def get_config(self):
        base_config = super().get_config()
        config = {
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
        }
        return {**base_config, **config}


# Augmentations by name, for images scaled to [0, 1]; Keras' own layers, each active
# only in training.
_AUGMENTATIONS = {
    "translate": lambda seed: layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed),
    "rotate": lambda seed: layers.RandomRotation(0.05, fill_mode="reflect", seed=seed),
    "zoom": lambda seed: layers.RandomZoom(0.1, fill_mode="reflect", seed=seed),
    "flip": lambda seed: layers.RandomFlip("horizontal", seed=seed),
    "noise": lambda seed: layers.GaussianNoise(0.03, seed=seed),
    "cutout": lambda seed: layers.RandomErasing(
        factor=0.5, scale=(0.02, 0.1), value_range=(0, 1), seed=seed
    ),
    "invert": lambda seed: layers.RandomInvert(factor=0.5, value_range=(0, 1), seed=seed),
    "blur": lambda seed: layers.RandomGaussianBlur(
        factor=0.5, sigma=(0.1, 1.0), value_range=(0, 1), seed=seed
    ),
}
AUGMENTATIONS = tuple(_AUGMENTATIONS)


def augmentation(names, seed: int | None = None, name: str = "augmentation"):
    """A `keras.Sequential` of the named augmentations, identity outside training.

    Args:
        names: names from `AUGMENTATIONS`, applied in order.
        seed: seed of the random transformations.

    Expects channels_last images scaled to [0, 1].
    """
    names = [names] if isinstance(names, str) else list(names or [])
    unknown = [n for n in names if n not in _AUGMENTATIONS]
    if unknown:
        raise ValueError(
            f"Unknown augmentation {unknown[0]!r}: expected names from {', '.join(AUGMENTATIONS)}."
        )
    return keras.Sequential([_AUGMENTATIONS[n](seed) for n in names], name=name)


@keras.saving.register_keras_serializable(package="kerasnotes")
class BahdanauAttention(layers.Layer):
    """Additive attention of queries over a set of values (image regions).

    `score(q, v_j) = w . tanh(W_q q + W_v v_j)`; the weights are a softmax of the scores
    over the values and the context is the weighted sum of the values (Bahdanau et al.,
    2015, "Neural Machine Translation by Jointly Learning to Align and Translate"; Xu et
    al., 2015, "Show, Attend and Tell", for image regions).

    The projection `W_v v` does not depend on the query: `project_values` computes it
    once so a decoder can reuse it at every step (`call(..., projected_values=...)`).

    Args:
        units: width of the hidden scoring layer.

    Call arguments:
        query: `(batch, num_queries, query_dim)`, one query per decoding step.
        values: `(batch, num_values, value_dim)`, e.g. regions of a feature map.
        projected_values: optional `project_values(values)`.

    Returns:
        `(context, weights)`: `(batch, num_queries, value_dim)` and
        `(batch, num_queries, num_values)`.

    Example:

    >>> attention = BahdanauAttention(16)
    >>> context, weights = attention(np.zeros((2, 5, 8)), np.zeros((2, 36, 32)))
    >>> tuple(context.shape), tuple(weights.shape)
    ((2, 5, 32), (2, 5, 36))
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        check_positive_ints("units", [units])
        self.units = units
        self.query_dense = layers.Dense(units, use_bias=False, name="query")
        self.value_dense = layers.Dense(units, name="value")
        self.score_dense = layers.Dense(1, use_bias=False, name="score")

    def build(self, query_shape, values_shape, projected_values_shape=None):
        self.query_dense.build(query_shape)
        self.value_dense.build(values_shape)
        self.score_dense.build((*values_shape[:-1], self.units))

    def project_values(self, values):
        return self.value_dense(values)

    def call(self, query, values, projected_values=None):
        if projected_values is None:
            projected_values = self.project_values(values)
        # (batch, queries, 1, units) + (batch, 1, values, units)
        hidden = ops.tanh(
            ops.expand_dims(self.query_dense(query), 2) + ops.expand_dims(projected_values, 1)
        )
        scores = ops.squeeze(self.score_dense(hidden), -1)  # (batch, queries, values)
        weights = ops.softmax(scores, axis=-1)
        context = ops.matmul(weights, values)  # (batch, queries, value_dim)
        return context, weights

    def compute_output_shape(self, query_shape, values_shape, projected_values_shape=None):
        return (
            (*query_shape[:2], values_shape[-1]),
            (*query_shape[:2], values_shape[1]),
        )

    def get_config(self):
        base_config = super().get_config()
        return {**base_config, "units": self.units}


@keras.saving.register_keras_serializable(package="kerasnotes")
class PositionEmbedding(layers.Layer):
    """Adds a learned embedding of each position to a sequence (or set of regions).

    Image regions flattened from a feature map lose where they were; adding a learned
    vector per position gives attention over regions access to "left of" and "above".

    Args:
        initializer: initializer of the `(sequence_length, features)` embeddings.

    Call arguments:
        inputs: `(batch, sequence_length, features)`, with a fixed sequence length.

    Returns:
        `inputs` plus the position embeddings, same shape.
    """

    def __init__(self, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        if input_shape[-2] is None:
            raise ValueError(
                f"PositionEmbedding needs a fixed sequence length; received {input_shape}."
            )
        self.embeddings = self.add_weight(
            shape=tuple(input_shape[-2:]), initializer=self.initializer, name="embeddings"
        )

    def call(self, inputs):
        return inputs + ops.cast(self.embeddings, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        base_config = super().get_config()
        return {**base_config, "initializer": keras.initializers.serialize(self.initializer)}


@keras.saving.register_keras_serializable(package="kerasnotes")
class AtLeastOneStep(layers.Layer):
    """Token ids `(batch, time)` padded with one 0 (padding) when `time` is 0.

    A batch of empty texts tokenizes to no steps at all, which recurrent layers cannot
    run; one padding step (masked like any other) lets the model answer them as it
    answers an empty text among longer ones. Other batches pass unchanged.
    """

    def call(self, inputs):
        steps = ops.maximum(ops.shape(inputs)[1], 1)
        padded = ops.pad(inputs, [[0, 0], [0, 1]])
        return padded[:, :steps]

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="kerasnotes")
class TransposeBatchTime(layers.Layer):
    """Swaps the first two axes: `(batch, time, ...)` <-> `(time, batch, ...)`.

    The time-major interface of a sequence model (`time_major=True`, the layout of the
    notes' PyTorch example) over Keras's batch-major recurrent layers, the way
    `to_channels_last` gives channels_first images a channels_last computation. The
    same weights give the same predictions in both layouts.

    Call arguments:
        inputs: `(batch, time, ...)` or `(time, batch, ...)`.
        mask: an optional mask of the first two axes, swapped the same way.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return ops.swapaxes(inputs, 0, 1)

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else ops.swapaxes(mask, 0, 1)

    def compute_output_shape(self, input_shape):
        return (input_shape[1], input_shape[0], *input_shape[2:])


@keras.saving.register_keras_serializable(package="kerasnotes")
class MaskedGlobalMaxPooling1D(layers.Layer):
    """The maximum over the time steps that the mask keeps (zero if it keeps none).

    `keras.layers.GlobalMaxPooling1D` ignores masks, so padding (whose features need
    not be the smallest) would change the result with the batch's longest sequence.

    Call arguments:
        inputs: `(batch, time, features)`.
        mask: optional `(batch, time)` booleans, true where a step is real.

    Returns:
        `(batch, features)`.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.max(inputs, axis=1)
        keep = ops.expand_dims(ops.cast(mask, "bool"), -1)
        lowest = ops.min(inputs) - 1.0
        pooled = ops.max(ops.where(keep, inputs, lowest), axis=1)
        return ops.where(ops.any(keep, axis=1), pooled, 0.0)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


@keras.saving.register_keras_serializable(package="kerasnotes")
class AttentionPooling1D(layers.Layer):
    """A weighted mean of the time steps, the weights learned from the steps themselves.

    `score_t = w . tanh(W h_t + b)`, a softmax over the steps that the mask keeps, and
    the sum of the steps weighted by it (the attention pooling of Yang et al., 2016,
    "Hierarchical Attention Networks for Document Classification").

    Args:
        units: width of the hidden scoring layer.

    Call arguments:
        inputs: `(batch, time, features)`.
        mask: optional `(batch, time)` booleans, true where a step is real.

    Returns:
        `(batch, features)`; `return_weights=True` adds the `(batch, time)` weights.
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        check_positive_ints("units", [units])
        self.units = units
        self.supports_masking = True
        self.hidden = layers.Dense(units, activation="tanh", name="hidden")
        self.score = layers.Dense(1, use_bias=False, name="score")

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.score.build((*input_shape[:-1], self.units))

    def call(self, inputs, mask=None, return_weights=False):
        scores = ops.squeeze(self.score(self.hidden(inputs)), -1)  # (batch, time)
        if mask is not None:
            scores = ops.where(ops.cast(mask, "bool"), scores, -1e9)
        weights = ops.softmax(scores, axis=-1)
        pooled = ops.sum(inputs * ops.expand_dims(weights, -1), axis=1)
        return (pooled, weights) if return_weights else pooled

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        base_config = super().get_config()
        return {**base_config, "units": self.units}
