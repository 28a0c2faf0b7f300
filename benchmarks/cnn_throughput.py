"""Side-by-side training throughput of the `cnn` family (not part of the test suite).

1. kerasnotes vs plain Keras: the default `cnn` built by `kerasnotes.create_model` and
   compiled by its task, against the same architecture written by hand in plain Keras,
   both fed the same tf.data batches. Goal: ratio >= 0.98.
2. Input pipeline: the kerasnotes pipeline over the cached tfds `shapes` data against
   the same batches from in-memory tensors, same model. Goal: ratio >= 0.95.

Each model is built and warmed up once; rounds alternate the contenders' order and the
ratios are medians of per-round pairs, because step time on this machine drifts between
processes and over time (see STACK-FACTS.md).

    python benchmarks/cnn_throughput.py [--rounds 5] [--steps 60]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

import kerasnotes  # noqa: E402
from kerasnotes.data.images import load  # noqa: E402
from kerasnotes.tasks import get_task  # noqa: E402


def plain_keras_cnn(input_shape=(32, 32, 3), num_classes=6):
    """The default kerasnotes cnn, written by hand."""
    inputs = keras.Input(input_shape)
    x = layers.Rescaling(1 / 255)(inputs)
    for filters in (32, 64, 128):
        x = layers.Conv2D(
            filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal"
        )(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def kerasnotes_cnn():
    model = kerasnotes.create_model("cnn")
    get_task("image_classification").compile(model, keras.optimizers.Adam(2e-3))
    return model


def images_per_second(model, batches, steps, batch_size):
    start = time.perf_counter()
    model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * batch_size / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    task = get_task("image_classification")
    config = {"data_format": "channels_last", "batch_size": args.batch_size, "seed": 0}
    data = load("shapes")
    cached = task.batches(data.train, config, training=True, num_examples=8000).repeat()
    list(cached.take(130))  # fill the cache before timing
    arrays = [(x.numpy(), y.numpy()) for x, y in data.train]
    images = np.stack([a for a, _ in arrays]).astype("float32")
    labels = np.array([b for _, b in arrays])
    in_memory = (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .shuffle(8000, seed=0)
        .batch(args.batch_size)
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )

    # Each contender's model is built and warmed up once; every round then times each
    # once, in alternating order, and the ratios are taken round by round (pairs
    # measured back to back), so drift between rounds cancels.
    keras.utils.set_random_seed(0)
    contenders = {
        "kerasnotes (tfds cached pipeline)": (kerasnotes_cnn(), cached),
        "plain Keras, same batches": (plain_keras_cnn(), cached),
        "kerasnotes, in-memory tensors": (kerasnotes_cnn(), in_memory),
    }
    for model, batches in contenders.values():
        model.fit(batches, steps_per_epoch=5, epochs=1, verbose=0)  # Trace, warm up.
    results = {name: [] for name in contenders}
    for round_ in range(args.rounds):
        order = list(contenders) if round_ % 2 == 0 else list(reversed(contenders))
        for name in order:
            model, batches = contenders[name]
            results[name].append(images_per_second(model, batches, args.steps, args.batch_size))
    print("| contender | images/s (median) | rounds |")
    print("| --- | --- | --- |")
    for name, values in results.items():
        shown = ", ".join(f"{v:.0f}" for v in values)
        print(f"| {name} | {statistics.median(values):.0f} | {shown} |")
    ours, plain, memory = results.values()
    for label, a, b, goal in (
        ("kerasnotes / plain Keras training throughput", ours, plain, 0.98),
        ("tfds cached / in-memory pipeline", ours, memory, 0.95),
    ):
        ratios = [x / y for x, y in zip(a, b, strict=True)]
        median = statistics.median(ratios)
        print(
            f"{label}: {median:.3f} (paired rounds: {', '.join(f'{r:.3f}' for r in ratios)}; "
            f"goal >= {goal}: {'met' if median >= goal else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
