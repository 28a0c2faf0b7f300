"""Language modelling: a corpus in, the next token predicted, text sampled out.

Data: a corpus of documents from `kerasnotes.data.corpus`, cut into characters (the
default) or words (`token_level`). The vocabulary is learned from the training text
(its first `VOCABULARY_CHARACTERS`) with a Keras `StringLookup` (at most
`vocabulary_size` tokens, the most frequent; id 0 is padding, id 1 the unknown token). Documents are joined by a line break, which also
stands before every text a model scores or continues, so the first character of a
text is predicted like any other.

Builders receive `vocabulary` and return a model over token ids with:

- `model(token_ids)`: logits `(batch, time, vocabulary)` of the token after each
  position (what `fit` trains; a model that learns by counting has `adapt` instead);
- `model.log_likelihood(token_ids)`: `(batch, time - 1)` natural log-probabilities of
  tokens 1.. given the tokens before them;
- `model.initial_decoding_state(batch_size)` and `model.decoding_step(tokens, state)`:
  the step function of `kerasnotes.decoding`.

Training batches are `(token_ids, next_token_ids)` windows of `sequence_length` tokens
(the builder's setting, 128 if it has none). By default the training text is cut into
`batch_size` contiguous streams and each batch continues every stream where the
previous batch stopped (truncated backpropagation through time: a stateful model
carries its state from batch to batch, reset at every epoch; the task's callback does
that). With `stateful=false` each batch is instead windows from random places.

Every run measures, on the held-out text: `bits_per_char` (whatever the token level, so
every model compares on one scale), `perplexity` per token, and beside them the best
Kneser-Ney n-gram (order up to 8, chosen on the validation split) and what gzip, bz2
and xz reach on the same text given the training text first. At the word level, the
spaces between words are implied and a word outside the vocabulary is one `[UNK]`
event (`unknown_rate` says how often), so its bits per character are a lower bound
that the compressors, which code every byte, do not get.

Export contract:

| signature | inputs | outputs |
| --- | --- | --- |
| `serving_default` | `prompt` string[batch] | `text` string[batch]: the continuation, sampled with the run's `max_length`, `temperature`, `top_k`, `top_p` and `seed` |
| `generate` | `prompt` string[batch], `max_length` int32, `temperature` float32, `top_k` int32, `top_p` float32, `seed` int64 (scalars) | `text` string[batch] |
| `score` | `text` string[batch] | `bits_per_char` float32[batch], `log_probability` float32[batch] (natural log) |
"""

from __future__ import annotations

import bz2
import collections
import functools
import gzip
import lzma
import math
import sys
import weakref

import keras
import numpy as np
import tensorflow as tf

from kerasnotes.data import corpus as corpus_data
from kerasnotes.decoding import SAMPLING, check_sampling, decode, sampling_settings
from kerasnotes.errors import ConfigError, DataError
from kerasnotes.language_models import BitsPerToken
from kerasnotes.text import (
    TOKEN_LEVELS,
    find_embedding,
    join_tokens,
    neighbours_contract,
    neighbours_example,
    neighbours_signature,
    split_tokens,
)

SEPARATOR = "\n"  # Joins documents; the context before every text.
DEFAULT_SEQUENCE_LENGTH = 128
NUM_SAMPLES = 3
PROMPT_CHARACTERS = 24  # Samples continue the start of held-out documents.
STREAM_TOKENS = 8  # Tokens per request when streaming.
BASELINE_ORDERS = range(2, 9)
COMPRESSOR_PRIOR = 10_000_000  # At most this many training characters come first.
# Bounded samples, for corpora of any size: what each part of a run reads at most.
VOCABULARY_CHARACTERS = 20_000_000  # The first training characters the vocabulary counts.
NGRAM_TOKENS = 1_000_000  # The first training tokens the n-gram baseline counts.
HELD_OUT_SAMPLE = 1_000_000  # The first characters of a held-out split the baselines read.
SCORE_CHARACTERS = 2**16  # Characters (batch times longest) scored in one call at most.
# Training and validation read a split as blocks of this many tokens, each cut into
# `batch_size` streams (a split within one block: the whole split's streams).
BLOCK_TOKENS = 2**22
EXAMPLE_VOCABULARY = ("", "[UNK]", *" \netaoinshrdlucmfwygpb.,T")


