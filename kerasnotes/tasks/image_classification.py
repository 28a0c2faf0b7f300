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
from kerasnotes.data import streams
from kerasnotes.errors import DataError, UsageError
from kerasnotes.tasks.classification import classification_metrics
from kerasnotes.tasks.images import ImageTask

NUM_PLOTTED_EXAMPLES = 6


class ImageClassification(ImageTask):
    """Classifies images; a subclass classifies other examples with channels (clips) by
    naming them: the `data_info` key of one example's channels_last shape, the bytes
    input of `serving_default` and its `decode` / `encode`, the tensor signature."""

    name = "image_classification"
    derived_keys = ("input_shape", "num_classes")
    settings: dict = {"image_size": None, **streams.CACHE_SETTINGS}
    input_kind = "image files (JPEG, PNG, GIF, BMP)"
    shape_key = "image_shape"
    bytes_input = "image_bytes"
    tensor_signature, tensor_input = "serving_images", "images"
    example_range = (0.0, 255.0)  # Values of the test harness's random examples.

    def decode(self, encoded: tf.Tensor, info: dict, data_format: str) -> tf.Tensor:
        """Encoded examples (string `(batch,)`) to float model inputs, in the graph."""
        return image_data.decode_images(encoded, info["image_shape"], data_format)

    def encode(self, example: np.ndarray, info: dict) -> bytes:
        """One example (as the data give it) as `serving_default` takes it."""
        return tf.io.encode_png(example).numpy()

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
            cache=streams.Cache.from_config(config),
        )

    def example_info(self, config=None) -> dict:
        """A stand-in for `data_info` that needs no data: the trainer builds the model
        on it to check the configuration before loading anything (`config`), and the
        test harness builds on it (`None`: small images)."""
        if config is not None:
            streams.Cache.from_config(config)
        return {
            "class_names": ["a", "b", "c"],
            "image_shape": image_data.example_image_shape(config, image_data.expected_image_size),
            "num_examples": {},
            "source": "example",
        }

    def data_info(self, data) -> dict:
        return {
            "class_names": list(data.class_names),
            self.shape_key: list(getattr(data, self.shape_key)),
            "num_examples": data.num_examples,
            "source": data.source,
        }

    def builder_arguments(self, info: dict, config) -> dict:
        return {
            "input_shape": image_data.model_image_shape(
                info[self.shape_key], config["data_format"], self.spatial_rank
            ),
            "num_classes": len(info["class_names"]),
        }

    def confusion_and_examples(
        self, model, data, info: dict, config, run_dir: str, draw, filename: str
    ) -> list[str]:
        """The confusion plot of the test split, and a few held-out examples drawn by
        `draw(examples, titles, path)` into `filename`, titled with their predicted and
        true labels."""
        from kerasnotes import plots

        names = info["class_names"]
        truth, predicted = [], []
        for examples, labels in self.batches(data.test, config, training=False):
            guesses = keras.ops.convert_to_numpy(model(examples, training=False)).argmax(-1)
            truth += [names[i] for i in labels.numpy()]
            predicted += [names[i] for i in guesses]
        shown = [example.numpy() for example, _ in data.test.take(NUM_PLOTTED_EXAMPLES)]
        titles = [f"predicted {p}, true {t}" for p, t in zip(predicted, truth, strict=False)]
        return [
            plots.confusion(
                truth,
                predicted,
                names,
                os.path.join(run_dir, "label_confusion.png"),
                title="label confusion (row-normalised)",
                truth_label="true label",
            ),
            draw(shown, titles[: len(shown)], os.path.join(run_dir, filename)),
        ]

    def batches(
        self, split: tf.data.Dataset, config, info=None, *, training: bool, num_examples=0
    ):
        """Batched `(images, labels)`: float pixels in the model's channel order (the
        loader caches the split where it fits)."""
        data_format = config["data_format"]
        ds = split
        if training:
            ds = ds.shuffle(
                streams.shuffle_buffer(split.element_spec, num_examples),
                seed=config["seed"],
                reshuffle_each_iteration=True,
            )

        def to_model(images, labels):
            examples = tf.cast(images, tf.float32)
            return image_data.to_data_format(examples, data_format, self.spatial_rank), labels

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
        """What `evaluate` measures for a loaded export: its tensor signature's scores."""
        serve = signatures[self.tensor_signature]
        return lambda examples: serve(**{self.tensor_input: examples})["scores"]

    def evaluate(self, predict_scores, data, info: dict, config) -> dict:
        """Held-out accuracy, macro F1, loss and per-class accuracy.

        `predict_scores` maps a batch of images (model order) to class probabilities:
        `model_predictor` for a run, `export_predictor` for an export, so both are
        measured the same way.
        """
        labels, scores = [], []
        for images, batch_labels in self.batches(data.test, config, training=False):
            scores.append(np.asarray(predict_scores(images)))
            labels.append(batch_labels.numpy())
        if not labels:
            raise DataError("The test split is empty: nothing to evaluate the classifier on.")
        return classification_metrics(
            np.concatenate(labels), np.concatenate(scores), info["class_names"]
        )

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
        """`(x, y, sample_weight)` for one training step; examples channels_last."""
        shape = (batch_size, *info[self.shape_key])
        examples = rng.uniform(*self.example_range, size=shape).astype("float32")
        labels = rng.integers(0, len(info["class_names"]), size=batch_size)
        return examples, labels, None

    def example_output_shape(self, info: dict, batch_size: int) -> tuple:
        return (batch_size, len(info["class_names"]))

    def served_and_predicted(self, model, served, x, config) -> tuple:
        """What the export's tensor signature answers, and what the model says here."""
        examples = self.model_input(x, config)
        serve = served.signatures[self.tensor_signature]
        scores = serve(**{self.tensor_input: tf.constant(examples)})["scores"]
        return scores.numpy(), keras.ops.convert_to_numpy(model(examples, training=False))

    # Export -------------------------------------------------------------------------

    def signatures(self, model, info: dict, config) -> dict:
        """Serving functions and their input specs, keyed by signature name:
        `serving_default` on encoded bytes, the tensor signature on decoded examples."""
        data_format = config["data_format"]
        class_names = tf.constant(info["class_names"])

        def outputs(examples):
            scores = tf.cast(model(examples, training=False), tf.float32)
            return {"label": tf.gather(class_names, tf.argmax(scores, axis=-1)), "scores": scores}

        def serving_default(encoded):
            return outputs(self.decode(encoded, info, data_format))

        shape = [
            None,
            *image_data.model_image_shape(info[self.shape_key], data_format, self.spatial_rank),
        ]
        return {
            "serving_default": (
                serving_default,
                [tf.TensorSpec([None], tf.string, name=self.bytes_input)],
            ),
            self.tensor_signature: (
                outputs,
                [tf.TensorSpec(shape, tf.float32, name=self.tensor_input)],
            ),
        }

    def signature_contract(self, info: dict, config) -> dict:
        """The fixed names, dtypes and shapes every export is checked against."""
        num_classes = len(info["class_names"])
        shape = [
            None,
            *image_data.model_image_shape(
                info[self.shape_key], config["data_format"], self.spatial_rank
            ),
        ]
        outputs = {"label": ["string", [None]], "scores": ["float32", [None, num_classes]]}
        return {
            "serving_default": {
                "inputs": {self.bytes_input: ["string", [None]]},
                "outputs": outputs,
            },
            self.tensor_signature: {
                "inputs": {self.tensor_input: ["float32", shape]},
                "outputs": outputs,
            },
        }

    def export_examples(self, model, examples, info: dict, config, count: int = 4) -> list[dict]:
        """Encoded examples and their decoded tensors, and the answers the export must
        give, computed by the Keras model on what the encoded bytes hold."""
        encoded = [self.encode(example.numpy(), info) for example, _ in examples.take(count)]
        model_input = self.decode(tf.constant(encoded), info, config["data_format"]).numpy()
        scores = keras.ops.convert_to_numpy(model(model_input, training=False))
        labels = [info["class_names"][i] for i in scores.argmax(-1)]
        expected = {"label": labels, "scores": scores.tolist()}
        return [
            {
                "signature": "serving_default",
                "inputs": {self.bytes_input: encoded},
                "outputs": expected,
            },
            {
                "signature": self.tensor_signature,
                "inputs": {self.tensor_input: model_input.tolist()},
                "outputs": expected,
            },
        ]

    def predict_export(self, signatures, manifest: dict, inputs: list[str], **options) -> list:
        """Label files with an export; one result dict per file."""
        self._no_options(options)
        serve = signatures["serving_default"]
        results = []
        for path in inputs:
            out = self.serve_file(serve, path, manifest)
            scores = out["scores"].numpy()[0]
            results.append(
                {
                    "input": path,
                    "label": out["label"].numpy()[0].decode(),
                    "score": float(scores.max()),
                }
            )
        return results

    def serve_file(self, serve, path: str, manifest: dict) -> dict:
        """What `serve` (an export's `serving_default`) answers for one input file,
        or a `DataError` naming a bad file."""
        return image_data.serve_image_file(serve, path)

    def _no_options(self, options: dict) -> None:
        if options:
            raise UsageError(
                f"{', '.join(sorted(options))} does not apply to "
                f"{self.name.replace('_', ' ')} exports."
            )


TASK = ImageClassification()
