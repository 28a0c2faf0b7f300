"""Text datasets: `(text, label)` for classification, `(text, tags)` for tagging.

Text is a UTF-8 string; for tagging it is the sentence's tokens joined by single
spaces, and `tags` holds one tag id per token. Sources, by `dataset`:

- embedded (generated, no network): `sentiment` (default for classification),
  `sentiment/small`, `sentiment/long_range`, `entities` (default for tagging),
  `entities/small`; see `kerasnotes.data.sentences`;
- tfds names: any dataset with supervised `(text, class label)` keys, such as
  `imdb_reviews` and `ag_news_subset`; for tagging, `conll2003` (or any dataset with a
  `tokens` sequence and a sequence of class labels, named by `tag_column`);
- local files: CSV (`.csv`), TSV (`.tsv`) with a header row, or JSON Lines (`.jsonl`)
  with `text_column` and `label_column`; for tagging, the CoNLL column format (one token
  per line, its tag in column `tag_column`, blank lines between sentences,
  `-DOCSTART-` lines skipped). One file is split 80/10/10 by a fixed permutation; a
  directory holding `train`, `valid`/`dev` and `test` files keeps that split. Files
  are read line by line, never whole, into a disk cache of TFRecords that the splits
  stream from and the next run on the same files reuses (see
  `kerasnotes.data.streams.prepared`).

Bad records (empty text, a line with the wrong number of columns, bytes that are not
UTF-8, a held-out label never seen in training) are an error that names the file and
line, or are skipped and counted with `skip_bad_records`.
"""

from __future__ import annotations

import array
import contextlib
import csv
import dataclasses
import itertools
import json
import os
import re
import sys
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from kerasnotes.data import streams
from kerasnotes.data.downloads import split_sizes, tfds_builder, tfds_parts, tfds_source
from kerasnotes.data.images import held_out_split, open_file
from kerasnotes.errors import DataError

EMBEDDED = {
    "classification": ("sentiment", "sentiment/small", "sentiment/long_range"),
    "tagging": ("entities", "entities/small"),
}
TFDS_EXAMPLES = {"classification": ("imdb_reviews", "ag_news_subset"), "tagging": ("conll2003",)}
TABLE_EXTENSIONS = (".csv", ".tsv", ".jsonl")


@dataclasses.dataclass
class TextData:
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    class_names: list[str]  # Labels (classification) or tags (tagging).
    num_examples: dict[str, int]
    source: str


def load(
    dataset: str | None,
    kind: str,
    *,
    text_column: str = "text",
    label_column: str = "label",
    tag_column=None,
    skip_bad_records: bool = False,
    data_dir: str | None = None,
) -> TextData:
    """Load a text dataset for `kind` (`"classification"` or `"tagging"`).

    Args:
        dataset: `None` (the embedded default of `kind`), an embedded name, a file or
            directory path, or a tfds name.
        text_column, label_column: the columns (CSV, TSV) or keys (JSON Lines) of a
            classification file.
        tag_column: the tag column of a CoNLL file (default: the last), or the tag
            feature of a tfds dataset (default: `ner`, else `tags`).
        skip_bad_records: skip (and count) bad records instead of failing.
        data_dir: the tfds data directory (default: tfds' own, `TFDS_DATA_DIR`).
    """
    dataset = dataset or EMBEDDED[kind][0]
    if dataset in EMBEDDED[kind]:
        return _embedded(dataset, kind, data_dir)
    if os.path.exists(dataset):
        reader = (
            _table_reader(text_column, label_column)
            if kind == "classification"
            else _conll_reader(tag_column)
        )
        settings = (
            {"text_column": text_column, "label_column": label_column}
            if kind == "classification"
            else {"tag_column": tag_column}
        )
        return _from_files(dataset, kind, reader, skip_bad_records, settings)
    if os.sep in dataset or dataset.startswith((".", "~")):
        raise DataError(f"Dataset path {dataset!r} does not exist; expected {_valid(kind)}.")
    builder = tfds_builder(dataset, data_dir, valid=_valid(kind), local=local_formats(kind))
    return _from_builder(builder, dataset, kind, tag_column)


