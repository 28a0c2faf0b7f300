"""File-backed splits: examples read and decoded from their files inside `tf.data`.

A loader lists its files (and what annotates each: labels, captions) and gives a graph
function that reads and decodes one file; `file_splits` turns them into `tf.data`
splits that decode in parallel `map`s. No split's decoded examples are ever held in
Python, and each split is cached as the `cache` setting says:

- `memory`: in memory (a `tf.data` cache), when the decoded splits fit easily;
- `disk`: a `tf.data` cache file under `cache_directory()`, keyed by the files' paths,
  sizes and modification times and the decoding settings: the next run on the same
  files reads it without decoding anything, and a changed file starts a new one;
- `none`: every epoch decodes the files again;
- `auto` (the default): `memory` when the decoded splits take less than
  `cache_memory_limit` bytes (default a quarter of the machine's memory), else `disk`.

Every file is decoded once before training, by the pass that fills the cache (or, with
`none`, by a pass that only checks): an unreadable or corrupt file is named then, or
skipped and counted with `skip_bad_records`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from kerasnotes.errors import ConfigError, DataError, one_line
from kerasnotes.files import write_json

CACHE_MODES = ("auto", "memory", "disk", "none")
# The settings of a task whose loaders cache this way, and their defaults.
CACHE_SETTINGS = {"cache": "auto", "cache_memory_limit": None}
CACHE_ENV = "KERASNOTES_CACHE"
MANIFEST = "manifest.json"
# The most memory a training split's shuffle buffer takes (its examples decoded).
SHUFFLE_BUFFER_BYTES = 256 * 2**20
MAX_SHUFFLE_BUFFER = 10_000


def machine_memory() -> int:
    """The machine's physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@dataclasses.dataclass(frozen=True)
class Cache:
    """Where decoded splits are kept (see the module's docstring)."""

    mode: str = "auto"
    memory_limit: int | None = None  # Bytes; `None`: a quarter of the machine's memory.

    @classmethod
    def from_config(cls, config) -> Cache:
        """The `cache` and `cache_memory_limit` settings, checked."""
        mode, limit = (config.get(key, default) for key, default in CACHE_SETTINGS.items())
        if mode not in CACHE_MODES:
            raise ConfigError(f"Invalid cache {mode!r}: expected one of {', '.join(CACHE_MODES)}.")
        if limit is not None and (
            not isinstance(limit, int | float) or isinstance(limit, bool) or not limit >= 0
        ):
            raise ConfigError(
                f"Invalid cache_memory_limit {limit!r}: expected a number of bytes >= 0, or "
                "null (a quarter of the machine's memory)."
            )
        return cls(mode, None if limit is None else int(limit))

    def choose(self, decoded_bytes: int) -> str:
        """`memory`, `disk` or `none` for splits of `decoded_bytes` in all."""
        if self.mode != "auto":
            return self.mode
        limit = machine_memory() // 4 if self.memory_limit is None else self.memory_limit
        return "memory" if decoded_bytes < limit else "disk"


def tfds_splits(splits: dict, num_examples: dict, example_bytes: int, cache: Cache) -> dict:
    """Splits read from tfds' prepared files, kept in memory after their first pass
    where `cache` chooses memory for them, otherwise read from those files every epoch
    (their own disk cache)."""
    mode = cache.choose(example_bytes * sum(num_examples.values()))
    return {name: ds.cache() if mode == "memory" else ds for name, ds in splits.items()}


def cache_directory() -> str:
    """Where disk caches live: `KERASNOTES_CACHE`, else `kerasnotes-cache` in the tfds
    data directory (`TFDS_DATA_DIR`, default `~/tensorflow_datasets`)."""
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV]
    data_dir = os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")
    return os.path.join(data_dir, "kerasnotes-cache")