class ResetStates(keras.callbacks.Callback):
    """Reset a stateful model's carried state at every epoch and before validation."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.reset_state()

    def on_test_begin(self, logs=None):
        self.model.reset_state()


def compressed_bits_per_char(train: str, test: str) -> dict[str, float]:
    """Bits per character of `test` with gzip, bz2 and xz, each given (up to the last
    `COMPRESSOR_PRIOR` characters of) `train` first: only the growth counts."""
    prior = train[-COMPRESSOR_PRIOR:].encode("utf-8")
    both = prior + test.encode("utf-8")
    compressors = {
        "gzip": lambda b: gzip.compress(b, compresslevel=9, mtime=0),
        "bz2": lambda b: bz2.compress(b, compresslevel=9),
        "xz": lambda b: lzma.compress(b, preset=9),
    }
    return {
        name: round(8 * (len(compress(both)) - len(compress(prior))) / max(1, len(test)), 4)
        for name, compress in compressors.items()
    }


class LanguageModelling:
    name = "language_modelling"
    derived_keys = ("vocabulary",)
    settings = {
        "token_level": "character",
        "vocabulary_size": 20_000,
        # Sampling: the export's defaults, and the samples printed after training.
        "max_length": 256,
        "temperature": 0.8,
        "top_k": 0,
        "top_p": 1.0,
        "stop": "",
    }
    input_kind = "prompts (strings, or --file with one per line)"

    def datasets_help(self) -> list[str]:
        return [
            f"{corpus_data.EMBEDDED[0]} (embedded default: the Python documentation "
            f"topics), {', '.join(corpus_data.EMBEDDED[1:])} (embedded)",
            "tfds names: " + ", ".join(corpus_data.TFDS_EXAMPLES) + " (downloaded once)",
            corpus_data.LOCAL_FORMATS,
        ]

    # Data ---------------------------------------------------------------------------

    def check_settings(self, config) -> None:
        def integer(key, low):
            value = config[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"Invalid {key} {value!r}: must be an integer >= {low}.")

        if config["token_level"] not in TOKEN_LEVELS:
            raise ConfigError(
                f"Invalid token_level {config['token_level']!r}: expected one of "
                f"{', '.join(TOKEN_LEVELS)}."
            )
        integer("vocabulary_size", 3)
        if "sequence_length" in config:
            integer("sequence_length", 1)
        check_sampling(config)

    def load_data(self, config):
        """The corpus, its vocabulary (from up to `VOCABULARY_CHARACTERS` of the
        training text) and the number of tokens of every split (`data.num_tokens`)."""
        self.check_settings(config)
        data = corpus_data.load(
            config["dataset"], skip_bad_records=config.get("skip_bad_records", False)
        )
        level = config["token_level"]
        lookup = keras.layers.StringLookup(
            max_tokens=config["vocabulary_size"], mask_token="", oov_token="[UNK]"
        )
        lookup.adapt(token_stream(head(data.train, VOCABULARY_CHARACTERS), level))
        if data.num_examples["train"] > VOCABULARY_CHARACTERS:
            print(
                f"The vocabulary is from the first {VOCABULARY_CHARACTERS:,} of the "
                f"{data.num_examples['train']:,} training characters.",
                file=sys.stderr,
            )
        data.vocabulary = lookup.get_vocabulary()
        data.num_tokens = {
            split: self.num_tokens(getattr(data, split), level, data.num_examples[split])
            for split in corpus_data.SPLITS
        }
        self._check_lengths(data, config)
        return data

    @staticmethod
    def num_tokens(documents, token_level: str, characters: int | None = None) -> int:
        """The tokens of `documents` joined by `SEPARATOR`: at the character level its
        `characters` where given; otherwise counted (once per dataset)."""
        if token_level == "character" and characters is not None:
            _NUM_TOKENS[documents] = characters
        if documents not in _NUM_TOKENS:
            tokens = token_stream(documents, token_level)
            _NUM_TOKENS[documents] = int(
                tokens.reduce(tf.constant(0, tf.int64), lambda n, t: n + tf.size(t, tf.int64))
            )
        return _NUM_TOKENS[documents]

    def _check_lengths(self, data, config) -> None:
        length = config.get("sequence_length", DEFAULT_SEQUENCE_LENGTH)
        batch_size = config["batch_size"]
        for split in corpus_data.SPLITS:
            # Every split is cut into `batch_size` streams of at least one window.
            needed = batch_size * (min(length, 8) if split != "train" else length) + 1
            if data.num_tokens[split] < needed:
                raise DataError(
                    f"The {split} split of {config['dataset'] or corpus_data.EMBEDDED[0]!r} "
                    f"has {data.num_tokens[split]} tokens: too few for batch_size "
                    f"{batch_size} x sequence_length {length} (it needs at least {needed}). "
                    "Give more text, or a smaller --batch-size or sequence_length."
                )

    @staticmethod
    def token_ids(texts, vocabulary, token_level: str) -> list[np.ndarray]:
        """Each text's token ids (unknown tokens: 1), as NumPy arrays."""
        lookup = _lookup(tuple(vocabulary))
        tokens = split_tokens(tf.constant(texts), token_level)
        ids = tf.RaggedTensor.from_row_lengths(lookup(tokens.flat_values), tokens.row_lengths())
        return [row.numpy().astype(np.int64) for row in ids]

    def example_info(self, config=None) -> dict:
        """A stand-in for `data_info` that needs no data."""
        if config is not None:
            self.check_settings(config)
        return {"vocabulary": list(EXAMPLE_VOCABULARY), "num_examples": {}, "source": "example"}

    def data_info(self, data) -> dict:
        return {
            "vocabulary": list(data.vocabulary),
            "num_examples": data.num_examples,
            "num_tokens": data.num_tokens,
            "source": data.source,
        }

    def builder_arguments(self, info: dict, config) -> dict:
        return {"vocabulary": info["vocabulary"]}

    def batches(self, split, config, info, *, training: bool, num_examples=0):
        """`(token_ids, next_token_ids)` windows of `sequence_length`: each block of
        `BLOCK_TOKENS` (the whole split, if it is shorter) cut into `batch_size`
        contiguous streams, batch t holding every stream's t-th window, or (when
        training with `stateful=false`) windows from random places of the block, as
        many tokens. The split is read and tokenized as the batches are made."""
        level, batch_size = config["token_level"], config["batch_size"]
        most = config.get("sequence_length", DEFAULT_SEQUENCE_LENGTH)
        random = training and config.get("stateful", True) is False
        lookup = _lookup(tuple(info["vocabulary"]))
        ids = token_stream(split, level).map(lookup, num_parallel_calls=tf.data.AUTOTUNE)

        def shape(size):
            """A block's tokens per stream, window length and windows per stream."""
            per_stream = (size - 1) // batch_size
            length = (
                min(most, per_stream)
                if isinstance(size, int)
                else tf.minimum(tf.cast(most, size.dtype), per_stream)
            )
            return per_stream, length, per_stream // length

        def streams(block):
            """The block's `(steps, batch, length)` stream windows, by step."""
            per_stream, length, steps = shape(tf.size(block, tf.int64))

            def by_step(rows):
                rows = tf.reshape(rows, [batch_size, per_stream])[:, : steps * length]
                return tf.transpose(tf.reshape(rows, [batch_size, steps, length]), [1, 0, 2])

            rows = block[: batch_size * per_stream + 1]
            return tf.data.Dataset.from_tensor_slices((by_step(rows[:-1]), by_step(rows[1:])))

        def each_window(block):
            """The block once for each of its random windows."""
            _, _, steps = shape(tf.size(block, tf.int64))
            return tf.data.Dataset.from_tensors(block).repeat(steps * batch_size)

        def random_window(block, start):
            _, length, _ = shape(tf.size(block, tf.int64))
            start = start % (tf.size(block, tf.int64) - length)
            piece = block[start : start + length + 1]
            return piece[:-1], piece[1:]

        blocks = ids.rebatch(BLOCK_TOKENS).filter(lambda block: tf.size(block) > batch_size)
        if random:  # One stream of random numbers: each block's windows take theirs.
            starts = tf.data.Dataset.random(seed=config["seed"], rerandomize_each_iteration=True)
            ds = tf.data.Dataset.zip(blocks.flat_map(each_window), starts).map(random_window)
            ds = ds.batch(batch_size, drop_remainder=True)
        else:
            ds = blocks.flat_map(streams)
        ds = ds.map(
            lambda x, y: (
                tf.ensure_shape(x, [batch_size, None]),
                tf.ensure_shape(y, [batch_size, None]),
            )
        )
        total = self.num_tokens(split, level)
        sizes = [BLOCK_TOKENS] * (total // BLOCK_TOKENS) + [total % BLOCK_TOKENS]
        steps = sum(shape(size)[2] for size in sizes if size > batch_size)
        ds = ds.apply(tf.data.experimental.assert_cardinality(steps))
        return ds.prefetch(tf.data.AUTOTUNE)

    def training_model(self, model, config):
        """What `fit` trains: a stateful model's wrapper that carries its state across
        the batches (of `batch_size` streams), or the model."""
        if getattr(model, "stateful", False):
            return model.stateful_trainer(config["batch_size"])
        return model

    def callbacks(self, trained, config) -> list:
        return [ResetStates()] if hasattr(trained, "reset_state") else []

    # Training and evaluation -------------------------------------------------------

    def compile(self, model, optimizer) -> None:
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[BitsPerToken(name="bits_per_token")],
        )

    def with_defaults(self, config) -> dict:
        """`config` with the task's defaults for the settings it lacks (the test
        harness gives a layout only)."""
        return {**self.settings, "seed": 0, **config}

    def functions(self, model, info: dict, config):
        """`(generate, score)`: the functions the export serves, on this model."""
        config = self.with_defaults(config)
        vocabulary = list(info["vocabulary"])
        level = config["token_level"]
        separator = int(self.token_ids([SEPARATOR], vocabulary, level)[0][0])
        stop_ids = (
            self.token_ids([config["stop"]], vocabulary, level)[0].tolist()
            if config["stop"]
            else []
        )
        words = tf.constant(vocabulary)

        def ids_after_separator(texts):
            """`(batch, 1 + tokens)` ids with the separator first, 0-padded, and lengths."""
            tokens = split_tokens(texts, level)
            ids = tf.ragged.map_flat_values(model.lookup, tokens)
            ids = tf.concat(
                [tf.fill([ids.nrows(), 1], tf.constant(separator, tf.int64)), ids], axis=1
            )
            return ids.to_tensor(0), tf.cast(ids.row_lengths(), tf.int32)

        def generate(prompt, max_length, temperature, top_k, top_p, seed):
            ids, lengths = ids_after_separator(prompt)
            out = decode(
                model.decoding_step,
                model.initial_decoding_state(tf.shape(ids)[0]),
                ids,
                lengths,
                max_new_tokens=max_length,
                sample=True,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                seed=seed,
                stop=stop_ids,
                banned=(0, 1),
            )
            tokens = tf.RaggedTensor.from_tensor(out["tokens"], lengths=out["lengths"])
            return join_tokens(tf.gather(words, tokens), level)

        def score(text):
            ids, lengths = ids_after_separator(text)
            log_likelihood = tf.cast(model.log_likelihood(ids), tf.float32)
            scored = tf.sequence_mask(lengths - 1, tf.shape(ids)[1] - 1)
            total = tf.reduce_sum(tf.where(scored, log_likelihood, 0.0), axis=1)
            characters = tf.cast(tf.strings.length(text, unit="UTF8_CHAR"), tf.float32)
            return {
                "bits_per_char": -total / math.log(2) / tf.maximum(characters, 1.0),
                "log_probability": total,
            }

        return generate, score

    def model_predictor(self, model, info: dict, config):
        """What `evaluate` measures for a Keras model: its `generate` and `score`,
        traced as the export traces them (without AutoGraph)."""
        generate, score = self.functions(model, info, config)
        return {
            "generate": tf.function(generate, reduce_retracing=True, autograph=False),
            "score": tf.function(score, reduce_retracing=True, autograph=False),
        }

    def export_predictor(self, signatures):
        def generate(prompt, max_length, temperature, top_k, top_p, seed):
            return signatures["generate"](
                prompt=prompt,
                max_length=tf.constant(max_length, tf.int32),
                temperature=tf.constant(temperature, tf.float32),
                top_k=tf.constant(top_k, tf.int32),
                top_p=tf.constant(top_p, tf.float32),
                seed=tf.constant(seed, tf.int64),
            )["text"]

        return {"generate": generate, "score": lambda text: signatures["score"](text=text)}

    def evaluate(self, predictor, data, info: dict, config) -> dict:
        """Held-out bits per character and perplexity, the n-gram and compressor
        baselines on the same text, and samples from the starts of held-out documents."""
        total, characters, prompts = 0.0, 0, []
        progress = keras.utils.Progbar(
            None, unit_name="document", verbose=1 if sys.stderr.isatty() else 0
        )
        for batch in scoring_batches(data.test.as_numpy_iterator()):
            out = predictor["score"](tf.constant(batch))
            total += float(np.sum(out["log_probability"]))
            characters += sum(len(d) for d in batch)
            prompts += [prompt_from(d) for d in batch[: NUM_SAMPLES - len(prompts)]]
            progress.add(len(batch))
        if not characters:
            raise DataError("The test split is empty: nothing to measure the model on.")
        num_tokens = unknown = 0
        lookup = _lookup(tuple(info["vocabulary"]))
        for ids in data.test.map(
            lambda document: lookup(
                split_tokens(document[None], config["token_level"]).flat_values
            ),
            num_parallel_calls=tf.data.AUTOTUNE,
        ):
            num_tokens += int(tf.size(ids))
            unknown += int(tf.reduce_sum(tf.cast(ids == 1, tf.int64)))
        bits = -total / math.log(2) / characters
        metrics = {
            "bits_per_char": bits,
            "perplexity": float(math.exp(-total / max(1, num_tokens))),
            "num_characters": characters,
            "num_tokens": num_tokens,
            # Held-out tokens outside the vocabulary: each is one `[UNK]` event.
            "unknown_rate": unknown / num_tokens if num_tokens else 0.0,
        }
        baseline = ngram_baseline(data, info, config)
        train_tail, test_head = (
            tail_text(data.train, COMPRESSOR_PRIOR),
            SEPARATOR.join(head_documents(data.test, HELD_OUT_SAMPLE)),
        )
        metrics["comparison"] = {
            "this model": round(bits, 4),
            f"{baseline['order']}-gram (Kneser-Ney)": baseline["bits_per_char"],
            **compressed_bits_per_char(train_tail, test_head),
        }
        metrics["ngram_bits_per_char_by_order"] = baseline["by_order"]
        # What the baselines read, where a corpus is larger than they take.
        metrics["baselines_read"] = {
            "ngram_training_tokens": baseline["training_tokens"],
            "ngram_training_tokens_cap": NGRAM_TOKENS,
            "held_out_characters": len(test_head),
            "held_out_characters_cap": HELD_OUT_SAMPLE,
        }
        if len(test_head) < characters or baseline["training_tokens"] == NGRAM_TOKENS:
            print(
                f"The baselines read at most {NGRAM_TOKENS:,} training tokens (the n-gram's "
                f"counts) and the first {HELD_OUT_SAMPLE:,} characters of each held-out "
                "split; the model is measured on the whole test split.",
                file=sys.stderr,
            )
        texts = predictor["generate"](
            tf.constant(prompts),
            config["max_length"],
            config["temperature"],
            config["top_k"],
            config["top_p"],
            config["seed"],
        )
        metrics["samples"] = [
            {"prompt": prompt, "text": text.decode("utf-8")}
            for prompt, text in zip(prompts, texts.numpy(), strict=True)
        ]
        return metrics

    def plots(self, model, data, info: dict, config, run_dir: str) -> list[str]:
        return []

    # Test harness -------------------------------------------------------------------

    layout = (None, (None,))  # Token ids have one layout.

    def example_batch(self, info: dict, rng, batch_size: int = 4) -> tuple:
        """`(token_ids, next_token_ids, None)` windows of 12 stand-in characters."""
        ids = rng.integers(2, len(info["vocabulary"]), size=(batch_size, 13))
        return ids[:, :-1], ids[:, 1:], None

    def example_output_shape(self, info: dict, batch_size: int) -> tuple:
        return (batch_size, 12, len(info["vocabulary"]))

    def model_input(self, x, config):
        return tf.constant(x)

    def served_and_predicted(self, model, served, x, config) -> tuple:
        """The export's scores of texts, and the model's log-likelihoods of them here."""
        vocabulary = list(self.example_info()["vocabulary"])
        texts = ["".join(vocabulary[i] for i in row) for row in x]
        got = served.signatures["score"](text=tf.constant(texts))["log_probability"].numpy()
        ids = np.concatenate([np.full((len(x), 1), vocabulary.index(SEPARATOR)), x], axis=1)
        want = keras.ops.convert_to_numpy(model.log_likelihood(tf.constant(ids))).sum(-1)
        return got, want

    # Export -------------------------------------------------------------------------

    def signatures(self, model, info: dict, config) -> dict:
        config = self.with_defaults(config)
        generate, score = self.functions(model, info, config)

        def serving_default(prompt):
            text = generate(
                prompt,
                config["max_length"],
                config["temperature"],
                config["top_k"],
                config["top_p"],
                config["seed"],
            )
            return {"text": text}

        def generate_signature(prompt, max_length, temperature, top_k, top_p, seed):
            return {"text": generate(prompt, max_length, temperature, top_k, top_p, seed)}

        scalar = tf.TensorSpec
        signatures = {
            "serving_default": (serving_default, [scalar([None], tf.string, name="prompt")]),
            "generate": (
                generate_signature,
                [
                    scalar([None], tf.string, name="prompt"),
                    scalar([], tf.int32, name="max_length"),
                    scalar([], tf.float32, name="temperature"),
                    scalar([], tf.int32, name="top_k"),
                    scalar([], tf.float32, name="top_p"),
                    scalar([], tf.int64, name="seed"),
                ],
            ),
            "score": (score, [scalar([None], tf.string, name="text")]),
        }
        embedding = find_embedding(model)
        if embedding is not None:

            def first_ids(word):  # The word's first token (0 for an empty word).
                ids = tf.ragged.map_flat_values(model.lookup, split_tokens(word, level))
                return ids.to_tensor(0, shape=[None, 1])[:, 0]

            level = config["token_level"]
            signatures["neighbours"] = neighbours_signature(
                embedding, info["vocabulary"], first_ids
            )
        return signatures

    def signature_contract(self, info: dict, config) -> dict:
        text = {"text": ["string", [None]]}
        contract = {
            "serving_default": {"inputs": {"prompt": ["string", [None]]}, "outputs": text},
            "generate": {
                "inputs": {
                    "prompt": ["string", [None]],
                    "max_length": ["int32", []],
                    "temperature": ["float32", []],
                    "top_k": ["int32", []],
                    "top_p": ["float32", []],
                    "seed": ["int64", []],
                },
                "outputs": text,
            },
            "score": {
                "inputs": {"text": ["string", [None]]},
                "outputs": {
                    "bits_per_char": ["float32", [None]],
                    "log_probability": ["float32", [None]],
                },
            },
        }
        contract["neighbours"] = neighbours_contract(info["vocabulary"])
        return contract

    def export_examples(self, model, examples, info: dict, config, count: int = 4) -> list[dict]:
        """Prompts, texts and the answers the export must give, from the Keras model."""
        documents = [d.numpy().decode("utf-8") for d in examples.take(count)]
        prompts = [prompt_from(d) for d in documents]
        texts = [d[:200] for d in documents]
        generate, score = self.functions(model, info, config)
        generate = tf.function(generate)  # Traced once: the settings go in as tensors.
        dtypes = (tf.int32, tf.float32, tf.int32, tf.float32, tf.int64)

        def continued(*settings):
            settings = [tf.constant(v, d) for v, d in zip(settings, dtypes, strict=True)]
            return [t.decode("utf-8") for t in generate(tf.constant(prompts), *settings).numpy()]

        options = (32, 0.8, 5, 0.95, 7)
        as_inputs = dict(zip(SAMPLING, options, strict=True))
        config = self.with_defaults(config)
        scores = tf.function(score)(tf.constant(texts))
        result = [
            {  # The run's own sampling settings.
                "signature": "serving_default",
                "inputs": {"prompt": [p.encode() for p in prompts]},
                "outputs": {"text": continued(*(config[key] for key in SAMPLING))},
            },
            {
                "signature": "generate",
                "inputs": {"prompt": [p.encode() for p in prompts], **as_inputs},
                "outputs": {"text": continued(*options)},
            },
            {
                "signature": "generate",
                "inputs": {
                    "prompt": [p.encode() for p in prompts],
                    "max_length": 16,
                    "temperature": 0.0,
                    "top_k": 0,
                    "top_p": 1.0,
                    "seed": 0,
                },
                "outputs": {"text": continued(16, 0.0, 0, 1.0, 0)},
            },
            {
                "signature": "score",
                "inputs": {"text": [t.encode() for t in texts]},
                "outputs": {k: v.numpy().tolist() for k, v in scores.items()},
            },
        ]
        signatures = self.signatures(model, info, config)
        if "neighbours" in signatures:
            words = [*info["vocabulary"][2:5], "\u2603 no such token", ""]
            result.append(neighbours_example(signatures["neighbours"][0], words))
        return result

    def _sampling(self, manifest: dict, options: dict) -> dict:
        """The sampling settings: `options` over the run's."""
        return sampling_settings(
            manifest["training"], options, what="language model exports", also=("stream",)
        )

    def predict_export(self, signatures, manifest: dict, inputs: list[str], **options) -> list:
        """Continue each prompt with an export; one result dict per prompt, whose
        `continuation` follows the prompt as it is (a space first at word level)."""
        settings = self._sampling(manifest, options)
        texts = self.export_predictor(signatures)["generate"](
            tf.constant(inputs), *settings.values()
        )
        level = manifest["training"]["token_level"]
        return [
            {"input": prompt, "continuation": _after(prompt, text.decode("utf-8"), level)}
            for prompt, text in zip(inputs, texts.numpy(), strict=True)
        ]

    def stream_export(self, signatures, manifest: dict, prompt: str, **options):
        """Continue `prompt`, yielding the text as it is generated: the export is asked
        for `STREAM_TOKENS` tokens at a time, each time continuing all the text so far
        (so the text differs from one request's sample with the same seed). The settings
        are checked here, before the first piece is asked for."""
        settings = self._sampling(manifest, options)
        generate = self.export_predictor(signatures)["generate"]
        return _stream(generate, settings, prompt, manifest["training"]["token_level"])


