"""Text corpora for language modelling: documents of plain text, in three splits.

Sources, by `dataset`:

- embedded (no network): `python_docs` (the default), the documentation topics that
  ship with every CPython in `pydoc_data.topics` (about 465,000 characters of English),
  and `python_docs/small` (a fifth of it, for tests and quick tries); see
  `PythonDocs`;
- tfds names: `tiny_shakespeare`, `lm1b`, or any dataset with a `text` feature (a split
  missing from it is cut from the training documents by hash);
- a UTF-8 text file, split by position (the first 80% trains, the next 10% validates,
  the last 10% tests), or a directory of them: files named `train*`, `valid*`/`dev*`
  and `test*` keep that split; other files are split by file (whole files, about 10%
  of the characters each for validation and test) when there are at least three, and
  read as one text in name order otherwise.

Every split must hold text: an empty corpus, or a file that is not UTF-8 (named with the
byte offset of its first bad byte), is a `DataError`.

Nothing holds a split's text: files are counted once (their characters, checking the
UTF-8) and read as the splits are iterated, as documents of about `PIECE_BYTES` (see
`pieces`); tfds corpora stream from tfds' files.
"""

from __future__ import annotations

import codecs
import dataclasses
import os
import sys
import zlib

import tensorflow as tf
import tensorflow_datasets as tfds

from kerasnotes.data.downloads import tfds_builder, tfds_source
from kerasnotes.data.images import decoded_lines, read_files, utf8_lines
from kerasnotes.data.text import split_of_file
from kerasnotes.errors import DataError

SPLITS = ("train", "validation", "test")
EMBEDDED = ("python_docs", "python_docs/small")
TFDS_EXAMPLES = ("tiny_shakespeare", "lm1b")
LOCAL_FORMATS = "a UTF-8 text file or a folder of them"
HELD_OUT = 0.1  # The share of the characters in validation, and in test.
CPYTHON = f"cpython{sys.version_info[0]}{sys.version_info[1]}"


@dataclasses.dataclass
class Corpus:
    """A corpus in three splits of documents (`tf.data.Dataset`s of strings)."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    num_examples: dict[str, int]  # Characters per split.
    source: str
    separator: str = "\n"  # What joins one document to the next.
    _texts: dict = dataclasses.field(default_factory=dict, repr=False)

    def text(self, split: str) -> str:
        """The documents of `split` as one string, joined by `separator`."""
        if split not in self._texts:
            documents = [d.decode("utf-8") for d in getattr(self, split).as_numpy_iterator()]
            self._texts[split] = self.separator.join(documents)
        return self._texts[split]


def load(
    dataset: str | None, *, data_dir: str | None = None, skip_bad_records: bool = False
) -> Corpus:
    """Load a corpus: `None` (the embedded default), an embedded name, a path or a tfds
    name. With `skip_bad_records`, unreadable or non-UTF-8 files of a folder are skipped
    (and counted) instead of stopping the load."""
    dataset = dataset or EMBEDDED[0]
    if dataset in EMBEDDED:
        _, _, size = dataset.partition("/")
        config = f"{CPYTHON}_{size}" if size else CPYTHON
        builder = PythonDocs(config=config, data_dir=data_dir)
        builder.download_and_prepare()
        return _from_builder(builder, dataset)
    if os.path.exists(dataset):
        return _from_path(dataset, skip_bad_records)
    if os.sep in dataset or dataset.startswith((".", "~")):
        raise DataError(f"Dataset path {dataset!r} does not exist; expected {valid_datasets()}.")
    builder = tfds_builder(dataset, data_dir, valid=valid_datasets(), local=LOCAL_FORMATS)
    return _from_builder(builder, dataset)


def valid_datasets() -> str:
    return (
        f"an embedded corpus ({', '.join(EMBEDDED)}), {LOCAL_FORMATS} or a tfds name (such "
        f"as {', '.join(TFDS_EXAMPLES)})"
    )


def split_by_size(names_and_sizes: list[tuple[str, int]]) -> dict[str, list[str]]:
    """Documents into splits, whole, deterministically: `{split: [names]}`.

    In the order of a hash of their names, each document goes to test if that brings
    test closer to `HELD_OUT` of the characters, else to validation on the same terms,
    else to train (as does any document larger than that share). Each split gets at least one document (so at least three are needed).
    """
    order = sorted(names_and_sizes, key=lambda item: (zlib.crc32(item[0].encode()), item[0]))
    target = HELD_OUT * sum(size for _, size in names_and_sizes)
    splits: dict[str, list[tuple[str, int]]] = {split: [] for split in SPLITS}
    held = {"test": 0, "validation": 0}
    for name, size in order:
        for split in ("test", "validation"):
            if size <= target and abs(held[split] + size - target) < abs(held[split] - target):
                splits[split].append((name, size))
                held[split] += size
                break
        else:
            splits["train"].append((name, size))
    for split in ("test", "validation"):  # The smallest training document, if none fitted.
        if not splits[split] and len(splits["train"]) > 1:
            smallest = min(splits["train"], key=lambda item: item[1])
            splits["train"].remove(smallest)
            splits[split].append(smallest)
    return {split: [name for name, _ in documents] for split, documents in splits.items()}


class PythonDocs(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """The Python documentation topics of `pydoc_data.topics`, split by topic.

    Each topic (`assert`, `class`, `for`, ...) is one document; `split_by_size` puts
    about 10% of the characters in validation and 10% in test, whole topics, so no
    held-out paragraph is seen in training. The text is the running CPython's, so a
    config is kept per CPython version.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    # One prepared copy per CPython version: the topics are the running CPython's.
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name=CPYTHON, description=f"Every topic of {CPYTHON}."),
        tfds.core.BuilderConfig(
            name=f"{CPYTHON}_small",
            description="Every fifth topic (by name): for tests and quick tries.",
        ),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__.splitlines()[0],
            features=tfds.features.FeaturesDict(
                {"topic": tfds.features.Text(), "text": tfds.features.Text()}
            ),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        topics = python_topics()
        if self.builder_config.name.endswith("_small"):
            # Every fifth topic in name order: the same mix of sizes and subjects.
            topics = {name: topics[name] for name in sorted(topics)[::5]}
        splits = split_by_size([(name, len(text)) for name, text in topics.items()])
        return {
            split: self._generate_examples({name: topics[name] for name in names})
            for split, names in splits.items()
        }

    def _generate_examples(self, topics: dict[str, str]):
        for name in sorted(topics):
            yield name, {"topic": name, "text": topics[name]}


