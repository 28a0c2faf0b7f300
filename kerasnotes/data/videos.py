"""Video classification data: the embedded `moving_shapes`, folders of clips, tfds names.

Every source comes back as a `VideoData`: unbatched `tf.data` splits of `(uint8 clip
(frames, height, width, 3), int label)`, class names and the clip shape. Every clip has
the same number of frames, sampled uniformly over its length (the first and the last
frame always among them), and the same frame size.

Clip files: animated GIFs are decoded with `tf.io` (as the export decodes them, in the
graph); MP4, AVI, WebM, MOV and MKV with PyAV (FFmpeg's decoders).
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import tensorflow as tf

from kerasnotes.data.downloads import (
    class_folder_or_tfds,
    classified_keys,
    size_pair,
    split_sizes,
    tfds_parts,
    tfds_source,
    with_shifted,
)
from kerasnotes.data.images import class_folder_splits, resize
from kerasnotes.data.streams import Cache, PythonDecoder, tfds_splits
from kerasnotes.errors import DataError

EMBEDDED = ("moving_shapes", "moving_shapes/small")
GIF_EXTENSIONS = (".gif",)
FFMPEG_EXTENSIONS = (".mp4", ".avi", ".webm", ".mov", ".mkv")
VIDEO_EXTENSIONS = GIF_EXTENSIONS + FFMPEG_EXTENSIONS
DEFAULT_FOLDER_FRAMES = 8
DEFAULT_FOLDER_IMAGE_SIZE = 64
# tfds names the CLI lists: any tfds dataset with a video and a class label feature.
TFDS_EXAMPLES = ("ucf101",)


@dataclasses.dataclass
class VideoData:
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    class_names: list[str]
    clip_shape: tuple[int, int, int, int]  # (frames, height, width, channels)
    num_examples: dict[str, int]
    source: str
    # Drawn outside the training ranges (the embedded generators only; `scenes`).
    shifted: tf.data.Dataset | None = None


def frame_indices(num_available, num_frames: int):
    """`num_frames` indices spread evenly from the first to the last of
    `num_available` frames (repeating frames of a shorter clip); NumPy or tensors."""
    if isinstance(num_available, (int, np.integer)):
        return np.round(np.linspace(0, max(num_available - 1, 0), num_frames)).astype(np.int64)
    last = tf.cast(tf.maximum(num_available - 1, 0), tf.float32)
    return tf.cast(tf.round(tf.linspace(0.0, last, num_frames)), tf.int32)


def sample_clip(frames: tf.Tensor, num_frames: int, size) -> tf.Tensor:
    """Decoded frames `(n, height, width, channels)` to `num_frames` evenly spread frames
    of `size`, float pixels in [0, 255] (`images.resize`)."""
    picked = tf.gather(frames, frame_indices(tf.shape(frames)[0], num_frames))
    return resize(picked, size)


def decode_gif_clips(video_bytes: tf.Tensor, clip_shape) -> tf.Tensor:
    """Animated GIFs (string `(batch,)`) to float clips `(batch, frames, height, width,
    3)`, in the graph: what the export's `serving_default` does with `video_bytes`."""
    num_frames, height, width, _ = clip_shape

    def decode(gif):
        return sample_clip(tf.io.decode_gif(gif), num_frames, (height, width))

    return tf.map_fn(
        decode,
        video_bytes,
        fn_output_signature=tf.TensorSpec((num_frames, height, width, 3), tf.float32),
    )


def read_clip(path: str, num_frames: int, size) -> np.ndarray:
    """uint8 `(num_frames, height, width, 3)` from a clip file; `ValueError` if it
    cannot be decoded, `OSError` if it cannot be read."""
    if path.lower().endswith(GIF_EXTENSIONS):
        with open(path, "rb") as f:
            content = f.read()
        try:
            frames = tf.io.decode_gif(content)
        except tf.errors.InvalidArgumentError as e:
            raise ValueError(e.message) from None
    else:
        frames = _ffmpeg_frames(path)
    clip = sample_clip(frames, num_frames, size)
    return tf.cast(clip, tf.uint8).numpy()


def _ffmpeg_frames(path: str) -> np.ndarray:
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:  # An audio-only MP4 or WebM, say.
                raise ValueError("it has no video stream")
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except av.error.FFmpegError as e:
        raise ValueError(str(e)) from None
    if not frames:
        raise ValueError("no video frames")
    return np.stack(frames)