def _stream(generate, settings: dict, prompt: str, level: str):
    """The pieces of `stream_export`, each from one `generate` call."""
    text, remaining, request = prompt, settings["max_length"], 0
    while remaining > 0:
        wanted = min(STREAM_TOKENS, remaining)
        step = {**settings, "max_length": wanted, "seed": settings["seed"] + request}
        piece = generate(tf.constant([text]), *step.values()).numpy()[0].decode("utf-8")
        piece = _after(text, piece, level)
        yield piece
        text, request = text + piece, request + 1
        produced = len(piece) if level == "character" else len(piece.split())
        if produced < wanted:  # The stop string ended it.
            return
        remaining -= wanted


# Token counts of the splits read (by dataset): see `LanguageModelling.num_tokens`.
_NUM_TOKENS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def token_stream(documents, token_level: str) -> tf.data.Dataset:
    """The tokens (strings) of each of `documents` as they are read, `SEPARATOR`'s
    before every document but the first: together, the tokens of the documents joined
    by it."""
    separator = split_tokens(tf.constant([SEPARATOR]), token_level).flat_values

    def tokens(index, document):
        tokens = split_tokens(document[None], token_level).flat_values
        return tf.concat([separator[: tf.minimum(index, 1)], tokens], 0)

    return documents.enumerate().map(tokens, num_parallel_calls=tf.data.AUTOTUNE)


