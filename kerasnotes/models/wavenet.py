"""`wavenet`: dilated causal 1D convolutions over a waveform (van den Oord et al., 2016).

The notes call WaveNet "a 1D CNN with the time dimension as input". Its layers:

1. a causal convolution (an output sees its own sample and the ones before, never
   later ones) lifts the waveform to `residual_channels`;
2. a stack of layers, each a causal convolution with kernel size 2 whose dilation
   doubles from layer to layer (1, 2, 4, ... 2^(layers_per_block - 1)), the stack
   repeated `num_blocks` times: each layer reaches twice as far back as the one
   before, so the receptive field grows exponentially with depth while the cost grows
   linearly. Each layer's output is gated, `tanh(filter) * sigmoid(gate)`; a 1x1
   convolution of it is added back to the layer's input (residual connection) and
   another one is its skip output;
3. the skip outputs of every layer are summed, passed through ReLU and 1x1
   convolutions, then either pooled over time (max by default: where in the sound a
   pattern was does not matter, that it was there does) into a class (`wavenet`, the
   classifier) or projected at every step onto the levels of the next sample
   (`wavenet-generator`, the next-value model).

Sounds longer than `MAX_FRAMES` samples (speech: a second is 8,000-16,000 of them) go
through a front end first, `learnt_frames`: scaled to their peak, cut into overlapping
frames by a strided convolution (a filter bank learnt from the data, where speech models
usually compute a spectrogram), the log of each filter's magnitude; the stack then runs
over at most `MAX_FRAMES` frames, so a second of speech costs about what the embedded
signals cost, and the receptive field spans the whole second.

The receptive field, in samples, is `1 + (kernel_size - 1) * (1 + sum of the
dilations)` (times the frames' stride, plus the frames', with the front end);
`receptive_field` computes it from the hyperparameters, `receptive_field_of` reads it
from a built model's graph, and the training run prints it. `dilation_growth=1` keeps
every dilation at 1: a plain causal CNN of the same depth and width, whose receptive
field grows only linearly (the comparison in `benchmarks/`).

`wavenet` input: `waveform`, float samples in [-1, 1], `(batch, samples, channels)` for
channels_last or `(batch, channels, samples)` for channels_first; output: `scores`,
class probabilities `(batch, num_classes)`. `wavenet-generator` input: `levels`
`(batch, time)`; output: `logits` `(batch, time, num_levels)`. `QueuedGenerator`
generates from it one sample per step with per-layer queues.
"""

from __future__ import annotations

import math

import keras
from keras import layers

from kerasnotes.layers import check_positive_ints, to_channels_last
from kerasnotes.registry import register_model

POOLINGS = ("average", "max")
# The most time steps the classifier's stack runs over when `frame_stride` is chosen
# from the sounds' length: 1,024 (the embedded signals' length, one step a sample).
MAX_FRAMES = 1024


@keras.saving.register_keras_serializable(package="kerasnotes")
class GatedActivation(layers.Layer):
    """WaveNet's gate: `tanh(filter) * sigmoid(gate)`, the filter and the gate being the
    first and the second half of the input's channels.

    Input shape: `(..., 2 * channels)`. Output shape: `(..., channels)`.
    """

    def call(self, inputs):
        filter_, gate = keras.ops.split(inputs, 2, axis=-1)
        return keras.ops.tanh(filter_) * keras.ops.sigmoid(gate)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // 2)


@keras.saving.register_keras_serializable(package="kerasnotes")
class SplitChannels(layers.Layer):
    """Splits the last axis after its first `size` channels: `[x[..., :size],
    x[..., size:]]`."""

    def __init__(self, size: int, **kwargs):
        super().__init__(**kwargs)
        self.size = size

    def call(self, inputs):
        return [inputs[..., : self.size], inputs[..., self.size :]]

    def compute_output_shape(self, input_shape):
        return [(*input_shape[:-1], self.size), (*input_shape[:-1], input_shape[-1] - self.size)]

    def get_config(self):
        return {**super().get_config(), "size": self.size}


