"""Image captioning: images in, caption strings out.

Data: `(uint8 image, captions string[n])` per image from `kerasnotes.data.captions`.
The vocabulary is built from the training captions with a Keras `TextVectorization`
layer (lower case, punctuation stripped; the `vocabulary_size` most frequent words,
others become `[UNK]`). Builders receive `input_shape`, `vocabulary` and `max_length`
and return a model with `call({"images", "token_ids"})` (next-token logits for teacher
forcing) and `generate(images, beam_width)` (in-graph decoding), such as
`kerasnotes.models.captioner.Captioner`.

Training feeds `(x, y, sample_weight)` to plain `fit()`: one of each image's captions,
drawn afresh every epoch, as `[start] words` inputs, `words [end]` targets and the
padding mask as weights.

Evaluation: corpus BLEU-1..4 against all reference captions and CIDEr-D, computed by
`pycocoevalcap` (the COCO caption evaluation code), for beam search and greedy decoding.

Export contract:

| signature | inputs | outputs |
| --- | --- | --- |
| `serving_default` | `image_bytes` string[batch] (JPEG, PNG, GIF, BMP) | `caption` string[batch] (beam search) |
| `serving_greedy` | `image_bytes` string[batch] | `caption` string[batch] (greedy decoding) |
| `serving_images` | `images` float32[batch, H, W, C] or [batch, C, H, W], pixels 0-255 | `caption` string[batch] (beam search) |
"""

from __future__ import annotations

import os
import re
import sys

import keras
import numpy as np
import tensorflow as tf

from kerasnotes.data import captions as caption_data
from kerasnotes.data import streams
from kerasnotes.data.images import (
    decode_images,
    example_image_shape,
    model_image_shape,
    serve_image_file,
    to_data_format,
)
from kerasnotes.errors import DataError, UsageError
from kerasnotes.tasks.images import ImageTask

# Keras TextVectorization's default standardization, for metrics on raw references.
PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
MAX_TEXT_LENGTH = 40  # Words; longer training captions (and questions) are cut.
NUM_SAMPLES = 5  # Sample captions kept in the metrics.
NUM_ATTENTION_PLOTS = 4


def words(text: str) -> list[str]:
    """The words of a caption as the tokenizer sees them (lower case, no punctuation)."""
    return PUNCTUATION.sub("", text.lower()).split()