def load(
    dataset: str | None,
    *,
    image_size=None,
    num_frames: int | None = None,
    skip_bad_records: bool = False,
    data_dir: str | None = None,
    cache: Cache | None = None,
) -> VideoData:
    """Load a video classification dataset by embedded name, path or tfds name.

    Args:
        dataset: `None` or `"moving_shapes"` (embedded, default), `"moving_shapes/small"`,
            a directory with one sub-folder of clips per class, or a tfds name such as
            `"ucf101"`.
        image_size: `None` (the dataset's own frame size; 64 for folders), an int or
            `[height, width]`.
        num_frames: frames per clip, sampled evenly; `None`: the dataset's own (8 for
            folders and datasets of clips of varying length).
        skip_bad_records: skip (and count) unreadable clips of a folder instead of failing.
        data_dir: the tfds data directory (default: tfds' own, `TFDS_DATA_DIR`).
        cache: where the decoded splits are kept (`kerasnotes.data.streams`).
    """
    cache = cache or Cache()
    size = size_pair(image_size)
    dataset = dataset or EMBEDDED[0]
    if dataset in EMBEDDED:
        from kerasnotes.data.moving_shapes import MovingShapes

        config = "small" if dataset.endswith("/small") else "default"
        builder = MovingShapes(config=config, data_dir=data_dir)
        builder.download_and_prepare()
        return _from_builder(builder, dataset, size, num_frames, cache)
    builder = class_folder_or_tfds(
        dataset, data_dir, embedded=EMBEDDED, examples=TFDS_EXAMPLES, holds="clips"
    )
    if builder is None:
        return _from_folder(
            dataset,
            size or (DEFAULT_FOLDER_IMAGE_SIZE,) * 2,
            num_frames or DEFAULT_FOLDER_FRAMES,
            skip_bad_records,
            cache,
        )
    return _from_builder(builder, dataset, size, num_frames, cache)


def _from_builder(builder, name: str, size, num_frames, cache: Cache) -> VideoData:
    info = builder.info
    import tensorflow_datasets as tfds

    video_key, label_key = classified_keys(
        info, name, tfds.features.Video, "a video classification"
    )
    frames, height, width, _ = info.features[video_key].shape
    if size is None and (height is None or width is None):
        raise DataError(
            f"Dataset {name!r} has frames of varying size; set image_size "
            "(for example --set image_size=64)."
        )
    size = size or (height, width)
    num_frames = num_frames or frames or DEFAULT_FOLDER_FRAMES
    same = num_frames == frames and size == (height, width)

    parts = with_shifted(info, tfds_parts(info))

    def read(split):
        ds = builder.as_dataset(split=split, shuffle_files=False)

        def example(features):
            clip = features[video_key]
            if not same:
                clip = tf.cast(sample_clip(clip, num_frames, size), tf.uint8)
            if clip.shape[-1] == 1:  # Grey clips are given as RGB.
                clip = tf.image.grayscale_to_rgb(clip)
            return clip, features[label_key]

        return ds.map(example, num_parallel_calls=tf.data.AUTOTUNE)

    shape = (num_frames, size[0], size[1], 3)
    num_examples = split_sizes(info, parts)
    splits = {part: read(split) for part, split in parts.items()}
    return VideoData(
        **tfds_splits(splits, num_examples, math.prod(shape), cache),
        class_names=list(info.features[label_key].names),
        clip_shape=shape,
        num_examples=num_examples,
        source=tfds_source(builder),
    )


def _from_folder(
    path: str, size, num_frames: int, skip_bad_records: bool, cache: Cache
) -> VideoData:
    """`path/<class>/<clip>`, each clip decoded in the pipeline and checked once."""
    shape = (num_frames, size[0], size[1], 3)
    classes, splits, counts = class_folder_splits(
        path,
        VIDEO_EXTENSIONS,
        PythonDecoder(lambda file: read_clip(file, num_frames, size), shape, tf.uint8),
        example_bytes=math.prod(shape),
        settings={"shape": list(shape)},
        cache=cache,
        unit="clip",
        skip_bad_records=skip_bad_records,
    )
    return VideoData(
        **splits,
        class_names=classes,
        clip_shape=shape,
        num_examples=counts,
        source=f"folder:{os.path.abspath(path)}",
    )


def expected_clip_shape(dataset: str | None, image_size=None, num_frames=None):
    """The `(frames, height, width, 3)` that `load` will give, when known without
    loading (an embedded dataset, a folder, or the sizes given); else `None`."""
    from kerasnotes.data.moving_shapes import MovingShapes

    dataset = dataset or EMBEDDED[0]
    size = size_pair(image_size)
    if dataset in EMBEDDED:
        name = "small" if dataset.endswith("/small") else "default"
        config = {c.name: c for c in MovingShapes.BUILDER_CONFIGS}[name]
        size = size or (config.image_size,) * 2
        return (num_frames or config.num_frames, *size, 3)
    if os.path.isdir(dataset):
        size = size or (DEFAULT_FOLDER_IMAGE_SIZE,) * 2
        return (num_frames or DEFAULT_FOLDER_FRAMES, *size, 3)
    if size is not None and num_frames is not None:
        return (num_frames, *size, 3)
    return None
