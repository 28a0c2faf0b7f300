"""The `video` family on the embedded `moving_shapes` clips (not part of the test suite).

1. Accuracy: `kerasnotes train video` with its defaults (held-out accuracy and training
   seconds), beside the single-frame baseline (`head=single_frame`: the same encoder on
   the middle frame) trained the same way, and optionally other heads (`--heads`).
   Goal: defaults >= 0.97 within 240 s; the baseline near chance on the motions.
2. `--data-format channels_first` trains here too (held-out accuracy; the test suite
   holds its answers equal to channels_last's with the same weights).
3. Throughput: the time-distributed encoder against the same encoder called on each
   frame in a Python loop in the graph and the frames stacked, same weights, same
   batches, alternating rounds. Goal: ratio >= 1.0.

    python benchmarks/video.py [--seeds 0] [--heads average conv1d] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerasnotes  # noqa: E402
from kerasnotes.data import videos  # noqa: E402
from kerasnotes.tasks import get_task  # noqa: E402

TASK = get_task("video_classification")


def run(overrides, root):
    result = kerasnotes.train(
        "video",
        overrides=overrides,
        run_dir=os.path.join(root, f"run-{len(os.listdir(root))}"),
        export_dir=None,
        echo=lambda line: None,
    )
    return result.metrics["accuracy"], result.train_seconds, result.metrics


def frame_loop_model(model):
    """The same network, its encoder called on each frame in a Python loop."""
    encoder = model.get_layer("frames_encoded").layer
    inputs = keras.Input(model.input_shape[1:])
    frames = [encoder(inputs[:, t]) for t in range(inputs.shape[1])]
    x = keras.ops.stack(frames, axis=1)  # (batch, time, regions, units)
    for name in ("frame_regions", "frame_features", "gru", "dropout", "scores"):
        x = model.get_layer(name)(x)
    return keras.Model(inputs, x)


def clips_per_second(model, batches, steps):
    batches = list(batches)
    for x, y in batches[:3]:  # Warm-up and tracing.
        model.train_on_batch(x, y)
    started = time.perf_counter()
    for x, y in batches[3 : 3 + steps]:
        model.train_on_batch(x, y)
    return steps * int(batches[0][0].shape[0]) / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--heads", nargs="*", default=[])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()

    print("| model | held-out accuracy | training s | seed |")
    print("| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as root:
        for seed in args.seeds:
            for label, overrides in [
                ("video (defaults)", []),
                ("single-frame baseline", ["head=single_frame"]),
                ("video, channels_first", ["data_format=channels_first"]),
                *[(f"video, head={head}", [f"head={head}"]) for head in args.heads],
            ]:
                accuracy, seconds, metrics = run([*overrides, f"seed={seed}"], root)
                print(f"| {label} | {accuracy:.4f} | {seconds:.1f} | {seed} |")
                if label == "single-frame baseline":
                    per_class = metrics["per_class_accuracy"]
                    print(
                        "|   per class | "
                        + ", ".join(f"{k} {v:.2f}" for k, v in per_class.items())
                        + " | | |"
                    )

    keras.utils.set_random_seed(0)
    data = videos.load(None)
    config = {"data_format": "channels_last", "batch_size": 32, "seed": 0}
    info = TASK.data_info(data)
    batches = list(TASK.batches(data.train, config, training=False).take(args.steps + 3))
    model = kerasnotes.create_model("video", **TASK.builder_arguments(info, config))
    looped = frame_loop_model(model)
    for m in (model, looped):
        TASK.compile(m, keras.optimizers.Adam(1e-3))
    x = np.asarray(batches[0][0])
    np.testing.assert_allclose(model(x), looped(x), atol=1e-5)  # The same network.
    ours, loop = [], []
    for round_number in range(args.rounds):
        if round_number % 2:
            loop.append(clips_per_second(looped, batches, args.steps))
        ours.append(clips_per_second(model, batches, args.steps))
        if not round_number % 2:
            loop.append(clips_per_second(looped, batches, args.steps))
    ratios = [a / b for a, b in zip(ours, loop, strict=True)]
    print(f"\nclips/s, median of {args.rounds} rounds of {args.steps} steps (batch 32)")
    print("| contender | clips/s | rounds |")
    print("| --- | --- | --- |")
    print(f"| TimeDistributed encoder | {statistics.median(ours):.1f} | "
          f"{', '.join(f'{r:.0f}' for r in ours)} |")  # fmt: skip
    print(f"| Python loop over frames, stacked | {statistics.median(loop):.1f} | "
          f"{', '.join(f'{r:.0f}' for r in loop)} |")  # fmt: skip
    print(f"| ratio | {statistics.median(ratios):.3f} | {', '.join(f'{r:.2f}' for r in ratios)} |")


if __name__ == "__main__":
    main()
