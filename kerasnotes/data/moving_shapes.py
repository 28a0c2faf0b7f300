"""`moving_shapes`: the embedded video dataset, as a tensorflow-datasets builder.

Clips of one coloured shape on a noisy background that stays put while the noise in
every frame is new. The label is what the shape does over the clip:

- `left`, `right`, `up`, `down`: it moves that way at a steady speed;
- `grow`, `shrink`: it stays in place and its size changes;
- `appear`, `vanish`: it is there from (or until) a frame in the middle of the clip;
- `bounce`: it moves one way for half the clip and comes back.

Every position, size, speed, shape and colour is drawn at random, and each label is
the time reversal of another (left and right, up and down, grow and shrink, appear
and vanish; bounce of itself), drawn alike, so a frame in the middle of a clip looks
the same whatever the label: a shape somewhere, of some size, or none (then the clip
appears or vanishes). Only the order of the frames tells. Frames near the ends tell
more (a `grow` clip starts small), which is why a single-frame baseline looks at the
middle one (clips have an odd number of frames, 9, so that one is exactly central).
Every split is drawn from its own seed, so held-out clips are new scenes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from kerasnotes.data import scenes
from kerasnotes.data.shapes import SceneBuilder

MOTIONS = ("left", "right", "up", "down", "grow", "shrink", "appear", "vanish", "bounce")
# Unit steps in image coordinates (x to the right, y down).
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


def clip_objects(
    rng: np.random.Generator, motion: str, size: int, num_frames: int, shifted: bool = False
) -> list[scenes.SceneObject | None]:
    """The shape in each frame of a clip of `motion` (`None`: not in that frame); a
    shifted clip's shape is smaller or larger than any in training (`scenes.radius`)."""
    if motion not in MOTIONS:
        raise ValueError(f"Unknown motion {motion!r}; expected one of {', '.join(MOTIONS)}.")
    shape = scenes.SHAPES[rng.integers(len(scenes.SHAPES))]
    colour = list(scenes.COLOURS)[rng.integers(len(scenes.COLOURS))]
    progress = np.linspace(0.0, 1.0, num_frames)  # 0 in the first frame, 1 in the last.

    def placed(x, y, radius):
        return scenes.SceneObject(shape, colour, float(x), float(y), float(radius))

    def anywhere(radius):
        margin = radius + 1
        return rng.uniform(margin, size - margin, size=2)

    if motion in ("grow", "shrink"):
        small = scenes.radius(rng, size, 0.07, 0.13, shifted=shifted, largest=0.13)
        large = scenes.radius(rng, size, 0.24, 0.34, shifted=shifted, largest=0.4)
        radii = small + (large - small) * (progress if motion == "grow" else 1 - progress)
        x, y = anywhere(large)
        return [placed(x, y, r) for r in radii]
    radius = scenes.radius(rng, size, 0.1, 0.22, shifted=shifted, largest=0.27)
    if motion in ("appear", "vanish"):
        x, y = anywhere(radius)
        hidden = rng.integers(2, num_frames - 1)  # Frames without it: 2 .. num_frames - 2.
        shown = np.arange(num_frames) >= hidden  # Appearing; vanishing is its reverse.
        shown = shown if motion == "appear" else shown[::-1]
        return [placed(x, y, radius) if s else None for s in shown]
    # Moving: `left` ... `down` all the way, `bounce` there and back along a random one.
    direction = motion if motion in DIRECTIONS else list(DIRECTIONS)[rng.integers(4)]
    step = np.array(DIRECTIONS[direction], np.float64)
    margin = radius + 1
    distance = rng.uniform(0.3, 0.5) * (size - 2 * margin)
    travel = progress if motion != "bounce" else 1 - np.abs(2 * progress - 1)
    # A start from which the whole path stays inside the image.
    low = np.where(step < 0, margin + distance, margin)
    high = np.where(step > 0, size - margin - distance, size - margin)
    start = rng.uniform(low, high)
    return [placed(*(start + t * distance * step), radius) for t in travel]


def render_clip(
    rng: np.random.Generator,
    objects: list[scenes.SceneObject | None],
    size: int,
    shifted: bool = False,
) -> np.ndarray:
    """uint8 `(frames, size, size, 3)`: one background (`shifted` or not), fresh noise
    in every frame."""
    still = scenes.background(rng, size, shifted)
    frames = []
    for obj in objects:
        frame = still + rng.normal(0, 6, size=still.shape)
        frames.append(scenes.render(rng, [obj] if obj else [], size, image=frame))
    return np.stack(frames)


@dataclasses.dataclass
class MovingShapesConfig(tfds.core.BuilderConfig):
    image_size: int = 32
    num_frames: int = 9  # Odd: one frame is exactly in the middle.
    num_train: int = 4000
    num_validation: int = 500
    num_test: int = 500
    num_shifted: int = 500
    seed: int = 4321


class MovingShapes(SceneBuilder, skip_registration=True):
    """Clips of a moving, growing, shrinking, appearing or vanishing shape."""

    SPLIT_SEEDS = {"train": 1, "validation": 2, "test": 3, "shifted": 4}

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "First release.",
        "1.1.0": "Wider radii, background noise 4-16 (was 12); a shifted split.",
    }
    BUILDER_CONFIGS = [
        MovingShapesConfig(name="default", description="4,000 training clips of 9 frames, 32x32."),
        MovingShapesConfig(
            name="small",
            description="720 training clips of 9 frames, 24x24: for tests and quick tries.",
            image_size=24,
            num_train=720,
            num_validation=180,
            num_test=180,
            num_shifted=180,
        ),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        shape = (config.num_frames, config.image_size, config.image_size, 3)
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__.splitlines()[0],
            features=tfds.features.FeaturesDict(
                {
                    "video": tfds.features.Video(shape=shape),
                    "label": tfds.features.ClassLabel(names=MOTIONS),
                }
            ),
            supervised_keys=("video", "label"),
        )

    def _example(self, rng, index, shifted):
        config = self.builder_config
        motion = MOTIONS[index % len(MOTIONS)]  # Balanced splits.
        objects = clip_objects(rng, motion, config.image_size, config.num_frames, shifted)
        clip = render_clip(rng, objects, config.image_size, shifted)
        return {"video": clip, "label": motion}