def python_topics() -> dict[str, str]:
    """`{topic: text}` from the running CPython's `pydoc_data.topics`."""
    from pydoc_data.topics import topics

    return {name: text.strip("\n") + "\n" for name, text in topics.items() if text.strip()}


def _from_builder(builder, name: str) -> Corpus:
    info = builder.info
    if "text" not in info.features or not isinstance(info.features["text"], tfds.features.Text):
        raise DataError(
            f"Dataset {name!r} is not a text corpus: it needs a 'text' feature of strings."
        )
    # Unknown (empty) under `tfds.testing.mock_data`, which serves any split asked for.
    splits = set(info.splits) or set(SPLITS)
    if "train" not in splits:
        raise DataError(f"Dataset {name!r} has no train split to learn from.")
    named = {
        "train": "train",
        "validation": next((s for s in ("validation", "dev", "valid") if s in splits), None),
        "test": "test" if "test" in splits else None,
    }

    # A split the dataset lacks is cut from its training documents by a hash of the text.
    missing = [s for s in ("validation", "test") if not named[s]]
    buckets = {"validation": 8, "test": 9}

    def documents(split, part):
        ds = builder.as_dataset(split=split, shuffle_files=False).map(lambda e: e["text"])
        if split == "train" and missing:
            taken = [buckets[s] for s in missing]
            wanted = [buckets[part]] if part != "train" else None

            def keep(text):
                bucket = tf.strings.to_hash_bucket_fast(text, 10)
                if wanted:
                    return tf.reduce_any(bucket == wanted)
                return ~tf.reduce_any(bucket == taken)

            ds = ds.filter(keep)
        return ds

    parts = {part: documents(named[part] or "train", part) for part in SPLITS}
    source = tfds_source(builder)
    return _corpus(parts, source, name)


def _corpus(parts: dict[str, tf.data.Dataset], source: str, name: str) -> Corpus:
    """A corpus of `parts`, each split counted in one streaming pass: its characters
    (with a separator between documents) and whether any is not whitespace."""
    corpus = Corpus(**parts, num_examples={}, source=source)

    def count(totals, document):
        characters, documents, text = totals
        return (
            characters + tf.cast(tf.strings.length(document, unit="UTF8_CHAR"), tf.int64),
            documents + 1,
            text | tf.strings.regex_full_match(document, r"(?s).*\S.*"),
        )

    for split in SPLITS:
        start = (tf.constant(0, tf.int64), tf.constant(0, tf.int64), tf.constant(False))
        characters, documents, text = parts[split].reduce(start, count)
        corpus.num_examples[split] = int(characters + tf.maximum(documents - 1, 0))
        if not bool(text):
            raise DataError(f"Dataset {name!r} has no text in its {split} split.")
    return corpus


def count_characters(file: str) -> int:
    """The characters of a text file, read as a stream; `OSError` if it cannot be read,
    `ValueError` (naming the byte and its offset) if it is not UTF-8: what `read_files`
    counts or names."""
    with open(file, "rb") as f:
        return sum(len(line) for line in decoded_lines(f))


# A file is read as documents of about this many bytes (a longer line is whole in one),
# each cut at a line break that the separator between documents stands for: small
# enough that a batch of them is scored at once.
PIECE_BYTES = 2**16


