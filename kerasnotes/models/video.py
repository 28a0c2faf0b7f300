"""`video`: a time-distributed CNN over clips, with a recurrent, pooled or convolutional
head over the frames.

The CNN notes add time to a CNN by putting "the time window size after the number of
inputs", `(batch, time, height, width, channels)`, and processing the frames in order
with a recurrent layer (CNN + RNN, "sequential processing of non-sequence data"):

1. every frame goes through the same image encoder (`TimeDistributed`): the CNN
   family's blocks, or a `keras.applications` backbone (`kerasnotes.encoders`), frozen
   or fine-tuned; its grid of region features is flattened and projected, so a frame's
   vector keeps where things are in the frame;
2. a head reads the sequence of frame vectors `(batch, time, frame_units)`: a GRU or an
   LSTM (optionally bidirectional), average or max pooling over time, or a temporal
   `Conv1D`; pooling ignores the order of the frames, so it cannot tell a shape moving
   left from one moving right;
3. a softmax over the classes.

`head="single_frame"` is the baseline: the same encoder on the middle frame alone.
Encoder and head are trained together with `fit()`, no features extracted beforehand.

Input: `frames`, float pixel values in [0, 255], `(batch, time, height, width,
channels)` for channels_last or `(batch, time, channels, height, width)` for
channels_first. Output: `scores`, class probabilities `(batch, num_classes)`.
"""

from __future__ import annotations

import keras
from keras import layers

from kerasnotes.encoders import build_encoder
from kerasnotes.layers import check_positive_ints, to_channels_last
from kerasnotes.registry import register_model

HEADS = ("gru", "lstm", "average", "max", "conv1d", "single_frame")


@register_model(
    "video",
    task="video_classification",
    training_defaults={"epochs": 12, "batch_size": 32, "learning_rate": 2e-3},
)
def video(
    input_shape=(9, 32, 32, 3),
    num_classes=9,
    data_format="channels_last",
    encoder="cnn",
    encoder_weights=None,
    trainable_encoder=True,
    encoder_filters=(16, 32, 64),
    encoder_batch_norm=True,
    encoder_units=32,
    frame_units=128,
    head="gru",
    head_units=64,
    bidirectional=False,
    dropout=0.3,
    name="video",
):
    """Time-distributed CNN clip classifier; see the module docstring.

    Args:
        input_shape: clip shape in `data_format` order, `(time, height, width,
            channels)` or `(time, channels, height, width)`.
        num_classes: number of classes.
        data_format: `"channels_last"` or `"channels_first"`: the layout of the input.
        encoder: `"cnn"` or a `keras.applications` backbone (`kerasnotes.encoders`).
        encoder_weights: `"imagenet"` or `None` for a backbone.
        trainable_encoder: train the frame encoder (fine-tune) or freeze it.
        encoder_filters, encoder_batch_norm: the `"cnn"` encoder's blocks.
        encoder_units: the width of each region's feature.
        frame_units: the width of a frame's vector.
        head: `"gru"`, `"lstm"`, `"average"`, `"max"`, `"conv1d"` or
            `"single_frame"` (the baseline: the middle frame only).
        head_units: the recurrent or convolutional head's units.
        bidirectional: read the frames both ways (recurrent heads).
        dropout: dropout before the classifier.
        name: the model's name.

    Example:

    >>> model = video(input_shape=(4, 16, 16, 3), num_classes=3, encoder_filters=[8])
    >>> model.output_shape
    (None, 3)
    """
    check_positive_ints("num_classes", [num_classes])
    check_positive_ints("encoder_units", [encoder_units])
    check_positive_ints("frame_units", [frame_units])
    check_positive_ints("head_units", [head_units])
    if head not in HEADS:
        raise ValueError(f"Invalid head {head!r}: expected one of {', '.join(HEADS)}.")
    if bidirectional and head not in ("gru", "lstm"):
        raise ValueError(f"bidirectional needs a recurrent head (gru or lstm), not {head!r}.")
    if not 0 <= dropout < 1:
        raise ValueError(f"Invalid dropout {dropout!r}: must be in [0, 1).")
    if len(input_shape) != 4:
        raise ValueError(
            f"Invalid input_shape {input_shape!r}: expected 4 dimensions (time, and a frame's 3)."
        )

    inputs = keras.Input(tuple(input_shape), name="frames")
    clips = to_channels_last(inputs, data_format)  # (batch, time, height, width, channels)
    num_frames = clips.shape[1]
    frame_encoder = build_encoder(
        clips.shape[2:],
        "channels_last",
        encoder_units,
        encoder=encoder,
        encoder_weights=encoder_weights,
        cnn_options={"filters": list(encoder_filters), "batch_norm": encoder_batch_norm},
        name="frame_encoder",
    )
    frame_encoder.trainable = trainable_encoder
    regions = frame_encoder.output_shape[1]
    if head == "single_frame":
        regions_of_frames = frame_encoder(clips[:, num_frames // 2])[:, None]
    else:
        regions_of_frames = layers.TimeDistributed(frame_encoder, name="frames_encoded")(clips)
    # (batch, time, regions, encoder_units) -> (batch, time, frame_units)
    x = layers.Reshape((-1, regions * encoder_units), name="frame_regions")(regions_of_frames)
    x = layers.Dense(frame_units, activation="relu", name="frame_features")(x)
    if head in ("gru", "lstm"):
        cell = layers.GRU if head == "gru" else layers.LSTM
        recurrent = cell(head_units, use_cudnn=False, name=head)
        x = layers.Bidirectional(recurrent, name=f"bi{head}")(x) if bidirectional else recurrent(x)
    elif head == "conv1d":
        x = layers.Conv1D(head_units, 3, padding="same", activation="relu", name="temporal_conv")(
            x
        )
        x = layers.GlobalMaxPooling1D(name="temporal_pool")(x)
    elif head == "max":
        x = layers.GlobalMaxPooling1D(name="temporal_pool")(x)
    else:  # "average", and "single_frame"'s one frame.
        x = layers.GlobalAveragePooling1D(name="temporal_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="scores")(x)
    return keras.Model(inputs, outputs, name=name)
