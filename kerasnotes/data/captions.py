"""Captioning data: the embedded `shapes_captions`, COCO caption JSON and tfds `coco_captions`.

Every source comes back as a `CaptionData`: unbatched `tf.data` splits of
`(uint8 image (height, width, 3), captions string[num_captions])`, one element per
image with all of its reference captions.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from kerasnotes.data import SHIFTED
from kerasnotes.data.images import (
    held_out_split,
    image_file_decoder,
    image_path,
    known_image_size,
    read_json,
    resize_uint8,
)
from kerasnotes.data.streams import Cache, file_splits, tfds_splits
from kerasnotes.errors import DataError

DEFAULT_IMAGE_SIZE = 64  # For COCO data; the embedded scenes keep their own size.
EMBEDDED = ("shapes_captions", "shapes_captions/small")
TFDS_NAMES = ("coco_captions",)
# tfds split names of coco_captions (the Karpathy splits).
_TFDS_SPLITS = {"train": "train", "validation": "val", "test": "test"}


@dataclasses.dataclass
class CaptionData:
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    image_shape: tuple[int, int, int]  # (height, width, channels)
    num_examples: dict[str, int]  # Images per split.
    source: str
    skipped: list[str] = dataclasses.field(default_factory=list)
    # Drawn outside the training ranges (the embedded generators only; `scenes`).
    shifted: tf.data.Dataset | None = None
    # The training captions, where the loader has them without reading the images.
    known_train_captions: list[str] | None = None
    # Set by the captioning task from the training captions.
    vocabulary: list[str] = dataclasses.field(default_factory=list)
    max_length: int = 0

    def train_captions(self) -> list[str]:
        """Every training caption (for the vocabulary and the caption length)."""
        if self.known_train_captions is not None:
            return self.known_train_captions
        captions = self.train.map(lambda image, captions: captions)
        return [c.decode("utf-8") for batch in captions.as_numpy_iterator() for c in batch]


def load(
    dataset: str | None,
    *,
    image_size=None,
    skip_bad_records: bool = False,
    data_dir: str | None = None,
    cache: Cache | None = None,
) -> CaptionData:
    """Load a captioning dataset by embedded name, path or tfds name.

    Args:
        dataset: `None` or `"shapes_captions"` (embedded, default),
            `"shapes_captions/small"`, a COCO caption JSON file (or a directory
            holding one), or `"coco_captions"` (tfds).
        image_size: `None` (the dataset's own size; 64 for COCO data), an int or
            `[height, width]`.
        skip_bad_records: skip (and count) missing or unreadable images of a COCO
            JSON file instead of failing.
        data_dir: the tfds data directory (default: tfds' own, `TFDS_DATA_DIR`).
        cache: where the decoded splits are kept (`kerasnotes.data.streams`).
    """
    cache = cache or Cache()
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    size = tuple(image_size) if image_size else None
    dataset = dataset or "shapes_captions"
    if dataset in EMBEDDED:
        return _embedded(dataset, size, data_dir, cache)
    if os.path.exists(dataset):
        return _from_coco_json(
            _annotations_file(dataset),
            size or (DEFAULT_IMAGE_SIZE,) * 2,
            skip_bad_records,
            cache,
        )
    if os.sep in dataset or dataset.startswith((".", "~")) or dataset.endswith(".json"):
        raise DataError(
            f"Dataset path {dataset!r} does not exist; expected a COCO caption JSON file "
            f"(or a directory holding one), an embedded dataset ({', '.join(EMBEDDED)}) "
            f"or a tfds name ({', '.join(TFDS_NAMES)})."
        )
    if dataset not in TFDS_NAMES:
        raise DataError(
            f"Unknown captioning dataset {dataset!r}: expected {', '.join(EMBEDDED)}, "
            f"{', '.join(TFDS_NAMES)} or the path of a COCO caption JSON file."
        )
    return _from_tfds(dataset, size or (DEFAULT_IMAGE_SIZE,) * 2, data_dir, cache)


def expected_image_size(dataset: str | None, image_size=None) -> tuple[int, int]:
    """The `(height, width)` that `load` will give, known without loading."""
    from kerasnotes.data.shapes_captions import ShapesCaptions

    size = known_image_size(dataset or EMBEDDED[0], image_size, ShapesCaptions, EMBEDDED)
    return size or (DEFAULT_IMAGE_SIZE,) * 2


def _embedded(name: str, size, data_dir, cache: Cache) -> CaptionData:
    from kerasnotes.data.shapes_captions import ShapesCaptions

    config = "small" if name.endswith("/small") else "default"
    builder = ShapesCaptions(config=config, data_dir=data_dir)
    builder.download_and_prepare()
    native = builder.builder_config.image_size
    size = size or (native, native)

    def read(split):
        ds = builder.as_dataset(split=split, shuffle_files=False)
        return ds.map(
            lambda ex: (
                ex["image"] if size == (native, native) else resize_uint8(ex["image"], size),
                ex["captions"],
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    names = ("train", "validation", "test", SHIFTED)
    num_examples = {s: builder.info.splits[s].num_examples for s in names}
    splits = {split: read(split) for split in names}
    return CaptionData(
        **tfds_splits(splits, num_examples, size[0] * size[1] * 3, cache),
        image_shape=(*size, 3),
        num_examples=num_examples,
        source=f"tfds:shapes_captions/{config}",
    )


def _from_tfds(name: str, size, data_dir, cache: Cache) -> CaptionData:
    from kerasnotes.data.downloads import tfds_builder

    builder = tfds_builder(name, data_dir, valid="a tfds name", local="a COCO caption JSON file")

    def read(split):
        ds = builder.as_dataset(split=split, shuffle_files=False)
        return ds.map(
            lambda ex: (resize_uint8(ex["image"], size), ex["captions"]["text"]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    def count(split):
        try:
            return int(builder.info.splits[split].num_examples)
        except (KeyError, ValueError, TypeError):
            return 0

    num_examples = {part: count(split) for part, split in _TFDS_SPLITS.items()}
    splits = {part: read(split) for part, split in _TFDS_SPLITS.items()}
    return CaptionData(
        **tfds_splits(splits, num_examples, size[0] * size[1] * 3, cache),
        image_shape=(*size, 3),
        num_examples=num_examples,
        source=f"tfds:{name}",
    )


def _annotations_file(path: str) -> str:
    """The COCO caption JSON named by `path`: the file itself or the one in a directory."""
    if os.path.isfile(path):
        if not path.lower().endswith(".json"):
            raise DataError(
                f"Dataset file {path!r} is not a COCO caption JSON file (expected *.json)."
            )
        return path
    candidates = sorted(
        os.path.join(folder, f)
        for folder in (path, os.path.join(path, "annotations"))
        if os.path.isdir(folder)
        for f in os.listdir(folder)
        if f.lower().endswith(".json")
    )
    if len(candidates) != 1:
        found = f"{len(candidates)} JSON files" if candidates else "no JSON file"
        raise DataError(
            f"Dataset directory {path!r} has {found}; expected exactly one COCO caption "
            "JSON file (in it or in its annotations/ folder). Pass the JSON file itself."
        )
    return candidates[0]


def _read_coco_json(path: str) -> dict:
    data = read_json(path, "caption file")
    if not (
        isinstance(data, dict)
        and isinstance(data.get("images"), list)
        and isinstance(data.get("annotations"), list)
    ):
        raise DataError(
            f"Caption file {path!r} is not in COCO caption format: expected an object "
            'with "images" ({"id", "file_name"}) and "annotations" ({"image_id", '
            '"caption"}) lists.'
        )
    return data


def _from_coco_json(path: str, size, skip_bad_records: bool, cache: Cache) -> CaptionData:
    """A COCO caption file, split 80/10/10 by image; each image read and decoded in the
    pipeline (and cached per `cache`), checked once."""
    data = _read_coco_json(path)
    root = os.path.dirname(os.path.abspath(path))
    captions: dict = {}
    for annotation in data["annotations"]:
        try:
            image_id, caption = annotation["image_id"], annotation["caption"]
        except (KeyError, TypeError):
            raise DataError(
                f"Caption file {path!r} has an annotation without image_id and caption: "
                f"{str(annotation)[:100]}."
            ) from None
        if not isinstance(caption, str) or not caption.strip():
            raise DataError(
                f"Caption file {path!r}: image {image_id!r} has an empty or non-text "
                f"caption {caption!r}."
            )
        captions.setdefault(image_id, []).append(caption.strip())
    entries = []
    for image in data["images"]:
        try:
            entries.append((image["id"], image["file_name"]))
        except (KeyError, TypeError):
            raise DataError(
                f"Caption file {path!r} has an image entry without id and file_name: "
                f"{str(image)[:100]}."
            ) from None
    entries = [(i, f) for i, f in entries if i in captions]
    if len(entries) < 3:
        raise DataError(
            f"Caption file {path!r} has {len(entries)} captioned images; need at least 3 "
            "(train, validation and test)."
        )

    references = [captions[image_id] for image_id, _ in entries]
    most = max(len(r) for r in references)
    padded = np.array([r + [""] * (most - len(r)) for r in references], dtype=object)
    files = [image_path(root, file_name) for _, file_name in entries]
    parts = held_out_split(len(entries), f"Caption file {path!r}")
    splits = file_splits(
        files,
        (padded,),
        parts,
        image_file_decoder(size),
        example_bytes=size[0] * size[1] * 3,
        settings={"size": list(size)},
        cache=cache,
        skip_bad_records=skip_bad_records,
        unit="image",
        listed_in=f"caption file {path!r}",
        source=os.path.abspath(path),
    )

    def without_padding(ds):
        return ds.map(lambda image, captions: (image, tf.boolean_mask(captions, captions != "")))

    skipped = set(splits.skipped)

    return CaptionData(
        **{name: without_padding(ds) for name, ds in splits.datasets.items()},
        image_shape=(*size, 3),
        num_examples=splits.counts,
        source=f"coco-json:{os.path.abspath(path)}",
        skipped=splits.skipped,
        known_train_captions=[
            caption for i in parts["train"] if files[i] not in skipped for caption in references[i]
        ],
    )