def pieces(files: list[str], cuts: list[int] = ()) -> list[list[tuple[str, int, int]]]:
    """The byte ranges `(file, start, end)` of documents that, joined by `SEPARATOR`,
    give the text of `files` joined by it, in `len(cuts) + 1` parts cut at the
    character positions `cuts` of that text. A file's documents are about `PIECE_BYTES`
    each: each but its last ends just before a line break, which the separator after
    it stands for; a cut may fall anywhere."""
    parts, part, position = [[] for _ in range(len(cuts) + 1)], 0, 0
    for number, file in enumerate(files):
        position += 1 if number else 0  # The separator between files.
        start = offset = 0
        pending = None  # Where the next document starts, once another line follows.
        with open(file, "rb") as f:
            for raw in f:
                if offset == 0 and raw.startswith(codecs.BOM_UTF8):
                    raw, start = raw[len(codecs.BOM_UTF8) :], len(codecs.BOM_UTF8)
                    offset = start
                if pending is not None:
                    parts[part].append((file, start, pending - 1))
                    start, pending = pending, None
                line = raw.decode("utf-8") if part < len(cuts) else ""
                while part < len(cuts) and cuts[part] < position + len(line):
                    cut = offset + len(line[: cuts[part] - position].encode())
                    parts[part].append((file, start, cut))
                    start, part = cut, part + 1
                position += len(line)
                offset += len(raw)
                if offset - start >= PIECE_BYTES and raw.endswith(b"\n"):
                    pending = offset
        parts[part].append((file, start, offset))
    return parts


def _read_range(path: bytes, start, end) -> bytes:
    with open(path.decode(), "rb") as f:
        f.seek(int(start))
        content = f.read(int(end - start))
    if len(content) != end - start:
        raise ValueError(f"{path.decode()} is shorter than when it was read first")
    return content


def documents_of(ranges: list[tuple[str, int, int]]) -> tf.data.Dataset:
    """The documents at the byte `ranges` (see `pieces`), read from their files as the
    dataset is iterated."""
    paths, starts, ends = zip(*ranges, strict=True) if ranges else ((), (), ())
    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths, tf.string), tf.constant(starts, tf.int64), tf.constant(ends, tf.int64))
    )
    return ds.map(
        lambda path, start, end: tf.ensure_shape(
            tf.numpy_function(_read_range, [path, start, end], tf.string, stateful=False), []
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def _from_path(path: str, skip_bad_records: bool = False) -> Corpus:
    """A file or folder's documents, read from the files as they are used (see
    `pieces`): only the files' sizes in characters are counted first."""
    source = f"files:{os.path.abspath(path)}"
    if os.path.isdir(path):
        names = sorted(
            n for n in os.listdir(path)
            if not n.startswith(".") and os.path.isfile(os.path.join(path, n))
        )  # fmt: skip
        if not names:
            raise DataError(f"Dataset folder {path!r} holds no text files.")
        sizes, _ = read_files(
            [os.path.join(path, n) for n in names],
            count_characters,
            unit="text file",
            skip_bad_records=skip_bad_records,
            listed_in=f"dataset folder {path!r}",
        )
        characters = {n: size for n, size in zip(names, sizes, strict=True) if size is not None}
        names = [n for n in names if n in characters]
        if not names:
            raise DataError(f"Dataset folder {path!r} holds no readable text files.")
        files = {n: os.path.join(path, n) for n in names}
        named = {split_of_file(n): n for n in reversed(names) if split_of_file(n)}
        if "train" in named:
            missing = [s for s in SPLITS if s not in named]
            if missing:
                raise DataError(
                    f"Dataset folder {path!r} has a train file but no {' or '.join(missing)} "
                    "file: expected files named train*, valid*/dev* and test*."
                )
            parts = {s: documents_of(pieces([files[named[s]]])[0]) for s in SPLITS}
            return _corpus(parts, source, path)
        if len(names) >= 3:
            splits = split_by_size([(n, characters[n]) for n in names])
            parts = {
                s: documents_of(pieces([files[n] for n in sorted(splits[s])])[0]) for s in SPLITS
            }
            return _corpus(parts, source, path)
        files = [files[n] for n in names]
        total = sum(characters[n] for n in names) + len(names) - 1
    else:
        files, total = [path], sum(len(line) for line in utf8_lines(path))
    if not total:
        raise DataError(f"Dataset {path!r} is empty: a language model needs text to learn from.")
    # By position: the first 80% trains, then 10% validates and the last 10% tests.
    cuts = [round(total * (1 - 2 * HELD_OUT)), round(total * (1 - HELD_OUT))]
    parts = dict(zip(SPLITS, (documents_of(p) for p in pieces(files, cuts)), strict=True))
    try:
        return _corpus(parts, source, path)
    except DataError:
        if not _has_text(files):
            raise DataError(
                f"Dataset {path!r} is empty: a language model needs text to learn from."
            ) from None
        raise DataError(
            f"Dataset {path!r} has {total} characters: too few to cut into training, "
            f"validation and test text ({1 - 2 * HELD_OUT:.0%}, {HELD_OUT:.0%} and "
            f"{HELD_OUT:.0%} by position), each with some text. Give more text."
        ) from None


def _has_text(files: list[str]) -> bool:
    """Whether any of `files` holds a character that is not whitespace."""
    for file in files:
        with open(file, "rb") as f:
            if any(raw.strip() for raw in f):
                return True
    return False
