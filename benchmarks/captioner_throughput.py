"""Captioner training throughput: kerasnotes' `fit()` against a hand-written train step.

Side by side in one process, on the same `tf.data` batches of the embedded
`shapes_captions` data (the captioning task's pipeline, in memory):

1. `kerasnotes`: the default `captioner`, compiled by its task and trained with
   `model.fit` (teacher forcing through `(x, y, sample_weight)`).
2. `plain_keras`: the same architecture written by hand in plain Keras layers (CNN
   blocks with batch norm, region projection and positions, GRU over the caption
   started from the regions' mean and maximum, additive attention, word classifier
   reading the state, the context and the sum of the earlier contexts), trained by a
   `tf.function` step with a `GradientTape` and a masked loss, as in the TensorFlow
   captioning tutorial.

    python benchmarks/captioner_throughput.py [--steps 60] [--rounds 3]

Prints images per second (medians over alternating rounds) and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import keras
import tensorflow as tf
from keras import layers

import kerasnotes
from kerasnotes.config import resolve_config
from kerasnotes.registry import get_spec
from kerasnotes.tasks import get_task


class HandWrittenCaptioner(keras.Model):
    def __init__(self, vocabulary_size, units=256, embedding_dim=64, attention_units=64):
        super().__init__()
        self.convs = []
        for filters in (16, 32, 64):
            self.convs += [
                layers.Conv2D(filters, 3, padding="same", use_bias=False),
                layers.BatchNormalization(momentum=0.9),
                layers.ReLU(),
                layers.MaxPooling2D(),
            ]
        self.project = layers.Dense(units, activation="relu")
        self.positions = self.add_weight(shape=(36, units), initializer="glorot_uniform")
        self.init_state = layers.Dense(units, activation="tanh")  # From mean and max.
        self.embedding = layers.Embedding(vocabulary_size, embedding_dim)
        self.gru = layers.GRU(units, return_sequences=True)
        self.w_query = layers.Dense(attention_units, use_bias=False)
        self.w_value = layers.Dense(attention_units)
        self.w_score = layers.Dense(1, use_bias=False)
        self.classifier = layers.Dense(vocabulary_size)

    def call(self, images, token_ids, training=False):
        x = images / 255.0
        for layer in self.convs:
            x = layer(x, training=training)
        regions = tf.reshape(x, [tf.shape(x)[0], -1, x.shape[-1]])
        features = self.project(regions) + self.positions
        summary = [tf.reduce_mean(features, axis=1), tf.reduce_max(features, axis=1)]
        state = self.init_state(tf.concat(summary, axis=-1))
        h = self.gru(self.embedding(token_ids), initial_state=state)
        scores = self.w_score(
            tf.tanh(self.w_query(h)[:, :, None] + self.w_value(features)[:, None])
        )[..., 0]
        context = tf.matmul(tf.nn.softmax(scores, axis=-1), features)
        seen = tf.cumsum(context, axis=1, exclusive=True)  # Contexts of earlier steps.
        return self.classifier(tf.concat([h, context, seen], axis=-1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    task = get_task("captioning")
    config = resolve_config(
        get_spec("captioner"), derived_keys=task.derived_keys, task_settings=task.settings
    )
    data = task.load_data(config)
    info = task.data_info(data)
    batches = task.batches(data.train, config, info, training=True, num_examples=10_000)
    batches = batches.take(args.steps).cache()
    for _ in batches:  # Fill the cache: both sides read the same tensors from memory.
        pass
    batch_size = config["batch_size"]

    model = kerasnotes.create_model("captioner", **task.builder_arguments(info, config))
    task.compile(model, keras.optimizers.Adam(1e-3))

    plain = HandWrittenCaptioner(len(info["vocabulary"]))
    optimizer = keras.optimizers.Adam(1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")

    @tf.function
    def train_step(x, y, weights):
        with tf.GradientTape() as tape:
            logits = plain(x["images"], x["token_ids"], training=True)
            loss = tf.reduce_sum(loss_fn(y, logits) * weights) / tf.reduce_sum(weights)
        grads = tape.gradient(loss, plain.trainable_variables)
        optimizer.apply_gradients(zip(grads, plain.trainable_variables, strict=True))
        return loss

    def run_kerasnotes():
        model.fit(batches, epochs=1, verbose=0)

    def run_plain():
        for x, y, w in batches:
            train_step(x, y, w)

    run_kerasnotes()  # Trace and warm up both.
    run_plain()
    # The same architecture: the same number of weights.
    print(f"parameters: kerasnotes {model.count_params()}, plain_keras {plain.count_params()}")
    rates = {"kerasnotes": [], "plain_keras": []}
    for _ in range(args.rounds):
        for name, fn in (("kerasnotes", run_kerasnotes), ("plain_keras", run_plain)):
            start = time.perf_counter()
            fn()
            rates[name].append(args.steps * batch_size / (time.perf_counter() - start))
    medians = {k: statistics.median(v) for k, v in rates.items()}
    print(f"{args.steps} steps of batch {batch_size}, medians of {args.rounds} rounds:")
    for name, rate in medians.items():
        print(f"  {name:<12} {rate:8.1f} images/s  (rounds: {[round(r) for r in rates[name]]})")
    print(
        f"  throughput ratio kerasnotes / plain_keras: {medians['kerasnotes'] / medians['plain_keras']:.3f}"
    )


if __name__ == "__main__":
    main()