def caption_scores(references: list[list[str]], captions: list[str]) -> dict:
    """Corpus BLEU-1..4 and CIDEr-D of `captions` against all of their `references`."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    gts = {i: [" ".join(words(r)) for r in refs] for i, refs in enumerate(references)}
    res = {i: [" ".join(words(c))] for i, c in enumerate(captions)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    return {**{f"bleu_{n + 1}": float(b) for n, b in enumerate(bleu)}, "cider": float(cider)}


class Captioning(ImageTask):
    name = "captioning"
    derived_keys = ("input_shape", "vocabulary", "max_length")
    settings = {"image_size": None, "vocabulary_size": 10_000, **streams.CACHE_SETTINGS}
    input_kind = "image files (JPEG, PNG, GIF, BMP)"

    def datasets_help(self) -> list[str]:
        return [
            "shapes_captions (embedded default), shapes_captions/small (embedded, quick)",
            "coco_captions (tfds, downloaded once)",
            "a COCO caption JSON file (images beside it or in images/), or its directory",
        ]

    # Data ---------------------------------------------------------------------------

    def load_data(self, config):
        size = config["vocabulary_size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise DataError(f"Invalid vocabulary_size {size!r}: must be a positive integer.")
        data = caption_data.load(
            config["dataset"],
            image_size=config["image_size"],
            skip_bad_records=config["skip_bad_records"],
            cache=streams.Cache.from_config(config),
        )
        from kerasnotes.models.captioner import RESERVED

        data.vocabulary, data.max_length = word_vocabulary(
            data.train_captions(), size, RESERVED, "captions"
        )
        return data

    def example_info(self, config=None) -> dict:
        """A stand-in for `data_info` that needs no data (see `ImageClassification`)."""
        if config is not None:
            streams.Cache.from_config(config)
        return {
            "vocabulary": [
                "",
                "[UNK]",
                "[start]",
                "[end]",
                "a",
                "red",
                "blue",
                "circle",
                "square",
            ],
            "max_length": 5,
            "image_shape": example_image_shape(config, caption_data.expected_image_size),
            "num_examples": {},
            "source": "example",
        }

    def data_info(self, data) -> dict:
        return {
            "vocabulary": data.vocabulary,
            "max_length": data.max_length,
            "image_shape": list(data.image_shape),
            "num_examples": data.num_examples,
            "source": data.source,
        }

    def builder_arguments(self, info: dict, config) -> dict:
        return {
            "input_shape": model_image_shape(info["image_shape"], config["data_format"]),
            "vocabulary": info["vocabulary"],
            "max_length": info["max_length"],
        }

    def batches(self, split: tf.data.Dataset, config, info, *, training: bool, num_examples=0):
        """Batched `(x, y, sample_weight)` for teacher forcing, one caption per image.

        Training rotates through each image's captions, one per epoch from a random
        starting caption, so an image with k captions has used all of them after k
        epochs; validation uses each image's first caption.
        """
        from kerasnotes.models.captioner import make_tokenizer, tokenize

        tokenizer, max_length = make_tokenizer(info["vocabulary"]), info["max_length"]
        data_format, seed = config["data_format"], config["seed"]
        ds = split.map(
            lambda image, captions: (image, tokenize(tokenizer, captions, max_length)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        if training:
            # Each image's caption ids and a fixed random number, tokenized once and
            # kept in memory (small); the images stay where the loader keeps them.
            captions = tf.data.Dataset.zip(
                ds.map(lambda image, ids: ids), tf.data.Dataset.random(seed=seed)
            ).cache()
            images = split.map(lambda image, captions: image)
            # Counts the passes over the data: each new iterator (epoch) adds one.
            epoch = tf.Variable(-1, dtype=tf.int64, trainable=False)

            def one_epoch(e):
                def caption_of_epoch(image, ids_and_start):
                    ids, start = ids_and_start
                    return image, tf.gather(ids, (start + e) % tf.shape(ids, tf.int64)[0])

                return tf.data.Dataset.zip(images, captions).map(
                    caption_of_epoch, num_parallel_calls=tf.data.AUTOTUNE
                )

            ds = tf.data.Dataset.from_tensors(0).map(lambda _: epoch.assign_add(1))
            ds = ds.flat_map(one_epoch)
            if num_examples:  # flat_map hides the size that fit() counts steps by.
                ds = ds.apply(tf.data.experimental.assert_cardinality(num_examples))
            ds = ds.shuffle(
                streams.shuffle_buffer(ds.element_spec, num_examples),
                seed=seed,
                reshuffle_each_iteration=True,
            )
        else:
            ds = ds.map(lambda image, ids: (image, ids[0]))
        # Full batches in training keep one traced shape.
        full = training and num_examples >= config["batch_size"]
        ds = ds.batch(config["batch_size"], drop_remainder=full)

        def to_model(images, ids):
            images = to_data_format(tf.cast(images, tf.float32), data_format)
            targets = ids[:, 1:]
            weights = tf.cast(targets != 0, tf.float32)
            return {"images": images, "token_ids": ids[:, :-1]}, targets, weights

        return ds.map(to_model, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def test_images(self, data, config):
        """Batches of (images in model order, [reference captions per image])."""
        for images, captions in data.test.padded_batch(config["batch_size"]).as_numpy_iterator():
            images = to_data_format(images.astype(np.float32), config["data_format"])
            yield images, [[c.decode("utf-8") for c in row if c] for row in captions]

    # Training and evaluation -------------------------------------------------------

    def compile(self, model, optimizer) -> None:
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )

    def model_predictor(self, model, info=None, config=None):
        """Captions from a Keras captioner: `{"beam": fn, "greedy": fn}`."""

        def decoder(beam_width):
            @tf.function(reduce_retracing=True)
            def caption(images):
                return model.caption(images, beam_width=beam_width)

            return caption

        return {"beam": decoder(None), "greedy": decoder(1)}

    def export_predictor(self, signatures):
        """Captions from a loaded export's `serving_images` signature (beam search)."""
        return {"beam": lambda images: signatures["serving_images"](images=images)["caption"]}

    def evaluate(self, predictors, data, info: dict, config) -> dict:
        """BLEU-1..4 and CIDEr on the held-out split, beam search and greedy.

        `predictors` map a batch of images (model order) to caption strings:
        `model_predictor` for a run, `export_predictor` for an export.
        """
        references, generated = [], {name: [] for name in predictors}
        progress = keras.utils.Progbar(
            data.num_examples.get("test") or None,
            unit_name="image",
            verbose=1 if sys.stderr.isatty() else 0,
        )
        for images, refs in self.test_images(data, config):
            references += refs
            for name, predict in predictors.items():
                generated[name] += [c.decode("utf-8") for c in np.asarray(predict(images))]
            progress.add(len(refs))
        if not references:
            raise DataError("The test split is empty: nothing to evaluate the captioner on.")
        metrics = caption_scores(references, generated["beam"])
        if "greedy" in generated:
            metrics["greedy"] = caption_scores(references, generated["greedy"])
        metrics["num_examples"] = len(references)
        metrics["samples"] = [
            {"caption": caption, "references": refs}
            for caption, refs in zip(generated["beam"][:NUM_SAMPLES], references, strict=False)
        ]
        return metrics

    def plots(self, model, data, info: dict, config, run_dir: str) -> list[str]:
        """Where the model looked for each word, for a few held-out images."""
        from kerasnotes import plots

        images, _ = next(self.test_images(data, config))
        images = images[:NUM_ATTENTION_PLOTS]
        out = model.generate(tf.constant(images))
        grid = tuple(model.encoder.get_layer("regions").input.shape[1:3])
        paths = []
        for i, image in enumerate(images):
            if config["data_format"] == "channels_first":
                image = image.transpose(1, 2, 0)
            length = int(out["lengths"][i])
            tokens = [info["vocabulary"][t] for t in out["token_ids"][i][:length].numpy()]
            path = os.path.join(run_dir, f"attention_{i + 1}.png")
            plots.attention_maps(
                image.astype(np.uint8), tokens, out["attention"][i][:length].numpy(), grid, path
            )
            paths.append(path)
        return paths

    # Test harness -------------------------------------------------------------------

    def example_batch(self, info: dict, rng, batch_size: int = 4) -> tuple:
        """`(x, y, sample_weight)` for one teacher-forced step; images channels_last."""
        images = rng.uniform(0, 255, size=(batch_size, *info["image_shape"])).astype("float32")
        steps = info["max_length"] + 1
        ids = rng.integers(4, len(info["vocabulary"]), size=(batch_size, steps + 1))
        ids[:, 0] = 2  # [start]
        weights = np.ones((batch_size, steps), "float32")
        weights[:, -2:] = 0  # Padding.
        return {"images": images, "token_ids": ids[:, :-1]}, ids[:, 1:], weights

    def example_output_shape(self, info: dict, batch_size: int) -> tuple:
        return (batch_size, info["max_length"] + 1, len(info["vocabulary"]))

    def served_and_predicted(self, model, served, x, config) -> tuple:
        """What the export's tensor signature answers, and what the model says here."""
        images = tf.constant(self.images_in(x["images"], config))
        captions = served.signatures["serving_images"](images=images)["caption"]
        return captions.numpy(), model.caption(images).numpy()

    # Export -------------------------------------------------------------------------

    def signatures(self, model, info: dict, config) -> dict:
        """Serving functions and their input specs, keyed by signature name."""
        data_format = config["data_format"]

        def from_bytes(image_bytes):
            return decode_images(image_bytes, info["image_shape"], data_format)

        def serving_default(image_bytes):
            return {"caption": model.caption(from_bytes(image_bytes))}

        def serving_greedy(image_bytes):
            return {"caption": model.caption(from_bytes(image_bytes), beam_width=1)}

        def serving_images(images):
            return {"caption": model.caption(images)}

        bytes_spec = [tf.TensorSpec([None], tf.string, name="image_bytes")]
        images_shape = [None, *model_image_shape(info["image_shape"], data_format)]
        return {
            "serving_default": (serving_default, bytes_spec),
            "serving_greedy": (serving_greedy, bytes_spec),
            "serving_images": (
                serving_images,
                [tf.TensorSpec(images_shape, tf.float32, name="images")],
            ),
        }

    def signature_contract(self, info: dict, config) -> dict:
        """The fixed names, dtypes and shapes every export is checked against."""
        images_shape = [None, *model_image_shape(info["image_shape"], config["data_format"])]
        outputs = {"caption": ["string", [None]]}
        from_bytes = {"inputs": {"image_bytes": ["string", [None]]}, "outputs": outputs}
        return {
            "serving_default": from_bytes,
            "serving_greedy": from_bytes,
            "serving_images": {
                "inputs": {"images": ["float32", images_shape]},
                "outputs": outputs,
            },
        }

    def export_examples(self, model, examples, info: dict, config, count: int = 4) -> list[dict]:
        """Inputs and the captions the export must give, computed by the Keras model."""
        images = np.stack([image for image, _ in examples.take(count).as_numpy_iterator()])
        model_input = to_data_format(images.astype(np.float32), config["data_format"])
        beam = [c.decode() for c in model.caption(tf.constant(model_input)).numpy()]
        greedy = [c.decode() for c in model.caption(tf.constant(model_input), 1).numpy()]
        png = [tf.io.encode_png(image).numpy() for image in images]
        return [
            {
                "signature": "serving_default",
                "inputs": {"image_bytes": png},
                "outputs": {"caption": beam},
            },
            {
                "signature": "serving_greedy",
                "inputs": {"image_bytes": png},
                "outputs": {"caption": greedy},
            },
            {
                "signature": "serving_images",
                "inputs": {"images": model_input.tolist()},
                "outputs": {"caption": beam},
            },
        ]

    def predict_export(self, signatures, manifest: dict, inputs: list[str], **options) -> list:
        """Caption image files with an export; one result dict per file.

        Options: `greedy=True` decodes greedily instead of with beam search.
        """
        unknown = sorted(set(options) - {"greedy"})
        if unknown:
            raise UsageError(f"{', '.join(unknown)} does not apply to captioning exports.")
        serve = signatures["serving_greedy" if options.get("greedy") else "serving_default"]
        return [
            {
                "input": path,
                "caption": serve_image_file(serve, path)["caption"].numpy()[0].decode(),
            }
            for path in inputs
        ]


def word_vocabulary(texts: list[str], size: int, reserved, what: str) -> tuple[list[str], int]:
    """`(vocabulary, length)`: the `reserved` tokens and the `size` most frequent words of
    `texts` (as the Keras tokenizer splits them), and the longest text in words
    (at most `MAX_TEXT_LENGTH`)."""
    if not texts:
        raise DataError(f"The training split has no {what}.")
    adapter = keras.layers.TextVectorization(max_tokens=size + 2)
    adapter.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(1024))
    learned = [w for w in adapter.get_vocabulary() if w not in reserved]
    if not learned:
        raise DataError(f"The training {what} hold no words.")
    longest = max(len(words(t)) for t in texts)
    return [*reserved, *map(str, learned)], min(max(1, longest), MAX_TEXT_LENGTH)


TASK = Captioning()
