"""What the image tasks share: the channel ordering as their interface layout.

The test harness (`kerasnotes.testing`) builds a model in each of a task's layouts
(`layout`: the builder argument and its values, default first) and holds their
answers equal on the same example given in each layout (`layout_outputs`).
"""

from __future__ import annotations

import numpy as np

from kerasnotes.data.images import to_data_format


class ImageTask:
    layout = ("data_format", ("channels_last", "channels_first"))
    # Axes between the batch (and time) axes and the channels: 2 for images and clips
    # (height, width), 1 for waveforms (samples).
    spatial_rank = 2

    def images_in(self, images: np.ndarray, config) -> np.ndarray:
        """Channels-last images (or clips, or waveforms) in the model's ordering."""
        return to_data_format(images, config.get("data_format"), self.spatial_rank)

    def model_input(self, x, config):
        """The example input `x` (images channels_last) in the model's ordering."""
        if isinstance(x, dict):
            return {**x, "images": self.images_in(x["images"], config)}
        return self.images_in(x, config)

    def layout_outputs(self, model, x, config) -> np.ndarray:
        """The model's answer to the example `x` (channels_last) given in its ordering."""
        import keras

        return keras.ops.convert_to_numpy(model(self.model_input(x, config), training=False))
