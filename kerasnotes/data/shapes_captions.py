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
three-shape scenes in the test split never occur in training.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from kerasnotes.data import scenes
from kerasnotes.data.shapes import SceneBuilder

# Object radius as a fraction of the image size: small enough for three side by side.
_MIN_RADIUS, _MAX_RADIUS = 0.11, 0.15


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


def random_scene(rng: np.random.Generator, size: int):
    """(objects, relation) of a random scene: 20% one shape, 40% two, 40% three."""

    def new(like: scenes.SceneObject | None = None) -> scenes.SceneObject:
        obj = scenes.random_object(rng, size, min_radius=_MIN_RADIUS, max_radius=_MAX_RADIUS)
        if like is not None:
            obj = dataclasses.replace(obj, shape=like.shape, colour=like.colour)
        return obj

    def different(*others) -> scenes.SceneObject:
        while True:
            obj = new()
            if all((obj.shape, obj.colour) != (o.shape, o.colour) for o in others):
                return obj

    kind = rng.random()
    relation = None
    if kind < 0.2:
        objects = [new()]
    elif kind < 0.6:
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
    seed: int = 2024


class ShapesCaptions(SceneBuilder, skip_registration=True):
    """Scenes of coloured shapes, each with three to five reference captions."""

    SPLIT_SEEDS = {"train": 11, "validation": 12, "test": 13}

    VERSION = tfds.core.Version("1.0.1")
    RELEASE_NOTES = {"1.0.0": "First release.", "1.0.1": 'Plural "crosses" (was "crosss").'}
    BUILDER_CONFIGS = [
        ShapesCaptionsConfig(name="default", description="10,000 training scenes, 48x48."),
        ShapesCaptionsConfig(
            name="small",
            description="2,000 training scenes, 48x48: for tests and quick tries.",
            num_train=2000,
            num_validation=200,
            num_test=200,
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

    def _example(self, rng, index):
        size = self.builder_config.image_size
        objects, relation = random_scene(rng, size)
        image = scenes.render(rng, objects, size)
        return {"image": image, "captions": describe(objects, relation)}
