"""Next-value modelling data: sounds or real-valued series, quantised to levels.

Every source comes back as a `SeriesData`: for each split its float32 series (a CSV
file's columns as arrays, sounds as a `tf.data` dataset that reads them), and how a
value becomes one of `num_levels` levels:

- sounds (the embedded `signals`; a folder of WAV files, one sub-folder per class) are
  mu-law companded first, as in WaveNet: `sign(x) ln(1 + mu |x|) / ln(1 + mu)` with
  `mu = num_levels - 1` gives quiet samples finer levels than loud ones;
- a CSV file of series (one numeric column per series; other columns, such as dates,
  are left out) keeps its own units and is quantised evenly (`linear`) after each
  context is scaled by itself (`context_scaling`), as DeepAR and Chronos scale
  series: its midrange to 0 and its range to [-1/2, 1/2], so every column, at any
  level and amplitude, gets the same share of the levels, and room to leave the
  context's range by as much again on either side.

Each series of a CSV file is split in time: its first 80% trains, the next 10%
validates, the last 10% tests. Sounds keep their dataset's split.

`to_levels`, `from_levels` and `context_scaling` are TensorFlow ops: the export scales
and quantises its context and turns generated levels back into values in the graph, as
training does.
"""

from __future__ import annotations

import array
import dataclasses
import math
import os
import sys
from typing import TYPE_CHECKING

import numpy as np

from kerasnotes.errors import DataError

if TYPE_CHECKING:
    import tensorflow as tf

QUANTIZATIONS = ("mu_law", "linear")


@dataclasses.dataclass
class SeriesData:
    # Float32 series: the arrays of a CSV file's columns, or a `tf.data` dataset of
    # sounds (read as it is iterated).
    train: list[np.ndarray] | tf.data.Dataset
    validation: list[np.ndarray] | tf.data.Dataset
    test: list[np.ndarray] | tf.data.Dataset
    quantization: str  # "mu_law" or "linear"
    # "none": the values are in [-1, 1] (sounds); "context": each context is scaled by
    # itself (`context_scaling`) before it is quantised.
    scaling: str
    sample_rate: int | None  # Samples per second of sounds; None for other series.
    num_examples: dict[str, int]
    source: str


def to_levels(values, num_levels: int, quantization: str):
    """Values in [-1, 1] (clipped) to int32 levels 0 .. `num_levels - 1` (a tensor)."""
    import tensorflow as tf

    x = tf.clip_by_value(tf.cast(values, tf.float32), -1.0, 1.0)
    if quantization == "mu_law":
        mu = float(num_levels - 1)
        x = tf.sign(x) * tf.math.log1p(mu * tf.abs(x)) / math.log1p(mu)
    return tf.cast(tf.round((x + 1) / 2 * (num_levels - 1)), tf.int32)


def context_scaling(context):
    """`(offset, scale)`, float32 `(batch, 1)`: `(v - offset) / scale` puts each row of
    `context` `(batch, time)` in [-1/2, 1/2], its midrange at 0 (a constant row at 0,
    with a scale of a millionth of its value, or of 1)."""
    import tensorflow as tf

    context = tf.cast(context, tf.float32)
    high = tf.reduce_max(context, axis=1, keepdims=True)
    low = tf.reduce_min(context, axis=1, keepdims=True)
    offset = (high + low) / 2
    return offset, tf.maximum(high - low, 1e-6 * tf.maximum(1.0, tf.abs(offset)))


def from_levels(levels, num_levels: int, quantization: str):
    """Levels back to float32 values in [-1, 1] (a tensor)."""
    import tensorflow as tf

    x = tf.cast(levels, tf.float32) / (num_levels - 1) * 2 - 1
    if quantization == "mu_law":
        mu = float(num_levels - 1)
        x = tf.sign(x) * (tf.pow(1 + mu, tf.abs(x)) - 1) / mu
    return x


def load(
    dataset: str | None,
    *,
    num_samples: int | None = None,
    sample_rate: int | None = None,
    skip_bad_records: bool = False,
    data_dir: str | None = None,
    cache=None,
) -> SeriesData:
    """Load series by embedded name or path.

    Args:
        dataset: `None` or `"signals"` (embedded sounds, default), `"signals/small"`, a
            directory of WAV files (one sub-folder per class, as `wavenet` reads), a
            tfds audio dataset's name, or a CSV file of series.
        num_samples, sample_rate, data_dir, cache: as for
            `kerasnotes.data.waveforms.load` (sounds only).
        skip_bad_records: skip (and count) unreadable sounds, or lines of a CSV file
            with a text value in a numeric column or another number of columns.
    """
    from kerasnotes.data import waveforms

    dataset = dataset or waveforms.EMBEDDED[0]
    if dataset.lower().endswith((".csv", ".tsv")):
        return _from_csv(dataset, skip_bad_records)
    data = waveforms.load(
        dataset,
        num_samples=num_samples,
        sample_rate=sample_rate,
        skip_bad_records=skip_bad_records,
        data_dir=data_dir,
        cache=cache,
    )
    return SeriesData(  # Each sound read (and cached) as the waveform loader says.
        **{
            part: getattr(data, part).map(lambda wave, _: wave[:, 0])
            for part in ("train", "validation", "test")
        },
        quantization="mu_law",
        scaling="none",
        sample_rate=data.sample_rate,
        num_examples=dict(data.num_examples),
        source=data.source,
    )


