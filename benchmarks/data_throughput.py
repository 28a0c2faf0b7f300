"""Training throughput of the streaming loaders against the loaders of another commit
(not part of the test suite).

On data that fits in memory (`cache=auto` keeps it there), the new pipelines should
train as fast as the old in-memory ones from the second epoch on (issue 27: ratio >=
0.95). Generates a class folder of PNG scenes (`--images`, 64x64, six classes) and a COCO
caption JSON of as many scenes (64x64, with their reference captions), then per round
trains, in child processes and alternating which goes first,

    kerasnotes train cnn --dataset FOLDER --epochs 3 --no-export
    kerasnotes train captioner --dataset captions.json --epochs 3 --no-export

with this tree and with `--compare-commit` (a temporary `git worktree`), and reads the
milliseconds per step of epochs 2 and 3 from `fit`'s progress lines. The ratio is the
median over rounds of old ms/step / new ms/step (above 1: the new pipelines are faster).

    python benchmarks/data_throughput.py --compare-commit 52c2e8b [--rounds 3]
        [--images 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

import numpy as np

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIDE = 64
STEP = re.compile(r"^\d+/\d+ - .* - (\d+)ms/step")


def make_data(root: str, count: int) -> dict[str, str]:
    """A class folder and a COCO caption JSON of `count` scenes each, under `root`."""
    from PIL import Image

    from kerasnotes.data import scenes
    from kerasnotes.data.shapes_captions import describe, random_scene

    folder, coco = os.path.join(root, "folder"), os.path.join(root, "coco")
    if not os.path.exists(os.path.join(root, ".done")):
        rng = np.random.default_rng(0)
        os.makedirs(os.path.join(coco, "images"), exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            shape = scenes.SHAPES[i % len(scenes.SHAPES)]
            os.makedirs(os.path.join(folder, shape), exist_ok=True)
            single = scenes.render(rng, [scenes.random_object(rng, SIDE, shape=shape)], SIDE)
            Image.fromarray(single).save(os.path.join(folder, shape, f"{i}.png"))
            objects, relation = random_scene(rng, SIDE)
            name = f"{i:05d}.png"
            Image.fromarray(scenes.render(rng, objects, SIDE)).save(
                os.path.join(coco, "images", name)
            )
            images.append({"id": i, "file_name": name})
            for j, caption in enumerate(describe(objects, relation)):
                annotations.append({"id": i * 10 + j, "image_id": i, "caption": caption})
        with open(os.path.join(coco, "captions.json"), "w") as f:
            json.dump({"images": images, "annotations": annotations}, f)
        open(os.path.join(root, ".done"), "w").close()
    return {"cnn": folder, "captioner": os.path.join(coco, "captions.json")}


def ms_per_step(model: str, dataset: str, pythonpath: str) -> float:
    """The median ms/step of epochs 2 and 3 of one training run."""
    command = [
        *(sys.executable, "-c", "from cli.main import main; main()", "train", model),
        *("--dataset", dataset, "--epochs", "3", "--no-export"),
        *("--run-dir", tempfile.mkdtemp(prefix="data-throughput-run-")),
    ]
    env = {**os.environ, "PYTHONPATH": pythonpath, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    steps = [int(m.group(1)) for line in result.stdout.splitlines() if (m := STEP.match(line))]
    if len(steps) != 3:
        sys.exit(f"Expected 3 epochs' progress lines from {' '.join(command)}, got {steps}.")
    return statistics.median(steps[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare-commit", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "data-throughput"))
    args = parser.parse_args()

    data = make_data(args.root, args.images)
    worktree = tempfile.mkdtemp(prefix="data-throughput-worktree-")
    subprocess.run(
        ["git", "-C", REPOSITORY, "worktree", "add", "--detach", worktree, args.compare_commit],
        check=True,
        capture_output=True,
    )
    trees = {"new": REPOSITORY, "old": worktree}
    try:
        for model, dataset in data.items():
            ratios = []
            for round_ in range(args.rounds):
                order = ["new", "old"] if round_ % 2 == 0 else ["old", "new"]
                times = {tree: ms_per_step(model, dataset, trees[tree]) for tree in order}
                ratios.append(times["old"] / times["new"])
                print(json.dumps({"model": model, "round": round_, **times}), flush=True)
            print(
                f"{model}: old / new ms per step, median of {args.rounds} paired rounds: "
                f"{statistics.median(ratios):.3f} ({', '.join(f'{r:.3f}' for r in ratios)}; "
                "goal >= 0.95)",
                flush=True,
            )
    finally:
        subprocess.run(["git", "-C", REPOSITORY, "worktree", "remove", "--force", worktree])


if __name__ == "__main__":
    main()
