"""VQA data: the embedded `shapes_vqa`, VQA v2 JSON files and tfds `clevr`.

Every source comes back as a `VqaData`: unbatched `tf.data` splits of
`(uint8 image (height, width, 3), question string, answers string[n], type string)`,
one element per question with every human answer (ten in VQA v2, one in the embedded
data and CLEVR). Question types are the embedded data's own (`colour`, `count`, ...)
or VQA's answer types (`yes/no`, `number`, `other`) for VQA v2 and CLEVR.

Datasets that know their scenes (the embedded data and CLEVR) add a fifth member, the
scene's objects: `{"center": float32 (objects, 2), <attribute>: int64 (objects,)}`,
each centre `(y, x)` as fractions of the image's size and each attribute an index into
`VqaData.scene_attributes[attribute]` (the embedded data's `shape` and `colour`,
CLEVR's `shape`, `color`, `material` and `size`).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from kerasnotes.data import SHIFTED
from kerasnotes.data.images import (
    held_out_split,
    image_path,
    known_image_size,
    read_image_files,
    read_json,
    resize_uint8,
)
from kerasnotes.errors import DataError

DEFAULT_IMAGE_SIZE = 64  # For VQA v2 and CLEVR; the embedded scenes keep their own size.
EMBEDDED = ("shapes_vqa", "shapes_vqa/small")
TFDS_NAMES = ("clevr",)
# Our splits from tfds clevr's: its test split has no answers, so its validation split
# is our test split and ours is carved from its training split.
_CLEVR_SPLITS = {"train": "train[:95%]", "validation": "train[95%:]", "test": "validation"}
# The attributes of the scenes' objects that the scene loss learns.
_EMBEDDED_ATTRIBUTES = ("shape", "colour")
_CLEVR_ATTRIBUTES = ("shape", "color", "material", "size")
_CLEVR_QUESTIONS_PER_IMAGE = 10  # CLEVR v1.0: 699,989 training questions, 70,000 images.


@dataclasses.dataclass
class VqaData:
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    image_shape: tuple[int, int, int]  # (height, width, channels)
    num_examples: dict[str, int]  # Questions per split.
    source: str
    skipped: list[str] = dataclasses.field(default_factory=list)
    # Drawn outside the training ranges (the embedded generators only; `scenes`).
    shifted: tf.data.Dataset | None = None
    # About how many questions each image has; the splits list an image's together.
    questions_per_image: int = 1
    # Attribute -> class names of the scenes' objects; empty when there are no scenes.
    scene_attributes: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    # Set by the VQA task from the training questions and answers.
    vocabulary: list[str] = dataclasses.field(default_factory=list)
    answers: list[str] = dataclasses.field(default_factory=list)
    max_length: int = 0
    answer_coverage: dict = dataclasses.field(default_factory=dict)

    def train_text(self) -> tuple[list[str], list[list[str]]]:
        """Every training question and its answers (for the vocabularies)."""
        questions, answers = [], []
        for _, question, human, *_ in self.train.as_numpy_iterator():
            questions.append(question.decode("utf-8"))
            answers.append([a.decode("utf-8") for a in human])
        return questions, answers


def load(
    dataset: str | None,
    *,
    image_size=None,
    skip_bad_records: bool = False,
    data_dir: str | None = None,
) -> VqaData:
    """Load a VQA dataset by embedded name, path or tfds name.

    Args:
        dataset: `None` or `"shapes_vqa"` (embedded, default), `"shapes_vqa/small"`,
            a VQA v2 directory (a questions JSON file, an annotations JSON file and the
            images), or `"clevr"` (tfds).
        image_size: `None` (the dataset's own size; 64 for VQA v2 and CLEVR), an int
            or `[height, width]`.
        skip_bad_records: skip (and count) missing or unreadable images of a VQA v2
            directory instead of failing.
        data_dir: the tfds data directory (default: tfds' own, `TFDS_DATA_DIR`).
    """
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    size = tuple(image_size) if image_size else None
    dataset = dataset or "shapes_vqa"
    if dataset in EMBEDDED:
        return _embedded(dataset, size, data_dir)
    if os.path.isdir(dataset):
        return _from_vqa_json(dataset, size or (DEFAULT_IMAGE_SIZE,) * 2, skip_bad_records)
    if os.path.exists(dataset) or os.sep in dataset or dataset.startswith((".", "~")):
        raise DataError(
            f"Dataset path {dataset!r} is not a directory; expected a VQA v2 directory "
            "(questions and annotations JSON files and the images), an embedded dataset "
            f"({', '.join(EMBEDDED)}) or a tfds name ({', '.join(TFDS_NAMES)})."
        )
    if dataset not in TFDS_NAMES:
        raise DataError(
            f"Unknown VQA dataset {dataset!r}: expected {', '.join(EMBEDDED)}, "
            f"{', '.join(TFDS_NAMES)} or the path of a VQA v2 directory."
        )
    return _from_clevr(dataset, size or (DEFAULT_IMAGE_SIZE,) * 2, data_dir)


def _repeated(structure, count):
    """Every tensor of `structure` stacked `count` times (one copy per question)."""
    return tf.nest.map_structure(lambda t: tf.repeat(t[None], count, axis=0), structure)


def expected_image_size(dataset: str | None, image_size=None) -> tuple[int, int]:
    """The `(height, width)` that `load` will give, known without loading."""
    from kerasnotes.data.shapes_vqa import ShapesVqa

    size = known_image_size(dataset or EMBEDDED[0], image_size, ShapesVqa, EMBEDDED)
    return size or (DEFAULT_IMAGE_SIZE,) * 2


def _embedded(name: str, size, data_dir) -> VqaData:
    from kerasnotes.data.shapes_vqa import QUESTIONS_PER_SCENE, ShapesVqa

    config = "small" if name.endswith("/small") else "default"
    builder = ShapesVqa(config=config, data_dir=data_dir)
    builder.download_and_prepare()
    native = builder.builder_config.image_size
    size = size or (native, native)

    def per_question(example):
        image = example["image"]
        if size != (native, native):
            image = resize_uint8(image, size)
        count = tf.shape(example["questions"])[0]
        return tf.data.Dataset.from_tensor_slices(
            (
                _repeated(image, count),
                example["questions"],
                example["answers"][:, None],
                example["types"],
                _repeated(example["objects"], count),
            )
        )

    def read(split):
        return builder.as_dataset(split=split, shuffle_files=False).flat_map(per_question)

    splits = ("train", "validation", "test", SHIFTED)
    return VqaData(
        **{split: read(split) for split in splits},
        image_shape=(*size, 3),
        num_examples={
            s: QUESTIONS_PER_SCENE * builder.info.splits[s].num_examples for s in splits
        },
        source=f"tfds:shapes_vqa/{config}",
        questions_per_image=QUESTIONS_PER_SCENE,
        scene_attributes={
            a: builder.info.features["objects"][a].names for a in _EMBEDDED_ATTRIBUTES
        },
    )


def answer_type(answer: str) -> str:
    """VQA's answer type of an answer: `yes/no`, `number` or `other`."""
    if answer in ("yes", "no"):
        return "yes/no"
    return "number" if answer.isdigit() else "other"


def _from_clevr(name: str, size, data_dir) -> VqaData:
    from kerasnotes.data.downloads import tfds_builder

    builder = tfds_builder(
        name, data_dir, valid="a tfds name", local="VQA v2 question and annotation JSON files"
    )

    def per_question(example):
        qa = example["question_answer"]
        # Pairs; the lengths only differ in generated mock data.
        count = tf.minimum(tf.size(qa["question"]), tf.size(qa["answer"]))
        questions, answers = qa["question"][:count], qa["answer"][:count]
        types = tf.where(
            (answers == "yes") | (answers == "no"),
            "yes/no",
            tf.where(tf.strings.regex_full_match(answers, r"\d+"), "number", "other"),
        )
        objects = example["objects"]
        height_width = tf.cast(tf.shape(example["image"])[:2], tf.float32)
        # Pixel coordinates are (x, y, depth) in the original image.
        scene = {
            "center": tf.reverse(objects["pixel_coords"][:, :2], [1]) / height_width,
            **{a: objects[a] for a in _CLEVR_ATTRIBUTES},
        }
        image = resize_uint8(example["image"][..., :3], size)
        return tf.data.Dataset.from_tensor_slices(
            (
                _repeated(image, count),
                questions,
                answers[:, None],
                types,
                _repeated(scene, count),
            )
        )

    def read(split):
        return builder.as_dataset(split=split, shuffle_files=False).flat_map(per_question)

    return VqaData(
        **{part: read(split) for part, split in _CLEVR_SPLITS.items()},
        image_shape=(*size, 3),
        num_examples={part: 0 for part in _CLEVR_SPLITS},  # Unknown until read.
        source=f"tfds:{name}",
        questions_per_image=_CLEVR_QUESTIONS_PER_IMAGE,
        scene_attributes={a: builder.info.features["objects"][a].names for a in _CLEVR_ATTRIBUTES},
    )


# VQA v2 JSON -------------------------------------------------------------------------


def _find_json(path: str, kind: str) -> str:
    candidates = sorted(
        os.path.join(folder, f)
        for folder in (path, os.path.join(path, "annotations"))
        if os.path.isdir(folder)
        for f in os.listdir(folder)
        if f.lower().endswith(".json") and kind in f.lower()
    )
    if len(candidates) != 1:
        found = f"{len(candidates)} such files" if candidates else "none"
        raise DataError(
            f"Dataset directory {path!r} needs exactly one *{kind}*.json file (in it or "
            f"its annotations/ folder) for VQA v2 data; found {found}."
        )
    return candidates[0]


def _records(data, key: str, fields: tuple[str, ...], path: str, what: str) -> list[dict]:
    """The `key` list of a VQA file, checking that every record has `fields`."""
    records = data.get(key) if isinstance(data, dict) else None
    if not isinstance(records, list):
        raise DataError(
            f"{what.capitalize()} {path!r} is not in VQA v2 format: expected an object with "
            f'a "{key}" list of {{{", ".join(map(repr, fields))}}} records.'
        )
    for record in records:
        if not isinstance(record, dict) or any(f not in record for f in fields):
            raise DataError(
                f"{what.capitalize()} {path!r} has a {key[:-1]} record without "
                f"{', '.join(fields)}: {str(record)[:100]}."
            )
    return records


def _image_files(folders: list[str], questions: dict, image_ids) -> dict:
    """Image id -> file, looked for in `folders` (and their images/ and data-subtype
    folders): named by an "images" list when the questions file has one, else by COCO's
    names (`COCO_<data_subtype>_<12-digit id>.jpg`, as VQA v2 ships them)."""
    listed = {i["id"]: i["file_name"] for i in questions.get("images", []) if isinstance(i, dict)}
    subtype = questions.get("data_subtype", "")
    folders = [*folders, *(os.path.join(f, subtype) for f in folders if subtype)]
    files = {}
    for image_id in image_ids:
        name = listed.get(image_id) or f"COCO_{subtype}_{int(image_id):012d}.jpg"
        candidates = [image_path(folder, name) for folder in folders]
        files[image_id] = next((f for f in candidates if os.path.isfile(f)), candidates[0])
    return files


def _from_vqa_json(path: str, size, skip_bad_records: bool) -> VqaData:
    """Read VQA v2 questions, annotations and images into memory; split 80/10/10 by image."""
    questions_file = _find_json(path, "question")
    annotations_file = _find_json(path, "annotation")
    questions_data = read_json(questions_file, "questions file")
    annotations_data = read_json(annotations_file, "annotations file")
    questions = _records(
        questions_data,
        "questions",
        ("question_id", "image_id", "question"),
        questions_file,
        "questions file",
    )
    annotations = {
        a["question_id"]: a
        for a in _records(
            annotations_data,
            "annotations",
            ("question_id", "answers"),
            annotations_file,
            "annotations file",
        )
    }
    examples = []  # (image id, question, answers, type)
    for q in questions:
        annotation = annotations.get(q["question_id"])
        if annotation is None:
            raise DataError(
                f"Question {q['question_id']!r} of {questions_file!r} has no annotation in "
                f"{annotations_file!r}."
            )
        answers = [a.get("answer") if isinstance(a, dict) else a for a in annotation["answers"]]
        if not answers or not all(isinstance(a, str) for a in answers):
            raise DataError(
                f"Annotation of question {q['question_id']!r} in {annotations_file!r} needs "
                f"a list of text answers, got {str(annotation['answers'])[:100]}."
            )
        if not isinstance(q["question"], str):
            raise DataError(
                f"Question {q['question_id']!r} of {questions_file!r} is not text: "
                f"{q['question']!r}."
            )
        answers = [a.strip().lower() for a in answers]
        kind = annotation.get("answer_type") or answer_type(max(set(answers), key=answers.count))
        examples.append((q["image_id"], q["question"].strip(), answers, str(kind)))

    image_ids = sorted({e[0] for e in examples}, key=str)
    files = _image_files([path, os.path.dirname(questions_file)], questions_data, image_ids)
    images, skipped = read_image_files(
        [files[i] for i in image_ids],
        size,
        skip_bad_records=skip_bad_records,
        listed_in=f"questions file {questions_file!r}",
    )
    readable = [i for i, image in zip(image_ids, images, strict=True) if image is not None]
    images_array = np.stack([image for image in images if image is not None])
    index = {image_id: n for n, image_id in enumerate(readable)}
    parts = held_out_split(len(readable), f"VQA directory {path!r}")
    part_of = {int(n): name for name, members in parts.items() for n in members}
    most = max(len(e[2]) for e in examples)

    def part(name):
        # Image by image, each image's questions together.
        rows = sorted(
            (e for e in examples if e[0] in index and part_of[index[e[0]]] == name),
            key=lambda e: index[e[0]],
        )
        ds = tf.data.Dataset.from_tensor_slices(
            (
                np.array([index[e[0]] for e in rows], np.int64),
                np.array([e[1] for e in rows], dtype=object),
                np.array([e[2] + [""] * (most - len(e[2])) for e in rows], dtype=object),
                np.array([e[3] for e in rows], dtype=object),
            )
        )
        pixels = tf.constant(images_array)
        return ds.map(
            lambda i, question, answers, kind: (
                tf.gather(pixels, i),
                question,
                tf.boolean_mask(answers, answers != ""),
                kind,
            )
        ), len(rows)

    splits = {name: part(name) for name in ("train", "validation", "test")}
    return VqaData(
        **{name: ds for name, (ds, _) in splits.items()},
        image_shape=(*size, 3),
        num_examples={name: count for name, (_, count) in splits.items()},
        source=f"vqa-json:{os.path.abspath(path)}",
        skipped=skipped,
        questions_per_image=max(1, round(len(examples) / len(image_ids))),
    )
