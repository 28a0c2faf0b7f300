"""Image classification: images in, class label and scores out.

Data: `(uint8 image, int label)` from `kerasnotes.data.images`. Builders receive
`input_shape` (in the model's `data_format` order) and `num_classes`, and return a model
whose output is class probabilities.

Export contract:

| signature | inputs | outputs |
| --- | --- | --- |
| `serving_default` | `image_bytes` string[batch] (JPEG, PNG, GIF, BMP) | `label` string[batch], `scores` float32[batch, classes] |
| `serving_images` | `images` float32[batch, H, W, C] or [batch, C, H, W], pixels 0-255 | the same |
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from kerasnotes.data import images as image_data
from kerasnotes.errors import UsageError
from kerasnotes.tasks.images import ImageTask


class ImageClassification(ImageTask):
    name = "image_classification"
    derived_keys = ("input_shape", "num_classes")
    settings: dict = {}
    input_kind = "image files (JPEG, PNG, GIF, BMP)"

    def datasets_help(self) -> list[str]:
        return [
            "shapes (embedded default), shapes/small (embedded, for quick tries)",
            "tfds names: " + ", ".join(image_data.TFDS_EXAMPLES) + " (downloaded once)",
            "a directory with one sub-folder of images per class",
        ]

    # Data ---------------------------------------------------------------------------

    def load_data(self, config):
        return image_data.load(
            config["dataset"],
            image_size=config["image_size"],
            skip_bad_records=config["skip_bad_records"],
        )

    def example_info(self, config=None) -> dict:
        """A stand-in for `data_info` that needs no data: the trainer builds the model
        on it to check the configuration before loading anything (`config`), and the
        test harness builds on it (`None`: small images)."""
        return {
            "class_names": ["a", "b", "c"],
            "image_shape": image_data.example_image_shape(config, image_data.expected_image_size),
            "num_examples": {},
            "source": "example",
        }

    def data_info(self, data) -> dict:
        return {
            "class_names": list(data.class_names),
            "image_shape": list(data.image_shape),
            "num_examples": data.num_examples,
            "source": data.source,
        }

    def builder_arguments(self, info: dict, config) -> dict:
        return {
            "input_shape": image_data.model_image_shape(
                info["image_shape"], config["data_format"]
            ),
            "num_classes": len(info["class_names"]),
        }

    def batches(
        self, split: tf.data.Dataset, config, info=None, *, training: bool, num_examples=0
    ):
        """Batched `(images, labels)`: float pixels in the model's channel order."""
        data_format = config["data_format"]
        ds = split.cache()
        if training:
            ds = ds.shuffle(
                max(1, min(num_examples or 10_000, 10_000)),
                seed=config["seed"],
                reshuffle_each_iteration=True,
            )

        def to_model(images, labels):
            images = tf.cast(images, tf.float32)
            if data_format == "channels_first":
                images = tf.transpose(images, [0, 3, 1, 2])
            return images, labels

        ds = ds.batch(config["batch_size"]).map(to_model, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    # Training and evaluation -------------------------------------------------------

    def compile(self, model, optimizer) -> None:
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )

    def model_predictor(self, model, info=None, config=None):
        """What `evaluate` measures for a Keras model: images to class probabilities."""
        return lambda images: model(images, training=False)

    def export_predictor(self, signatures):
        """What `evaluate` measures for a loaded export: its `serving_images` scores."""
        return lambda images: signatures["serving_images"](images=images)["scores"]

    def evaluate(self, predict_scores, data, info: dict, config) -> dict:
        """Held-out accuracy, loss and per-class accuracy.

        `predict_scores` maps a batch of images (model order) to class probabilities:
        `model_predictor` for a run, `export_predictor` for an export, so both are
        measured the same way.
        """
        labels, scores = [], []
        for images, batch_labels in self.batches(data.test, config, training=False):
            scores.append(np.asarray(predict_scores(images)))
            labels.append(batch_labels.numpy())
        labels, scores = np.concatenate(labels), np.concatenate(scores)
        predictions = scores.argmax(-1)
        loss = keras.losses.sparse_categorical_crossentropy(labels, scores)
        per_class = {
            name: float(np.mean(predictions[labels == i] == i)) if np.any(labels == i) else None
            for i, name in enumerate(info["class_names"])
        }
        return {
            "accuracy": float(np.mean(predictions == labels)),
            "loss": float(np.mean(keras.ops.convert_to_numpy(loss))),
            "num_examples": int(len(labels)),
            "per_class_accuracy": per_class,
        }

    def plots(self, model, data, info: dict, config, run_dir: str) -> list[str]:
        """Filters of the first convolution and its feature maps for a test image."""
        from kerasnotes import plots

        conv = next(
            (layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)), None
        )
        if conv is None:
            return []
        image, _ = next(iter(data.test.take(1)))
        batch, _ = next(iter(self.batches(data.test.take(1), config, training=False)))
        feature_maps = keras.Model(model.inputs, conv.output)(batch, training=False)
        path = os.path.join(run_dir, "filters_and_feature_maps.png")
        plots.filters_and_feature_maps(
            keras.ops.convert_to_numpy(conv.kernel),
            image.numpy(),
            keras.ops.convert_to_numpy(feature_maps)[0],
            f"{model.name}: {conv.name}",
            path,
        )
        return [path]

    # Test harness -------------------------------------------------------------------

    def example_batch(self, info: dict, rng, batch_size: int = 4) -> tuple:
        """`(x, y, sample_weight)` for one training step; images channels_last."""
        images = rng.uniform(0, 255, size=(batch_size, *info["image_shape"])).astype("float32")
        labels = rng.integers(0, len(info["class_names"]), size=batch_size)
        return images, labels, None

    def example_output_shape(self, info: dict, batch_size: int) -> tuple:
        return (batch_size, len(info["class_names"]))

    def served_and_predicted(self, model, served, x, config) -> tuple:
        """What the export's tensor signature answers, and what the model says here."""
        images = self.model_input(x, config)
        scores = served.signatures["serving_images"](images=tf.constant(images))["scores"]
        return scores.numpy(), keras.ops.convert_to_numpy(model(images, training=False))

    # Export -------------------------------------------------------------------------

    def signatures(self, model, info: dict, config) -> dict:
        """Serving functions and their input specs, keyed by signature name."""
        data_format = config["data_format"]
        class_names = tf.constant(info["class_names"])

        def outputs(images):
            scores = tf.cast(model(images, training=False), tf.float32)
            return {"label": tf.gather(class_names, tf.argmax(scores, axis=-1)), "scores": scores}

        def serving_default(image_bytes):
            return outputs(image_data.decode_images(image_bytes, info["image_shape"], data_format))

        def serving_images(images):
            return outputs(images)

        images_shape = [None, *image_data.model_image_shape(info["image_shape"], data_format)]
        return {
            "serving_default": (
                serving_default,
                [tf.TensorSpec([None], tf.string, name="image_bytes")],
            ),
            "serving_images": (
                serving_images,
                [tf.TensorSpec(images_shape, tf.float32, name="images")],
            ),
        }

    def signature_contract(self, info: dict, config) -> dict:
        """The fixed names, dtypes and shapes every export is checked against."""
        num_classes = len(info["class_names"])
        images_shape = [
            None,
            *image_data.model_image_shape(info["image_shape"], config["data_format"]),
        ]
        outputs = {"label": ["string", [None]], "scores": ["float32", [None, num_classes]]}
        return {
            "serving_default": {"inputs": {"image_bytes": ["string", [None]]}, "outputs": outputs},
            "serving_images": {
                "inputs": {"images": ["float32", images_shape]},
                "outputs": outputs,
            },
        }

    def export_examples(self, model, examples, info: dict, config, count: int = 4) -> list[dict]:
        """Inputs and the answers the export must give, computed by the Keras model."""
        images = np.stack([image.numpy() for image, _ in examples.take(count)])
        model_input = images.astype(np.float32)
        if config["data_format"] == "channels_first":
            model_input = model_input.transpose(0, 3, 1, 2)
        scores = keras.ops.convert_to_numpy(model(model_input, training=False))
        labels = [info["class_names"][i] for i in scores.argmax(-1)]
        expected = {"label": labels, "scores": scores.tolist()}
        png = [tf.io.encode_png(image).numpy() for image in images]
        return [
            {"signature": "serving_default", "inputs": {"image_bytes": png}, "outputs": expected},
            {
                "signature": "serving_images",
                "inputs": {"images": model_input.tolist()},
                "outputs": expected,
            },
        ]

    def predict_export(self, signatures, manifest: dict, inputs: list[str], **options) -> list:
        """Label image files with an export; one result dict per file."""
        if options:
            raise UsageError(
                f"{', '.join(sorted(options))} does not apply to image classification exports."
            )
        serve = signatures["serving_default"]
        results = []
        for path in inputs:
            out = image_data.serve_image_file(serve, path)
            scores = out["scores"].numpy()[0]
            results.append(
                {
                    "input": path,
                    "label": out["label"].numpy()[0].decode(),
                    "score": float(scores.max()),
                }
            )
        return results


TASK = ImageClassification()
