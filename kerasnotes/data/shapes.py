"""`shapes`: the embedded image classification dataset, as a tensorflow-datasets builder.

One coloured shape per image on a noisy, cluttered background; the label is the
shape. Every split is generated from its own seed, so the test images are new scenes.
Prepared once into the tfds data directory (`TFDS_DATA_DIR`, default
`~/tensorflow_datasets`) and read like any tfds dataset afterwards.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from kerasnotes.data import scenes

_SPLIT_SEEDS = {"train": 1, "validation": 2, "test": 3}


@dataclasses.dataclass
class ShapesConfig(tfds.core.BuilderConfig):
    image_size: int = 32
    num_train: int = 8000
    num_validation: int = 1000
    num_test: int = 1000
    seed: int = 1234


class Shapes(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Coloured shapes on noisy backgrounds; classify the shape."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        ShapesConfig(name="default", description="8,000 training images, 32x32."),
        ShapesConfig(
            name="small",
            description="1,200 training images, 32x32: for tests and quick tries.",
            num_train=1200,
            num_validation=300,
            num_test=300,
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

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        return {split: self._generate_examples(split) for split in _SPLIT_SEEDS}

    def _generate_examples(self, split: str):
        config = self.builder_config
        rng = np.random.default_rng([config.seed, _SPLIT_SEEDS[split]])
        count = getattr(config, f"num_{split}")
        for index in range(count):
            # Cycle through the classes so every split is balanced.
            shape = scenes.SHAPES[index % len(scenes.SHAPES)]
            obj = scenes.random_object(rng, config.image_size, shape=shape)
            image = scenes.render(rng, [obj], config.image_size)
            yield index, {"image": image, "label": shape}