def head(documents, characters: int) -> tf.data.Dataset:
    """The first of `documents` up to `characters` in all (the first one whole, and
    each after it that starts within them)."""

    def running(before, document):
        size = tf.cast(tf.strings.length(document, unit="UTF8_CHAR"), tf.int64)
        return before + size, (document, before)

    ds = documents.scan(tf.constant(0, tf.int64), running)
    return ds.take_while(lambda _, before: before < characters).map(lambda document, _: document)


@functools.lru_cache(maxsize=4)
def _lookup(vocabulary: tuple) -> keras.layers.StringLookup:
    """A `StringLookup` to the ids of `vocabulary` (padding and `[UNK]` first)."""
    return keras.layers.StringLookup(
        vocabulary=list(vocabulary)[2:], mask_token="", oov_token="[UNK]"
    )


def _after(prompt: str, text: str, token_level: str) -> str:
    """`text` as it follows `prompt`: word-level tokens need a space between."""
    if token_level == "word" and text and prompt and not prompt[-1].isspace() and text[0] != "\n":
        return " " + text
    return text


def prompt_from(document: str) -> str:
    """A prompt from a held-out document: the start of its first paragraph after a
    blank line (past a title), up to `PROMPT_CHARACTERS` and cut at a space."""
    start = document.find("\n\n")
    start = start + 2 if 0 <= start < len(document) // 2 else 0
    prompt = document[start : start + PROMPT_CHARACTERS]
    cut = prompt.rfind(" ")
    return prompt[: cut + 1] if cut > 0 else prompt


