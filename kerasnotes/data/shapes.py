"""`shapes`: the embedded image classification dataset, as a tensorflow-datasets builder.

One coloured shape per image on a noisy, cluttered background; the label is the
shape. Every split is generated from its own seed, so the test images are new scenes;
the `shifted` split is drawn outside the others' ranges (`kerasnotes.data.scenes`).
Prepared once into the tfds data directory (`TFDS_DATA_DIR`, default
`~/tensorflow_datasets`) and read like any tfds dataset afterwards.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from kerasnotes.data import scenes


class SceneBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the embedded scene datasets: every split drawn from its own seed.

    Subclasses set `SPLIT_SEEDS` (split name -> seed; `shifted` among them) and
    `_example(rng, index, shifted)`; their configs have `seed` and `num_<split>` fields.
    """

    SPLIT_SEEDS: dict[str, int] = {}

    def _example(self, rng: np.random.Generator, index: int, shifted: bool) -> dict:
        raise NotImplementedError

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        return {split: self._generate_examples(split) for split in self.SPLIT_SEEDS}

    def _generate_examples(self, split: str):
        config = self.builder_config
        rng = np.random.default_rng([config.seed, self.SPLIT_SEEDS[split]])
        for index in range(getattr(config, f"num_{split}")):
            yield index, self._example(rng, index, split == "shifted")


@dataclasses.dataclass
class ShapesConfig(tfds.core.BuilderConfig):
    image_size: int = 32
    num_train: int = 8000
    num_validation: int = 1000
    num_test: int = 1000
    num_shifted: int = 1000
    seed: int = 1234


class Shapes(SceneBuilder, skip_registration=True):
    """Coloured shapes on noisy backgrounds; classify the shape."""

    SPLIT_SEEDS = {"train": 1, "validation": 2, "test": 3, "shifted": 4}

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "First release.",
        "1.1.0": "Radii 0.12-0.42 (were 0.18-0.4), noise 4-16 (was 12); a shifted split.",
    }
    BUILDER_CONFIGS = [
        ShapesConfig(name="default", description="8,000 training images, 32x32."),
        ShapesConfig(
            name="small",
            description="1,200 training images, 32x32: for tests and quick tries.",
            num_train=1200,
            num_validation=300,
            num_test=300,
            num_shifted=300,
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
                    "label": tfds.features.ClassLabel(names=scenes.SHAPES),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _example(self, rng, index, shifted):
        size = self.builder_config.image_size
        # Cycle through the classes so every split is balanced.
        shape = scenes.SHAPES[index % len(scenes.SHAPES)]
        obj = scenes.random_object(rng, size, shape=shape, shifted=shifted, largest=0.46)
        return {"image": scenes.render(rng, [obj], size, shifted=shifted), "label": shape}
