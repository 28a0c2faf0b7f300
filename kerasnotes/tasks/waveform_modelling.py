"""Waveform modelling: a sound or a series in, its next values out.

The data are series of floats (`kerasnotes.data.series`), quantised to `num_levels`
levels (mu-law for sounds; evenly for CSV series, each context scaled by its own
midrange and range first, so that a model continues a series at any level and
amplitude, and every column of a file gets the same share of the levels). A builder
receives `num_levels` and returns a model from `levels` `(batch, time)` to `logits` `(batch, time, num_levels)`,
the next level's scores at every step, with the layer names of
`kerasnotes.models.wavenet.wavenet_generator` (its generation keeps per-layer queues,
`QueuedGenerator`). Training reads windows of a receptive field and `window` samples
and predicts the last `window` of them (cross-entropy), each from a whole receptive
field before it, as generation after a long enough context does. A window of a CSV
series is scaled by its first receptive field (the values before the first predicted
one), a `generate` context by its last receptive field, a `score` series by its first
receptive field (all values but the last if it is shorter).

Held-out metrics, on the test series read in windows: bits per sample (the
cross-entropy in bits of the next level), next-level accuracy, and the error of the
most likely next value in the data's own units (MAE, RMSE) beside repeating the last
value (the naive forecast).

Export contract:

| signature | inputs | outputs |
| --- | --- | --- |
| `serving_default` | `context` float32[batch, time] (the data's units; at least one value) | `continuation` float32[batch, max_length] (the run's sampling settings) |
| `generate` | `context`, `max_length` int32, `temperature` float32 (0: the most likely level), `top_k` int32, `top_p` float32, `seed` int64 | `continuation` |
| `score` | `series` float32[batch, time] | `bits` float32[batch, time - 1] (of each value after the first, given those before it), `next_values` float32[batch, time - 1] (the most likely value after each but the last) |
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from kerasnotes.data import series as series_data
from kerasnotes.data import streams
from kerasnotes.decoding import SAMPLING, check_sampling, decode, sampling_settings
from kerasnotes.errors import DataError

PLOTTED_CONTEXT = 256  # Samples of context before the plotted continuation.


class WaveformModelling:
    name = "waveform_modelling"
    derived_keys = ("num_levels",)
    settings = {
        "num_levels": 256,
        "window": 256,
        "num_samples": 0,
        "sample_rate": 0,
        **streams.CACHE_SETTINGS,  # For sounds; a CSV file's values are read once.
        # Sampling: the export's defaults, and the continuation plotted after training.
        "max_length": 256,
        "temperature": 1.0,
        "top_k": 0,
        "top_p": 1.0,
    }
    layout = (None, (None,))  # Levels `(batch, time)` have one layout: no channel axis.
    input_kind = "CSV files (one context per numeric column) or WAV files"

    def datasets_help(self) -> list[str]:
        return [
            "signals (embedded default, mu-law), signals/small (embedded, for quick tries)",
            "a CSV file of series, one numeric column per series (split 80/10/10 in time)",
            "a directory with one sub-folder of WAV files per class; tfds audio names",
        ]

    def with_defaults(self, config) -> dict:
        """`config` with the task's defaults for what it lacks (the test harness)."""
        return {**self.settings, "seed": 0, **config}

    # Data ---------------------------------------------------------------------------

    def describe(self, model) -> str | None:
        """The receptive field, for the run's log."""
        from kerasnotes.models.wavenet import describe_receptive_field

        return describe_receptive_field(model)

    def load_data(self, config):
        data = series_data.load(
            config["dataset"],
            num_samples=config["num_samples"] or None,
            sample_rate=config["sample_rate"] or None,
            skip_bad_records=config["skip_bad_records"],
            cache=streams.Cache.from_config(config),
        )
        field = self.receptive_field(config)
        data = _SplitsAsDatasets(data)
        for part in ("train", "validation", "test"):
            longest = int(
                getattr(data, part).reduce(
                    tf.constant(0, tf.int64), lambda n, s: tf.maximum(n, tf.size(s, tf.int64))
                )
            )
            if longest < field + config["window"]:
                raise DataError(
                    f"The {part} split's longest series has {longest} values: too short for "
                    f"the receptive field ({field}) and a window of {config['window']} after "
                    "it (set a smaller window or layers_per_block)."
                )
        return data

    def example_info(self, config=None) -> dict:
        """A stand-in for `data_info`; with `config`, its settings are checked first
        (before any data is read)."""
        if config is not None:
            for key in ("num_levels", "window"):
                if config[key] < 2:
                    raise DataError(f"Invalid {key} {config[key]!r}: must be at least 2.")
            check_sampling(config)
        return {
            "num_levels": (config or {}).get("num_levels", 16),
            "quantization": "mu_law",
            "scaling": "none",
            "sample_rate": 8000,
            "num_examples": {},
            "source": "example",
        }

    def data_info(self, data) -> dict:
        source = data.series
        return {
            "quantization": source.quantization,
            "scaling": source.scaling,
            "sample_rate": source.sample_rate,
            "num_examples": source.num_examples,
            "source": source.source,
        }

    def builder_arguments(self, info: dict, config) -> dict:
        return {"num_levels": config.get("num_levels") or info["num_levels"]}

    @staticmethod
    def _scaling(context, info):
        """`(offset, scale)` that take the values of each row whose context is `context`
        `(batch, time)` to [-1, 1]: the context's own (CSV series), or none (sounds; the
        fixed numbers of runs made before contexts were scaled by themselves)."""
        if info.get("scaling") == "context":
            return series_data.context_scaling(context)
        return info.get("offset", 0.0), info.get("scale", 1.0)

    @staticmethod
    def _levels(values, scaling, info, num_levels: int):
        """Values in the data's units to levels, by `scaling` (`_scaling`)."""
        offset, scale = scaling
        scaled = (tf.cast(values, tf.float32) - offset) / scale
        return series_data.to_levels(scaled, num_levels, info["quantization"])

    @staticmethod
    def _values(levels, scaling, info, num_levels: int):
        """Levels to values in the data's units, by `scaling`."""
        offset, scale = scaling
        return series_data.from_levels(levels, num_levels, info["quantization"]) * scale + offset

    @staticmethod
    def receptive_field(config) -> int:
        """The receptive field of the run's network, from the stack's hyperparameters."""
        from kerasnotes.models.wavenet import layer_dilations, receptive_field

        dilations = layer_dilations(
            config["num_blocks"], config["layers_per_block"], config["dilation_growth"]
        )
        return receptive_field(config["kernel_size"], dilations)

    def windows(self, split, config, stride=None, *, batch_size=None, seed=None):
        """Batches of the windows of every series of `split` (a dataset of series, or
        arrays), float32 `(batch, receptive field + window)`, `stride` apart (half a
        window by default), cut as the series are read. A window's last `window`
        values are predicted, each from a whole receptive field of values before it,
        as in generation after a long enough context. With `seed`, the windows come
        shuffled anew every epoch (in a buffer of at most `SHUFFLE_BUFFER_BYTES`).
        Returns the batches and how many windows there are."""
        length = self.receptive_field(config) + config["window"]
        stride = stride or max(1, config["window"] // 2)
        split = as_dataset(split)

        def starts(series):
            return tf.range(0, tf.size(series, tf.int64) - length + 1, stride)

        count = int(
            split.reduce(tf.constant(0, tf.int64), lambda n, s: n + tf.size(starts(s), tf.int64))
        )
        ds = split.flat_map(
            lambda series: tf.data.Dataset.from_tensor_slices(starts(series)).map(
                lambda start: series[start : start + length]
            )
        )
        if seed is not None:
            spec = tf.TensorSpec([length], tf.float32)
            buffer = streams.shuffle_buffer(spec, count, most=max(1, count))
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size or config["batch_size"])
        return ds.apply(
            tf.data.experimental.assert_cardinality(
                -(-count // (batch_size or config["batch_size"]))
            )
        ), count

    def window_levels(self, values, info, config):
        """Windows (`windows`) to levels, each scaled by its first receptive field."""
        scaling = self._scaling(values[:, : self.receptive_field(config)], info)
        return self._levels(values, scaling, info, config["num_levels"])

    def batches(self, split, config, info=None, *, training: bool, num_examples=0):
        """Batched `(levels[:, :-1], levels[:, 1:], weights)` windows: only the last
        `window` steps (after a whole receptive field) count."""
        info = info or self.example_info(config)
        windows, _ = self.windows(split, config, seed=config["seed"] if training else None)
        length = self.receptive_field(config) + config["window"]
        weights = np.zeros(length - 1, np.float32)
        weights[-config["window"] :] = 1

        def to_model(values):
            levels = self.window_levels(values, info, config)
            return levels[:, :-1], levels[:, 1:], tf.tile(weights[None], [tf.shape(levels)[0], 1])

        return windows.map(to_model, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
            tf.data.AUTOTUNE
        )

    # Training and evaluation -------------------------------------------------------

    def compile(self, model, optimizer) -> None:
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )

    def score_function(self, model, info: dict, config):
        """Series `(batch, time)` in the data's units to bits per sample and the most
        likely value after each sample but the last; each series scaled by its first
        receptive field (all values but the last if it is shorter)."""
        from kerasnotes.models.wavenet import receptive_field_of

        num_levels = model.output_shape[-1]
        field = receptive_field_of(model) or 1

        def score(values):
            known = tf.maximum(tf.minimum(field, tf.shape(values)[1] - 1), 1)
            scaling = self._scaling(values[:, :known], info)
            levels = self._levels(values, scaling, info, num_levels)
            logits = tf.cast(model(levels[:, :-1], training=False), tf.float32)
            nats = tf.nn.sparse_softmax_cross_entropy_with_logits(levels[:, 1:], logits)
            return {
                "bits": nats / np.log(2.0),
                "next_values": self._values(tf.argmax(logits, -1), scaling, info, num_levels),
            }

        return score

    def model_predictor(self, model, info=None, config=None):
        return self.score_function(model, info, config)

    def export_predictor(self, signatures):
        return lambda values: signatures["score"](series=values)

    def evaluate(self, score, data, info: dict, config) -> dict:
        """Bits per sample beside a model that ignores time (the training split's level
        frequencies, add-one smoothed), next-level accuracy, and the next value's error
        in the data's units beside the naive forecast (the last value again), over the
        test series read in windows one after another, each value predicted from a
        whole receptive field before it."""
        config = self.with_defaults(config)
        num_levels, field = config["num_levels"], self.receptive_field(config)
        scored = slice(-config["window"], None)  # The predictions of the window's values.
        counts = np.zeros(num_levels, np.int64)
        training, _ = self.windows(data.train, config, config["window"])
        for batch in training:
            levels = np.asarray(self.window_levels(batch, info, config))[:, scored]
            counts += np.bincount(levels.ravel(), minlength=num_levels)
        marginal = -np.log2((counts + 1) / (counts.sum() + num_levels))
        windows, count = self.windows(data.test, config, stride=config["window"])
        if not count:
            raise DataError("The test split has no whole window: nothing to evaluate.")
        bits, marginal_bits, errors, naive, hits = [], [], [], [], []
        for batch in windows.as_numpy_iterator():
            scaling = self._scaling(batch[:, :field], info)
            out = score(tf.constant(batch))
            bits.append(np.asarray(out["bits"])[:, scored])
            predicted = np.asarray(out["next_values"])[:, scored]
            wanted = batch[:, 1:][:, scored]
            errors.append(predicted - wanted)
            naive.append(batch[:, :-1][:, scored] - wanted)
            levels = self._levels(wanted, scaling, info, num_levels).numpy()
            marginal_bits.append(marginal[levels])
            hits.append(self._levels(predicted, scaling, info, num_levels).numpy() == levels)
        errors, naive = np.concatenate(errors), np.concatenate(naive)
        return {
            "bits_per_sample": float(np.mean(np.concatenate(bits))),
            "marginal_bits_per_sample": float(np.mean(np.concatenate(marginal_bits))),
            "next_level_accuracy": float(np.mean(np.concatenate(hits))),
            "mae": float(np.mean(np.abs(errors))),
            "rmse": float(np.sqrt(np.mean(errors**2))),
            "naive_mae": float(np.mean(np.abs(naive))),
            "naive_rmse": float(np.sqrt(np.mean(naive**2))),
            "num_windows": count,
        }

    def plots(self, model, data, info: dict, config, run_dir: str) -> list[str]:
        """The first test series' continuation generated from its start, against the
        real one."""
        from kerasnotes import plots

        config = self.with_defaults(config)
        series = next(iter(data.test)).numpy()
        context = series[: min(PLOTTED_CONTEXT, len(series) // 2)]
        steps = min(config["max_length"], len(series) - len(context))
        generate = self.generate_function(model, info, config)
        generated = generate(
            tf.constant(context[None], tf.float32),
            steps,
            config["temperature"],
            config["top_k"],
            config["top_p"],
            config["seed"],
        )
        path = os.path.join(run_dir, "continuation.png")
        return [
            plots.continuation(
                context,
                series[len(context) : len(context) + steps],
                np.asarray(generated)[0],
                path,
                sample_rate=info.get("sample_rate"),
            )
        ]

    # Test harness -------------------------------------------------------------------

    def model_input(self, x, config):
        return x

    def example_batch(self, info: dict, rng, batch_size: int = 4) -> tuple:
        levels = rng.integers(0, info["num_levels"], size=(batch_size, 65)).astype("int32")
        return levels[:, :-1], levels[:, 1:], None

    def example_output_shape(self, info: dict, batch_size: int) -> tuple:
        return (batch_size, 64, info["num_levels"])

    def served_and_predicted(self, model, served, x, config) -> tuple:
        """The export's next values for the example, and the model's here."""
        info, num_levels = self.example_info(), model.output_shape[-1]
        scaling = self._scaling(None, info)
        values = self._values(x, scaling, info, num_levels)
        got = served.signatures["score"](series=values)["next_values"]
        predicted = tf.argmax(model(x, training=False), -1)[:, :-1]
        return got.numpy(), self._values(predicted, scaling, info, num_levels).numpy()

    # Export -------------------------------------------------------------------------

    def generate_function(self, model, info: dict, config):
        """`generate(context, max_length, temperature, top_k, top_p, seed)`: the next
        `max_length` values after each context `(batch, time)` (at least one value),
        one queued step per value (`kerasnotes.models.wavenet.QueuedGenerator`), scaled
        as the context's last receptive field."""
        from kerasnotes.models.wavenet import QueuedGenerator, receptive_field_of

        generator = QueuedGenerator(model)
        num_levels, field = generator.num_levels, receptive_field_of(model) or 1

        def generate(context, max_length, temperature, top_k, top_p, seed):
            scaling = self._scaling(context[:, -field:], info)
            levels = self._levels(context, scaling, info, num_levels)
            out = decode(
                generator.step,
                generator.initial_state(levels),
                levels[:, -1:],
                tf.ones([tf.shape(levels)[0]], tf.int32),
                max_new_tokens=max_length,
                sample=True,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                seed=seed,
            )
            return self._values(out["tokens"], scaling, info, num_levels)

        return generate

    def signatures(self, model, info: dict, config) -> dict:
        config = self.with_defaults(config)
        generate = self.generate_function(model, info, config)
        score = self.score_function(model, info, config)

        def serving_default(context):
            settings = [config[key] for key in SAMPLING]
            return {"continuation": generate(context, *settings)}

        def generate_signature(context, max_length, temperature, top_k, top_p, seed):
            return {"continuation": generate(context, max_length, temperature, top_k, top_p, seed)}

        spec = tf.TensorSpec
        return {
            "serving_default": (serving_default, [spec([None, None], tf.float32, name="context")]),
            "generate": (
                generate_signature,
                [
                    spec([None, None], tf.float32, name="context"),
                    spec([], tf.int32, name="max_length"),
                    spec([], tf.float32, name="temperature"),
                    spec([], tf.int32, name="top_k"),
                    spec([], tf.float32, name="top_p"),
                    spec([], tf.int64, name="seed"),
                ],
            ),
            "score": (score, [spec([None, None], tf.float32, name="series")]),
        }

    def signature_contract(self, info: dict, config) -> dict:
        continuation = {"continuation": ["float32", [None, None]]}
        max_length = self.with_defaults(config)["max_length"]
        return {
            "serving_default": {
                "inputs": {"context": ["float32", [None, None]]},
                "outputs": {"continuation": ["float32", [None, max_length]]},
            },
            "generate": {
                "inputs": {
                    "context": ["float32", [None, None]],
                    "max_length": ["int32", []],
                    "temperature": ["float32", []],
                    "top_k": ["int32", []],
                    "top_p": ["float32", []],
                    "seed": ["int64", []],
                },
                "outputs": continuation,
            },
            "score": {
                "inputs": {"series": ["float32", [None, None]]},
                "outputs": {
                    "bits": ["float32", [None, None]],
                    "next_values": ["float32", [None, None]],
                },
            },
        }

    def export_examples(self, model, examples, info: dict, config, count: int = 2) -> list:
        """Contexts from held-out series and what the model continues them with (the
        run's sampling settings, and greedy), and their scores."""
        config = self.with_defaults(config)
        series = [s.numpy() for s in examples.take(count)]
        length = min(64, *(len(s) for s in series))
        context = tf.constant(np.stack([s[:length] for s in series]), tf.float32)
        generate = self.generate_function(model, info, config)
        settings = [config[key] for key in SAMPLING]
        greedy = {
            **dict(zip(SAMPLING, settings, strict=True)),
            "temperature": 0.0,
            "max_length": 8,
        }
        scored = self.score_function(model, info, config)(context)
        return [
            {
                "signature": "serving_default",
                "inputs": {"context": context.numpy().tolist()},
                "outputs": {"continuation": np.asarray(generate(context, *settings)).tolist()},
            },
            {
                "signature": "generate",
                "inputs": {"context": context.numpy().tolist(), **greedy},
                "outputs": {
                    "continuation": np.asarray(generate(context, *greedy.values())).tolist()
                },
            },
            {
                "signature": "score",
                "inputs": {"series": context.numpy().tolist()},
                "outputs": {k: np.asarray(v).tolist() for k, v in scored.items()},
            },
        ]

    def predict_export(self, signatures, manifest: dict, inputs: list[str], **options) -> list:
        """Continue the series in each file (every numeric column of a CSV file, or a
        WAV file's sound); one result per series."""
        if options.pop("greedy", False):
            options["temperature"] = 0.0
        settings = sampling_settings(manifest["training"], options, what="waveform model exports")
        generate = signatures["generate"]
        results = []
        for path, name, context in self._contexts(inputs, manifest["data"]):
            out = generate(
                context=tf.constant(context[None], tf.float32),
                max_length=tf.constant(settings["max_length"], tf.int32),
                temperature=tf.constant(settings["temperature"], tf.float32),
                top_k=tf.constant(settings["top_k"], tf.int32),
                top_p=tf.constant(settings["top_p"], tf.float32),
                seed=tf.constant(settings["seed"], tf.int64),
            )["continuation"]
            results.append(
                {
                    "input": f"{path}:{name}" if name else path,
                    "continuation": out.numpy()[0].tolist(),
                }
            )
        return results

    @staticmethod
    def _contexts(inputs: list[str], info: dict):
        """`(path, column name or None, float series)` for each series in `inputs`: a
        WAV file's sound (at the model's sample rate), or every numeric column of a CSV
        file."""
        from kerasnotes.data import waveforms

        for path in inputs:
            if not path.lower().endswith(waveforms.WAV_EXTENSIONS):
                for name, values in series_data.read_columns(path):
                    yield path, name, values.astype(np.float32)
                continue
            rate = info.get("sample_rate")
            try:
                found = waveforms.wav_rate(path)
                if rate and found != rate:
                    raise ValueError(f"it is {found} Hz, the model's sounds {rate} Hz")
                sound = waveforms.read_wav(path, None, found)
                if not len(sound):
                    raise ValueError("it holds no samples; a context needs at least one")
            except (OSError, ValueError) as e:
                raise DataError(f"Cannot use {path!r} as a context: {e}.") from None
            yield path, None, sound[:, 0]


def as_dataset(series) -> tf.data.Dataset:
    """Series as a `tf.data` dataset of float32 vectors: a dataset as it is, arrays
    (of any lengths) sliced from one ragged tensor."""
    if isinstance(series, tf.data.Dataset):
        return series
    series = list(series)
    ragged = tf.RaggedTensor.from_row_lengths(
        np.concatenate([np.zeros(0, np.float32), *series]).astype(np.float32),
        [len(s) for s in series],
    )
    return tf.data.Dataset.from_tensor_slices(ragged)


class _SplitsAsDatasets:
    """`SeriesData` as the trainer reads data: `tf.data` splits of float32 series (of
    any length), with the series themselves at `series`."""

    def __init__(self, data: series_data.SeriesData):
        self.series = data
        for part in ("train", "validation", "test"):
            setattr(self, part, as_dataset(getattr(data, part)))
        self.num_examples = data.num_examples


TASK = WaveformModelling()
