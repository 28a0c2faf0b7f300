"""Caption decoding speed: the exported in-graph loop against Python decoding loops.

Side by side in one process, on the same model (the default captioner architecture,
untrained, so every method decodes the full `max_length` steps) and the same batch:

1. `export`: a SavedModel endpoint running `Captioner.generate` with beam width 1
   (greedy), loaded back with `tf.saved_model.load`: decoding in a `tf.while_loop`.
2. `step_loop`: a Python loop calling a compiled (`tf.function`) one-step decoder,
   the encoder run once.
3. `rerun_compiled`: the keras-io example's style, a Python loop that runs the whole
   model on the caption so far for every new token, the model call compiled
   (`tf.function` over captions of any length, traced once): the baseline of the
   claim.
4. `rerun_model`: the same loop calling the model eagerly, as the example does
   (reported beside it).

Rounds alternate the methods. Every method must decode the same tokens (greedy on one
model): the script stops with an error if any differs, before it prints a speed.

    python benchmarks/captioner_decoding.py [--batch-size 32] [--repeats 5]

Prints milliseconds per image (medians) and the speed-up of the export over each loop;
the goal (>= 20x over re-running the model per token) is checked against the compiled
baseline.
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

from kerasnotes.models.captioner import END_ID, START_ID, captioner


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    words = [f"word{i}" for i in range(36)]
    model = captioner(vocabulary=["", "[UNK]", "[start]", "[end]", *words], max_length=14)
    images = tf.constant(
        np.random.default_rng(0).uniform(0, 255, (args.batch_size, 48, 48, 3)), tf.float32
    )
    steps = model.max_length + 1

    with tempfile.TemporaryDirectory() as tmp:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            "serving_greedy",
            lambda images: model.generate(images, beam_width=1),
            input_signature=[tf.TensorSpec([None, 48, 48, 3], tf.float32, name="images")],
        )
        archive.write_out(os.path.join(tmp, "export"), verbose=False)
        exported = tf.saved_model.load(os.path.join(tmp, "export")).signatures["serving_greedy"]

        def export_decode():
            out = exported(images=images)
            rows, lengths = out["token_ids"].numpy(), out["lengths"].numpy()
            # Words, then [end], then padding: the first `lengths + 1` tokens are decoded.
            return [row[: n + 1] for row, n in zip(rows, lengths, strict=True)]

        encode = tf.function(lambda images: model.encoder(images, training=False))
        step = tf.function(model._step)

        def step_loop():
            features = encode(images)
            projected = model.attention.project_values(features)
            memory = model.initial_memory(features)
            tokens = tf.fill([args.batch_size], tf.constant(START_ID, tf.int64))
            out = []
            for _ in range(steps):
                logits, _, *memory = step(tokens, *memory, features, projected)
                tokens = tf.argmax(logits[:, 3:], axis=-1) + 3  # No padding, [UNK], [start].
                out.append(tokens)
            return cut_at_end(tf.stack(out, axis=1).numpy())

        def rerun(call):
            tokens = np.full((args.batch_size, 1), START_ID)
            for _ in range(steps):
                logits = np.asarray(call(images, tf.constant(tokens)))
                next_tokens = np.argmax(logits[:, -1, 3:], axis=-1) + 3
                tokens = np.concatenate([tokens, next_tokens[:, None]], axis=1)
            return cut_at_end(tokens[:, 1:])

        def call_model(images, tokens):
            return model({"images": images, "token_ids": tokens}, training=False)

        compiled_model = tf.function(
            call_model,
            input_signature=[
                tf.TensorSpec([None, 48, 48, 3], tf.float32),
                tf.TensorSpec([None, None], tf.int64),
            ],
        )

        methods = {
            "export": export_decode,
            "step_loop": step_loop,
            "rerun_compiled": lambda: rerun(compiled_model),
            "rerun_model": lambda: rerun(call_model),
        }
        decoded = {name: fn() for name, fn in methods.items()}  # Traces and warms up too.
        for name, tokens in decoded.items():
            if not all(
                np.array_equal(a, b) for a, b in zip(tokens, decoded["export"], strict=True)
            ):
                raise SystemExit(
                    f"{name} decodes other tokens than the export: no speed compared."
                )
        print(f"Every method decodes the same {sum(map(len, decoded['export']))} tokens.")
        times = {name: [] for name in methods}
        for round_ in range(args.repeats):  # Alternate, so drift hits every method alike.
            order = list(methods) if round_ % 2 == 0 else list(methods)[::-1]
            for name in order:
                start = time.perf_counter()
                methods[name]()
                times[name].append(time.perf_counter() - start)

    per_image = {k: statistics.median(v) / args.batch_size * 1000 for k, v in times.items()}
    print(f"batch {args.batch_size}, {steps} decoding steps, medians of {args.repeats}:")
    for name, ms in per_image.items():
        print(f"  {name:<14} {ms:8.3f} ms/image")
    for name in ("step_loop", "rerun_compiled", "rerun_model"):
        print(f"  export speed-up over {name}: {per_image[name] / per_image['export']:.1f}x")
    speed_up = per_image["rerun_compiled"] / per_image["export"]
    print(f"  goal: >= 20x over the compiled per-token model: {speed_up:.1f}x, "
          f"{'met' if speed_up >= 20 else 'NOT met'}")  # fmt: skip


def cut_at_end(tokens: np.ndarray) -> list[np.ndarray]:
    """Each row up to and with its first `[end]` (all of it if it has none)."""
    rows = []
    for row in tokens:
        ends = np.flatnonzero(row == END_ID)
        rows.append(row[: ends[0] + 1] if len(ends) else row)
    return rows


if __name__ == "__main__":
    main()
