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
    image_file_decoder,
    image_path,
    known_image_size,
    read_json,
    resize_uint8,
)
from kerasnotes.data.streams import Cache, file_splits, tfds_splits
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
    # The training questions and answers, where the loader has them without reading the
    # images (as `train_text` gives them).
    known_train_text: tuple[list[str], list[list[str]]] | None = None
    # Set by the VQA task from the training questions and answers.
    vocabulary: list[str] = dataclasses.field(default_factory=list)
    answers: list[str] = dataclasses.field(default_factory=list)
    max_length: int = 0
    answer_coverage: dict = dataclasses.field(default_factory=dict)

    def train_text(self) -> tuple[list[str], list[list[str]]]:
        """Every training question and its answers (for the vocabularies)."""
        if self.known_train_text is not None:
            return self.known_train_text
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
    cache: Cache | None = None,
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
        cache: where the decoded images are kept (`kerasnotes.data.streams`), each
            once however many questions it has.
    """
    cache = cache or Cache()
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    size = tuple(image_size) if image_size else None
    dataset = dataset or "shapes_vqa"
    if dataset in EMBEDDED:
        return _embedded(dataset, size, data_dir, cache)
    if os.path.isdir(dataset):
        return _from_vqa_json(dataset, size or (DEFAULT_IMAGE_SIZE,) * 2, skip_bad_records, cache)
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
    return _from_clevr(dataset, size or (DEFAULT_IMAGE_SIZE,) * 2, data_dir, cache)


def _per_question(image, questions, answers, types, *scene):
    """One image's element (its questions, answers and types stacked) as one element
    per question, each with the image (and the scene): what the splits give, flattened
    after the cache so that it holds each image once."""
    count = tf.shape(questions)[0]

    def repeated(structure):
        return tf.nest.map_structure(lambda t: tf.repeat(t[None], count, axis=0), structure)

    return tf.data.Dataset.from_tensor_slices(
        (repeated(image), questions, answers, types, *(repeated(s) for s in scene))
    )


def _questions_of(images: dict, num_examples: dict) -> dict:
    """Per-image splits flattened to questions, of `num_examples` where known."""
    splits = {}
    for name, ds in images.items():
        ds = ds.flat_map(_per_question)
        if num_examples.get(name):
            ds = ds.apply(tf.data.experimental.assert_cardinality(num_examples[name]))
        splits[name] = ds
    return splits


def expected_image_size(dataset: str | None, image_size=None) -> tuple[int, int]:
    """The `(height, width)` that `load` will give, known without loading."""
    from kerasnotes.data.shapes_vqa import ShapesVqa

    size = known_image_size(dataset or EMBEDDED[0], image_size, ShapesVqa, EMBEDDED)
    return size or (DEFAULT_IMAGE_SIZE,) * 2


def _embedded(name: str, size, data_dir, cache: Cache) -> VqaData:
    from kerasnotes.data.shapes_vqa import QUESTIONS_PER_SCENE, ShapesVqa

    config = "small" if name.endswith("/small") else "default"
    builder = ShapesVqa(config=config, data_dir=data_dir)
    builder.download_and_prepare()
    native = builder.builder_config.image_size
    size = size or (native, native)

    def per_image(example):
        image = example["image"]
        if size != (native, native):
            image = resize_uint8(image, size)
        answers = example["answers"][:, None]
        return image, example["questions"], answers, example["types"], example["objects"]

    def read(split):
        ds = builder.as_dataset(split=split, shuffle_files=False)
        return ds.map(per_image, num_parallel_calls=tf.data.AUTOTUNE)

    names = ("train", "validation", "test", SHIFTED)
    scenes = {s: builder.info.splits[s].num_examples for s in names}
    images = tfds_splits({s: read(s) for s in names}, scenes, size[0] * size[1] * 3, cache)
    num_examples = {s: QUESTIONS_PER_SCENE * count for s, count in scenes.items()}
    return VqaData(
        **_questions_of(images, num_examples),
        image_shape=(*size, 3),
        num_examples=num_examples,
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


def _from_clevr(name: str, size, data_dir, cache: Cache) -> VqaData:
    from kerasnotes.data.downloads import tfds_builder

    builder = tfds_builder(
        name, data_dir, valid="a tfds name", local="VQA v2 question and annotation JSON files"
    )

    def per_image(example):
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
        return image, questions, answers[:, None], types, scene

    def read(split):
        ds = builder.as_dataset(split=split, shuffle_files=False)
        return ds.map(per_image, num_parallel_calls=tf.data.AUTOTUNE)

    def num_images(split):
        try:
            return int(builder.info.splits[split].num_examples)
        except (KeyError, ValueError, TypeError):
            return 0

    images = tfds_splits(
        {part: read(split) for part, split in _CLEVR_SPLITS.items()},
        {part: num_images(split) for part, split in _CLEVR_SPLITS.items()},
        size[0] * size[1] * 3,
        cache,
    )
    return VqaData(
        **_questions_of(images, {}),
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


def _from_vqa_json(path: str, size, skip_bad_records: bool, cache: Cache) -> VqaData:
    """VQA v2 questions and annotations, split 80/10/10 by image; each image read and
    decoded once in the pipeline (and cached per `cache`), then given with each of its
    questions."""
    questions_file = _find_json(path, "question")
    annotations_file = _find_json(path, "annotation")
    questions_data = read_json(questions_file, "questions file")
    # Each of the ten answers of a question kept as its text alone, as it is parsed:
    # VQA v2's answer records are most of the file, and of its memory as dicts.
    annotations_data = read_json(
        annotations_file,
        "annotations file",
        lambda record: (
            record["answer"] if "answer" in record and "answer_id" in record else record
        ),
    )
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
    # One row per image: its questions, answers and types, padded with "".
    of_image = {image_id: [] for image_id in image_ids}
    for example in examples:
        of_image[example[0]].append(example[1:])
    most_questions = max(len(rows) for rows in of_image.values())
    most_answers = max(len(e[2]) for e in examples)

    def padded(rows, column, empty):
        return [row[column] for row in rows] + [empty] * (most_questions - len(rows))

    rows = [of_image[image_id] for image_id in image_ids]
    questions = np.array([padded(r, 0, "") for r in rows], dtype=object)
    answers = np.array(
        [[a + [""] * (most_answers - len(a)) for a in padded(r, 1, [])] for r in rows],
        dtype=object,
    )
    types = np.array([padded(r, 2, "") for r in rows], dtype=object)
    counts = np.array([len(r) for r in rows], np.int64)
    parts = held_out_split(len(image_ids), f"VQA directory {path!r}")
    splits = file_splits(
        [files[i] for i in image_ids],
        (questions, answers, types, counts),
        parts,
        image_file_decoder(size),
        example_bytes=size[0] * size[1] * 3,
        settings={"size": list(size)},
        cache=cache,
        skip_bad_records=skip_bad_records,
        unit="image",
        listed_in=f"questions file {questions_file!r}",
        source=os.path.abspath(questions_file),
    )
    skipped = set(splits.skipped)
    num_questions = {
        name: int(sum(counts[i] for i in indices if files[image_ids[i]] not in skipped))
        for name, indices in parts.items()
    }

    def without_padding(image, questions, answers, types, count):
        return image, questions[:count], answers[:count], types[:count]

    def unpadded_answers(image, question, answers, kind):
        return image, question, tf.boolean_mask(answers, answers != ""), kind

    images = {name: ds.map(without_padding) for name, ds in splits.datasets.items()}
    trained = [rows[i] for i in parts["train"] if files[image_ids[i]] not in skipped]
    train_text = (
        [question for image in trained for question, _, _ in image],
        [[a for a in human if a] for image in trained for _, human, _ in image],
    )
    return VqaData(
        **{
            name: ds.map(unpadded_answers)
            for name, ds in _questions_of(images, num_questions).items()
        },
        image_shape=(*size, 3),
        num_examples=num_questions,
        source=f"vqa-json:{os.path.abspath(path)}",
        skipped=splits.skipped,
        questions_per_image=max(1, round(len(examples) / len(image_ids))),
        known_train_text=train_text,
    )