def layer_dilations(num_blocks: int, layers_per_block: int, dilation_growth: int = 2) -> list[int]:
    """Each layer's dilation: 1, g, g^2, ... within a block, the blocks repeated."""
    return [dilation_growth**i for _ in range(num_blocks) for i in range(layers_per_block)]


def receptive_field(kernel_size: int, dilations) -> int:
    """Samples an output sees: its own and the ones before it, through the input
    convolution and every dilated layer."""
    return 1 + (kernel_size - 1) * (1 + sum(dilations))


def receptive_field_of(model) -> int | None:
    """The receptive field of `model`'s causal convolutions, in input samples, read from
    its graph (the longest path of dilations from the input, each tap counted in the
    samples its layer's input steps over); `None` if it has none."""
    reach = {}  # layer -> (samples before an output that reach it, input samples a step)
    found = False
    for layer in model.layers:
        parents = [
            tensor._keras_history.operation
            for node in layer._inbound_nodes
            for tensor in node.input_tensors
        ]
        before, step = max((reach.get(id(parent), (0, 1)) for parent in parents), default=(0, 1))
        if isinstance(layer, layers.Conv1D) and layer.padding == "causal":
            before += (layer.kernel_size[0] - 1) * layer.dilation_rate[0] * step
            step *= layer.strides[0]
            found = True
        reach[id(layer)] = (before, step)
    return 1 + max(before for before, _ in reach.values()) if found else None


def frame_stride_for(num_samples: int) -> int:
    """The smallest power of 2 that leaves at most `MAX_FRAMES` frames of
    `num_samples`: 1 for 1,024 samples, 8 for one second at 8 kHz, 16 at 16 kHz."""
    return 2 ** max(0, math.ceil(math.log2(num_samples / MAX_FRAMES)))


def describe_receptive_field(model) -> str | None:
    """`Receptive field: N samples` for a model of causal convolutions (and the frames'
    stride, with the front end), else `None`."""
    samples = receptive_field_of(model)
    if samples is None:
        return None
    try:
        stride = model.get_layer("frames").strides[0]
    except ValueError:
        return f"Receptive field: {samples} samples"
    return f"Receptive field: {samples} samples (frames of {stride} samples)"


@keras.saving.register_keras_serializable(package="kerasnotes")
class PeakNormalization(layers.Layer):
    """Each example divided by its largest absolute value (plus `epsilon`): a sound's
    loudness no longer matters. Input and output shape: `(batch, ...)`."""

    def __init__(self, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, inputs):
        axes = tuple(range(1, len(inputs.shape)))
        peak = keras.ops.max(keras.ops.abs(inputs), axis=axes, keepdims=True)
        return inputs / (peak + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="kerasnotes")
class LogMagnitude(layers.Layer):
    """`log(1 + scale * |x|)`: magnitudes compressed as a log spectrogram compresses
    its bands' energies."""

    def __init__(self, scale: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, inputs):
        return keras.ops.log1p(self.scale * keras.ops.abs(inputs))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def learnt_frames(x, stride: int, filters: int):
    """A learnt filter bank in place of a spectrogram, from `x` `(batch, samples, 1)` to
    `(batch, samples / stride, filters)`: the sound scaled to its peak, a strided causal
    convolution of `filters` filters over `2 * stride` samples (frames overlapping by
    half), the log of each filter's magnitude."""
    x = PeakNormalization(name="peak_normalization")(x)
    x = layers.Conv1D(filters, 2 * stride, strides=stride, padding="causal", name="frames")(x)
    return LogMagnitude(name="log_magnitude")(x)


