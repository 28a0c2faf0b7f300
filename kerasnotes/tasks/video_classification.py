"""Video classification: clips in, class label and scores out.

Image classification with time: the data are `(uint8 clip (frames, height, width, 3),
int label)` from `kerasnotes.data.videos`; builders receive `input_shape` (a clip's, in
the model's `data_format` order) and `num_classes`. It is trained, measured and served
as image classification is, with clips where images were.

Export contract:

| signature | inputs | outputs |
| --- | --- | --- |
| `serving_default` | `video_bytes` string[batch] (animated GIF; frames sampled evenly and resized in the graph) | `label` string[batch], `scores` float32[batch, classes] |
| `frames` | `frames` float32[batch, T, H, W, C] or [batch, T, C, H, W], pixels 0-255 | the same |
"""

from __future__ import annotations

import io
import os

import numpy as np
import tensorflow as tf

from kerasnotes.data import streams
from kerasnotes.data import videos as video_data
from kerasnotes.data.images import read_bytes, to_data_format
from kerasnotes.errors import DataError
from kerasnotes.tasks.image_classification import ImageClassification

# The stand-in clip when the real one is known only after loading (tfds names).
PLACEHOLDER_CLIP_SHAPE = (8, 64, 64, 3)


def encode_gif(clip: np.ndarray, frame_ms: int = 100) -> bytes:
    """An animated GIF of a uint8 clip `(frames, height, width, 3)` (for tests, exports'
    examples and users who want to try an export)."""
    from PIL import Image

    frames = [Image.fromarray(frame) for frame in clip]
    out = io.BytesIO()
    frames[0].save(
        out, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms, loop=0
    )
    return out.getvalue()


class VideoClassification(ImageClassification):
    name = "video_classification"
    settings = {"image_size": None, "num_frames": 0, **streams.CACHE_SETTINGS}
    input_kind = "clip files (GIF, MP4, AVI, WebM, MOV, MKV)"
    shape_key = "clip_shape"
    bytes_input = "video_bytes"
    # The clip length stays static in both signatures: Keras's TimeDistributed does not
    # export a dynamic time axis (keras#19876).
    tensor_signature, tensor_input = "frames", "frames"

    def decode(self, encoded: tf.Tensor, info: dict, data_format: str) -> tf.Tensor:
        """Animated GIFs to clips in the model's order, in the graph (frames sampled
        evenly, resized)."""
        return to_data_format(
            video_data.decode_gif_clips(encoded, info["clip_shape"]), data_format
        )

    def encode(self, example: np.ndarray, info: dict) -> bytes:
        return encode_gif(example)

    def datasets_help(self) -> list[str]:
        return [
            "moving_shapes (embedded default), moving_shapes/small (embedded, for quick tries)",
            "tfds names: " + ", ".join(video_data.TFDS_EXAMPLES) + " (downloaded once)",
            "a directory with one sub-folder of clips per class (GIF, "
            + ", ".join(e.lstrip(".").upper() for e in video_data.FFMPEG_EXTENSIONS)
            + ")",
        ]

    # Data ---------------------------------------------------------------------------

    def load_data(self, config):
        return video_data.load(
            config["dataset"],
            image_size=config["image_size"],
            num_frames=config["num_frames"] or None,
            skip_bad_records=config["skip_bad_records"],
            cache=streams.Cache.from_config(config),
        )

    def example_info(self, config=None) -> dict:
        if config is None:  # The test harness: short, small clips.
            shape = [4, 24, 24, 3]
        else:
            streams.Cache.from_config(config)
            if config["num_frames"] < 0:
                raise DataError(
                    f"Invalid num_frames {config['num_frames']!r}: must be >= 1 (0: the "
                    "dataset's own)."
                )
            shape = video_data.expected_clip_shape(
                config["dataset"], config["image_size"], config["num_frames"] or None
            )
        return {
            "class_names": ["a", "b", "c"],
            "clip_shape": list(shape or PLACEHOLDER_CLIP_SHAPE),
            "num_examples": {},
            "source": "example",
        }

    # Evaluation ---------------------------------------------------------------------

    def plots(self, model, data, info: dict, config, run_dir: str) -> list[str]:
        """The confusion plot, and a strip of frames of a few held-out clips with their
        predicted and true labels."""
        from kerasnotes import plots

        return self.confusion_and_examples(
            model, data, info, config, run_dir, plots.clip_strips, "clips.png"
        )

    # Export -------------------------------------------------------------------------

    def serve_file(self, serve, path: str, manifest: dict) -> dict:
        """GIFs go to the export as they are; other formats are decoded here (PyAV)
        into the clip length and frame size of the export, as a GIF."""
        expected = "expected an animated GIF or " + ", ".join(video_data.FFMPEG_EXTENSIONS)
        if path.lower().endswith(video_data.GIF_EXTENSIONS):
            content = read_bytes(path, "clip")
        elif path.lower().endswith(video_data.FFMPEG_EXTENSIONS):
            content = encode_gif(self._read_clip(path, manifest["data"]["clip_shape"]))
        else:  # A photo or a sound would decode as a clip of one frame, or none.
            raise DataError(f"Unsupported clip {path!r}: {expected}.")
        try:
            return serve(video_bytes=tf.constant([content]))
        except tf.errors.InvalidArgumentError:
            raise DataError(f"Corrupt or unsupported clip {path!r}: {expected}.") from None

    @staticmethod
    def _read_clip(path: str, clip_shape) -> np.ndarray:
        num_frames, height, width, _ = clip_shape
        if not os.path.isfile(path):
            raise DataError(f"Cannot read clip {path!r}: no such file.")
        try:
            return video_data.read_clip(path, num_frames, (height, width))
        except (OSError, ValueError) as e:
            raise DataError(f"Corrupt or unsupported clip {path!r}: {str(e)[:120]}.") from None


TASK = VideoClassification()