def _valid(kind: str) -> str:
    return (
        f"an embedded dataset ({', '.join(EMBEDDED[kind])}), {local_formats(kind)} or a tfds "
        f"name (such as {', '.join(TFDS_EXAMPLES[kind])})"
    )


def local_formats(kind: str) -> str:
    if kind == "classification":
        return "a CSV, TSV or JSON Lines file (or a folder of train/valid/test files)"
    return "a CoNLL file (or a folder of train/valid/test files)"


def _embedded(name: str, kind: str, data_dir) -> TextData:
    from kerasnotes.data.sentences import Entities, Sentiment

    family, _, config = name.partition("/")
    builder_cls = Sentiment if family == "sentiment" else Entities
    builder = builder_cls(config=config or "default", data_dir=data_dir)
    builder.download_and_prepare()
    return _from_builder(builder, name, kind, "tags")


# tfds ----------------------------------------------------------------------------------


def _from_builder(builder, name: str, kind: str, tag_column) -> TextData:
    import tensorflow_datasets as tfds

    info, features = builder.info, builder.info.features
    if kind == "classification":
        keys = info.supervised_keys
        text_key, label_key = keys if keys and len(keys) == 2 else (None, None)
        if not (
            text_key
            and isinstance(features[text_key], tfds.features.Text)
            and isinstance(features[label_key], tfds.features.ClassLabel)
        ):
            raise DataError(
                f"Dataset {name!r} is not a text classification dataset: it needs "
                "supervised (text, class label) keys."
            )
        class_names = list(features[label_key].names)

        def to_pair(example):
            return example[text_key], example[label_key]
    else:
        tag_key = tag_column or next((k for k in ("ner", "tags") if k in features), None)
        tag_feature = features[tag_key] if tag_key in features else None
        if not (
            "tokens" in features
            and isinstance(getattr(tag_feature, "feature", None), tfds.features.ClassLabel)
        ):
            raise DataError(
                f"Dataset {name!r} is not a tagging dataset: it needs a 'tokens' sequence "
                f"and a sequence of class labels (tag_column {tag_column!r})."
            )
        class_names = list(tag_feature.feature.names)

        def to_pair(example):
            # One tag per token (the lengths only differ in generated mock data), and
            # tokens that stay one token when the text is split on whitespace again.
            count = tf.minimum(tf.size(example["tokens"]), tf.size(example[tag_key]))
            tokens = tf.strings.regex_replace(example["tokens"][:count], r"\s+", "_")
            tokens = tf.where(tokens == "", "_", tokens)
            text = tf.strings.reduce_join(tokens, separator=" ")
            return text, tf.cast(example[tag_key][:count], tf.int32)

    parts = tfds_parts(info)

    def read(split):
        ds = builder.as_dataset(split=split, shuffle_files=False)
        return ds.map(to_pair, num_parallel_calls=tf.data.AUTOTUNE)

    return TextData(
        **{part: read(split) for part, split in parts.items()},
        class_names=class_names,
        num_examples=split_sizes(info, parts),
        source=tfds_source(builder),
    )


# Local files ---------------------------------------------------------------------------


class BadRecord(NamedTuple):
    """A record that cannot be used: its line and why."""

    line: int
    reason: str


def open_text(path: str, what: str = "text file"):
    """`path` opened as text, to be read as a stream: bytes that are not UTF-8 are kept
    as surrogates, so that the record holding them can be named (see `_not_utf8`); a
    `DataError` naming the file if it cannot be opened."""
    return open_file(path, what, "r", encoding="utf-8-sig", errors="surrogateescape", newline="")


_SURROGATES = re.compile("[\udc80-\udcff]")  # What `open_text` makes of bytes not UTF-8.


