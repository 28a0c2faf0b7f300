"""Language models compared on the embedded corpus, in held-out bits per character.

Each run is `kerasnotes.train` on `python_docs` (split by topic; 46,859 held-out
characters) with the model's defaults, the same `time_limit` for every neural run, and
no export. Every run measures itself beside the best Kneser-Ney n-gram and gzip / bz2 /
xz given the training text first (the language-modelling task does that), so the table
holds those too.

1. `ngram` with defaults (and its training and evaluation time);
2. `char-rnn` and `transformer-lm` at equal training time, over `--seeds`;
3. `char-rnn` with stateful truncated BPTT (default) and with `stateful=false`
   (independent random windows), same time.

    python benchmarks/lm_comparison.py [--seconds 480] [--seeds 0 1 2]

Prints one Markdown table per part.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import kerasnotes  # noqa: E402


def run(model, overrides, root):
    started = time.perf_counter()
    result = kerasnotes.train(
        model,
        overrides=overrides,
        run_dir=os.path.join(root, f"{model}-{len(os.listdir(root))}"),
        export_dir=None,
        echo=lambda line: None,
    )
    return result, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=480)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    limit = [f"time_limit={args.seconds}"]
    with tempfile.TemporaryDirectory() as root:
        ngram, total = run("ngram", [], root)
        comparison = ngram.metrics["comparison"]
        print("| model | held-out bits per char | training s | whole run s |")
        print("| --- | --- | --- | --- |")
        print(f"| ngram (defaults) | {ngram.metrics['bits_per_char']:.4f} | "
              f"{ngram.train_seconds:.1f} | {total:.1f} |")  # fmt: skip
        for name, bits in comparison.items():
            if name != "this model":
                print(f"| {name} | {bits:.4f} | | |")

        print(f"\nEqual training time ({args.seconds:.0f} s), seeds {args.seeds}:")
        print("| model | bits per char by seed | median | epochs | training s |")
        print("| --- | --- | --- | --- | --- |")
        stateful = []
        for model in ("char-rnn", "transformer-lm"):
            results = [run(model, [*limit, f"seed={seed}"], root)[0] for seed in args.seeds]
            bits = [r.metrics["bits_per_char"] for r in results]
            if model == "char-rnn":
                stateful = bits
            print(
                f"| {model} | {', '.join(f'{b:.4f}' for b in bits)} | "
                f"{statistics.median(bits):.4f} | "
                f"{', '.join(str(r.epochs_trained) for r in results)} | "
                f"{', '.join(f'{r.train_seconds:.0f}' for r in results)} |"
            )

        print(
            f"\nchar-rnn, stateful truncated BPTT vs independent windows ({args.seconds:.0f} s):"
        )
        print("| training | bits per char | epochs |")
        print("| --- | --- | --- |")
        windows = run("char-rnn", [*limit, "stateful=false", f"seed={args.seeds[0]}"], root)[0]
        print(f"| stateful (seed {args.seeds[0]}) | {stateful[0]:.4f} | |")
        print(f"| independent windows | {windows.metrics['bits_per_char']:.4f} | "
              f"{windows.epochs_trained} |")  # fmt: skip


if __name__ == "__main__":
    main()
