"""Synthetic scenes: coloured shapes on noisy, cluttered backgrounds.

Pure NumPy and deterministic given a `numpy.random.Generator`. The classification
dataset draws one shape per image; the captioning and VQA datasets draw several and
describe them.

Every dataset also has a `shifted` split drawn outside the ranges its other splits are
drawn from, which no choice is ever made on: objects smaller and larger than any in
training (so also nearer the border than any), and backgrounds under textures
(checks, stripes) and noise levels that training never shows.
"""

from __future__ import annotations

import dataclasses

import numpy as np

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring")

# Saturated colours that stand out from the darker backgrounds.
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 225, 50),
    "purple": (170, 60, 210),
    "white": (240, 240, 240),
}


@dataclasses.dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    center_x: float  # Pixels from the left edge.
    center_y: float  # Pixels from the top edge.
    radius: float  # Half of the shape's extent, in pixels.


def plural(shape: str) -> str:
    """The plural of a shape name: "circles", "crosses"."""
    return f"{shape}es" if shape.endswith("s") else f"{shape}s"


def shape_mask(shape: str, size: int, cx: float, cy: float, r: float) -> np.ndarray:
    """A boolean (size, size) mask of `shape` centred at (cx, cy) with half-extent r."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dx, dy = x - cx, y - cy
    if shape == "circle":
        return dx**2 + dy**2 <= r**2
    if shape == "ring":
        d2 = dx**2 + dy**2
        return (d2 <= r**2) & (d2 >= (0.55 * r) ** 2)
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= 0.85 * r
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= r
    if shape == "triangle":
        # Apex at the top, base at the bottom.
        top, bottom = -r, 0.8 * r
        inside_height = (dy >= top) & (dy <= bottom)
        return inside_height & (np.abs(dx) <= (dy - top) / (bottom - top) * r)
    if shape == "cross":
        arm = r / 3
        return ((np.abs(dx) <= arm) & (np.abs(dy) <= r)) | (
            (np.abs(dy) <= arm) & (np.abs(dx) <= r)
        )
    raise ValueError(f"Unknown shape {shape!r}; expected one of {SHAPES}.")


# Pixel noise of the backgrounds (standard deviation, 0-255): training and held-out
# splits, and the shifted split (above it).
NOISE, SHIFTED_NOISE = (4.0, 16.0), (20.0, 26.0)


def radius(
    rng: np.random.Generator,
    size: int,
    low: float,
    high: float,
    *,
    shifted: bool = False,
    smallest: float | None = None,
    largest: float | None = None,
) -> float:
    """A radius in pixels, as a fraction of `size` from [low, high]; for the shifted
    split from outside it: [smallest, low) or (high, largest] (0.7 low and 1.2 high by
    default), either side half the time (only `smallest`'s when `largest <= high`)."""
    smallest = 0.7 * low if smallest is None else smallest
    largest = 1.2 * high if largest is None else largest
    if not shifted:
        fraction = rng.uniform(low, high)
    elif largest <= high or rng.random() < 0.5:
        fraction = rng.uniform(smallest, low)
    else:
        fraction = rng.uniform(np.nextafter(high, largest), largest)
    return float(fraction * size)


def background(rng: np.random.Generator, size: int, shifted: bool = False) -> np.ndarray:
    """A dark, noisy background with a colour gradient and faint clutter lines; for
    the shifted split under a texture (checks or stripes) and more noise."""
    base = rng.uniform(0, 70, size=3)
    tilt = rng.uniform(-40, 40, size=3)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    if rng.random() < 0.5:
        ramp = ramp[:, None] * np.ones((1, size), np.float32)
    else:
        ramp = np.ones((size, 1), np.float32) * ramp[None, :]
    image = base + ramp[..., None] * tilt
    for _ in range(rng.integers(0, 3)):
        # A faint straight line across the image.
        y0, y1 = rng.uniform(0, size, 2)
        xs = np.arange(size)
        ys = np.clip(np.round(y0 + (y1 - y0) * xs / size).astype(int), 0, size - 1)
        image[ys, xs] += rng.uniform(20, 50)
    if shifted:
        y, x = np.mgrid[0:size, 0:size]
        if rng.random() < 0.5:
            cell = rng.integers(2, 6)
            pattern = ((x // cell + y // cell) % 2) * 2.0 - 1
        else:
            angle, period = rng.uniform(0, np.pi), rng.uniform(4, 9)
            pattern = np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period)
        image += pattern[..., None] * rng.uniform(15, 30) * rng.uniform(0.5, 1, 3)
    noise = rng.uniform(*(SHIFTED_NOISE if shifted else NOISE))
    image += rng.normal(0, noise, size=(size, size, 3))
    return image


def render(
    rng: np.random.Generator,
    objects: list[SceneObject],
    size: int,
    image: np.ndarray | None = None,
    shifted: bool = False,
) -> np.ndarray:
    """Draw `objects` in order over `image` (float, `(size, size, 3)`; default a fresh
    `background`, `shifted` or not); returns uint8 `(size, size, 3)`."""
    image = background(rng, size, shifted) if image is None else image.copy()
    for obj in objects:
        mask = shape_mask(obj.shape, size, obj.center_x, obj.center_y, obj.radius)
        colour = np.array(COLOURS[obj.colour], np.float32) + rng.normal(0, 10, 3)
        image[mask] = colour + rng.normal(0, 8, size=(int(mask.sum()), 3))
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def random_object(
    rng: np.random.Generator,
    size: int,
    shape: str | None = None,
    min_radius: float = 0.12,
    max_radius: float = 0.42,
    **shifted_radius,
) -> SceneObject:
    """One object of a random (or given) shape and colour that fits in the image, its
    radius from `radius` (`shifted_radius`: its `shifted`, `smallest`, `largest`)."""
    r = radius(rng, size, min_radius, max_radius, **shifted_radius)
    margin = r + 1
    return SceneObject(
        shape=shape if shape is not None else SHAPES[rng.integers(len(SHAPES))],
        colour=list(COLOURS)[rng.integers(len(COLOURS))],
        center_x=rng.uniform(margin, size - margin),
        center_y=rng.uniform(margin, size - margin),
        radius=r,
    )
