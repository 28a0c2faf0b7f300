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
  directory holding `train`, `valid`/`dev` and `test` files keeps that split.

Bad records (empty text, a line with the wrong number of columns, bytes that are not
UTF-8, a held-out label never seen in training) are an error that names the file and
line, or are skipped and counted with `skip_bad_records`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
import sys
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from kerasnotes.data.downloads import split_sizes, tfds_builder, tfds_parts, tfds_source
from kerasnotes.data.images import held_out_split, read_bytes
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
        return _from_files(dataset, kind, reader, skip_bad_records)
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


def _decode(raw: bytes) -> str:
    """The text of a file, with bytes that are not UTF-8 kept as surrogates, so that the
    record holding them can be named (see `_not_utf8`)."""
    return raw.decode("utf-8-sig", errors="surrogateescape")


def _not_utf8(value: str) -> bool:
    """Whether `value` (from `_decode`) holds bytes that were not UTF-8."""
    return any("\udc80" <= c <= "\udcff" for c in value)


NOT_UTF8 = "holds bytes that are not UTF-8"


def _table_reader(text_column: str, label_column: str):
    """Reads `(line, text, label)` records of a CSV, TSV or JSON Lines file."""

    def read(path: str, text: str):
        extension = os.path.splitext(path)[1].lower()
        if extension == ".jsonl":
            yield from _jsonl_records(text, text_column, label_column)
            return
        if extension not in (".csv", ".tsv"):
            raise DataError(
                f"Text file {path!r} is not a table: expected a {', '.join(TABLE_EXTENSIONS)} "
                "file with a text and a label column."
            )
        reader = csv_reader(text, "\t" if extension == ".tsv" else ",")
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


def csv_reader(text: str, delimiter: str):
    """`csv.reader` over `text`, a field as long as the text allowed (Python's default
    limit, 131,072 characters, would refuse a long review)."""
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)


def _jsonl_records(text: str, text_column: str, label_column: str):
    for line, raw in enumerate(text.splitlines(), start=1):
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
    return line, text.strip(), label.strip()


def _conll_reader(tag_column):
    """Reads `(line, text, tags)` sentences of a CoNLL column file."""
    column = -1 if tag_column is None else tag_column
    if not (isinstance(column, int) and not isinstance(column, bool)) or column == 0:
        raise DataError(
            f"Invalid tag_column {tag_column!r} for a CoNLL file: expected the number of "
            "a column after the token (column 0), or -1 for the last."
        )

    def read(path: str, text: str):
        tokens, tags, start, problem, width = [], [], 0, None, None
        for line, raw in enumerate([*text.splitlines(), ""], start=1):
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


def _from_files(path: str, kind: str, reader, skip_bad_records: bool) -> TextData:
    if os.path.isdir(path):
        files = _split_files(path)
        if files is None:
            raise DataError(
                f"Dataset folder {path!r} has no train file: expected files named "
                "train*, valid*/dev* and test*."
            )
    else:
        files = {"all": path}
    records, skipped = {}, []
    for split, file in files.items():
        records[split] = []
        for record in reader(file, _decode(read_bytes(file, "text file"))):
            if isinstance(record, BadRecord):
                skipped.append((file, record))
            else:
                records[split].append(record)
    if "all" in records:
        rows = records.pop("all")
        parts = held_out_split(len(rows), f"Text file {path!r}", unit="records")
        records = {split: [rows[i] for i in sorted(parts[split])] for split in parts}
    if not records.get("train"):
        raise DataError(f"Dataset {path!r} has no usable training records.")
    if kind == "classification":
        class_names = sorted({label for _, _, label in records["train"]})
        if len(class_names) < 2:
            raise DataError(
                f"Dataset {path!r} has {len(class_names)} label in training; a classifier "
                "needs at least 2."
            )
    else:
        class_names = sorted({tag for _, _, tags in records["train"] for tag in tags})
    known = set(class_names)
    for split in ("validation", "test"):
        kept = []
        for line, text, labels in records.get(split, []):
            unknown = [
                t for t in ([labels] if kind == "classification" else labels) if t not in known
            ]
            if unknown:
                file = files.get(split, path)
                skipped.append(
                    (file, BadRecord(line, f"has {unknown[0]!r}, never seen in training"))
                )
            else:
                kept.append((line, text, labels))
        records[split] = kept
    if skipped:
        file, first = skipped[0]
        where = f"{file!r} line {first.line}: it {first.reason}"
        if not skip_bad_records:
            more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
            raise DataError(
                f"Bad record in {where}{more}. Fix it, or pass --set skip_bad_records=true "
                "to skip bad records."
            )
        print(f"Skipped {len(skipped)} bad record(s), e.g. {where}.", file=sys.stderr)
    for split in ("validation", "test"):
        if not records.get(split):
            raise DataError(f"Dataset {path!r} has no usable {split} records.")
    index = {name: i for i, name in enumerate(class_names)}

    def part(rows):
        texts = [text for _, text, _ in rows]
        if kind == "classification":
            labels = np.array([index[label] for _, _, label in rows], np.int64)
            return tf.data.Dataset.from_tensor_slices((texts, labels))
        tags = tf.ragged.constant([[index[t] for t in tags] for _, _, tags in rows], tf.int32)
        # The rows of a ragged tensor come out as ragged specs, which `padded_batch`
        # refuses; each row is a plain vector, and `map` says so.
        return tf.data.Dataset.from_tensor_slices((texts, tags)).map(
            lambda text, row: (text, tf.identity(row))
        )

    return TextData(
        train=part(records["train"]),
        validation=part(records["validation"]),
        test=part(records["test"]),
        class_names=class_names,
        num_examples={split: len(records[split]) for split in ("train", "validation", "test")},
        source=f"files:{os.path.abspath(path)}",
    )
