"""Visual question answering: an image and a question in, an answer string out.

Data: `(uint8 image, question, answers string[n], question type)` per question from
`kerasnotes.data.vqa`. The question vocabulary is built from the training questions
with a Keras `TextVectorization` layer; the answer vocabulary is the
`answer_vocabulary_size` most frequent training answers. Training questions none of
whose answers is in it are counted, reported and left out of training (evaluation
keeps them, and they count as wrong). Builders receive `input_shape`, `vocabulary`,
`answers` and `max_length` and return a model with `call({"images", "question_ids"})`
(answer logits) and `answer(images, questions)` (strings, in the graph), such as
`kerasnotes.models.vqa.VqaModel`.

Training targets are the VQA soft scores of the answers (`min(humans who gave it / 3,
1)`), normalised to sum to one: with one answer per question, the one-hot answer.

Evaluation: the VQA accuracy (`vqa_accuracy`), overall and by question type.

Export contract:

| signature | inputs | outputs |
| --- | --- | --- |
| `serving_default` | `image_bytes` string[batch] (JPEG, PNG, GIF, BMP), `question` string[batch] | `answer` string[batch], `top_answers` string[batch, k], `top_scores` float32[batch, k] |
| `serving_images` | `images` float32[batch, H, W, C] or [batch, C, H, W] (pixels 0-255), `question` string[batch] | the same |
"""

from __future__ import annotations

import collections
import os
import sys

import keras
import numpy as np
import tensorflow as tf

from kerasnotes.data import streams
from kerasnotes.data import vqa as vqa_data
from kerasnotes.data.images import (
    decode_images,
    example_image_shape,
    model_image_shape,
    serve_image_file,
    to_data_format,
)
from kerasnotes.errors import DataError, UsageError
from kerasnotes.tasks.captioning import PUNCTUATION, word_vocabulary, words
from kerasnotes.tasks.images import ImageTask

NUM_SAMPLES = 5
NUM_ATTENTION_PLOTS = 4
CONFUSION_ANSWERS = 20  # Answers shown in the confusion plot (the most frequent).
UNKNOWN_WORDS = (
    "Questions are lower-cased and stripped of punctuation in the graph; words outside "
    "the training vocabulary become [UNK], and every question starts with [start], so "
    "an empty question or one of unknown words still gets an answer."
)


def normalize_answer(answer: str) -> str:
    """An answer as compared: lower case, punctuation stripped, single spaces."""
    return " ".join(words(answer))


def vqa_accuracy(predicted: str, answers: list[str]) -> float:
    """The VQA accuracy of one predicted answer: `min(matching answers / 3, 1)`.

    An answer given by three or more of the humans is fully right, by one or two
    partly. With fewer than three human answers, all of them are needed for full
    credit (`min(matches / min(3, n), 1)`), so with one answer it is an exact match.
    (The official VQA script also averages this over the ten subsets of nine humans.)
    """
    if not answers:
        raise ValueError("A question needs at least one human answer to be scored.")
    predicted = normalize_answer(predicted)
    matches = sum(normalize_answer(a) == predicted for a in answers)
    return min(matches / min(3, len(answers)), 1.0)