def _not_utf8(value: str) -> bool:
    """Whether `value` (from `open_text`) holds bytes that were not UTF-8."""
    return _SURROGATES.search(value) is not None


NOT_UTF8 = "holds bytes that are not UTF-8"


def _table_reader(text_column: str, label_column: str):
    """Reads `(line, text, label)` records of a CSV, TSV or JSON Lines file."""

    def read(path: str, lines):
        extension = os.path.splitext(path)[1].lower()
        if extension == ".jsonl":
            yield from _jsonl_records(lines, text_column, label_column)
            return
        if extension not in (".csv", ".tsv"):
            raise DataError(
                f"Text file {path!r} is not a table: expected a {', '.join(TABLE_EXTENSIONS)} "
                "file with a text and a label column."
            )
        reader = csv_reader(lines, "\t" if extension == ".tsv" else ",", os.path.getsize(path))
        header = next(reader, None)
        if not header:
            raise DataError(f"Text file {path!r} is empty: expected a header row first.")
        header = [h.strip() for h in header]
        for column, what in ((text_column, "text_column"), (label_column, "label_column")):
            if column not in header:
                raise DataError(
                    f"Text file {path!r} has no column {column!r} (set {what}=...); its "
                    f"columns are {', '.join(header)}."
                )
        text_index, label_index = header.index(text_column), header.index(label_column)
        for row in reader:
            line = reader.line_num
            if not any(field.strip() for field in row):
                continue  # Blank lines.
            if len(row) != len(header):
                yield BadRecord(line, f"has {len(row)} columns, the header has {len(header)}")
                continue
            yield _record(line, row[text_index], row[label_index])

    return read


def csv_reader(lines, delimiter: str, size: int):
    """`csv.reader` over `lines` (a text file opened with `newline=""`) of `size`
    characters at most, a field as long as that allowed (Python's default limit,
    131,072 characters, would refuse a long review)."""
    csv.field_size_limit(max(csv.field_size_limit(), size + 1))
    return csv.reader(lines, delimiter=delimiter)


def _jsonl_records(lines, text_column: str, label_column: str):
    for line, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        if _not_utf8(raw):
            yield BadRecord(line, NOT_UTF8)
            continue
        try:
            row = json.loads(raw)
        except ValueError as e:
            yield BadRecord(line, f"is not valid JSON ({e.args[0][:80]})")
            continue
        missing = [
            k for k in (text_column, label_column) if not isinstance(row, dict) or k not in row
        ]
        if missing:
            yield BadRecord(line, f"has no key {missing[0]!r}")
            continue
        text, label = row[text_column], row[label_column]
        if not isinstance(text, str):
            yield BadRecord(line, f"has {_json_kind(text)} as its {text_column!r}, not a string")
        elif label is None or isinstance(label, (dict, list)):
            yield BadRecord(line, f"has {_json_kind(label)} as its {label_column!r}")
        else:
            yield _record(line, text, str(label))


