"""Text classification (a label per text) and sequence tagging (a tag per token).

Data: `(text, label)` or `(text, tags)` from `kerasnotes.data.text`. The vocabulary is
learned from the training texts with a Keras `TextVectorization` layer (at most
`vocabulary_size` tokens, words or characters by the builder's `token_level`).

Builders receive `vocabulary` and `num_classes` (labels or tags) and return a model
that takes text, `(batch,)` strings, and gives class probabilities `(batch, classes)`
or tag probabilities `(batch, time, tags)`. Its layer `network` is the sub-model that
takes token ids (in the layout of the builder's `time_major`); its layer `tokenizer`
turns text into those ids. Batches are bucketed by length, so each is padded only to
its own longest text and texts of like length share batches.

Export contract (classification):

| signature | inputs | outputs |
| --- | --- | --- |
| `serving_default` | `text` string[batch] | `label` string[batch], `scores` float32[batch, classes] |
| `serving_token_ids` | `token_ids` int64[batch, time] (or [time, batch] with time_major) | the same |
| `neighbours` | `word` string[batch] | `neighbours` string[batch, 10], `similarities` float32[batch, 10] |

Tagging: `serving_default` returns `tokens` and `tags` string[batch, time] (`""` past
each text's end) and `tag_scores` float32[batch, time, tags]; `serving_token_ids`
returns `tags` and `tag_scores`.
"""

from __future__ import annotations

import math
import os
import sys

import keras
import numpy as np
import tensorflow as tf

from kerasnotes.data import text as text_data
from kerasnotes.errors import ConfigError, DataError, UsageError
from kerasnotes.tasks.classification import classification_metrics
from kerasnotes.text import (
    EXAMPLE_VOCABULARY,
    find_embedding,
    make_tokenizer,
    neighbours_contract,
    neighbours_example,
    neighbours_signature,
    plain,
)

NUM_SAMPLES = 3
VOCABULARY_TEXTS = 1_000_000  # The vocabulary counts a sample of this many at most.
# Batches hold texts whose lengths (in tokens) fall between the same two boundaries.
BUCKET_BOUNDARIES = (6, 9, 12, 16, 20, 25, 32, 40, 50, 64, 80, 100, 128, 160, 200, 256, 320,
                     400, 512, 640, 800, 1024)  # fmt: skip


