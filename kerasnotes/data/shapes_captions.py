"""`shapes_captions`: the embedded captioning dataset, as a tensorflow-datasets builder.

Scenes of one to three coloured shapes on noisy, cluttered backgrounds, each with
three to five reference captions in varied phrasings. What a caption says is fixed by
the scene; how it says it varies:

- one shape: "a red circle", "there is a red circle", ...
- two different shapes, placed clearly side by side or one above the other: the
  spatial relation, from either side ("a red circle left of a blue square",
  "a blue square to the right of a red circle", "a red circle above ...", ...);
- two or three identical shapes: counts ("two red circles", "a pair of red circles",
  "three red circles");
- a pair and one other: "two red circles and a blue square", "a blue square and
  two red circles", ...;
- three different shapes: listed from left to right.

Every split is drawn from its own seed, so held-out scenes are new combinations of
shapes, colours, sizes and positions: with 36 shape-colour pairs, most two- and
three-shape scenes in the test split never occur in training. The `shifted` split's
objects are smaller or larger than any in training, on other textures and noise
(`kerasnotes.data.scenes`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from kerasnotes.data import scenes
from kerasnotes.data.shapes import SceneBuilder

# Object radii as fractions of the image size, by the number of objects in the scene
# (three fit side by side): [low, high] for training and held-out scenes, and how far
# outside them the shifted split's go.
_MIN_RADIUS, _SMALLEST = 0.11, 0.08
_MAX_RADIUS = {1: 0.25, 2: 0.15, 3: 0.15}
_LARGEST = {1: 0.32, 2: 0.19, 3: 0.15}  # No larger three fit.


def _name(obj: scenes.SceneObject, plural: bool = False) -> str:
    if not plural:
        return f"{obj.colour} {obj.shape}"
    return f"{obj.colour} {scenes.plural(obj.shape)}"


def _number(count: int) -> str:
    return {2: "two", 3: "three"}[count]


def describe(objects: list[scenes.SceneObject], relation: str | None = None) -> list[str]:
    """The reference captions of a scene.

    Args:
        objects: the scene's objects; three objects are listed left to right.
        relation: for two different objects, `"horizontal"` (the first is left of the
            second) or `"vertical"` (the first is above the second).
    """
    kinds = [(o.colour, o.shape) for o in objects]
    if len(objects) == 1:
        (a,) = objects
        return [f"a {_name(a)}", f"there is a {_name(a)}", f"a single {_name(a)}"]
    if len(set(kinds)) == 1:
        n, things = _number(len(objects)), _name(objects[0], plural=True)
        group = "a pair of" if len(objects) == 2 else "a group of three"
        return [f"{n} {things}", f"there are {n} {things}", f"{group} {things}"]
    if len(objects) == 2:
        a, b = objects
        if relation == "horizontal":
            before, after, near, far = "left of", "right of", "to the left of", "to the right of"
            return [
                f"a {_name(a)} {before} a {_name(b)}",
                f"a {_name(a)} {near} a {_name(b)}",
                f"a {_name(b)} {after} a {_name(a)}",
                f"a {_name(b)} {far} a {_name(a)}",
                f"a {_name(a)} and a {_name(b)}",
            ]
        if relation == "vertical":
            return [
                f"a {_name(a)} above a {_name(b)}",
                f"a {_name(a)} is above a {_name(b)}",
                f"a {_name(b)} below a {_name(a)}",
                f"a {_name(b)} is below a {_name(a)}",
                f"a {_name(a)} and a {_name(b)}",
            ]
        raise ValueError(f"Invalid relation {relation!r}: expected 'horizontal' or 'vertical'.")
    if len(set(kinds)) == 2:
        pair_kind = max(set(kinds), key=kinds.count)
        pair = objects[kinds.index(pair_kind)]
        single = next(o for o in objects if (o.colour, o.shape) != pair_kind)
        return [
            f"two {_name(pair, plural=True)} and a {_name(single)}",
            f"a {_name(single)} and two {_name(pair, plural=True)}",
            f"there are two {_name(pair, plural=True)} and a {_name(single)}",
        ]
    listing = f"a {_name(objects[0])}, a {_name(objects[1])} and a {_name(objects[2])}"
    return [
        listing,
        f"from left to right {listing}",
        f"three shapes: {listing}",
        f"left to right there is {listing}",
    ]


def _place(rng, size: int, objects: list[scenes.SceneObject], relation: str | None):
    """New centres for `objects`, without overlaps and with a clear relation.

    Two objects are separated along the relation's axis by much more than across it;
    three objects are in distinct, non-overlapping columns from left to right.
    """
    radii = [o.radius for o in objects]
    for _ in range(1000):
        if len(objects) == 3:
            free = size - 2 * sum(radii) - 4
            gaps = np.sort(rng.uniform(0, free, 3))
            xs, left = [], 1.0
            for r, gap, previous in zip(radii, gaps, [0.0, *gaps[:-1]], strict=True):
                left += gap - previous
                xs.append(left + r)
                left += 2 * r + 1
            ys = [rng.uniform(r + 1, size - r - 1) for r in radii]
        else:
            xs = [rng.uniform(r + 1, size - r - 1) for r in radii]
            ys = [rng.uniform(r + 1, size - r - 1) for r in radii]
        if len(objects) == 2 and relation is None:  # Two alike: anywhere, apart.
            if np.hypot(xs[1] - xs[0], ys[1] - ys[0]) < radii[0] + radii[1] + 2:
                continue
        elif len(objects) == 2:
            along, across = (xs, ys) if relation == "horizontal" else (ys, xs)
            if along[0] > along[1]:
                along.reverse()
            gap = along[1] - along[0]
            if gap < radii[0] + radii[1] + 2 or abs(across[1] - across[0]) > 0.5 * gap:
                continue
        return [
            dataclasses.replace(o, center_x=float(x), center_y=float(y))
            for o, x, y in zip(objects, xs, ys, strict=True)
        ]
    raise RuntimeError("Could not place the objects; the image is too small.")


def random_scene(rng: np.random.Generator, size: int, shifted: bool = False):
    """(objects, relation) of a random scene: 20% one shape, 40% two, 40% three."""
    kind = rng.random()
    count = 1 if kind < 0.2 else 2 if kind < 0.6 else 3

    def new(like: scenes.SceneObject | None = None) -> scenes.SceneObject:
        obj = scenes.random_object(
            rng,
            size,
            min_radius=_MIN_RADIUS,
            max_radius=_MAX_RADIUS[count],
            shifted=shifted,
            smallest=_SMALLEST,
            largest=_LARGEST[count],
        )
        if like is not None:
            obj = dataclasses.replace(obj, shape=like.shape, colour=like.colour)
        return obj

    def different(*others) -> scenes.SceneObject:
        while True:
            obj = new()
            if all((obj.shape, obj.colour) != (o.shape, o.colour) for o in others):
                return obj

    relation = None
    if count == 1:
        objects = [new()]
    elif count == 2:
        first = new()
        if rng.random() < 0.25:
            objects = [first, new(like=first)]
        else:
            objects = [first, different(first)]
            relation = "horizontal" if rng.random() < 0.5 else "vertical"
    else:
        first = new()
        layout = rng.random()
        if layout < 0.1:
            objects = [first, new(like=first), new(like=first)]
        elif layout < 0.45:
            objects = [first, new(like=first), different(first)]
            rng.shuffle(objects)
        else:
            second = different(first)
            objects = [first, second, different(first, second)]
    return _place(rng, size, objects, relation), relation


@dataclasses.dataclass
class ShapesCaptionsConfig(tfds.core.BuilderConfig):
    image_size: int = 48
    num_train: int = 10_000
    num_validation: int = 500
    num_test: int = 1000
    num_shifted: int = 500
    seed: int = 2024


class ShapesCaptions(SceneBuilder, skip_registration=True):
    """Scenes of coloured shapes, each with three to five reference captions."""

    SPLIT_SEEDS = {"train": 11, "validation": 12, "test": 13, "shifted": 14}

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "First release.",
        "1.0.1": 'Plural "crosses" (was "crosss").',
        "1.1.0": "Radii by object count (were 0.11-0.15), noise 4-16; a shifted split.",
    }
    BUILDER_CONFIGS = [
        ShapesCaptionsConfig(name="default", description="10,000 training scenes, 48x48."),
        ShapesCaptionsConfig(
            name="small",
            description="2,000 training scenes, 48x48: for tests and quick tries.",
            num_train=2000,
            num_validation=200,
            num_test=200,
            num_shifted=200,
        ),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__.splitlines()[0],
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(size, size, 3)),
                    "captions": tfds.features.Sequence(tfds.features.Text()),
                }
            ),
        )

    def _example(self, rng, index, shifted):
        size = self.builder_config.image_size
        objects, relation = random_scene(rng, size, shifted)
        image = scenes.render(rng, objects, size, shifted=shifted)
        return {"image": image, "captions": describe(objects, relation)}