def _json_kind(value) -> str:
    """How JSON names the kind of `value`: `null`, `a number`, `an object`, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "an object" if isinstance(value, dict) else "a list"


def _record(line: int, text: str, label: str):
    if _not_utf8(text + label):
        return BadRecord(line, NOT_UTF8)
    if not text.strip():
        return BadRecord(line, "has an empty text")
    if not label.strip():
        return BadRecord(line, "has an empty label")
    return line, text.strip(), [label.strip()]


def _conll_reader(tag_column):
    """Reads `(line, text, tags)` sentences of a CoNLL column file."""
    column = -1 if tag_column is None else tag_column
    if not (isinstance(column, int) and not isinstance(column, bool)) or column == 0:
        raise DataError(
            f"Invalid tag_column {tag_column!r} for a CoNLL file: expected the number of "
            "a column after the token (column 0), or -1 for the last."
        )

    def read(path: str, lines):
        tokens, tags, start, problem, width = [], [], 0, None, None
        for line, raw in enumerate(itertools.chain(lines, [""]), start=1):
            fields = raw.split()
            if fields and fields[0] == "-DOCSTART-":
                continue
            if not fields:  # The end of a sentence.
                if problem:
                    yield problem
                elif tokens:
                    yield start, " ".join(tokens), tags
                tokens, tags, problem = [], [], None
                continue
            start = start if tokens or problem else line
            if problem:
                continue
            width = width or len(fields)
            if _not_utf8(raw):
                problem = BadRecord(line, NOT_UTF8)
            elif len(fields) != width:
                problem = BadRecord(line, f"has {len(fields)} columns, earlier lines {width}")
            elif not (-width < column < width):  # -width is the token column too.
                raise DataError(
                    f"CoNLL file {path!r} has {width} columns: tag_column {column} does not "
                    f"exist (use 1 to {width - 1}, or -1 for the last)."
                )
            else:
                tokens.append(fields[0])
                tags.append(fields[column])

    return read


def split_of_file(name: str) -> str | None:
    """The split a file's name says it holds: `train.txt`, `dev.tsv`, `valid.csv`,
    `test.jsonl`, or CoNLL-2003's `eng.train`, `eng.testa` (validation), `eng.testb`."""
    parts = re.split(r"[._-]", name.lower())
    if "train" in parts:
        return "train"
    if "testa" in parts or any(p.startswith(("valid", "dev")) for p in parts):
        return "validation"
    if "test" in parts or "testb" in parts:
        return "test"
    return None


def _split_files(path: str) -> dict[str, str] | None:
    """`{split: file}` of a directory holding train, validation and test files."""
    found = {}
    for name in sorted(os.listdir(path)):
        split = split_of_file(name) if not name.startswith(".") else None
        if split:
            found.setdefault(split, os.path.join(path, name))
    return found if "train" in found else None


# Prepared records: (text, label ids) as TFRecords, one file per split.
RECORDS_FORMAT = 1
_FEATURES = {
    "text": tf.io.FixedLenFeature([], tf.string),
    "labels": tf.io.VarLenFeature(tf.int64),
}


def _from_files(path: str, kind: str, reader, skip_bad_records: bool, settings) -> TextData:
    """The records of the file (or folder of split files) `path`, streamed: read once
    into a disk cache of TFRecords (see `kerasnotes.data.streams.prepared`) that the
    splits read, and that the next run on the same files reuses."""
    if os.path.isdir(path):
        files = _split_files(path)
        if files is None:
            raise DataError(
                f"Dataset folder {path!r} has no train file: expected files named "
                "train*, valid*/dev* and test*."
            )
    else:
        files = {"all": path}
    settings = {"kind": kind, "format": RECORDS_FORMAT, **settings}
    folder, manifest = streams.prepared(
        f"files:{os.path.abspath(path)}",
        streams.files_key(list(files.values()), settings),
        lambda folder: _prepare(path, files, reader, folder),
    )
    counts, class_names = manifest["counts"], manifest["class_names"]
    if not counts["train"]:
        raise DataError(f"Dataset {path!r} has no usable training records.")
    if kind == "classification" and len(class_names) < 2:
        raise DataError(
            f"Dataset {path!r} has {len(class_names)} label in training; a classifier "
            "needs at least 2."
        )
    if manifest["bad"]:
        file, line, reason = manifest["first_bad"]
        where = f"{file!r} line {line}: it {reason}"
        if not skip_bad_records:
            more = f" (and {manifest['bad'] - 1} more)" if manifest["bad"] > 1 else ""
            raise DataError(
                f"Bad record in {where}{more}. Fix it, or pass --set skip_bad_records=true "
                "to skip bad records."
            )
        print(f"Skipped {manifest['bad']} bad record(s), e.g. {where}.", file=sys.stderr)
    for split in ("validation", "test"):
        if not counts[split]:
            raise DataError(f"Dataset {path!r} has no usable {split} records.")

    def parse(record):
        example = tf.io.parse_single_example(record, _FEATURES)
        labels = tf.sparse.to_dense(example["labels"])
        if kind == "classification":
            return example["text"], labels[0]
        return example["text"], tf.cast(labels, tf.int32)

    def split(name):
        ds = tf.data.TFRecordDataset(os.path.join(folder, f"{name}.tfrecord"))
        ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.apply(tf.data.experimental.assert_cardinality(counts[name]))

    return TextData(
        **{name: split(name) for name in ("train", "validation", "test")},
        class_names=class_names,
        num_examples=counts,
        source=f"files:{os.path.abspath(path)}",
    )