class TextTask:
    """What text classification and tagging share; see the module docstring."""

    name = ""
    kind = ""  # "classification" or "tagging"
    derived_keys = ("vocabulary", "num_classes")
    settings: dict = {}
    input_kind = "texts (strings, or --file with one per line)"
    output_name = ""

    def datasets_help(self) -> list[str]:
        embedded = text_data.EMBEDDED[self.kind]
        return [
            f"{embedded[0]} (embedded default), {', '.join(embedded[1:])} (embedded)",
            "tfds names: " + ", ".join(text_data.TFDS_EXAMPLES[self.kind]) + " (downloaded once)",
            text_data.local_formats(self.kind),
        ]

    # Data ---------------------------------------------------------------------------

    def check_settings(self, config) -> None:
        size = config["vocabulary_size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 3:
            raise ConfigError(f"Invalid vocabulary_size {size!r}: must be an integer >= 3.")

    def load_data(self, config):
        self.check_settings(config)
        data = text_data.load(
            config["dataset"],
            self.kind,
            skip_bad_records=config["skip_bad_records"],
            **{k: config[k] for k in self.settings if k.endswith("_column")},
        )
        tokenizer = make_tokenizer(
            None,
            config.get("token_level", "word"),
            keep_punctuation=self.kind == "tagging",
            max_tokens=config["vocabulary_size"],
        )
        texts, count = data.train.map(lambda text, _: text), data.num_examples["train"]
        if count > VOCABULARY_TEXTS:  # Every n-th text: a sample spread over the split.
            texts = texts.shard(math.ceil(count / VOCABULARY_TEXTS), 0)
            print(
                f"The vocabulary is from 1 in {math.ceil(count / VOCABULARY_TEXTS)} of the "
                f"{count:,} training texts.",
                file=sys.stderr,
            )
        tokenizer.adapt(texts.batch(1024))
        data.vocabulary = tokenizer.get_vocabulary()
        return data

    def example_info(self, config=None) -> dict:
        """A stand-in for `data_info` that needs no data: the trainer builds the model
        on it to check the configuration before loading anything (`config`), and the
        test harness builds on it (`None`)."""
        if config is not None:
            self.check_settings(config)
        return {
            "class_names": list(self.example_classes),
            "vocabulary": list(EXAMPLE_VOCABULARY),
            "num_examples": {},
            "source": "example",
        }

    def data_info(self, data) -> dict:
        return {
            "class_names": list(data.class_names),
            "vocabulary": list(data.vocabulary),
            "num_examples": data.num_examples,
            "source": data.source,
        }

    def builder_arguments(self, info: dict, config) -> dict:
        return {"vocabulary": info["vocabulary"], "num_classes": len(info["class_names"])}

    def tokenizer(self, info: dict, config):
        """A tokenizer like the model's, for the data pipeline."""
        return make_tokenizer(
            info["vocabulary"],
            config.get("token_level", "word"),
            keep_punctuation=self.kind == "tagging",
        )

    def batches(self, split: tf.data.Dataset, config, info, *, training: bool, num_examples=0):
        """Batched `(token_ids, labels)` or `(token_ids, tags, weights)` for the model's
        `network` (see `training_model`), each batch padded to its own longest text.

        Texts are tokenized here, in parallel with training, by a tokenizer like the
        model's. Training batches are bucketed by length: each holds texts whose token
        counts fall between the same two `BUCKET_BOUNDARIES`, so they are padded only a
        little. Given `num_examples`, the batches never end (the split is repeated and
        reshuffled, so every batch is full) and the trainer counts `num_examples /
        batch_size` of them an epoch. Tags are
        padded with weight 0 past each text's end. With `time_major` the ids are
        `(time, batch)`.
        """
        batch_size = config["batch_size"]
        tokenizer = self.tokenizer(info, config)
        ds = split.map(
            lambda text, target: (tokenizer(text), target), num_parallel_calls=tf.data.AUTOTUNE
        )
        padding = (
            tf.constant(0, tf.int64),
            tf.constant(-1, tf.int32) if self.kind == "tagging" else None,
        )
        if training:
            ds = ds.shuffle(
                max(1, min(num_examples or 10_000, 10_000)),
                seed=config["seed"],
                reshuffle_each_iteration=True,
            )
            if num_examples:
                ds = ds.repeat()
            ds = ds.bucket_by_sequence_length(
                lambda ids, _: tf.size(ids),
                bucket_boundaries=list(BUCKET_BOUNDARIES),
                bucket_batch_sizes=[batch_size] * (len(BUCKET_BOUNDARIES) + 1),
                padding_values=padding,
            )
        else:
            ds = ds.padded_batch(batch_size, padding_values=padding)
        time_major = config.get("time_major", False)

        def to_model(ids, targets):
            ids = tf.transpose(ids) if time_major else ids
            if self.kind == "classification":
                return ids, targets
            return ids, tf.maximum(targets, 0), tf.cast(targets >= 0, tf.float32)

        return ds.map(to_model, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def training_model(self, model, config=None):
        """What `fit` trains: the `network` sub-model, on token ids from `batches`; the
        text model shares its weights."""
        return model.get_layer("network")

    def test_batches(self, data, config):
        """The held-out split in batches of `(texts, labels)` as NumPy arrays; tags are
        padded with 0 past each text's end."""
        padding = (tf.constant(""), tf.constant(0, tf.int32)) if self.kind == "tagging" else None
        for texts, targets in data.test.padded_batch(config["batch_size"], padding_values=padding):
            yield texts.numpy(), targets.numpy()

    # Training and evaluation -------------------------------------------------------

    def compile(self, model, optimizer) -> None:
        # Weighted, so that a tagger's accuracy counts only the tokens, not the padding.
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(),
            weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )

    def model_predictor(self, model, info=None, config=None):
        """What `evaluate` measures for a Keras model: texts to probabilities."""
        return lambda texts: model(tf.constant(texts), training=False)

    def export_predictor(self, signatures):
        """What `evaluate` measures for a loaded export: its `serving_default` scores."""
        key = "scores" if self.kind == "classification" else "tag_scores"
        return lambda texts: signatures["serving_default"](text=tf.constant(texts))[key]

    def plots(self, model, data, info: dict, config, run_dir: str) -> list[str]:
        """The confusion plot, and the embedding in TensorBoard's projector form."""
        from kerasnotes import plots

        truth, predicted = self._held_out_predictions(
            self.model_predictor(model), data, info, config
        )
        name = "label" if self.kind == "classification" else "tag"
        paths = [
            plots.confusion(
                truth,
                predicted,
                info["class_names"],
                os.path.join(run_dir, f"{name}_confusion.png"),
                title=f"{name} confusion (row-normalised)",
                truth_label=f"true {name}",
            )
        ]
        embedding = find_embedding(model)
        if embedding is not None:
            paths += write_projector(
                keras.ops.convert_to_numpy(embedding.embeddings),
                info["vocabulary"],
                os.path.join(run_dir, "logs"),
            )
        return paths

    # Test harness -------------------------------------------------------------------

    layout = ("time_major", (False, True))

    def example_batch(self, info: dict, rng, batch_size: int = 4) -> tuple:
        """`(texts, y, sample_weight)` for one training step: texts of the stand-in
        vocabulary, one much longer than the others (so the rest are padded)."""
        words = info["vocabulary"][2:]
        lengths = [3, 5, 2, 12][:batch_size]
        texts = [" ".join(rng.choice(words, size=n)) for n in lengths]
        classes = len(info["class_names"])
        if self.kind == "classification":
            return np.array(texts, dtype=object), rng.integers(0, classes, batch_size), None
        tags = np.zeros((batch_size, max(lengths)), "int64")
        weights = np.zeros(tags.shape, "float32")
        for row, n in enumerate(lengths):
            tags[row, :n] = rng.integers(0, classes, n)
            weights[row, :n] = 1.0
        return np.array(texts, dtype=object), tags, weights

    def example_output_shape(self, info: dict, batch_size: int) -> tuple:
        if self.kind == "classification":
            return (batch_size, len(info["class_names"]))
        return (batch_size, 12, len(info["class_names"]))

    def model_input(self, x, config):
        return tf.constant(x)

    def token_ids(self, model, texts, config):
        """The ids the model's tokenizer gives `texts`, in the model's layout."""
        ids = model.get_layer("tokenizer")(tf.constant(texts))
        return tf.transpose(ids) if config.get("time_major") else ids

    def layout_outputs(self, model, x, config) -> np.ndarray:
        """The `network` sub-model's answer to the ids of `x` in its layout."""
        network = model.get_layer("network")
        return keras.ops.convert_to_numpy(network(self.token_ids(model, x, config)))

    def served_and_predicted(self, model, served, x, config) -> tuple:
        """What the export's token-id signature answers, and what the model says here."""
        ids = self.token_ids(model, x, config)
        key = "scores" if self.kind == "classification" else "tag_scores"
        got = served.signatures["serving_token_ids"](token_ids=ids)[key].numpy()
        return got, keras.ops.convert_to_numpy(model(tf.constant(x), training=False))

    # Export -------------------------------------------------------------------------

    def signatures(self, model, info: dict, config) -> dict:
        """Serving functions and their input specs, keyed by signature name."""
        class_names = tf.constant(info["class_names"])
        network = model.get_layer("network")
        tokenizer = model.get_layer("tokenizer")
        time_major = config.get("time_major", False)

        def outputs(scores):
            scores = tf.cast(scores, tf.float32)
            names = tf.gather(class_names, tf.argmax(scores, axis=-1))
            if self.kind == "classification":
                return {"label": names, "scores": scores}
            return {"tags": names, "tag_scores": scores}

        def tagged(result, real):
            """Tags where `real` (batch, time) has tokens, cut to its steps (the model
            pads a batch of empty texts to one step)."""
            steps = tf.shape(real)[1]
            result["tag_scores"] = result["tag_scores"][:, :steps]
            result["tags"] = tf.where(real, result["tags"][:, :steps], "")
            return result

        def serving_default(text):
            result = outputs(model(text, training=False))
            if self.kind == "tagging":
                result["tokens"] = tf.strings.split(text).to_tensor("")
                result = tagged(result, result["tokens"] != "")
            return result

        def serving_token_ids(token_ids):
            result = outputs(network(token_ids, training=False))
            if self.kind == "tagging":
                ids = tf.transpose(token_ids) if time_major else token_ids
                result = tagged(result, ids != 0)
            return result

        signatures = {
            "serving_default": (serving_default, [tf.TensorSpec([None], tf.string, name="text")]),
            "serving_token_ids": (
                serving_token_ids,
                [tf.TensorSpec([None, None], tf.int64, name="token_ids")],
                {"token_ids": 1 if time_major else 0},  # The batch axis.
            ),
        }
        embedding = find_embedding(model)
        if embedding is not None:

            def first_ids(word):  # The word's first token (0 for an empty word).
                ids = tokenizer(word)  # (batch, time)
                padding = tf.zeros([tf.shape(ids)[0], 1], ids.dtype)
                return tf.concat([ids, padding], axis=1)[:, 0]

            signatures["neighbours"] = neighbours_signature(
                embedding, info["vocabulary"], first_ids
            )
        return signatures

    def signature_contract(self, info: dict, config) -> dict:
        """The fixed names, dtypes and shapes every export is checked against."""
        classes = len(info["class_names"])
        if self.kind == "classification":
            outputs = {"label": ["string", [None]], "scores": ["float32", [None, classes]]}
            text_outputs = outputs
        else:
            outputs = {
                "tags": ["string", [None, None]],
                "tag_scores": ["float32", [None, None, classes]],
            }
            text_outputs = {**outputs, "tokens": ["string", [None, None]]}
        contract = {
            "serving_default": {"inputs": {"text": ["string", [None]]}, "outputs": text_outputs},
            "serving_token_ids": {
                "inputs": {"token_ids": ["int64", [None, None]]},
                "outputs": outputs,
            },
        }
        contract["neighbours"] = neighbours_contract(info["vocabulary"])
        return contract

    def export_examples(self, model, examples, info: dict, config, count: int = 4) -> list[dict]:
        """Inputs and the answers the export must give, computed by the Keras model."""
        texts = [text.numpy() for text, _ in examples.take(count)]
        if len(texts) > 1:  # A text alone and beside a longer one: padding changes nothing.
            texts[-1] = texts[-1] + b" " + texts[0]
        signatures = self.signatures(model, info, config)
        expected = signatures["serving_default"][0](tf.constant(texts))
        expected = {k: plain(v) for k, v in expected.items()}
        ids = model.get_layer("tokenizer")(tf.constant(texts))
        if config.get("time_major", False):
            ids = tf.transpose(ids)
        by_ids = {k: v for k, v in expected.items() if k != "tokens"}
        result = [
            {"signature": "serving_default", "inputs": {"text": texts}, "outputs": expected},
            {
                "signature": "serving_token_ids",
                "inputs": {"token_ids": ids.numpy().tolist()},
                "outputs": by_ids,
            },
        ]
        if "neighbours" in signatures:
            words = [*info["vocabulary"][2:5], "no-such-word-here", ""]
            result.append(neighbours_example(signatures["neighbours"][0], words))
        return result

    def predict_export(self, signatures, manifest: dict, inputs: list[str], **options) -> list:
        """Label or tag texts with an export; one result dict per text."""
        if options:
            raise UsageError(
                f"{', '.join(sorted(options))} does not apply to {self.name} exports."
            )
        out = signatures["serving_default"](text=tf.constant(inputs))
        return [self._result(text, out, i) for i, text in enumerate(inputs)]


def write_projector(vectors: np.ndarray, vocabulary, log_dir: str) -> list[str]:
    """The embedding as TensorBoard's projector reads it: vectors and words as TSV and a
    `projector_config.pbtxt`, so `tensorboard --logdir <run>/logs` shows it."""
    os.makedirs(log_dir, exist_ok=True)
    vectors_path = os.path.join(log_dir, "embedding_vectors.tsv")
    metadata_path = os.path.join(log_dir, "embedding_metadata.tsv")
    rows = range(2, len(vocabulary))  # Not padding or the unknown token.
    with open(vectors_path, "w", encoding="utf-8") as f:
        for i in rows:
            f.write("\t".join(f"{v:.5g}" for v in vectors[i]) + "\n")
    with open(metadata_path, "w", encoding="utf-8") as f:
        for i in rows:
            word = vocabulary[i]
            f.write((word if word.strip() else repr(word)) + "\n")
    config_path = os.path.join(log_dir, "projector_config.pbtxt")
    with open(config_path, "w", encoding="utf-8") as f:
        f.write(
            'embeddings {\n  tensor_name: "embedding"\n'
            '  tensor_path: "embedding_vectors.tsv"\n'
            '  metadata_path: "embedding_metadata.tsv"\n}\n'
        )
    return [vectors_path, metadata_path, config_path]


class TextClassification(TextTask):
    name = "text_classification"
    kind = "classification"
    settings = {"vocabulary_size": 20_000, "text_column": "text", "label_column": "label"}
    example_classes = ("negative", "positive")

    def _held_out_predictions(self, predict, data, info, config):
        names = info["class_names"]
        truth, predicted = [], []
        for texts, labels in self.test_batches(data, config):
            scores = np.asarray(predict(texts))
            truth += [names[i] for i in labels]
            predicted += [names[i] for i in scores.argmax(-1)]
        return truth, predicted

    def evaluate(self, predict, data, info: dict, config) -> dict:
        """Held-out accuracy, macro F1, loss, per-class accuracy and a few samples."""
        names = info["class_names"]
        labels, scores, samples = [], [], []
        progress = keras.utils.Progbar(
            data.num_examples.get("test") or None,
            unit_name="text",
            verbose=1 if sys.stderr.isatty() else 0,
        )
        for texts, batch_labels in self.test_batches(data, config):
            batch_scores = np.asarray(predict(texts))
            labels.append(batch_labels)
            scores.append(batch_scores)
            for text, label, guess in zip(
                texts, batch_labels, batch_scores.argmax(-1), strict=True
            ):
                if len(samples) < NUM_SAMPLES:
                    samples.append(
                        {
                            "text": text.decode("utf-8"),
                            "predicted": names[guess],
                            "reference": names[label],
                        }
                    )
            progress.add(len(texts))
        if not labels:
            raise DataError("The test split is empty: nothing to evaluate the classifier on.")
        metrics = classification_metrics(np.concatenate(labels), np.concatenate(scores), names)
        return {**metrics, "samples": samples}

    def _result(self, text, out, i) -> dict:
        scores = out["scores"].numpy()[i]
        return {
            "input": text,
            "label": out["label"].numpy()[i].decode(),
            "score": float(scores.max()),
        }


class SequenceTagging(TextTask):
    name = "sequence_tagging"
    kind = "tagging"
    settings = {"vocabulary_size": 20_000, "tag_column": None}
    example_classes = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")

    def check_settings(self, config) -> None:
        super().check_settings(config)
        if config.get("token_level", "word") != "word":
            raise ConfigError(
                f"Invalid token_level {config['token_level']!r} for tagging: tags belong to "
                "words, so token_level must be word."
            )

    def _tag_sequences(self, predict, data, info, config):
        """`(texts, true tag lists, predicted tag lists)` of the held-out split."""
        names = info["class_names"]
        texts, truth, predicted = [], [], []
        for batch_texts, tags in self.test_batches(data, config):
            guesses = np.asarray(predict(batch_texts)).argmax(-1)
            for text, row, guess in zip(batch_texts, tags, guesses, strict=True):
                count = len(text.split())
                texts.append(text.decode("utf-8"))
                truth.append([names[t] for t in row[:count]])
                predicted.append([names[g] for g in guess[:count]])
        return texts, truth, predicted

    def _held_out_predictions(self, predict, data, info, config):
        _, truth, predicted = self._tag_sequences(predict, data, info, config)
        return [t for row in truth for t in row], [p for row in predicted for p in row]

    def evaluate(self, predict, data, info: dict, config) -> dict:
        """Token accuracy and entity-level precision, recall and F1 (seqeval), overall
        and per entity type, and a few samples."""
        from seqeval.metrics import classification_report

        texts, truth, predicted = self._tag_sequences(predict, data, info, config)
        if not texts:
            raise DataError("The test split is empty: nothing to evaluate the tagger on.")
        flat_truth = [t for row in truth for t in row]
        flat_predicted = [p for row in predicted for p in row]
        report = classification_report(truth, predicted, output_dict=True, zero_division=0)
        overall = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
        per_type = {
            kind: round(float(values["f1-score"]), 4)
            for kind, values in report.items()
            if not kind.endswith(" avg")
        }
        return {
            "token_accuracy": float(np.mean(np.array(flat_truth) == np.array(flat_predicted))),
            "entity_precision": float(overall["precision"]),
            "entity_recall": float(overall["recall"]),
            "entity_f1": float(overall["f1-score"]),
            "entity_f1_by_type": per_type,
            "num_examples": len(texts),
            "samples": [
                {
                    "text": text,
                    "predicted": " ".join(guess),
                    "reference": " ".join(tags),
                }
                for text, guess, tags in list(zip(texts, predicted, truth, strict=True))[
                    :NUM_SAMPLES
                ]
            ],
        }

    def _result(self, text, out, i) -> dict:
        tokens = [t.decode() for t in out["tokens"].numpy()[i] if t]
        tags = [t.decode() for t in out["tags"].numpy()[i][: len(tokens)]]
        return {
            "input": text,
            "tagged": " ".join(f"{w}/{t}" for w, t in zip(tokens, tags, strict=True)),
        }


CLASSIFICATION = TextClassification()
TAGGING = SequenceTagging()
