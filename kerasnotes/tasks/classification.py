"""What every classification task measures on its held-out split.

Image, clip, waveform and text classifiers all end in class probabilities; they are
measured the same way, with scikit-learn's F1 and the confusion plot of
`kerasnotes.plots`.
"""

from __future__ import annotations

import keras
import numpy as np


def classification_metrics(labels: np.ndarray, scores: np.ndarray, class_names) -> dict:
    """Accuracy, macro F1, loss and per-class accuracy of class probabilities
    `scores` `(examples, classes)` against integer `labels` `(examples,)`."""
    from sklearn.metrics import f1_score

    predictions = scores.argmax(-1)
    loss = keras.losses.sparse_categorical_crossentropy(labels, scores)
    classes = range(len(class_names))
    return {
        "accuracy": float(np.mean(predictions == labels)),
        "macro_f1": float(
            f1_score(labels, predictions, average="macro", labels=classes, zero_division=0)
        ),
        "loss": float(np.mean(keras.ops.convert_to_numpy(loss))),
        "num_examples": int(len(labels)),
        "per_class_accuracy": {
            name: float(np.mean(predictions[labels == i] == i)) if np.any(labels == i) else None
            for i, name in enumerate(class_names)
        },
    }