def files_key(files, settings) -> str:
    """A digest of `files` (paths, sizes, modification times) and the decoding
    `settings` (JSON values): what a disk cache of their decoded examples is valid for."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for file in files:
        stat = os.stat(file)
        digest.update(f"{os.path.abspath(file)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def shuffle_buffer(element_spec, num_examples: int, most: int = MAX_SHUFFLE_BUFFER) -> int:
    """A shuffle buffer for a split of `num_examples` whose examples have `element_spec`:
    the whole split up to `most` examples or `SHUFFLE_BUFFER_BYTES`."""
    example_bytes = 0
    for spec in tf.nest.flatten(element_spec):
        if spec.shape.is_fully_defined():
            example_bytes += spec.shape.num_elements() * spec.dtype.size
    by_memory = SHUFFLE_BUFFER_BYTES // max(1, example_bytes)
    return max(1, min(num_examples or most, most, by_memory))


def bad_record_error(file: str, error: BaseException, *, unit: str, listed_in: str) -> DataError:
    """The error for a file that cannot be read (`OSError`) or decoded (`ValueError`)."""
    reason = "missing or unreadable" if isinstance(error, OSError) else "corrupt"
    detail = one_line(str(error), limit=160)
    return DataError(
        f"{unit.capitalize()} {file!r} of {listed_in} is {reason}"
        f"{f' ({detail})' if detail else ''}. Fix or remove it, or set "
        f"skip_bad_records=true to skip such {unit}s (they are counted)."
    )


def report_skipped(skipped, *, unit: str, listed_in: str) -> None:
    if skipped:
        print(
            f"Skipped {len(skipped)} unreadable {unit}(s) of {listed_in}, e.g. {skipped[0]!r}.",
            file=sys.stderr,
        )


# The ops that read and decode data files: a failure in one of them, inside an input
# pipeline, is a file that changed or disappeared after it was checked.
_READING_OPS = re.compile(r"\{\{node (ReadFile|Decode\w*|PyFunc\w*|EagerPyFunc\w*)\}\}")


@contextlib.contextmanager
def read_failures_are_clear_errors():
    """Turn a TensorFlow error raised by an input pipeline's file reading or decoding (a
    data file changed or removed after it was checked) into one `DataError` that says
    so; any other error goes on as it is."""
    try:
        yield
    except tf.errors.OpError as e:
        if "transformation with iterator" not in e.message or not _READING_OPS.search(e.message):
            raise
        found = re.search(r"with iterator: \S+: ([^\n]*)", e.message)
        detail = one_line(found.group(1) if found else e.message.splitlines()[0], limit=200)
        raise DataError(
            f"Reading the data failed during the run ({detail}): a data file changed or "
            "disappeared after it was checked. Restore it, or start the run again."
        ) from None


@dataclasses.dataclass(frozen=True)
class PythonDecoder:
    """A Python reader as a graph `decode` for `file_splits` (through
    `tf.numpy_function`), for formats TensorFlow does not decode: `read(path)` gives
    the example as a NumPy array of `shape` and `dtype`, and raises `OSError` for a file
    it cannot read and `ValueError` for one it cannot decode."""

    read: Callable[[str], np.ndarray]
    shape: tuple
    dtype: tf.DType

    def __call__(self, path: tf.Tensor) -> tf.Tensor:
        example = tf.numpy_function(
            lambda p: self.read(p.decode()), [path], self.dtype, stateful=False
        )
        return tf.ensure_shape(example, self.shape)


def _why_bad(decode, file: str) -> BaseException:
    """Why `decode` fails on `file`, as `OSError` (unreadable) or `ValueError`."""
    if isinstance(decode, PythonDecoder):
        try:
            decode.read(file)
        except (OSError, ValueError) as e:
            return e
        except Exception as e:  # A reader's library failing its own way.
            return ValueError(f"{type(e).__name__}: {e}")
    try:
        decode(tf.constant(file))
    except tf.errors.NotFoundError as e:
        return OSError(e.message)
    except tf.errors.PermissionDeniedError as e:
        return OSError(e.message)
    except tf.errors.OpError as e:
        return ValueError(e.message)
    return OSError("it could not be read during the first pass")


class FileSplits(NamedTuple):
    datasets: dict[str, tf.data.Dataset]  # By split name.
    counts: dict[str, int]  # Examples per split.
    skipped: list[str]  # Files skipped as unreadable (`skip_bad_records`).


def file_splits(
    files: list[str],
    columns: tuple,
    parts: dict[str, np.ndarray],
    decode,
    *,
    example_bytes: int,
    settings,
    cache: Cache,
    skip_bad_records: bool,
    unit: str,
    listed_in: str,
    source: str,
) -> FileSplits:
    """`tf.data` splits of `(decode(file), *columns)`, cached per `cache`.

    Args:
        files: the data files.
        columns: arrays aligned with `files` (labels, ...), carried beside each example.
        parts: the indices into `files` of each split.
        decode: a graph function, a file's path (string scalar) to its example tensor;
            it fails (as TensorFlow ops do) on a missing or undecodable file.
        example_bytes: one decoded example's size, for `cache`'s choice.
        settings: what `decode` depends on beyond the file (sizes, channels), JSON
            values: part of the disk cache's key.
        cache: where the decoded splits are kept.
        skip_bad_records: skip and count files `decode` fails on, instead of a
            `DataError` naming the first.
        unit, listed_in: what a file is and where it was listed, for messages.
        source: what lists the files (a folder's absolute path): a disk cache of an
            earlier listing from it is removed when a new one is written.

    Returns the splits, their sizes and the files skipped.
    """
    total = sum(len(indices) for indices in parts.values())
    mode = cache.choose(example_bytes * total)
    paths = np.array(files, dtype=object)
    columns = tuple(np.asarray(c) for c in columns)

    def decoded(indices, prefix=None):
        """`(index, example, *columns)`; bad files dropped and the rest cached under
        `prefix` ("" in memory) where one is given."""
        ds = tf.data.Dataset.from_tensor_slices(
            (indices, paths[indices], *(c[indices] for c in columns))
        )
        ds = ds.map(
            lambda i, path, *rest: (i, decode(path), *rest), num_parallel_calls=tf.data.AUTOTUNE
        )
        return ds if prefix is None else ds.ignore_errors().cache(prefix)

    def without_index(splits, counts):
        """The examples and columns, of known length (the bad files' are dropped)."""
        return {
            name: ds.map(lambda i, *rest: rest).apply(
                tf.data.experimental.assert_cardinality(counts[name])
            )
            for name, ds in splits.items()
        }

    seconds = None  # Of the decoding pass, where one ran.

    def checked(filling):
        """The pass over `filling`: the files kept per split, their counts and the
        files skipped."""
        nonlocal seconds
        good, seconds = _fill(filling, total, unit)
        kept = {name: [i for i in v.tolist() if i in good] for name, v in parts.items()}
        bad = sorted(i for indices in parts.values() for i in indices.tolist() if i not in good)
        return kept, {name: len(v) for name, v in kept.items()}, [files[i] for i in bad]

    if mode == "disk":

        def fill(folder):
            _, counts, skipped = checked(
                {name: decoded(parts[name], os.path.join(folder, name)) for name in parts}
            )
            return {"counts": counts, "skipped": skipped}

        key = files_key(
            files, {"settings": settings, "parts": [p.tolist() for p in parts.values()]}
        )
        folder, manifest = prepared(source, key, fill)
        counts, skipped = manifest["counts"], manifest["skipped"]
        splits = {name: decoded(parts[name], os.path.join(folder, name)) for name in parts}
    elif mode == "memory":  # Filled by the pass, read by every epoch after it.
        splits = {name: decoded(indices, "") for name, indices in parts.items()}
        _, counts, skipped = checked(splits)
    else:  # The pass only checks; training decodes the good files every epoch.
        kept, counts, skipped = checked(
            {name: decoded(indices).ignore_errors() for name, indices in parts.items()}
        )
        splits = {name: decoded(np.array(kept[name], np.int64)) for name in parts}
    _check_skipped(skipped, decode, skip_bad_records, unit, listed_in)
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        raise DataError(
            f"The {empty[0]} split of {listed_in} has no readable {unit}s left (every one "
            f"of its {len(parts[empty[0]])} was skipped): add {unit}s or fix the unreadable "
            "ones."
        )
    if seconds is not None:
        print(
            f"Decoded {total:,} {unit}s in {seconds:.1f} s "
            f"({total / max(seconds, 1e-9):,.0f} {unit}s/s).",
            file=sys.stderr,
        )
    return FileSplits(without_index(splits, counts), counts, skipped)


def prepared(source: str, key: str, prepare: Callable[[str], dict]) -> tuple[str, dict]:
    """The folder of `source`'s disk cache for `key` (see `files_key`) and its
    manifest (JSON values), prepared by an earlier run or now.

    `prepare(folder)` writes the cache's files into the (new, empty) `folder` it is
    given and returns the manifest. It works in a temporary folder that becomes the
    cache only once complete, so an interrupted or failed preparation leaves nothing
    behind; the source's caches for other keys (its files have changed) are removed.
    """
    home = os.path.join(cache_directory(), hashlib.sha256(source.encode()).hexdigest()[:16])
    folder = os.path.join(home, key)
    manifest = _read_manifest(folder)
    if manifest is not None:
        return folder, manifest
    _remove_caches(home, keep=key)
    tmp = f"{folder}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        manifest = prepare(tmp)
        write_json(os.path.join(tmp, MANIFEST), manifest)
        shutil.rmtree(folder, ignore_errors=True)  # A cache left without its manifest.
        try:
            os.rename(tmp, folder)
        except OSError:  # Another run finished the same cache first: use its.
            if _read_manifest(folder) is None:
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder, manifest


def _read_manifest(folder: str):
    """A finished disk cache's manifest (counts, skipped files), or `None`."""
    try:
        with open(os.path.join(folder, MANIFEST)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _check_skipped(skipped, decode, skip_bad_records: bool, unit: str, listed_in: str) -> None:
    """Report the files skipped as unreadable, or name the first if skipping is off."""
    if skipped and not skip_bad_records:
        error = _why_bad(decode, skipped[0])
        raise bad_record_error(skipped[0], error, unit=unit, listed_in=listed_in)
    report_skipped(skipped, unit=unit, listed_in=listed_in)


def _fill(splits: dict[str, tf.data.Dataset], total: int, unit: str) -> tuple[set[int], float]:
    """Iterate every split once, with a progress bar: the indices of the files read,
    and the seconds it took."""
    from keras.utils import Progbar

    progress = Progbar(total, unit_name=unit, verbose=1 if sys.stderr.isatty() else 0)
    good, done, started = set(), 0, time.perf_counter()
    for ds in splits.values():
        for batch in ds.map(lambda i, *rest: i).batch(256):
            good.update(batch.numpy().tolist())
            done += len(batch)
            progress.update(done)
    progress.update(total, finalize=True)
    return good, time.perf_counter() - started


def _remove_caches(folder: str, keep: str) -> None:
    """Remove a source's caches of other file lists (a file changed since), but not
    one being prepared for `keep` by another run."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if name.partition(".")[0] != keep:
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
