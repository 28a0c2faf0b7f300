"""Waveform classification data: the embedded `signals`, folders of WAV files, tfds names.

Every source comes back as a `WaveformData`: unbatched `tf.data` splits of `(float32
waveform (samples, 1) in [-1, 1], int label)`, class names, the waveform shape and the
sample rate. Every waveform has the same sample rate and length: stereo is mixed down
to mono, longer sounds are cut after `num_samples`, shorter ones padded with silence.

WAV files are decoded with `tf.audio.decode_wav` (16-bit PCM), as the export decodes
them in the graph. A folder's files at another sample rate than the folder's (most
of its files', or `sample_rate`) are resampled (polyphase filtering, SciPy); an export
rejects such a file with an error naming both rates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import warnings

import numpy as np
import tensorflow as tf

from kerasnotes.data.downloads import (
    class_folder_or_tfds,
    classified_keys,
    split_sizes,
    tfds_parts,
    tfds_source,
)
from kerasnotes.data.images import class_folder_splits
from kerasnotes.data.streams import Cache, PythonDecoder, tfds_splits
from kerasnotes.errors import DataError

EMBEDDED = ("signals", "signals/small")
WAV_EXTENSIONS = (".wav",)
# Length of a folder's sounds (and of a tfds dataset's of varying length) when
# `num_samples` is not given: one second.
DEFAULT_SECONDS = 1.0
# tfds names the CLI lists: any tfds dataset with an audio and a class label feature.
TFDS_EXAMPLES = ("spoken_digit", "speech_commands")


@dataclasses.dataclass
class WaveformData:
    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    class_names: list[str]
    waveform_shape: tuple[int, int]  # (samples, channels)
    sample_rate: int
    num_examples: dict[str, int]
    source: str


def fit_length(waveform, num_samples: int):
    """`(samples, channels)` cut after `num_samples` or padded with silence to it;
    NumPy or tensors."""
    if isinstance(waveform, np.ndarray):
        waveform = waveform[:num_samples]
        return np.pad(waveform, [(0, num_samples - len(waveform)), (0, 0)])
    waveform = waveform[:num_samples]
    return tf.pad(waveform, [[0, num_samples - tf.shape(waveform)[0]], [0, 0]])


NO_SAMPLES = "The WAV file has no samples"


def decode_wav(content, num_samples: int | None = None, sample_rate: int | None = None):
    """WAV bytes to float32 `(samples, 1)` in [-1, 1] (channels mixed down; cut or padded
    to `num_samples` if given) and the file's sample rate, in the graph or eagerly. With
    `sample_rate`, a file at another rate is an `InvalidArgumentError` naming both; so
    is a file of no samples (`NO_SAMPLES`)."""
    audio, rate = tf.audio.decode_wav(content)  # (samples, channels), float32
    with tf.control_dependencies(
        [tf.debugging.assert_positive(tf.shape(audio)[0], message=NO_SAMPLES)]
    ):
        audio = tf.identity(audio)
    if sample_rate is not None:
        tf.debugging.assert_equal(
            rate,
            tf.constant(sample_rate, tf.int32),
            message=f"The WAV file's sample rate is not the model's {sample_rate} Hz",
        )
    mono = tf.reduce_mean(audio, axis=-1, keepdims=True)
    return (mono if num_samples is None else fit_length(mono, num_samples)), rate


def decode_wavs(audio_bytes: tf.Tensor, waveform_shape, sample_rate: int) -> tf.Tensor:
    """WAV files (string `(batch,)`) to float waveforms `(batch, samples, 1)`, in the
    graph: what the export's `serving_default` does with `audio_bytes`."""
    num_samples = waveform_shape[0]
    return tf.map_fn(
        lambda content: decode_wav(content, num_samples, sample_rate)[0],
        audio_bytes,
        fn_output_signature=tf.TensorSpec((num_samples, 1), tf.float32),
    )


