"""Captioner quality against training time: held-out BLEU-4 (beam and greedy) per seed.

Trains the default `captioner` with `kerasnotes.train` (the embedded `shapes_captions`,
default epochs, no export) once per seed, one after the other in one process, and
prints per seed and as medians: BLEU-4 with beam search on the validation split (the
figure to choose a variant on) and on the held-out test split (the metric of
`metrics.json`), test BLEU-4 with greedy decoding, CIDEr, BLEU-4 on the shifted split
(scenes outside the training ranges, never chosen on), and the training seconds.
`--set` changes the configuration of every run, to weigh a variant against the
defaults:

    python benchmarks/captioner_quality.py [--seeds 0 1 2] [--set epochs=12]

The targets: test BLEU-4 >= 0.9 on every seed 0-4 within 120 s of training, beam
search at least as good as greedy decoding, shifted BLEU-4 >= 0.8.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

import kerasnotes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    rows = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as root:
            result = kerasnotes.train(
                "captioner",
                overrides=[*args.extra, f"seed={seed}"],
                run_dir=f"{root}/run",
                export_dir=None,
                echo=lambda line: None,
            )
            validation = kerasnotes.evaluate(f"{root}/run", split="validation")
        metrics = result.metrics
        row = {
            "seed": seed,
            "validation_bleu_4": round(validation["bleu_4"], 4),
            "bleu_4": round(metrics["bleu_4"], 4),
            "greedy_bleu_4": round(metrics["greedy"]["bleu_4"], 4),
            "cider": round(metrics["cider"], 3),
            "shifted_bleu_4": round(metrics["shifted"]["bleu_4"], 4),
            "train_seconds": round(result.train_seconds, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    medians = {
        key: statistics.median(row[key] for row in rows) for key in rows[0] if key != "seed"
    }
    print(f"medians over seeds {args.seeds} with {args.extra or 'the defaults'}: {medians}")


if __name__ == "__main__":
    main()