def _prepare(path: str, files: dict[str, str], reader, folder: str) -> dict:
    """Read the records of `files` (`{split: file}`, or `{"all": file}` to split
    80/10/10) twice, as streams: the first pass finds the bad records and the labels
    each record uses, the second writes the good ones to `folder/SPLIT.tfrecord`
    (labels as ids among the training labels). Returns the manifest: the splits'
    counts, the training labels, and how many records were bad and the first one."""
    names = ("train", "validation", "test")
    label_sets: dict[frozenset, int] = {}  # The labels a record uses, interned.
    sets, codes = array.array("q"), array.array("b")  # Per good record.
    num_bad, first_bad = 0, []
    for split, file in files.items():
        with open_text(file) as f:
            for record in reader(file, f):
                if isinstance(record, BadRecord):
                    num_bad += 1
                    first_bad = first_bad or [(file, record.line, record.reason)]
                    continue
                labels = frozenset(record[2])
                sets.append(label_sets.setdefault(labels, len(label_sets)))
                codes.append(names.index(split) if split in names else -1)
    codes = np.array(codes, np.int8)
    if "all" in files:
        parts = held_out_split(len(codes), f"Text file {path!r}", unit="records")
        for code, name in enumerate(names):
            codes[parts[name]] = code
    sets = np.array(sets, np.int64)
    in_train = set(sets[codes == 0].tolist())
    known = frozenset().union(*(s for s, i in label_sets.items() if i in in_train))
    unseen = np.array([not s <= known for s in label_sets], bool)[sets] & (codes > 0)
    class_names = sorted(known)
    index = {name: i for i, name in enumerate(class_names)}
    counts = {name: int(((codes == code) & ~unseen).sum()) for code, name in enumerate(names)}
    first_unseen = {}  # By split: the first record with a label never seen in training.
    writers = {
        name: tf.io.TFRecordWriter(os.path.join(folder, f"{name}.tfrecord")) for name in names
    }
    with contextlib.ExitStack() as stack:
        for writer in writers.values():
            stack.enter_context(writer)
        position = 0
        for file in files.values():
            with open_text(file) as f:
                for record in reader(file, f):
                    if isinstance(record, BadRecord):
                        continue
                    line, text, labels = record
                    name = names[codes[position]]
                    if unseen[position]:
                        label = next(label for label in labels if label not in known)
                        first_unseen.setdefault(
                            name, (file, line, f"has {label!r}, never seen in training")
                        )
                    else:
                        writers[name].write(_example(text, [index[t] for t in labels]))
                    position += 1
    firsts = first_bad + [first_unseen[name] for name in names if name in first_unseen]
    return {
        "counts": counts,
        "class_names": class_names,
        "bad": num_bad + int(unseen.sum()),
        "first_bad": firsts[0] if firsts else None,
    }


def _example(text: str, ids: list[int]) -> bytes:
    """A serialized `tf.train.Example` of a record (see `_FEATURES`)."""
    feature = tf.train.Feature
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "text": feature(bytes_list=tf.train.BytesList(value=[text.encode()])),
                "labels": feature(int64_list=tf.train.Int64List(value=ids)),
            }
        )
    ).SerializeToString()
