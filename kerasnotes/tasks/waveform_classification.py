"""Waveform classification: sounds (or any 1D signal) in, class label and scores out.

Image classification along one axis: the data are `(float32 waveform (samples, 1) in
[-1, 1], int label)` from `kerasnotes.data.waveforms`; builders receive `input_shape`
(`(samples, 1)`, or `(1, samples)` for channels_first) and `num_classes`. It is
trained, measured and served as image classification is, with sounds where images
were.

Export contract:

| signature | inputs | outputs |
| --- | --- | --- |
| `serving_default` | `audio_bytes` string[batch] (16-bit PCM WAV at the model's sample rate; channels mixed down, cut or padded with silence in the graph) | `label` string[batch], `scores` float32[batch, classes] |
| `waveforms` | `waveforms` float32[batch, samples, 1] or [batch, 1, samples], in [-1, 1] | the same |
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from kerasnotes.data import streams
from kerasnotes.data import waveforms as waveform_data
from kerasnotes.data.images import read_bytes, to_data_format
from kerasnotes.errors import DataError
from kerasnotes.tasks.image_classification import ImageClassification

# The stand-in length when the real one is known only after loading (folders, tfds).
PLACEHOLDER_NUM_SAMPLES = 16000


class WaveformClassification(ImageClassification):
    name = "waveform_classification"
    settings = {"num_samples": 0, "sample_rate": 0, **streams.CACHE_SETTINGS}
    input_kind = "WAV files (16-bit PCM)"
    shape_key = "waveform_shape"
    spatial_rank = 1
    example_range = (-1.0, 1.0)
    bytes_input = "audio_bytes"
    tensor_signature, tensor_input = "waveforms", "waveforms"

    def decode(self, encoded: tf.Tensor, info: dict, data_format: str) -> tf.Tensor:
        """WAV files to waveforms in the model's order, in the graph; a file at another
        sample rate than the model's is an `InvalidArgumentError` naming both."""
        waveforms = waveform_data.decode_wavs(encoded, info["waveform_shape"], info["sample_rate"])
        return to_data_format(waveforms, data_format, self.spatial_rank)

    def encode(self, example: np.ndarray, info: dict) -> bytes:
        return waveform_data.encode_wav(example, info["sample_rate"])

    def datasets_help(self) -> list[str]:
        return [
            "signals (embedded default), signals/small (embedded, for quick tries)",
            "tfds names: " + ", ".join(waveform_data.TFDS_EXAMPLES) + " (downloaded once)",
            "a directory with one sub-folder of WAV files per class",
        ]

    def describe(self, model) -> str | None:
        """The receptive field of a model of causal convolutions, for the run's log."""
        from kerasnotes.models.wavenet import describe_receptive_field

        return describe_receptive_field(model)

    # Data ---------------------------------------------------------------------------

    def load_data(self, config):
        return waveform_data.load(
            config["dataset"],
            num_samples=config["num_samples"] or None,
            sample_rate=config["sample_rate"] or None,
            skip_bad_records=config["skip_bad_records"],
            cache=streams.Cache.from_config(config),
        )

    def example_info(self, config=None) -> dict:
        if config is None:  # The test harness: short sounds.
            shape = (256, 1)
        else:
            streams.Cache.from_config(config)
            for key in ("num_samples", "sample_rate"):
                if config[key] < 0:
                    raise DataError(
                        f"Invalid {key} {config[key]!r}: must be >= 1 (0: the dataset's own)."
                    )
            shape = waveform_data.expected_waveform_shape(
                config["dataset"], config["num_samples"] or None
            )
        return {
            "class_names": ["a", "b", "c"],
            "waveform_shape": list(shape or (PLACEHOLDER_NUM_SAMPLES, 1)),
            "sample_rate": 8000,
            "num_examples": {},
            "source": "example",
        }

    def data_info(self, data) -> dict:
        return {**super().data_info(data), "sample_rate": data.sample_rate}

    # Evaluation ---------------------------------------------------------------------

    def plots(self, model, data, info: dict, config, run_dir: str) -> list[str]:
        """The confusion plot, and the waveform and spectrogram of a few held-out sounds
        with their predicted and true labels."""
        from kerasnotes import plots

        def draw(waveforms, titles, path):
            return plots.waveforms_and_spectrograms(waveforms, titles, info["sample_rate"], path)

        return self.confusion_and_examples(model, data, info, config, run_dir, draw, "sounds.png")

    # Export -------------------------------------------------------------------------

    def serve_file(self, serve, path: str, manifest: dict) -> dict:
        content = read_bytes(path, "sound")
        rate = manifest["data"]["sample_rate"]
        try:
            return serve(audio_bytes=tf.constant([content]))
        except tf.errors.InvalidArgumentError as e:
            message = e.message
        try:  # What SciPy reads of it: the rate, and the samples.
            sound, found = waveform_data.decode_other_wav(content, message)
        except ValueError:
            sound, found = None, None
        if sound is not None and found == rate:
            # 24-bit or float samples: given to the export as the 16-bit PCM it takes.
            pcm = waveform_data.encode_wav(np.clip(sound, -1, 1), rate)
            return serve(audio_bytes=tf.constant([pcm]))
        reason = f"it is {found} Hz" if found else "it cannot be decoded"
        if waveform_data.NO_SAMPLES in message:
            reason = "it has no samples"
        raise DataError(
            f"Corrupt or unsupported sound {path!r} ({reason}): expected a 16-bit PCM "
            f"WAV file at {rate} Hz."
        )


TASK = WaveformClassification()
