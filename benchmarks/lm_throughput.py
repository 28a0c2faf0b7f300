"""Language-model training speed: kerasnotes against the same networks in plain Keras.

Side by side in one process, on the same batches (`python_docs` cut by the language-
modelling task into the default `batch_size` x `sequence_length` windows), both
compiled with the same loss and optimizer, rounds alternating (and which of the
two goes first):

1. `char-rnn`: kerasnotes's default (embedding 64, LSTM 512, dense) trained with
   truncated BPTT through its `TruncatedBPTT` wrapper, against a plain-Keras
   `Sequential` with Keras's own `LSTM(stateful=True)` of the same sizes.
2. `transformer-lm`: kerasnotes's default (4 pre-norm blocks of width 128 with the
   six-step attention, learned positions, tied embeddings), against a plain-Keras
   functional model of the same blocks built on `keras.layers.MultiHeadAttention`
   with `use_causal_mask=True`, learned positions added by a weight table, the same
   dropout (0.1: on the embeddings, the attention weights and both branches of every
   block) and an untied output layer.

Goal: training throughput ratio (kerasnotes / plain) >= 1.0.

    python benchmarks/lm_throughput.py [--rounds 5] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from keras import layers  # noqa: E402

import kerasnotes  # noqa: E402
from kerasnotes.layers import PositionEmbedding  # noqa: E402
from kerasnotes.tasks.language_modelling import TASK  # noqa: E402


def compiled(model):
    TASK.compile(model, keras.optimizers.Adam(1e-3, clipnorm=1.0))
    return model


def plain_char_rnn(vocabulary_size, batch_size, length):
    return keras.Sequential(
        [
            keras.Input(batch_shape=(batch_size, length), dtype="int64"),
            layers.Embedding(vocabulary_size, 64),
            layers.LSTM(512, return_sequences=True, stateful=True, use_cudnn=False),
            layers.Dense(vocabulary_size),
        ]
    )


def plain_transformer(vocabulary_size, length, width=128, heads=4, blocks=4, dropout=0.1):
    ids = keras.Input(shape=(length,), dtype="int64")
    # A learned (length, width) table added to the token embeddings.
    x = PositionEmbedding()(layers.Embedding(vocabulary_size, width)(ids))
    x = layers.Dropout(dropout)(x)
    for _ in range(blocks):
        normed = layers.LayerNormalization()(x)
        attended = layers.MultiHeadAttention(heads, width // heads, dropout=dropout)(
            normed, normed, use_causal_mask=True
        )
        x = x + layers.Dropout(dropout)(attended)
        normed = layers.LayerNormalization()(x)
        hidden = layers.Dense(width)(layers.Dense(4 * width, activation="gelu")(normed))
        x = x + layers.Dropout(dropout)(hidden)
    logits = layers.Dense(vocabulary_size)(layers.LayerNormalization()(x))
    return keras.Model(ids, logits)


def tokens_per_second(model, batches, steps):
    batches = list(batches.take(steps + 3))
    for x, y in batches[:3]:  # Warm-up and tracing.
        model.train_on_batch(x, y)
    started = time.perf_counter()
    for x, y in batches[3:]:
        model.train_on_batch(x, y)
    seconds = time.perf_counter() - started
    return sum(int(x.shape[0] * x.shape[1]) for x, _ in batches[3:]) / seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    config = {**TASK.with_defaults({}), "dataset": None, "batch_size": 64, "sequence_length": 128}
    data = TASK.load_data(config)
    info = TASK.data_info(data)
    size = len(info["vocabulary"])
    batches = TASK.batches(data.train, config, info, training=True).repeat()

    ours_rnn = kerasnotes.create_model("char-rnn", vocabulary=info["vocabulary"])
    contenders = {
        "char-rnn": (
            compiled(TASK.training_model(ours_rnn, config)),
            compiled(plain_char_rnn(size, 64, 128)),
        ),
        "transformer-lm": (
            compiled(kerasnotes.create_model("transformer-lm", vocabulary=info["vocabulary"])),
            compiled(plain_transformer(size, 128)),
        ),
    }
    print(f"tokens/s, median of {args.rounds} rounds of {args.steps} steps, alternating")
    print("| model | kerasnotes | plain Keras | ratio | rounds (ratio) |")
    print("| --- | --- | --- | --- | --- |")
    for name, (ours, plain) in contenders.items():
        print(
            f"parameters: {name} kerasnotes {ours.count_params():,}, plain {plain.count_params():,}"
        )
        ours_rates, plain_rates = [], []
        for round_number in range(args.rounds):
            # Each goes first in every other round, so neither always runs on a warm cache.
            if round_number % 2:
                plain_rates.append(tokens_per_second(plain, batches, args.steps))
            ours_rates.append(tokens_per_second(ours, batches, args.steps))
            if not round_number % 2:
                plain_rates.append(tokens_per_second(plain, batches, args.steps))
        ratios = [a / b for a, b in zip(ours_rates, plain_rates, strict=True)]
        print(
            f"| {name} | {statistics.median(ours_rates):,.0f} | "
            f"{statistics.median(plain_rates):,.0f} | {statistics.median(ratios):.3f} | "
            f"{', '.join(f'{r:.2f}' for r in ratios)} |"
        )


if __name__ == "__main__":
    main()