def dilated_stack(
    x,
    *,
    residual_channels: int,
    skip_channels: int,
    dilations,
    kernel_size: int = 2,
):
    """WaveNet's gated, dilated causal layers on `x` `(batch, time, residual_channels)`.

    Returns the sum of every layer's skip output, `(batch, time, skip_channels)`. Each
    layer is two convolutions: `layer<i>_dilated`, the causal one, computes the filter
    and the gate together (`2 * residual_channels` outputs, split in halves), and
    `layer<i>_1x1` the residual and the skip output together; two wide convolutions
    cost less than four narrow ones of the same total width.
    """
    skips = []
    for i, dilation in enumerate(dilations, start=1):
        both = layers.Conv1D(
            2 * residual_channels,
            kernel_size,
            dilation_rate=dilation,
            padding="causal",
            name=f"layer{i}_dilated",
        )(x)  # (batch, time, 2 * residual_channels)
        gated = GatedActivation(name=f"layer{i}_gated")(both)  # tanh(f) * sigmoid(g)
        out = layers.Conv1D(residual_channels + skip_channels, 1, name=f"layer{i}_1x1")(gated)
        residual, skip = SplitChannels(residual_channels, name=f"layer{i}_split")(out)
        skips.append(skip)
        x = layers.Add(name=f"layer{i}_out")([x, residual])
    return layers.Add(name="skips")(skips) if len(skips) > 1 else skips[0]


def wavenet_body(x, *, dilations, kernel_size, residual_channels, skip_channels):
    """From `x` `(batch, time, channels)` to the head's features `(batch, time,
    skip_channels)`: the causal input convolution, the dilated stack, then ReLU and a
    1x1 convolution with ReLU over the summed skip outputs. Every output sees only its
    own time step and earlier ones."""
    x = layers.Conv1D(residual_channels, kernel_size, padding="causal", name="input_conv")(
        x
    )  # (batch, time, residual_channels)
    skips = dilated_stack(
        x,
        residual_channels=residual_channels,
        skip_channels=skip_channels,
        dilations=dilations,
        kernel_size=kernel_size,
    )
    x = layers.Activation("relu", name="skips_relu")(skips)
    return layers.Conv1D(skip_channels, 1, activation="relu", name="head_conv")(x)


def _check_stack(num_blocks, layers_per_block, dilation_growth, kernel_size, residual_channels,
                 skip_channels):  # fmt: skip
    check_positive_ints("num_blocks", [num_blocks])
    check_positive_ints("layers_per_block", [layers_per_block])
    check_positive_ints("dilation_growth", [dilation_growth])
    check_positive_ints("kernel_size", [kernel_size])
    check_positive_ints("residual_channels", [residual_channels])
    check_positive_ints("skip_channels", [skip_channels])