def encode_wav(waveform: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV bytes of a float waveform `(samples, channels)` in [-1, 1]."""
    return tf.audio.encode_wav(tf.constant(waveform, tf.float32), sample_rate).numpy()


def wav_rate(path: str) -> int:
    """The sample rate a WAV file's header gives (the standard library's `wave`, or
    SciPy's reader for float WAVs); `ValueError` if it is not a WAV file, `OSError` if
    it cannot be read."""
    import wave

    try:
        with wave.open(path, "rb") as f:
            return f.getframerate()
    except (wave.Error, EOFError) as e:
        with open(path, "rb") as f:
            return decode_other_wav(f.read(), f"not a WAV file ({e})")[1]


def decode_other_wav(content: bytes, reason: str) -> tuple[np.ndarray, int]:
    """WAV bytes TensorFlow does not decode (8-, 24- or 32-bit PCM, 32- or 64-bit
    float) read by SciPy: float32 `(samples, 1)` in [-1, 1], channels mixed down, and
    the rate; `ValueError(reason)` if SciPy cannot read them either."""
    import io

    from scipy.io import wavfile

    try:
        with warnings.catch_warnings():  # Chunks it skips; a bad file raises below.
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            rate, data = wavfile.read(io.BytesIO(content))
    except Exception:  # SciPy raises anything from ValueError to struct.error.
        raise ValueError(reason) from None
    if data.dtype.kind == "u":  # 8-bit PCM is unsigned, centred on 128.
        data = (data.astype(np.float32) - 128) / 128
    elif data.dtype.kind == "i":  # 24-bit PCM comes left-aligned in int32.
        data = data.astype(np.float32) / -float(np.iinfo(data.dtype).min)
    data = data.astype(np.float32).reshape(len(data), -1)
    if not len(data):
        raise ValueError(NO_SAMPLES)
    return data.mean(axis=1, keepdims=True), int(rate)


def read_wav(path: str, num_samples: int | None, sample_rate: int) -> np.ndarray:
    """float32 `(samples, 1)` from a WAV file (16-bit PCM as the exports decode it;
    8-, 24- and 32-bit PCM and float through SciPy; channels mixed down), resampled to
    `sample_rate`, cut or padded to `num_samples` unless it is `None`; `ValueError`
    if it cannot be decoded, `OSError` if it cannot be read."""
    import scipy.signal

    with open(path, "rb") as f:
        content = f.read()
    try:
        mono, rate = decode_wav(content)
        mono, rate = mono.numpy(), int(rate)
    except tf.errors.InvalidArgumentError as e:
        if NO_SAMPLES in e.message:
            raise ValueError(e.message) from None
        mono, rate = decode_other_wav(content, e.message)
    if rate != sample_rate:
        divisor = math.gcd(rate, sample_rate)
        mono = scipy.signal.resample_poly(mono, sample_rate // divisor, rate // divisor, axis=0)
    mono = np.clip(mono, -1, 1).astype(np.float32)
    return mono if num_samples is None else fit_length(mono, num_samples)


def load(
    dataset: str | None,
    *,
    num_samples: int | None = None,
    sample_rate: int | None = None,
    skip_bad_records: bool = False,
    data_dir: str | None = None,
    cache: Cache | None = None,
) -> WaveformData:
    """Load a waveform classification dataset by embedded name, path or tfds name.

    Args:
        dataset: `None` or `"signals"` (embedded, default), `"signals/small"`, a
            directory with one sub-folder of WAV files per class, or a tfds name such
            as `"spoken_digit"`.
        num_samples: samples per waveform; `None`: the dataset's own length (one second
            for folders and datasets of sounds of varying length).
        sample_rate: a folder's rate in Hz (other files are resampled to it); `None`:
            the rate most of its files have. Datasets of one rate must be read at that rate.
        skip_bad_records: skip (and count) unreadable files of a folder instead of failing.
        data_dir: the tfds data directory (default: tfds' own, `TFDS_DATA_DIR`).
        cache: where the decoded splits are kept (`kerasnotes.data.streams`).
    """
    cache = cache or Cache()
    dataset = dataset or EMBEDDED[0]
    if dataset in EMBEDDED:
        from kerasnotes.data.signals import Signals

        config = "small" if dataset.endswith("/small") else "default"
        builder = Signals(config=config, data_dir=data_dir)
        builder.download_and_prepare()
        return _from_builder(builder, dataset, num_samples, sample_rate, cache)
    builder = class_folder_or_tfds(
        dataset, data_dir, embedded=EMBEDDED, examples=TFDS_EXAMPLES, holds="WAV files"
    )
    if builder is None:
        return _from_folder(dataset, num_samples, sample_rate, skip_bad_records, cache)
    return _from_builder(builder, dataset, num_samples, sample_rate, cache)


def _from_builder(builder, name: str, num_samples, sample_rate, cache: Cache) -> WaveformData:
    info = builder.info
    import tensorflow_datasets as tfds

    audio_key, label_key = classified_keys(
        info, name, tfds.features.Audio, "a waveform classification"
    )
    feature = info.features[audio_key]
    rate = int(feature.sample_rate or 16000)
    if sample_rate not in (None, rate):
        raise DataError(
            f"Invalid sample_rate {sample_rate!r} for dataset {name!r}: its sounds are "
            f"{rate} Hz (leave sample_rate unset)."
        )
    length = feature.shape[0] if feature.shape else None
    num_samples = num_samples or length or int(DEFAULT_SECONDS * rate)
    # Integer audio is PCM; float audio is already in [-1, 1].
    scale = 1.0 if feature.tf_dtype.is_floating else 1 / 32768
    parts = tfds_parts(info)

    def read(split):
        ds = builder.as_dataset(split=split, shuffle_files=False)

        def example(features):
            audio = tf.cast(features[audio_key], tf.float32) * scale
            if audio.shape.rank == 1:
                audio = audio[:, None]
            mono = tf.reduce_mean(audio, axis=-1, keepdims=True)
            return fit_length(mono, num_samples), features[label_key]

        return ds.map(example, num_parallel_calls=tf.data.AUTOTUNE)

    num_examples = split_sizes(info, parts)
    splits = {part: read(split) for part, split in parts.items()}
    return WaveformData(
        **tfds_splits(splits, num_examples, num_samples * 4, cache),
        class_names=list(info.features[label_key].names),
        waveform_shape=(num_samples, 1),
        sample_rate=rate,
        num_examples=num_examples,
        source=tfds_source(builder),
    )


def _from_folder(
    path: str, num_samples, sample_rate, skip_bad_records: bool, cache: Cache
) -> WaveformData:
    """`path/<class>/<file>.wav`, each file decoded in the pipeline and checked once."""
    if sample_rate is None:
        sample_rate = _most_common_rate(path)
    num_samples = num_samples or int(DEFAULT_SECONDS * sample_rate)
    classes, splits, counts = class_folder_splits(
        path,
        WAV_EXTENSIONS,
        PythonDecoder(
            lambda file: read_wav(file, num_samples, sample_rate), (num_samples, 1), tf.float32
        ),
        example_bytes=num_samples * 4,
        settings={"num_samples": num_samples, "sample_rate": sample_rate},
        cache=cache,
        unit="sound",
        skip_bad_records=skip_bad_records,
    )
    return WaveformData(
        **splits,
        class_names=classes,
        waveform_shape=(num_samples, 1),
        sample_rate=sample_rate,
        num_examples=counts,
        source=f"folder:{os.path.abspath(path)}",
    )


def _most_common_rate(path: str) -> int:
    """The sample rate most of the WAV files under `path/<class>/` have (read from
    their headers)."""
    import collections

    rates = collections.Counter()
    for folder in sorted(os.listdir(path)):
        folder = os.path.join(path, folder)
        if not os.path.isdir(folder):
            continue
        for file in sorted(os.listdir(folder)):
            if file.lower().endswith(WAV_EXTENSIONS):
                with contextlib.suppress(OSError, ValueError):  # Named when read.
                    rates[wav_rate(os.path.join(folder, file))] += 1
    return rates.most_common(1)[0][0] if rates else 16000


def expected_waveform_shape(dataset: str | None, num_samples=None):
    """The `(samples, 1)` that `load` will give, when known without loading (an
    embedded dataset, or `num_samples` given); else `None`."""
    from kerasnotes.data.signals import Signals

    dataset = dataset or EMBEDDED[0]
    if dataset in EMBEDDED:
        name = "small" if dataset.endswith("/small") else "default"
        config = {c.name: c for c in Signals.BUILDER_CONFIGS}[name]
        return (num_samples or config.num_samples, 1)
    if num_samples:
        return (num_samples, 1)
    return None