def scoring_batches(documents, most: int = 8):
    """`documents` (UTF-8 bytes) as lists of texts to score at once: up to `most`, and
    as many as keep the batch (its count times its longest) within `SCORE_CHARACTERS`
    (a longer document alone), so that the activations of one call stay bounded."""
    batch, longest = [], 0
    for document in documents:
        text = document.decode("utf-8")
        if batch and (
            len(batch) == most or (len(batch) + 1) * max(longest, len(text)) > SCORE_CHARACTERS
        ):
            yield batch
            batch, longest = [], 0
        batch.append(text)
        longest = max(longest, len(text))
    if batch:
        yield batch


def head_documents(documents, characters: int) -> list[str]:
    """The first of `documents` up to `characters` in all (joined by `SEPARATOR`), the
    last one cut there."""
    texts, size = [], -1
    for document in head(documents, characters).as_numpy_iterator():
        texts.append(document.decode("utf-8")[: characters - size - 1])
        size += len(texts[-1]) + 1
    return texts


def tail_text(documents, characters: int) -> str:
    """The text of `documents` joined by `SEPARATOR`, from its last `characters`
    (every document is read)."""
    kept, size = collections.deque(), 0
    for document in documents.as_numpy_iterator():
        kept.append(document.decode("utf-8"))
        size += len(kept[-1]) + 1
        while len(kept) > 1 and size - len(kept[0]) - 1 >= characters:
            size -= len(kept.popleft()) + 1
    return SEPARATOR.join(kept)[-characters:]