def read_columns(path: str, skip_bad_records: bool = False) -> list[tuple[str, np.ndarray]]:
    """`(name, float64 values)` of every numeric column of a CSV (or TSV) file, read as
    a stream (only the values are held): a header row is optional (names are then 1,
    2, ...), text columns (dates, names) are left out, and a row of another width or
    with a text value in a numeric column is a `DataError` naming its line (with
    `skip_bad_records`, such rows are skipped and counted)."""
    if not os.path.isfile(path):
        raise DataError(
            f"Dataset path {path!r} does not exist; expected a CSV file with one numeric "
            "column per series."
        )
    from kerasnotes.data.images import utf8_lines
    from kerasnotes.data.text import csv_reader

    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    rows = csv_reader(utf8_lines(path, "CSV file"), delimiter, os.path.getsize(path))
    header, columns, lines = None, None, array.array("q")
    num_bad_width, first_bad_width = 0, None  # Rows of another width.
    first_text = {}  # Column -> the line and cell of its first value that is no number.
    for row in rows:
        if not row:
            continue
        if columns is None:
            columns = [array.array("d") for _ in row]
            if not all(_is_number(cell) for cell in row):
                header = row
                continue
        if len(row) != len(columns):
            num_bad_width += 1
            first_bad_width = first_bad_width or (
                rows.line_num,
                f"it has {len(row)} columns, expected {len(columns)}",
            )
            continue
        lines.append(rows.line_num)
        for index, cell in enumerate(row):
            value = _number(cell)
            columns[index].append(value)
            if math.isnan(value) and index not in first_text:
                first_text[index] = (rows.line_num, cell.strip())
    if not lines and not num_bad_width:
        raise DataError(f"CSV file {path!r} holds no rows of values.")
    values = [np.frombuffer(column, np.float64) for column in columns]
    # A column with any number in it is a series; the others are text.
    numeric = [index for index, column in enumerate(values) if np.isfinite(column).any()]
    if not numeric:
        raise DataError(f"CSV file {path!r} has no numeric column: expected one per series.")
    lines = np.frombuffer(lines, np.int64)
    texts = np.zeros(len(lines), bool)
    for index in numeric:
        texts |= np.isnan(values[index])
    bad = []  # The first bad line of each kind, and why.
    if num_bad_width:
        bad.append(first_bad_width)
    if texts.any():
        line = int(lines[texts][0])
        index = next(i for i in numeric if first_text.get(i, (0,))[0] == line)
        bad.append((line, f"{first_text[index][1]!r} in a numeric column is not a number"))
    if bad:
        line, why = min(bad)
        if not skip_bad_records:
            raise DataError(
                f"CSV file {path!r} line {line}: {why}. Fix or remove the line, or set "
                "skip_bad_records=true to skip such lines (they are counted)."
            )
        print(
            f"Skipped {num_bad_width + int(texts.sum())} bad line(s) of CSV file {path!r}, "
            f"e.g. line {line}: {why}.",
            file=sys.stderr,
        )
    if texts.all():
        raise DataError(f"CSV file {path!r} holds no rows of values.")
    return [
        (header[index] if header else str(index + 1), values[index][~texts]) for index in numeric
    ]


def _from_csv(path: str, skip_bad_records: bool = False) -> SeriesData:
    """Every numeric column of a CSV (or TSV) file a series, each split in time."""
    columns = [values for _, values in read_columns(path, skip_bad_records)]
    length = len(columns[0])
    cuts = (int(length * 0.8), int(length * 0.9))
    if min(cuts[0], cuts[1] - cuts[0], length - cuts[1]) < 2:
        raise DataError(
            f"CSV file {path!r} has {length} rows: too few to split each series 80/10/10 "
            "in time (at least 20 are needed)."
        )
    columns = [column.astype(np.float32) for column in columns]
    splits = {
        "train": [s[: cuts[0]] for s in columns],
        "validation": [s[cuts[0] : cuts[1]] for s in columns],
        "test": [s[cuts[1] :] for s in columns],
    }
    return SeriesData(
        **splits,
        quantization="linear",
        scaling="context",
        sample_rate=None,
        num_examples={part: sum(len(s) for s in series) for part, series in splits.items()},
        source=f"csv:{os.path.abspath(path)}",
    )


def _number(cell: str) -> float:
    """The finite number `cell` holds, or NaN."""
    try:
        value = float(cell)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def _is_number(cell: str) -> bool:
    return not math.isnan(_number(cell))
