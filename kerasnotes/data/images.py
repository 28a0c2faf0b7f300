"""Image classification data: the embedded `shapes`, tfds names and image folders.

Every source comes back as an `ImageClassificationData`: unbatched `tf.data` splits of
`(uint8 image (height, width, channels), int label)`, class names and the image shape.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

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
from kerasnotes.data.streams import (
    Cache,
    bad_record_error,
    file_splits,
    report_skipped,
    tfds_splits,
)
from kerasnotes.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp")
# A class folder's images are loaded at their own size when they share one no larger
# than this, and at this size otherwise; looked at in up to `FOLDER_SAMPLE` files.
DEFAULT_FOLDER_IMAGE_SIZE = 64
FOLDER_SAMPLE = 256
# Images smaller than this on a side are scaled up (keeping their shape) until it fits:
# the default cnn's three pooled blocks need 16x16.
MIN_FOLDER_IMAGE_SIDE = 16
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")  # Pillow's modes of greyscale images.
# tfds names the CLI lists; any tfds image classification dataset with
# supervised (image, label) keys works.
TFDS_EXAMPLES = ("mnist", "fashion_mnist", "cifar10", "cifar100")


@dataclasses.dataclass
class ImageClassificationData:
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    class_names: list[str]
    image_shape: tuple[int, int, int]  # (height, width, channels)
    num_examples: dict[str, int]
    source: str
    # Drawn outside the training ranges (the embedded generators only; `scenes`).
    shifted: tf.data.Dataset | None = None


def resize(image: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """Resize decoded images to `size` as float32 pixel values rounded to [0, 255].

    Used by the training pipelines and inside every export, so training and serving
    see the same pixels.
    """
    image = tf.image.resize(image, size, method="bilinear", antialias=True)
    return tf.round(tf.clip_by_value(image, 0.0, 255.0))


def resize_uint8(image: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """`resize`, back to uint8: how every data source stores its images."""
    return tf.cast(resize(image, size), tf.uint8)


def model_image_shape(image_shape, data_format: str, spatial_rank: int = 2) -> tuple[int, ...]:
    """An image's `(height, width, channels)` (or a clip's `(time, height, width,
    channels)`, or with `spatial_rank=1` a waveform's `(samples, channels)`) in the
    order a model with `data_format` takes."""
    *leading, channels = image_shape
    if data_format == "channels_first":
        split = len(leading) - spatial_rank
        return (*leading[:split], channels, *leading[split:])
    return (*leading, channels)


def to_data_format(images, data_format: str, spatial_rank: int = 2):
    """A batch of channels_last images or clips (`(..., height, width, channels)`, or
    with `spatial_rank=1` waveforms `(..., samples, channels)`), NumPy or tensor, in
    `data_format` order: channels before the spatial axes for channels_first."""
    if data_format != "channels_first":
        return images
    rank = len(images.shape)
    channels = rank - 1 - spatial_rank
    order = [*range(channels), rank - 1, *range(channels, rank - 1)]
    return (
        images.transpose(order) if isinstance(images, np.ndarray) else tf.transpose(images, order)
    )


def decode_image(image_bytes: tf.Tensor, channels: int) -> tf.Tensor:
    """One encoded image (JPEG, PNG, GIF, BMP; a GIF's first frame) to uint8 `(height,
    width, channels)`: with 3 channels as `tf.io.decode_image` gives them (grey
    repeated, alpha dropped); with 1 a grey image as it is and a colour one by luma
    (`tf.image.rgb_to_grayscale`), GIFs (always decoded in colour) included."""
    if channels != 1:
        return tf.io.decode_image(image_bytes, channels=channels, expand_animations=False)
    image = tf.io.decode_image(image_bytes, expand_animations=False)  # Its own channels.
    return tf.cond(
        tf.shape(image)[-1] < 3,
        lambda: image[..., :1],  # Grey, or grey and alpha.
        lambda: tf.image.rgb_to_grayscale(image[..., :3]),
    )


def image_file_decoder(size, channels: int = 3):
    """A graph function: an image file's path to its pixels, uint8 `(*size, channels)`
    (decoded as `decode_image` does and resized as in training); it fails as
    TensorFlow's ops do on a missing or undecodable file."""

    def decode(path: tf.Tensor) -> tf.Tensor:
        image = decode_image(tf.io.read_file(path), channels)
        return tf.ensure_shape(resize_uint8(image, size), (*size, channels))

    return decode


def decode_images(image_bytes: tf.Tensor, image_shape, data_format: str) -> tf.Tensor:
    """Encoded images (string `(batch,)`) to float pixels in the model's order, in the graph.

    What every export's `serving_default` does with its `image_bytes` input: decode
    (JPEG, PNG, GIF, BMP; any channel count converted) and `resize` as in training.
    """
    height, width, channels = image_shape

    def decode(image):
        return resize(decode_image(image, channels), (height, width))

    images = tf.map_fn(
        decode,
        image_bytes,
        fn_output_signature=tf.TensorSpec((height, width, channels), tf.float32),
    )
    return to_data_format(images, data_format)


def open_file(path: str, what: str, mode: str = "rb", **options):
    """`open(path, mode, **options)`, or a `DataError` naming the file (`what` it is)
    if it cannot be opened."""
    try:
        return open(path, mode, **options)
    except OSError as e:
        raise DataError(f"Cannot read {what} {path!r}: {e.strerror}.") from None


def read_bytes(path: str, what: str) -> bytes:
    """The contents of file `path`, or a `DataError` naming it (`what` it is)."""
    with open_file(path, what) as f:
        try:
            return f.read()
        except OSError as e:
            raise DataError(f"Cannot read {what} {path!r}: {e.strerror}.") from None


def decode_utf8(raw: bytes, offset: int = 0) -> str:
    """`raw` as UTF-8 text (a byte-order mark dropped at the start of a file); a
    `ValueError` naming its first bad byte and that byte's offset (`raw` starting at
    byte `offset` of its file) if it is not UTF-8."""
    try:
        return raw.decode("utf-8" if offset else "utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"not UTF-8: invalid byte 0x{raw[e.start]:02x} at byte offset {offset + e.start}"
        ) from None


def _not_utf8_error(path: str, what: str, error: ValueError) -> DataError:
    return DataError(
        f"{what.capitalize()} {path!r} is {error}. Convert it to UTF-8 (for example with iconv)."
    )


def read_text(path: str, what: str = "text file") -> str:
    """The text of the UTF-8 file `path`; a `DataError` naming the file (`what` it is)
    and the byte offset of its first bad byte if it is not UTF-8."""
    try:
        return decode_utf8(read_bytes(path, what))
    except ValueError as e:
        raise _not_utf8_error(path, what, e) from None


def decoded_lines(f):
    """The lines of the binary file `f` as UTF-8 text (with their line endings), read as
    a stream; a `ValueError` naming the first bad byte and its offset in the file once
    its line is reached (see `decode_utf8`)."""
    offset = 0
    for raw in f:
        yield decode_utf8(raw, offset)
        offset += len(raw)


def utf8_lines(path: str, what: str = "text file"):
    """The lines of the UTF-8 file `path` (with their line endings), read as a stream;
    errors as `read_text` gives them, a bad byte's once its line is reached."""
    with open_file(path, what) as f:
        try:
            yield from decoded_lines(f)
        except ValueError as e:
            raise _not_utf8_error(path, what, e) from None


def serve_image_file(serve, path: str, **inputs) -> dict:
    """Run a bytes-input signature on one image file (and any other `inputs`), with
    clear errors for bad files."""
    content = read_bytes(path, "image")
    try:
        return serve(image_bytes=tf.constant([content]), **inputs)
    except tf.errors.InvalidArgumentError:
        raise DataError(
            f"Corrupt or unsupported image {path!r}: expected JPEG, PNG, GIF or BMP."
        ) from None


# The stand-in image size when a source's own size is known only after loading it
# (tfds names): large enough that no layer is too large for it by accident.
PLACEHOLDER_IMAGE_SIZE = 224


def known_image_size(dataset: str, image_size, builder_cls, embedded):
    """The `(height, width)` a source gives, when known without preparing it:
    `image_size` when set, else the own size of an embedded dataset (a name in
    `embedded`, built by `builder_cls`; a `/small` name is its small config); else
    `None`."""
    if image_size is not None:
        return size_pair(image_size)
    if dataset in embedded:
        config = "small" if dataset.endswith("/small") else "default"
        return ({c.name: c.image_size for c in builder_cls.BUILDER_CONFIGS}[config],) * 2
    return None


def example_image_shape(config, expected_image_size) -> list[int]:
    """`[height, width, 3]` of a task's `example_info`: the size `expected_image_size`
    (a data module's) gives for `config`'s dataset, 224 when it is known only after
    loading, or small images for the test harness (`config` is `None`)."""
    if config is None:
        return [24, 24, 3]
    size = expected_image_size(config["dataset"], config["image_size"])
    return [*(size or (PLACEHOLDER_IMAGE_SIZE,) * 2), 3]


def expected_image_size(dataset: str | None, image_size=None):
    """The `(height, width)` that `load` will give, known without loading; else `None`."""
    from kerasnotes.data.shapes import Shapes

    dataset = dataset or "shapes"
    size = known_image_size(dataset, image_size, Shapes, EMBEDDED)
    if size is None and os.path.isdir(dataset):
        return folder_image_format(dataset)[0]
    return size


def _embedded(name: str):
    from kerasnotes.data.shapes import Shapes

    configs = {"shapes": "default", "shapes/small": "small"}
    return Shapes, configs.get(name)


EMBEDDED = ("shapes", "shapes/small")


def load(
    dataset: str | None,
    *,
    image_size=None,
    skip_bad_records: bool = False,
    data_dir: str | None = None,
    cache: Cache | None = None,
) -> ImageClassificationData:
    """Load an image classification dataset by embedded name, path or tfds name.

    Args:
        dataset: `None` or `"shapes"` (embedded, default), `"shapes/small"`, a
            directory with one sub-folder of images per class, or a tfds name such
            as `"mnist"`.
        image_size: `None` (the dataset's own size; a folder's own when its images
            share one of at most 64x64, else 64), an int or `[height, width]`. A
            folder of greyscale images loads with one channel.
        skip_bad_records: skip (and count) unreadable images in a folder instead
            of failing.
        data_dir: the tfds data directory (default: tfds' own, `TFDS_DATA_DIR`).
        cache: where the decoded splits are kept (`kerasnotes.data.streams`; default
            `auto`); a tfds dataset that is not kept in memory is read from tfds' own
            files every epoch.
    """
    cache = cache or Cache()
    size = size_pair(image_size)
    dataset = dataset or "shapes"
    if dataset in EMBEDDED:
        builder_cls, config = _embedded(dataset)
        builder = builder_cls(config=config, data_dir=data_dir)
        builder.download_and_prepare()
        return _from_builder(builder, dataset, size, cache)
    builder = class_folder_or_tfds(
        dataset, data_dir, embedded=EMBEDDED, examples=TFDS_EXAMPLES, holds="images"
    )
    if builder is None:
        own_size, channels = folder_image_format(dataset)
        return _from_folder(dataset, size or own_size, channels, skip_bad_records, cache)
    return _from_builder(builder, dataset, size, cache)


def _from_builder(builder, name: str, size, cache: Cache) -> ImageClassificationData:
    import tensorflow_datasets as tfds

    info = builder.info
    features = info.features
    image_key, label_key = classified_keys(
        info, name, tfds.features.Image, "an image classification"
    )
    height, width, channels = features[image_key].shape
    if size is None and (height is None or width is None):
        raise DataError(
            f"Dataset {name!r} has images of varying size; set image_size "
            "(for example --set image_size=64)."
        )
    size = size or (height, width)
    channels = channels or 3

    parts = with_shifted(info, tfds_parts(info))
    num_examples = split_sizes(info, parts)

    def read(split):
        ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
        if size != (height, width):
            ds = ds.map(
                lambda image, label: (resize_uint8(image, size), label),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        return ds

    splits = {part: read(split) for part, split in parts.items()}
    return ImageClassificationData(
        **tfds_splits(splits, num_examples, size[0] * size[1] * channels, cache),
        class_names=list(features[label_key].names),
        image_shape=(size[0], size[1], channels),
        num_examples=num_examples,
        source=tfds_source(builder),
    )


def read_json(path: str, what: str, object_hook=None):
    """The parsed UTF-8 JSON file `path`, or a `DataError` naming it (`what` it is);
    `object_hook` as `json.loads` takes it (each object as it is parsed)."""
    text = read_text(path, what)
    try:
        return json.loads(text, object_hook=object_hook)
    except ValueError as e:
        raise DataError(f"{what.capitalize()} {path!r} is not valid JSON: {e}.") from None


def image_path(root: str, file_name: str) -> str:
    """Where an annotation file's image is: in `root` or `root/images` (else `root/file_name`)."""
    for folder in (root, os.path.join(root, "images")):
        candidate = os.path.join(folder, file_name)
        if os.path.isfile(candidate):
            return candidate
    return os.path.join(root, file_name)


def read_files(files: list[str], read, *, unit: str, skip_bad_records: bool, listed_in: str):
    """Read data files into memory with `read(file)`, with a progress bar.

    `read` raises `OSError` for a file it cannot open and `ValueError` for one it
    cannot decode. Returns `(items, skipped)`: what `read` gave for each file, in order,
    or `None` for a file skipped as missing or corrupt (only with `skip_bad_records`;
    otherwise the first such file is a `DataError` naming it, its `unit` and
    `listed_in`, where it came from).
    """
    from keras.utils import Progbar

    items, skipped = [], []
    progress = Progbar(len(files), unit_name=unit, verbose=1 if sys.stderr.isatty() else 0)
    for i, file in enumerate(files):
        try:
            items.append(read(file))
        except (OSError, ValueError) as e:
            if not skip_bad_records:
                raise bad_record_error(file, e, unit=unit, listed_in=listed_in) from None
            items.append(None)
            skipped.append(file)
        progress.update(i + 1)
    report_skipped(skipped, unit=unit, listed_in=listed_in)
    return items, skipped


def held_out_split(count: int, what: str, unit: str = "images") -> dict[str, np.ndarray]:
    """A fixed split of `count` items: 80% train, 10% validation, 10% test (one at least)."""
    order = np.random.default_rng(0).permutation(count)
    num_held_out = max(1, count // 10)
    if count - 2 * num_held_out < 1:
        raise DataError(
            f"{what} has {count} usable {unit}; need at least 3 (train, validation and test)."
        )
    return {
        "test": order[:num_held_out],
        "validation": order[num_held_out : 2 * num_held_out],
        "train": order[2 * num_held_out :],
    }


def class_files(path: str, extensions, *, unit: str) -> tuple[list[str], list[tuple[str, int]]]:
    """The class names of `path/<class>/` and its `(file, label)` pairs for files
    ending in `extensions`, in order; a `DataError` for fewer than two classes or no
    such file."""
    what = f"{unit.capitalize()} folder {path!r}"
    classes = sorted(
        d
        for d in os.listdir(path)
        if os.path.isdir(os.path.join(path, d)) and not d.startswith(".")
    )
    files = [
        (os.path.join(path, c, f), label)
        for label, c in enumerate(classes)
        for f in sorted(os.listdir(os.path.join(path, c)))
        if f.lower().endswith(extensions)
    ]
    if not files:
        raise DataError(
            f"{what} holds no {unit}s: expected one sub-folder per class with "
            f"{', '.join(extensions)} files."
        )
    if len(classes) < 2:
        raise DataError(
            f"{what} has {len(classes)} class sub-folder; a classifier needs at least 2."
        )
    return classes, files


def folder_image_format(path: str) -> tuple[tuple[int, int], int]:
    """The `(height, width)` and channel count a class folder's images load at by
    default, from the headers of up to `FOLDER_SAMPLE` of them spread over the folder
    (nothing decoded): their own size when they share one no larger than
    `DEFAULT_FOLDER_IMAGE_SIZE` (small images are not blown up; below
    `MIN_FOLDER_IMAGE_SIDE` on a side, a whole multiple of it), that size otherwise;
    one channel when every one is greyscale, three otherwise."""
    from PIL import Image

    _, files = class_files(path, IMAGE_EXTENSIONS, unit="image")
    sizes, greys = set(), []
    for file, _ in files[:: max(1, len(files) // FOLDER_SAMPLE)]:
        try:
            with Image.open(file) as image:
                sizes.add((image.height, image.width))
                greys.append(_is_grey(image))
        except (OSError, ValueError):  # Named when the folder is read.
            continue
    size = sizes.pop() if len(sizes) == 1 else None
    if size is None or max(size) > DEFAULT_FOLDER_IMAGE_SIZE:
        size = (DEFAULT_FOLDER_IMAGE_SIZE,) * 2
    scale = -(-MIN_FOLDER_IMAGE_SIDE // min(size))  # At least 1, rounded up.
    size = (size[0] * scale, size[1] * scale)
    return size, 1 if greys and all(greys) else 3


def _is_grey(image) -> bool:
    """Whether a Pillow image is greyscale: a grey mode, or a palette of greys only
    (as GIFs store grey images)."""
    if image.mode in GREY_MODES:
        return True
    if image.mode != "P":
        return False
    palette = np.array(image.getpalette() or [0, 0, 0]).reshape(-1, 3)
    return bool(np.all(palette == palette[:, :1]))


def class_folder_splits(
    path: str,
    extensions,
    decode,
    *,
    example_bytes: int,
    settings,
    cache: Cache,
    unit: str,
    skip_bad_records: bool,
) -> tuple[list[str], dict[str, tf.data.Dataset], dict[str, int]]:
    """`path/<class>/<file>` for files ending in `extensions`, split 80/10/10, each file
    read and decoded by `decode` in the pipeline and cached per `cache` (see
    `streams.file_splits`; unreadable ones named, or skipped and counted): `(class
    names, {split: (example, label) dataset}, {split: count})`."""
    what = f"{unit.capitalize()} folder {path!r}"
    classes, files = class_files(path, extensions, unit=unit)
    splits = file_splits(
        [file for file, _ in files],
        (np.array([label for _, label in files], np.int64),),
        held_out_split(len(files), what, unit=f"{unit}s"),
        decode,
        example_bytes=example_bytes,
        settings=settings,
        cache=cache,
        skip_bad_records=skip_bad_records,
        unit=unit,
        listed_in=what[0].lower() + what[1:],
        source=os.path.abspath(path),
    )
    return classes, splits.datasets, splits.counts


def _from_folder(
    path: str, size, channels: int, skip_bad_records: bool, cache: Cache
) -> ImageClassificationData:
    """`path/<class>/<image>`, each image decoded in the pipeline and checked once."""
    classes, splits, counts = class_folder_splits(
        path,
        IMAGE_EXTENSIONS,
        image_file_decoder(size, channels),
        example_bytes=size[0] * size[1] * channels,
        settings={"size": list(size), "channels": channels},
        cache=cache,
        unit="image",
        skip_bad_records=skip_bad_records,
    )
    return ImageClassificationData(
        **splits,
        class_names=classes,
        image_shape=(size[0], size[1], channels),
        num_examples=counts,
        source=f"folder:{os.path.abspath(path)}",
    )