def ngram_baseline(data, info: dict, config) -> dict:
    """The Kneser-Ney n-gram of the best order up to 8 on the validation split: its
    held-out bits per character, and every order's; counted on up to `NGRAM_TOKENS` of
    the training text and measured on up to `HELD_OUT_SAMPLE` characters of each
    held-out split."""
    from kerasnotes.models.ngram import NGramLM, count_ngrams

    vocabulary = info["vocabulary"]
    level = config["token_level"]
    lookup = _lookup(tuple(vocabulary))
    ids = token_stream(data.train, level).map(lookup).rebatch(NGRAM_TOKENS)
    training = next(iter(ids)).numpy()
    # One model of the highest order answers for every lower order from its counts.
    model = NGramLM(vocabulary, order=max(BASELINE_ORDERS), discount=0.75)
    model.set_counts(count_ngrams(training, model.order))
    separator = LanguageModelling.token_ids([SEPARATOR], vocabulary, level)[0][:1]

    def bits(split):
        """Each order's bits per character on `split`, every document from its start."""
        documents = head_documents(getattr(data, split), HELD_OUT_SAMPLE)
        rows = [
            np.concatenate([separator, row])
            for row in LanguageModelling.token_ids(documents, vocabulary, level)
        ]
        # Every token's context within its document, and the token: one call per order.
        context = np.concatenate([model.contexts(row[None])[0, 1:] for row in rows])
        targets = np.concatenate([row[1:] for row in rows])[:, None]
        characters = max(1, sum(len(d) for d in documents))
        return {
            order: -float(np.sum(np.log(model.probabilities(context, targets, order))))
            / math.log(2)
            / characters
            for order in BASELINE_ORDERS
        }

    validation, test = bits("validation"), bits("test")
    by_order = {order: (round(validation[order], 4), round(test[order], 4)) for order in test}
    best = min(by_order, key=lambda order: by_order[order][0])
    return {
        "order": best,
        "bits_per_char": by_order[best][1],
        "by_order": {str(order): test for order, (_, test) in by_order.items()},
        "training_tokens": len(training),
    }


TASK = LanguageModelling()
