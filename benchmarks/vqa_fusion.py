"""VQA accuracy: FiLM fusion against a concatenation baseline of the same size.

Trains, one after the other in one process, on the same data and seeds:

1. `film`: the default `vqa` model (question-conditioned feature-wise modulation of the
   region grid);
2. `concat`: the same model with `fusion=concat` (the question concatenated to every
   region, then a dense layer), its width (`units`) raised until its parameter count is
   the closest to the FiLM model's.

Each run is `kerasnotes.train("vqa", ...)` with the defaults (the embedded `shapes_vqa`,
default epochs) and no export. Prints held-out VQA accuracy, by question type, and the
training seconds, per seed, and the medians.

    python benchmarks/vqa_fusion.py [--seeds 0 1 2] [--fusions film concat] [--set epochs=4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

import kerasnotes
from kerasnotes.config import resolve_config, split
from kerasnotes.registry import create_model, get_spec
from kerasnotes.tasks import get_task


def parameter_count(overrides: list[str], info: dict) -> int:
    """Parameters of the `vqa` model that `overrides` configure, for data `info`."""
    spec, task = get_spec("vqa"), get_task("vqa")
    config = resolve_config(
        spec, derived_keys=task.derived_keys, task_settings=task.settings, overrides=overrides
    )
    _, hyperparameters = split(config, task.settings)
    model = create_model("vqa", **hyperparameters, **task.builder_arguments(info, config))
    return model.count_params()


def matched_concat(target: int, extra: list[str], info: dict) -> tuple[list[str], int]:
    """`fusion=concat` overrides whose model is the closest in size to `target`."""
    best = None
    for units in range(128, 513, 16):
        overrides = [*extra, "fusion=concat", f"units={units}", f"attention_units={units}"]
        count = parameter_count(overrides, info)
        if best is None or abs(count - target) < abs(best[1] - target):
            best = (overrides, count)
        if count > target:
            break
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fusions", nargs="+", default=["film", "concat"])
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    task = get_task("vqa")
    config = resolve_config(
        get_spec("vqa"),
        derived_keys=task.derived_keys,
        task_settings=task.settings,
        overrides=args.extra,
    )
    info = task.data_info(task.load_data(config))
    film_size = parameter_count(args.extra, info)
    contenders = {"film": (list(args.extra), film_size)}
    if "concat" in args.fusions:
        contenders["concat"] = matched_concat(film_size, args.extra, info)
    results = {}
    for fusion in args.fusions:
        overrides, size = contenders[fusion]
        print(f"{fusion}: {size} parameters, overrides {overrides}", flush=True)
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as root:
                result = kerasnotes.train(
                    "vqa",
                    overrides=[*overrides, f"seed={seed}"],
                    run_dir=f"{root}/run",
                    export_dir=None,
                    echo=lambda line: None,
                )
            row = {
                "fusion": fusion,
                "seed": seed,
                "parameters": size,
                "vqa_accuracy": round(result.metrics["vqa_accuracy"], 4),
                "train_seconds": round(result.train_seconds, 1),
                "by_type": {
                    k: round(v, 3) for k, v in result.metrics["vqa_accuracy_by_type"].items()
                },
            }
            results.setdefault(fusion, []).append(row)
            print(json.dumps(row), flush=True)
    for fusion, rows in results.items():
        print(
            f"{fusion}: median vqa_accuracy "
            f"{statistics.median(r['vqa_accuracy'] for r in rows):.4f}, median train seconds "
            f"{statistics.median(r['train_seconds'] for r in rows):.1f} over seeds {args.seeds}"
        )


if __name__ == "__main__":
    main()
