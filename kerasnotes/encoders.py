"""Image encoders shared by the families that look at images (captioner, VQA, video).

`build_encoder` turns an image into a grid of region features, `(batch, regions,
units)`: the CNN family's convolution blocks, or a `keras.applications` backbone
(pretrained with `encoder_weights="imagenet"`, or from scratch with `None`).
"""

from __future__ import annotations

import keras
from keras import layers

from kerasnotes.layers import PositionEmbedding, to_channels_last
from kerasnotes.models.cnn import conv_blocks

# keras.applications backbones: constructor and the rescaling of 0-255 pixels they expect.
BACKBONES = {
    "mobilenet_v2": ("MobileNetV2", 1 / 127.5, -1.0),
    "resnet50_v2": ("ResNet50V2", 1 / 127.5, -1.0),
    "efficientnet_b0": ("EfficientNetB0", 1.0, 0.0),
}
ENCODERS = ("cnn", *BACKBONES)


def build_encoder(
    image_shape,
    data_format: str,
    units: int,
    *,
    encoder: str = "cnn",
    encoder_weights: str | None = None,
    cnn_options: dict | None = None,
    name: str = "encoder",
) -> keras.Model:
    """An image encoder yielding region features `(batch, regions, units)`.

    Shared by the captioner and VQA. `encoder` is `"cnn"` (the CNN family's blocks,
    configured by `cnn_options`, see `kerasnotes.models.cnn.conv_blocks`) or a
    `keras.applications` backbone from `BACKBONES` with `encoder_weights`
    (`"imagenet"` or `None`).
    """
    if encoder not in ENCODERS:
        raise ValueError(f"Invalid encoder {encoder!r}: expected one of {', '.join(ENCODERS)}.")
    inputs = keras.Input(tuple(image_shape), name="images")
    x = to_channels_last(inputs, data_format)  # (batch, height, width, channels)
    if encoder == "cnn":
        x = layers.Rescaling(1 / 255, name="rescale")(x)
        x = conv_blocks(x, **(cnn_options or {}))
    else:
        constructor, scale, offset = BACKBONES[encoder]
        x = layers.Rescaling(scale, offset, name="rescale")(x)
        try:
            backbone = getattr(keras.applications, constructor)(
                include_top=False, weights=encoder_weights, input_shape=tuple(x.shape[1:])
            )
        except Exception as e:  # Keras raises a bare Exception when a download fails.
            if "URL fetch failure" not in str(e):
                raise
            raise ValueError(
                f"encoder {encoder!r} needs its {encoder_weights} weights, which are not "
                "in Keras's cache (KERAS_HOME/models) and could not be downloaded "
                f"({str(e)[:160]}). Pass encoder_weights=null to train it from scratch, "
                "or download the weights once on a machine with network access."
            ) from None
        x = backbone(x)
    height, width, channels = x.shape[1:]
    x = layers.Reshape((height * width, channels), name="regions")(x)
    x = layers.Dense(units, activation="relu", name="region_features")(x)
    x = PositionEmbedding(name="region_positions")(x)  # Where each region is.
    return keras.Model(inputs, x, name=name)