@register_model(
    "wavenet",
    task="waveform_classification",
    training_defaults={"epochs": 5, "batch_size": 16, "learning_rate": 3e-3},
)
def wavenet(
    input_shape=(1024, 1),
    num_classes=8,
    data_format="channels_last",
    num_blocks=1,
    layers_per_block=10,
    dilation_growth=2,
    kernel_size=2,
    residual_channels=16,
    skip_channels=32,
    frame_stride=0,
    pooling="max",
    dropout=0.2,
    name="wavenet",
):
    """WaveNet waveform classifier; see the module docstring.

    Args:
        input_shape: `(samples, channels)`, or `(channels, samples)` for channels_first.
        num_classes: number of classes.
        data_format: `"channels_last"` or `"channels_first"`: the layout of the input.
        num_blocks: repeats of the dilation stack.
        layers_per_block: layers per stack; dilations 1 .. growth^(layers - 1).
        dilation_growth: 2 for WaveNet; 1 for a plain causal CNN (no dilation).
        kernel_size: every causal convolution's kernel size.
        residual_channels, skip_channels: widths of the residual and skip paths.
        frame_stride: samples per step of the stack. Above 1, `learnt_frames` turns
            the sound into frames first (a learnt filter bank of `2 *
            residual_channels` filters over `2 * frame_stride` samples, log
            magnitudes); 1: no front end, the stack over every sample; 0: chosen from
            the sounds' length (`frame_stride_for`: at most `MAX_FRAMES` frames, so 1
            for the embedded 1,024-sample signals, 8 for a second at 8 kHz).
        pooling: `"average"` or `"max"` over time of the skip outputs.
        dropout: dropout before the classifier.
        name: the model's name.

    Example:

    >>> model = wavenet(input_shape=(256, 1), num_classes=3, layers_per_block=4)
    >>> model.output_shape
    (None, 3)
    """
    check_positive_ints("num_classes", [num_classes])
    _check_stack(num_blocks, layers_per_block, dilation_growth, kernel_size, residual_channels,
                 skip_channels)  # fmt: skip
    if pooling not in POOLINGS:
        raise ValueError(f"Invalid pooling {pooling!r}: expected one of {', '.join(POOLINGS)}.")
    if not 0 <= dropout < 1:
        raise ValueError(f"Invalid dropout {dropout!r}: must be in [0, 1).")
    if len(input_shape) != 2:
        raise ValueError(
            f"Invalid input_shape {input_shape!r}: expected 2 dimensions (samples, channels)."
        )
    if frame_stride != 0:
        check_positive_ints("frame_stride", [frame_stride])
    samples = input_shape[1] if data_format == "channels_first" else input_shape[0]
    stride = frame_stride or (frame_stride_for(samples) if samples else 1)

    inputs = keras.Input(tuple(input_shape), name="waveform")
    x = to_channels_last(inputs, data_format, spatial_rank=1)  # (batch, samples, channels)
    if stride > 1:
        x = learnt_frames(x, stride, 2 * residual_channels)
    x = wavenet_body(
        x,
        dilations=layer_dilations(num_blocks, layers_per_block, dilation_growth),
        kernel_size=kernel_size,
        residual_channels=residual_channels,
        skip_channels=skip_channels,
    )  # (batch, samples, skip_channels)
    pool = layers.GlobalAveragePooling1D if pooling == "average" else layers.GlobalMaxPooling1D
    x = pool(name="temporal_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="scores")(x)
    return keras.Model(inputs, outputs, name=name)


@register_model(
    "wavenet-generator",
    task="waveform_modelling",
    training_defaults={"epochs": 3, "batch_size": 32, "learning_rate": 3e-3},
)
def wavenet_generator(
    num_levels=256,
    num_blocks=1,
    layers_per_block=8,
    dilation_growth=2,
    kernel_size=2,
    residual_channels=32,
    skip_channels=64,
    name="wavenet_generator",
):
    """WaveNet next-value model: quantised samples in, the next sample's level out.

    The model reads `levels` `(batch, time)`, each sample's quantisation level (0 ..
    `num_levels - 1`; mu-law levels for sounds, as in WaveNet, or evenly spaced ones
    for a real-valued series, see `kerasnotes.data.series`), and returns `logits`
    `(batch, time, num_levels)`: at every step, scores of the next sample's level.
    Training reads a window and predicts it shifted by one; generation reads its own
    choices back one sample at a time (`QueuedGenerator`).

    Args:
        num_levels: quantisation levels of a sample (the softmax's width).
        num_blocks, layers_per_block, dilation_growth, kernel_size, residual_channels,
            skip_channels: the dilated stack, as for `wavenet`.
        name: the model's name.

    Example:

    >>> model = wavenet_generator(num_levels=16, layers_per_block=3)
    >>> model.output_shape
    (None, None, 16)
    """
    check_positive_ints("num_levels", [num_levels])
    _check_stack(num_blocks, layers_per_block, dilation_growth, kernel_size, residual_channels,
                 skip_channels)  # fmt: skip
    if num_levels < 2:
        raise ValueError(f"Invalid num_levels {num_levels!r}: must be at least 2.")
    inputs = keras.Input((None,), dtype="int32", name="levels")
    # A level as the value the network reads: -1 .. 1 (in the companded domain).
    x = layers.Rescaling(2 / (num_levels - 1), offset=-1.0, name="to_values")(inputs)
    x = layers.Reshape((-1, 1), name="add_channel")(x)  # (batch, time, 1)
    x = wavenet_body(
        x,
        dilations=layer_dilations(num_blocks, layers_per_block, dilation_growth),
        kernel_size=kernel_size,
        residual_channels=residual_channels,
        skip_channels=skip_channels,
    )
    outputs = layers.Conv1D(num_levels, 1, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


class QueuedGenerator:
    """One new sample per step from a `wavenet_generator` model (Paine et al., 2016,
    "Fast WaveNet Generation").

    A causal convolution of kernel size k and dilation d at step t reads its input at
    t, t - d, ..., t - (k - 1) d. Each layer keeps a queue of its last (k - 1) d inputs,
    so a step computes every layer once, for one time step, from the queue and the new
    input, then pushes that input: the cost of a sample no longer grows with the
    receptive field. The queues are filled from a context by one pass of the whole
    network over it.

    `step` and `initial_state` follow `kerasnotes.decoding` (levels are its tokens).
    """

    def __init__(self, model):
        self.model = model
        self.num_levels = model.output_shape[-1]
        self.input_conv = model.get_layer("input_conv")
        self.kernel_size = self.input_conv.kernel_size[0]
        self.stack = []
        i = 1
        while True:
            try:
                dilated = model.get_layer(f"layer{i}_dilated")
            except ValueError:
                break
            self.stack.append((dilated, model.get_layer(f"layer{i}_1x1")))
            i += 1
        self.head = model.get_layer("head_conv")
        self.logits = model.get_layer("logits")
        self.residual_channels = self.input_conv.filters
        # What each queue holds, read by one pass over a context: the network's input
        # (`add_channel`), then each dilated layer's input.
        inputs = [model.get_layer("add_channel").output, self.input_conv.output]
        inputs += [model.get_layer(f"layer{i}_out").output for i in range(1, len(self.stack))]
        self.layer_inputs = keras.Model(model.input, inputs)

    def _queue_lengths(self):
        k = self.kernel_size
        return [k - 1] + [(k - 1) * dilated.dilation_rate[0] for dilated, _ in self.stack]

    def initial_state(self, levels):
        """The queues just before the last of `levels` `(batch, time)` (at least one
        sample), which the first step then reads: each layer's inputs before it, zeros
        before the context's start as in training's causal padding."""
        import tensorflow as tf

        sequences = self.layer_inputs(levels)
        queues = []
        for sequence, length in zip(sequences, self._queue_lengths(), strict=True):
            before = tf.pad(sequence[:, :-1], [[0, 0], [length, 0], [0, 0]])
            queues.append(before[:, tf.shape(before)[1] - length :])
        return queues

    @staticmethod
    def _causal_step(queue, current, layer):
        """A causal convolution at one time step: its taps from `queue` (the layer's
        last inputs, oldest first) and `current` `(rows, channels)`, side by side, times
        the kernel as one matrix."""
        import tensorflow as tf

        kernel_size, dilation = layer.kernel_size[0], layer.dilation_rate[0]
        taps = [queue[:, j * dilation] for j in range(kernel_size - 1)] + [current]
        kernel = tf.reshape(layer.kernel, [-1, layer.filters])  # (kernel_size * channels, out)
        return tf.matmul(tf.concat(taps, axis=-1), kernel) + layer.bias

    def step(self, tokens, queues):
        """Scores of the next level after reading `tokens` `(rows,)` levels."""
        import tensorflow as tf

        value = tf.cast(tokens, tf.float32)[:, None] * (2 / (self.num_levels - 1)) - 1.0
        new_queues = [tf.concat([queues[0][:, 1:], value[:, None]], axis=1)]
        x = self._causal_step(queues[0], value, self.input_conv)  # (rows, residual)
        skips = 0.0
        for (dilated, one_by_one), queue in zip(self.stack, queues[1:], strict=True):
            new_queues.append(tf.concat([queue[:, 1:], x[:, None]], axis=1))
            both = self._causal_step(queue, x, dilated)
            filter_, gate = tf.split(both, 2, axis=-1)
            gated = tf.tanh(filter_) * tf.sigmoid(gate)
            out = tf.matmul(gated, one_by_one.kernel[0]) + one_by_one.bias
            x = x + out[:, : self.residual_channels]
            skips = skips + out[:, self.residual_channels :]
        h = tf.nn.relu(tf.matmul(tf.nn.relu(skips), self.head.kernel[0]) + self.head.bias)
        logits = tf.matmul(h, self.logits.kernel[0]) + self.logits.bias
        return logits, new_queues, None
