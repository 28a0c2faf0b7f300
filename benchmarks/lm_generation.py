"""Language-model sampling speed: the export's in-graph loop against re-running the model.

Side by side in one process, on the same untrained models (the default `char-rnn` and
`transformer-lm` architectures over the 104-character vocabulary of `python_docs`;
speed does not depend on the weights) and the same prompts:

1. `export`: the language-modelling task's `generate` signature in a SavedModel loaded
   back with `tf.saved_model.load`: prompt and sampling in one `tf.while_loop`, the
   recurrent state or the key/value cache carried from token to token.
2. `rerun`: the keras-io example's way, a Python loop that runs the whole model on the
   text so far (for the Transformer: its last `sequence_length` tokens) for every new
   token and samples from the last position. The forward pass is a compiled
   `tf.function` (kinder to it than `model.predict` per token).
3. `no_cache` (Transformer only): the same in-graph loop whose step re-runs the model on
   the whole window instead of using the key/value cache.

    python benchmarks/lm_generation.py [--new-tokens 256] [--batch-size 8] [--repeats 3]

Prints seconds per batch (medians) and the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from kerasnotes.decoding import decode
from kerasnotes.registry import create_model
from kerasnotes.tasks.language_modelling import TASK

VOCABULARY = ["", "[UNK]", *sorted(set(" \n\"'()*+,-./0123456789:;<=>?[]_abcdefghijklmnopqrstuvwxyz"
                                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ{|}~!#%&@^`"))]  # fmt: skip


def exported_generate(model, config, tmp):
    archive = keras.export.ExportArchive()
    archive.track(model)
    info = {"vocabulary": VOCABULARY}
    for name, (fn, signature) in TASK.signatures(model, info, config).items():
        archive.add_endpoint(name, fn, input_signature=signature)
    path = os.path.join(tmp, model.name)
    archive.write_out(path, verbose=False)
    return tf.saved_model.load(path).signatures["generate"]


def rerun_generate(model, prompt_ids, new_tokens, context):
    forward = tf.function(lambda ids: model(ids, training=False)[:, -1], reduce_retracing=True)
    ids = tf.constant(prompt_ids)
    for t in range(new_tokens):
        logits = forward(ids[:, -context:] if context else ids)
        token = tf.random.stateless_categorical(logits, 1, seed=[0, t])
        ids = tf.concat([ids, token], axis=1)
    return ids


def no_cache_generate(model, prompt_ids, new_tokens):
    """The in-graph loop, each step re-running the model over the window so far."""
    window = model.sequence_length

    def step(tokens, state):
        history, position = state  # (rows, window), (rows,)
        last = tf.minimum(position, window - 1)
        shifted = tf.where(position[:, None] >= window, tf.roll(history, -1, axis=1), history)
        slot = tf.one_hot(last, window, dtype=tf.int64)
        history = shifted * (1 - slot) + slot * tf.cast(tokens, tf.int64)[:, None]
        logits = model(history, training=False)
        return tf.gather(logits, last, batch_dims=1), (history, position + 1), None

    @tf.function
    def run(prompt):
        rows = tf.shape(prompt)[0]
        state = (tf.zeros([rows, window], tf.int64), tf.zeros([rows], tf.int32))
        lengths = tf.fill([rows], tf.shape(prompt)[1])
        return decode(step, state, prompt, lengths, max_new_tokens=new_tokens, sample=True)

    return lambda: run(tf.constant(prompt_ids))


def timed(fn, repeats):
    fn()  # Trace and warm up.
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    prompts = ["The ", "def f(x):", "Return the ", "A list is "] * (args.batch_size // 4 + 1)
    prompts = prompts[: args.batch_size]
    index = {c: i for i, c in enumerate(VOCABULARY)}
    width = max(len(p) for p in prompts)
    prompt_ids = np.array([[index["\n"], *[index[c] for c in p.rjust(width)]] for p in prompts])
    config = {**TASK.with_defaults({}), "max_length": args.new_tokens, "top_k": 0}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("char-rnn", "transformer-lm"):
            model = create_model(name, vocabulary=VOCABULARY)
            generate = exported_generate(model, config, tmp)
            options = dict(
                max_length=tf.constant(args.new_tokens),
                temperature=tf.constant(1.0),
                top_k=tf.constant(0),
                top_p=tf.constant(1.0),
                seed=tf.constant(0, tf.int64),
            )
            export = timed(
                lambda g=generate, o=options: g(prompt=tf.constant(prompts), **o), args.repeats
            )
            context = getattr(model, "context_length", None)
            rerun = timed(
                lambda m=model, c=context: rerun_generate(m, prompt_ids, args.new_tokens, c),
                args.repeats,
            )
            rows.append((name, "export (in-graph loop)", export, 1.0))
            rows.append((name, "rerun the model per token (keras-io)", rerun, rerun / export))
            if name == "transformer-lm":
                no_cache = timed(
                    no_cache_generate(model, prompt_ids, args.new_tokens), args.repeats
                )
                rows.append((name, "in-graph loop without the cache", no_cache, no_cache / export))
    print(f"{args.new_tokens} new tokens, batch {args.batch_size}, median of {args.repeats}")
    print("| model | method | seconds per batch | / export |")
    print("| --- | --- | --- | --- |")
    for name, method, seconds, ratio in rows:
        print(f"| {name} | {method} | {seconds:.3f} | {ratio:.1f} |")


if __name__ == "__main__":
    main()