class Vqa(ImageTask):
    name = "vqa"
    derived_keys = ("input_shape", "vocabulary", "answers", "max_length", "scene_attributes")
    settings = {
        "image_size": None,
        "vocabulary_size": 10_000,
        "answer_vocabulary_size": 1000,
        **streams.CACHE_SETTINGS,
    }
    input_kind = "image files (JPEG, PNG, GIF, BMP) with --question"

    def datasets_help(self) -> list[str]:
        return [
            "shapes_vqa (embedded default), shapes_vqa/small (embedded, quick)",
            "clevr (tfds, downloaded once)",
            "a VQA v2 directory: *questions*.json, *annotations*.json and the images",
        ]

    # Data ---------------------------------------------------------------------------

    def load_data(self, config):
        from kerasnotes.models.vqa import RESERVED

        for key in ("vocabulary_size", "answer_vocabulary_size"):
            size = config[key]
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                raise DataError(f"Invalid {key} {size!r}: must be a positive integer.")
        data = vqa_data.load(
            config["dataset"],
            image_size=config["image_size"],
            skip_bad_records=config["skip_bad_records"],
            cache=streams.Cache.from_config(config),
        )
        questions, answers = data.train_text()
        if not questions:
            raise DataError("The training split has no questions.")
        data.vocabulary, data.max_length = word_vocabulary(
            questions, config["vocabulary_size"], RESERVED, "questions"
        )
        counts = collections.Counter(normalize_answer(a) for human in answers for a in human)
        counts.pop("", None)
        if len(counts) < 2:
            raise DataError(
                f"The training answers hold {len(counts)} distinct answer(s); a VQA model "
                "needs at least 2."
            )
        kept = [a for a, _ in counts.most_common(config["answer_vocabulary_size"])]
        known = set(kept)
        uncovered = sum(not any(normalize_answer(a) in known for a in human) for human in answers)
        data.answers = kept
        data.answer_coverage = {
            "distinct_answers": len(counts),
            "answer_vocabulary": len(kept),
            "training_questions": len(answers),
            "training_questions_without_known_answer": uncovered,
        }
        if uncovered:
            print(
                f"{uncovered} of {len(answers)} training questions have no answer among the "
                f"{len(kept)} most frequent of {len(counts)}; they are left out of training "
                "(raise answer_vocabulary_size to keep more).",
                file=sys.stderr,
            )
        if not data.num_examples.get("train"):
            data.num_examples["train"] = len(questions)
        return data

    def example_info(self, config=None) -> dict:
        """A stand-in for `data_info` that needs no data (see `ImageClassification`)."""
        if config is not None:
            streams.Cache.from_config(config)
        return {
            "vocabulary": ["", "[UNK]", "[start]", "what", "colour", "is", "the", "circle"],
            "answers": ["red", "blue", "yes", "no"],
            "max_length": 5,
            "image_shape": example_image_shape(config, vqa_data.expected_image_size),
            "num_examples": {},
            "source": "example",
        }

    def data_info(self, data) -> dict:
        return {
            "vocabulary": data.vocabulary,
            "answers": data.answers,
            "max_length": data.max_length,
            "image_shape": list(data.image_shape),
            "num_examples": data.num_examples,
            "source": data.source,
            "answer_coverage": data.answer_coverage,
            "unknown_words": UNKNOWN_WORDS,
            "scene_attributes": data.scene_attributes,
            "questions_per_image": data.questions_per_image,
        }

    def builder_arguments(self, info: dict, config) -> dict:
        return {
            "input_shape": model_image_shape(info["image_shape"], config["data_format"]),
            "vocabulary": info["vocabulary"],
            "answers": info["answers"],
            "max_length": info["max_length"],
            "scene_attributes": {
                name: len(classes) for name, classes in info.get("scene_attributes", {}).items()
            },
        }

    def batches(self, split: tf.data.Dataset, config, info, *, training: bool, num_examples=0):
        """Batched `(x, y)`: images and question ids, soft answer scores as targets.

        A batch holds each distinct image once, with `x["image_index"]`, the row of
        each question's image (see `VqaModel`), unless a distribution strategy
        (`config["strategy"]`) splits the batches. Questions without any answer in the
        answer vocabulary are left out. Where the data has scenes, `x["scene"]` holds
        their objects (one row per image) for the scene loss, padded with ids of -1.
        """
        from kerasnotes.models.captioner import make_tokenizer
        from kerasnotes.models.vqa import tokenize

        tokenizer, max_length = make_tokenizer(info["vocabulary"]), info["max_length"]
        data_format, seed = config["data_format"], config["seed"]
        answer_ids = keras.layers.StringLookup(
            vocabulary=info["answers"], num_oov_indices=1, output_mode="int"
        )
        num_answers = len(info["answers"])

        def prepare(image, question, answers, kind, *scene):
            ids = tokenize(tokenizer, question[None], max_length)[0]
            normalized = tf.strings.regex_replace(
                tf.strings.lower(answers), PUNCTUATION.pattern, ""
            )
            normalized = tf.strings.strip(tf.strings.regex_replace(normalized, r"\s+", " "))
            # Each human answer adds 1 / min(3, n) to its class, capped at 1 (the VQA
            # score); out-of-vocabulary answers (id 0) are dropped.
            per_answer = 1.0 / tf.cast(tf.minimum(3, tf.size(answers)), tf.float32)
            index = answer_ids(normalized) - 1
            known = index >= 0
            scores = tf.math.unsorted_segment_sum(
                tf.fill(tf.shape(index), per_answer),
                tf.where(known, index, num_answers),
                num_answers + 1,
            )[:num_answers]
            scores = tf.minimum(scores, 1.0)
            x = {"images": image, "question_ids": ids}
            if scene:
                x["scene"] = scene[0]
            return x, scores

        # The images come from where the loader keeps them (each image once); the
        # questions and answer scores are prepared again every epoch.
        ds = split.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.filter(lambda x, scores: tf.reduce_sum(scores) > 0)
        # Scenes have different numbers of objects: pad them with ids of -1.
        padding = tf.nest.map_structure(lambda s: tf.zeros([], s.dtype), ds.element_spec)
        if "scene" in padding[0]:
            padding[0]["scene"] = tf.nest.map_structure(
                lambda s: tf.constant(-1, s.dtype), ds.element_spec[0]["scene"]
            )
        if training:
            coverage = info["answer_coverage"]
            kept = (
                coverage["training_questions"]
                - coverage["training_questions_without_known_answer"]
            )
            # Shuffled in blocks of consecutive questions, which the data lists image by
            # image, so that an image's questions stay in one batch and `to_model`
            # encodes the image once for all of them.
            block = max(1, int(info.get("questions_per_image", 1)))
            if block > 1:
                ds = ds.padded_batch(block, padding_values=padding)
            ds = ds.shuffle(
                streams.shuffle_buffer(ds.element_spec, num_examples, most=30_000) // block or 1,
                seed=seed,
                reshuffle_each_iteration=True,
            )
            if block > 1:
                ds = ds.unbatch()
        else:
            # Counted once: Keras warns about data of unknown length when it runs out.
            kept = int(ds.reduce(0, lambda count, _: count + 1))
        ds = ds.apply(tf.data.experimental.assert_cardinality(kept))  # Hidden by filter().
        ds = ds.padded_batch(config["batch_size"], padding_values=padding)

        # A distribution strategy splits every input along its first axis, images and
        # questions alike: each image once only where one replica takes whole batches.
        once = config.get("strategy", "default") == "default"

        def to_model(x, scores):
            pixels = x["images"]
            if once:
                # Each distinct image once, and for every question the row of its image.
                rows = tf.reshape(pixels, [tf.shape(pixels)[0], -1])
                _, image_index = tf.raw_ops.UniqueV2(x=rows, axis=[0])
                first = tf.math.unsorted_segment_min(
                    tf.range(tf.size(image_index)), image_index, tf.reduce_max(image_index) + 1
                )
                pixels = tf.gather(pixels, first)
                x = {**x, "image_index": image_index}
                if "scene" in x:
                    x["scene"] = tf.nest.map_structure(lambda t: tf.gather(t, first), x["scene"])
            images = to_data_format(tf.cast(pixels, tf.float32), data_format)
            targets = scores / tf.reduce_sum(scores, axis=-1, keepdims=True)
            return {**x, "images": images}, targets

        ds = ds.map(to_model, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
        if training:
            # Without tf.data's autotuning model: with it, releasing the training
            # iterator at the end of fit() waited 5-27 s in 3 of 6 measured runs; in
            # none of 6 without it, at the same epoch times.
            options = tf.data.Options()
            options.autotune.enabled = False
            ds = ds.with_options(options)
        return ds

    def test_examples(self, data, config):
        """Batches of (images in model order, questions, [answers per question], types)."""
        batches = data.test.padded_batch(config["batch_size"]).as_numpy_iterator()
        for images, questions, answers, kinds, *_ in batches:
            images = to_data_format(images.astype(np.float32), config["data_format"])
            yield (
                images,
                [q.decode("utf-8") for q in questions],
                [[a.decode("utf-8") for a in row if a] for row in answers],
                [k.decode("utf-8") for k in kinds],
            )

    # Training and evaluation -------------------------------------------------------

    def compile(self, model, optimizer) -> None:
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.CategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        )

    def model_predictor(self, model, info=None, config=None):
        """Answers from a Keras VQA model: `fn(images, questions) -> answer strings`."""

        @tf.function(reduce_retracing=True)
        def answer(images, questions):
            return model.answer(images, questions)["answer"]

        return answer

    def export_predictor(self, signatures):
        """Answers from a loaded export's `serving_images` signature."""
        serve = signatures["serving_images"]
        return lambda images, questions: serve(images=images, question=questions)["answer"]

    def evaluate(self, predict, data, info: dict, config) -> dict:
        """VQA accuracy on the held-out split, overall and by question type."""
        scores = collections.defaultdict(list)
        samples = []
        progress = keras.utils.Progbar(
            data.num_examples.get("test") or None,
            unit_name="question",
            verbose=1 if sys.stderr.isatty() else 0,
        )
        for images, questions, answers, kinds in self.test_examples(data, config):
            predicted = [
                a.decode("utf-8")
                for a in np.asarray(predict(tf.constant(images), tf.constant(questions)))
            ]
            for question, guess, human, kind in zip(
                questions, predicted, answers, kinds, strict=True
            ):
                scores[kind].append(vqa_accuracy(guess, human))
                if len(samples) < NUM_SAMPLES:
                    samples.append({"question": question, "answer": guess, "references": human})
            progress.add(len(questions))
        if not scores:
            raise DataError("The test split is empty: nothing to evaluate the VQA model on.")
        every = [s for kind_scores in scores.values() for s in kind_scores]
        return {
            "vqa_accuracy": float(np.mean(every)),
            "vqa_accuracy_by_type": {k: float(np.mean(v)) for k, v in sorted(scores.items())},
            "num_examples": len(every),
            "samples": samples,
        }

    def plots(self, model, data, info: dict, config, run_dir: str) -> list[str]:
        """Where the model looked for a few held-out questions, and an answer confusion plot."""
        from kerasnotes import plots

        paths = []
        truth, guesses = [], []
        for n, (images, questions, answers, _) in enumerate(self.test_examples(data, config)):
            out = model.answer(tf.constant(images), tf.constant(questions))
            predicted = [a.decode("utf-8") for a in out["answer"].numpy()]
            truth += [
                collections.Counter(map(normalize_answer, h)).most_common(1)[0][0] for h in answers
            ]
            guesses += predicted
            if n == 0 and model.use_attention:
                for i in range(min(NUM_ATTENTION_PLOTS, len(questions))):
                    image = images[i]
                    if config["data_format"] == "channels_first":
                        image = image.transpose(1, 2, 0)
                    path = os.path.join(run_dir, f"attention_{i + 1}.png")
                    plots.attention_maps(
                        image.astype(np.uint8),
                        [predicted[i]],
                        out["attention"][i : i + 1].numpy(),
                        model.grid,
                        path,
                        title=f"{questions[i]} {predicted[i]}",
                    )
                    paths.append(path)
        common = [a for a, _ in collections.Counter(truth).most_common(CONFUSION_ANSWERS)]
        paths.append(
            plots.confusion(truth, guesses, common, os.path.join(run_dir, "answer_confusion.png"))
        )
        return paths

    # Test harness -------------------------------------------------------------------

    def example_batch(self, info: dict, rng, batch_size: int = 4) -> tuple:
        """`(x, y, sample_weight)` for one training step; images channels_last."""
        images = rng.uniform(0, 255, size=(batch_size, *info["image_shape"])).astype("float32")
        ids = rng.integers(3, len(info["vocabulary"]), size=(batch_size, info["max_length"] + 1))
        ids[:, 0] = 2  # [start]
        ids[0, 3:] = 0  # Padding.
        answers = rng.integers(0, len(info["answers"]), size=batch_size)
        targets = np.eye(len(info["answers"]), dtype="float32")[answers]
        return {"images": images, "question_ids": ids}, targets, None

    def example_output_shape(self, info: dict, batch_size: int) -> tuple:
        return (batch_size, len(info["answers"]))

    def served_and_predicted(self, model, served, x, config) -> tuple:
        """What the export's tensor signature answers, and what the model says here."""
        images = tf.constant(self.images_in(x["images"], config))
        questions = tf.constant(["what colour is the circle"] * (len(images) - 1) + [""])
        signature = served.signatures["serving_images"]
        scores = signature(images=images, question=questions)["top_scores"]
        return scores.numpy(), model.answer(images, questions)["top_scores"].numpy()

    # Export -------------------------------------------------------------------------

    def signatures(self, model, info: dict, config) -> dict:
        """Serving functions and their input specs, keyed by signature name."""
        data_format = config["data_format"]

        def outputs(images, question):
            out = model.answer(images, question)
            return {k: out[k] for k in ("answer", "top_answers", "top_scores")}

        def serving_default(image_bytes, question):
            return outputs(decode_images(image_bytes, info["image_shape"], data_format), question)

        def serving_images(images, question):
            return outputs(images, question)

        question_spec = tf.TensorSpec([None], tf.string, name="question")
        images_shape = [None, *model_image_shape(info["image_shape"], data_format)]
        return {
            "serving_default": (
                serving_default,
                [tf.TensorSpec([None], tf.string, name="image_bytes"), question_spec],
            ),
            "serving_images": (
                serving_images,
                [tf.TensorSpec(images_shape, tf.float32, name="images"), question_spec],
            ),
        }

    def signature_contract(self, info: dict, config) -> dict:
        """The fixed names, dtypes and shapes every export is checked against."""
        images_shape = [None, *model_image_shape(info["image_shape"], config["data_format"])]
        k = min(config["top_k"], len(info["answers"]))
        outputs = {
            "answer": ["string", [None]],
            "top_answers": ["string", [None, k]],
            "top_scores": ["float32", [None, k]],
        }
        question = {"question": ["string", [None]]}
        return {
            "serving_default": {
                "inputs": {"image_bytes": ["string", [None]], **question},
                "outputs": outputs,
            },
            "serving_images": {
                "inputs": {"images": ["float32", images_shape], **question},
                "outputs": outputs,
            },
        }

    def export_examples(self, model, examples, info: dict, config, count: int = 4) -> list[dict]:
        """Inputs and the answers the export must give, computed by the Keras model.

        Besides held-out questions, an empty question and one of unknown words.
        """
        rows = list(examples.take(count).as_numpy_iterator())
        images = np.stack([row[0] for row in rows] + [rows[0][0]] * 2)
        questions = [row[1].decode("utf-8") for row in rows] + ["", "zzzz qqqq?"]
        model_input = to_data_format(images.astype(np.float32), config["data_format"])
        out = model.answer(tf.constant(model_input), tf.constant(questions))
        expected = {
            "answer": [a.decode("utf-8") for a in out["answer"].numpy()],
            "top_scores": out["top_scores"].numpy().tolist(),
        }
        png = [tf.io.encode_png(image).numpy() for image in images]
        text = [q.encode("utf-8") for q in questions]  # String inputs travel as bytes.
        return [
            {
                "signature": "serving_default",
                "inputs": {"image_bytes": png, "question": text},
                "outputs": expected,
            },
            {
                "signature": "serving_images",
                "inputs": {"images": model_input.tolist(), "question": text},
                "outputs": expected,
            },
        ]

    def predict_export(self, signatures, manifest: dict, inputs: list[str], **options) -> list:
        """Answer `question` about image files with an export; one result dict per file."""
        unknown = sorted(set(options) - {"question"})
        if unknown:
            raise UsageError(f"{', '.join(unknown)} does not apply to VQA exports.")
        question = options.get("question")
        if question is None:
            raise UsageError(
                'A VQA export needs a question: pass --question "what colour is the circle?".'
            )
        serve = signatures["serving_default"]
        results = []
        for path in inputs:
            out = serve_image_file(serve, path, question=tf.constant([question]))
            results.append(
                {
                    "input": path,
                    "answer": out["answer"].numpy()[0].decode("utf-8"),
                    "top_answers": [a.decode("utf-8") for a in out["top_answers"].numpy()[0]],
                    "top_scores": [round(float(s), 4) for s in out["top_scores"].numpy()[0]],
                }
            )
        return results


TASK = Vqa()
