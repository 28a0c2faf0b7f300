"""Datasets: embedded generators, loaders of local files and tfds names.

Every loader returns a container with `train`, `validation` and `test` splits (and,
for the embedded scene generators, `shifted`); `held_out` puts the split evaluation
should read in the place of `test`.
"""

from __future__ import annotations

import copy

SHIFTED = "shifted"  # The embedded generators' split outside their training ranges.
# The splits evaluation can read: the held-out one runs report, the one settings are
# chosen on, and the shifted one.
HELD_OUT_SPLITS = ("test", "validation", SHIFTED)


def held_out(data, split: str):
    """`data` with `split` in the place of the test split, the one evaluation reads
    (a shallow copy; the series of a series task's data too); a `DataError` if the
    dataset has no such split."""
    from kerasnotes.errors import DataError

    if split == "test":
        return data
    part = getattr(data, split, None)
    if part is None:
        raise DataError(
            f"Dataset {getattr(data, 'source', '')!r} has no {split} split: only the "
            "embedded scene datasets (shapes, shapes_captions, shapes_vqa, "
            "moving_shapes) draw one."
        )
    view = copy.copy(data)
    view.test = part
    if isinstance(getattr(data, "num_examples", None), dict):
        view.num_examples = {**data.num_examples, "test": data.num_examples.get(split)}
    if hasattr(data, "series"):
        view.series = held_out(data.series, split)
    return view
