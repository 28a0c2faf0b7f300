"""`shapes_vqa`: the embedded visual question answering dataset, a tensorflow-datasets builder.

The scenes of `shapes_captions` (one to three coloured shapes on noisy, cluttered
backgrounds), each with three questions of different types and one answer each:

| type | example | answers |
| --- | --- | --- |
| `colour` | "what colour is the triangle?" | a colour |
| `shape` | "what shape is the blue object?" | a shape |
| `exist` | "is there a red ring?" | yes, no |
| `count` | "how many circles are there?" | 0, 1, 2, 3 |
| `relation` | "what shape is left of the red circle?", "what colour is the rightmost shape?" | a colour or a shape |
| `compare` | "are there more circles than squares?" | yes, no |

Each type has several phrasings (and both spellings of colour). A question is only
asked when its answer is defined: "the triangle" names a shape that occurs once,
relations are asked about two shapes placed clearly apart or about the leftmost,
middle and rightmost of three. Yes/no answers are balanced. Every split is drawn from
its own seed, so held-out scenes are new combinations of shapes, colours, sizes and
positions.

Each scene also carries its objects (shape, colour and centre), as CLEVR's scenes do:
the VQA model can learn to see and to count from them (`scene_weight` and
`inventory_weight`, see `kerasnotes.models.vqa`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from kerasnotes.data import scenes
from kerasnotes.data.shapes import SceneBuilder
from kerasnotes.data.shapes_captions import random_scene

QUESTION_TYPES = ("colour", "shape", "exist", "count", "relation", "compare")
QUESTIONS_PER_SCENE = 3
_COLOUR_WORDS = ("colour", "color")


def _pick(rng: np.random.Generator, options):
    return options[rng.integers(len(options))]


def _colour_question(rng, objects):
    unique = [o for o in objects if [p.shape for p in objects].count(o.shape) == 1]
    if not unique:
        return None
    obj, word = _pick(rng, unique), _pick(rng, _COLOUR_WORDS)
    template = _pick(
        rng,
        (
            "what {word} is the {shape}?",
            "what is the {word} of the {shape}?",
            "which {word} does the {shape} have?",
        ),
    )
    return template.format(word=word, shape=obj.shape), obj.colour


def _shape_question(rng, objects):
    unique = [o for o in objects if [p.colour for p in objects].count(o.colour) == 1]
    if not unique:
        return None
    obj = _pick(rng, unique)
    template = _pick(
        rng,
        (
            "what shape is the {colour} object?",
            "what is the shape of the {colour} thing?",
            "which shape is {colour}?",
        ),
    )
    return template.format(colour=obj.colour), obj.shape


def _exist_question(rng, objects):
    present = {(o.colour, o.shape) for o in objects}
    if rng.random() < 0.5:
        colour, shape = _pick(rng, sorted(present))
        answer = "yes"
    else:
        # Absent, and usually sharing the colour or the shape of something present.
        while True:
            colour, shape = _pick(rng, list(scenes.COLOURS)), _pick(rng, scenes.SHAPES)
            near = any(colour == c or shape == s for c, s in present)
            if (colour, shape) not in present and (near or rng.random() < 0.3):
                break
        answer = "no"
    singular = _pick(
        rng,
        (
            "is there a {colour} {shape}?",
            "does the picture contain a {colour} {shape}?",
            "is there a {colour} {shape} in the image?",
        ),
    )
    question = (
        f"are there any {colour} {scenes.plural(shape)}?"
        if rng.random() < 0.25
        else singular.format(colour=colour, shape=shape)
    )
    return question, answer


def _count_question(rng, objects):
    kind = rng.random()
    if kind < 0.2:
        question = _pick(rng, ("how many shapes are there?", "how many objects are in the image?"))
        return question, str(len(objects))
    if kind < 0.6:
        # Usually a shape that is there; sometimes one that is not (answer 0).
        shape = _pick(rng, [o.shape for o in objects] if rng.random() < 0.8 else scenes.SHAPES)
        count = sum(o.shape == shape for o in objects)
        template = _pick(
            rng, ("how many {things} are there?", "what number of {things} are in the image?")
        )
        return template.format(things=scenes.plural(shape)), str(count)
    colour = _pick(
        rng, [o.colour for o in objects] if rng.random() < 0.8 else list(scenes.COLOURS)
    )
    count = sum(o.colour == colour for o in objects)
    template = _pick(
        rng, ("how many {colour} shapes are there?", "how many {colour} things are there?")
    )
    return template.format(colour=colour), str(count)


def _relation_question(rng, objects, relation):
    """About the other of two shapes placed apart, or by position among three."""
    kinds = [(o.colour, o.shape) for o in objects]
    attribute = _pick(rng, ("shape", "colour"))

    def asked(target, phrase):
        if attribute == "shape":
            template = _pick(rng, ("what shape is {phrase}?", "which shape is {phrase}?"))
        else:
            template = _pick(
                rng,
                (
                    "what {word} is the shape {phrase}?",
                    "what is the {word} of the object {phrase}?",
                ),
            )
        question = template.format(phrase=phrase, word=_pick(rng, _COLOUR_WORDS))
        return question, getattr(target, attribute)

    if len(objects) == 2 and relation is not None:
        first, second = objects  # first is left of / above second.
        words = ("left of", "right of") if relation == "horizontal" else ("above", "below")
        if rng.random() < 0.5:
            target, reference, word = first, second, words[0]
        else:
            target, reference, word = second, first, words[1]
        if word in ("left of", "right of") and rng.random() < 0.5:
            word = f"to the {word}"
        return asked(target, f"{word} the {reference.colour} {reference.shape}")
    if len(objects) == 3 and len(set(kinds)) == 3:
        by_x = sorted(objects, key=lambda o: o.center_x)
        index = int(rng.integers(2))
        target, side = by_x[2 * index], ("left", "right")[index]
        if rng.random() < 0.5:
            return asked(target, _pick(rng, (f"furthest to the {side}", f"on the far {side}")))
        middle = by_x[1]
        return asked(target, f"{side} of the {middle.colour} {middle.shape}")
    return None


def _compare_question(rng, objects):
    by_shape = rng.random() < 0.5
    values = scenes.SHAPES if by_shape else tuple(scenes.COLOURS)
    present = [o.shape if by_shape else o.colour for o in objects]
    want_yes = rng.random() < 0.5
    for _ in range(50):
        a = _pick(rng, present) if rng.random() < 0.8 else _pick(rng, values)
        b = _pick(rng, [v for v in values if v != a])
        count_a, count_b = present.count(a), present.count(b)
        comparison = _pick(rng, ("more", "fewer", "same"))
        if comparison == "more":
            answer = count_a > count_b
        elif comparison == "fewer":
            answer = count_a < count_b
        else:
            answer = count_a == count_b
        if answer == want_yes:
            break

    def group(value):
        return scenes.plural(value) if by_shape else f"{value} shapes"

    if comparison == "same":
        template = _pick(
            rng,
            (
                "are there as many {a} as {b}?",
                "is the number of {a} the same as the number of {b}?",
            ),
        )
    else:
        template = f"are there {comparison} {{a}} than {{b}}?"
    return template.format(a=group(a), b=group(b)), "yes" if answer else "no"


def make_questions(rng: np.random.Generator, objects, relation, count=QUESTIONS_PER_SCENE):
    """`count` (question, answer, type) of different types about a scene."""
    makers = {
        "colour": lambda: _colour_question(rng, objects),
        "shape": lambda: _shape_question(rng, objects),
        "exist": lambda: _exist_question(rng, objects),
        "count": lambda: _count_question(rng, objects),
        "relation": lambda: _relation_question(rng, objects, relation),
        "compare": lambda: _compare_question(rng, objects),
    }
    out = []
    # Relations first: few scenes allow one, so they would be the rarest type.
    others = [t for t in rng.permutation(QUESTION_TYPES) if t != "relation"]
    for kind in ["relation", *others]:
        made = makers[str(kind)]()
        if made is not None:
            out.append((*made, str(kind)))
        if len(out) == count:
            break
    return out


@dataclasses.dataclass
class ShapesVqaConfig(tfds.core.BuilderConfig):
    image_size: int = 48
    num_train: int = 10_000
    num_validation: int = 500
    num_test: int = 1000
    num_shifted: int = 500
    seed: int = 2025


class ShapesVqa(SceneBuilder, skip_registration=True):
    """Scenes of coloured shapes with three questions each, one answer per question."""

    SPLIT_SEEDS = {"train": 21, "validation": 22, "test": 23, "shifted": 24}

    VERSION = tfds.core.Version("1.2.0")
    RELEASE_NOTES = {
        "1.0.0": "First release.",
        "1.1.0": "The scene's objects (shape, colour, centre) with every scene.",
        "1.2.0": "The scenes of shapes_captions 1.1.0, and a shifted split.",
    }
    BUILDER_CONFIGS = [
        ShapesVqaConfig(name="default", description="10,000 training scenes, 48x48."),
        ShapesVqaConfig(
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
                    "questions": tfds.features.Sequence(tfds.features.Text()),
                    "answers": tfds.features.Sequence(tfds.features.Text()),
                    "types": tfds.features.Sequence(tfds.features.Text()),
                    # The scene graph, as CLEVR has one: what is where.
                    "objects": tfds.features.Sequence(
                        {
                            "shape": tfds.features.ClassLabel(names=scenes.SHAPES),
                            "colour": tfds.features.ClassLabel(names=list(scenes.COLOURS)),
                            # (y, x) of the centre, as fractions of the image's size.
                            "center": tfds.features.Tensor(shape=(2,), dtype=np.float32),
                        }
                    ),
                }
            ),
        )

    def _example(self, rng, index, shifted):
        size = self.builder_config.image_size
        objects, relation = random_scene(rng, size, shifted)
        image = scenes.render(rng, objects, size, shifted=shifted)
        questions, answers, types = zip(*make_questions(rng, objects, relation), strict=True)
        return {
            "image": image,
            "questions": list(questions),
            "answers": list(answers),
            "types": list(types),
            "objects": [
                {
                    "shape": o.shape,
                    "colour": o.colour,
                    "center": np.array([o.center_y, o.center_x], np.float32) / size,
                }
                for o in objects
            ],
        }
