"""The `wavenet` family on the embedded `signals` (not part of the test suite).

Accuracy: `kerasnotes train wavenet` with its defaults (held-out accuracy, training
seconds, receptive field), beside a plain causal CNN of the same depth and width
(`dilation_growth=1`: every dilation 1, so its receptive field grows linearly) trained
the same way, and `--data-format channels_first`. Goal: defaults >= 0.97 within 120 s
(`spoken_digits.py` measures them on one-second speech).

    python benchmarks/wavenet.py [--seeds 0] [--set key=value ...] [--no-channels-first]
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import kerasnotes  # noqa: E402
from kerasnotes.models.wavenet import receptive_field_of  # noqa: E402


def run(overrides, root):
    result = kerasnotes.train(
        "wavenet",
        overrides=overrides,
        run_dir=os.path.join(root, f"run-{len(os.listdir(root))}"),
        export_dir=None,
        echo=lambda line: None,
    )
    model = keras.models.load_model(os.path.join(result.run_dir, "model.keras"))
    return result, receptive_field_of(model)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--set", dest="overrides", nargs="*", default=[])
    parser.add_argument("--no-channels-first", action="store_true")
    args = parser.parse_args()

    contenders = [
        ("wavenet (defaults)", []),
        ("plain causal CNN (dilation_growth=1)", ["dilation_growth=1"]),
    ]
    if not args.no_channels_first:
        contenders.append(("wavenet, channels_first", ["data_format=channels_first"]))
    print(
        "| model | held-out accuracy | macro F1 | training s | epochs | receptive field | seed |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as root:
        for seed in args.seeds:
            for label, overrides in contenders:
                result, field = run([*args.overrides, *overrides, f"seed={seed}"], root)
                metrics = result.metrics
                print(
                    f"| {label} | {metrics['accuracy']:.4f} | {metrics['macro_f1']:.4f} | "
                    f"{result.train_seconds:.1f} | {result.epochs_trained} | {field} | {seed} |",
                    flush=True,
                )
                if "dilation_growth=1" in overrides:
                    per_class = metrics["per_class_accuracy"]
                    print(
                        "|   per class | "
                        + ", ".join(f"{k} {v:.2f}" for k, v in per_class.items())
                        + " | | | | | |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
