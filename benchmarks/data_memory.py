"""Peak memory of training on a dataset as it grows (not part of the test suite).

Generates datasets of each `--sizes` count in one `--format`:

- `images`: class folders of JPEG photo-like scenes (256x256, four classes, the
  embedded shapes' renderer), trained on by
  `kerasnotes train cnn --dataset FOLDER --set image_size=224 --epochs 1 --no-export`;
- `sounds`: class folders of one-second 16 kHz WAVs (four pitch bands), `wavenet`;
- `coco`: a COCO caption JSON with its JPEG scenes (256x256), `captioner`;
- `vqa`: a VQA v2 directory, JPEG scenes (256x256) with five questions each, `vqa`;
- `clips`: class folders of 16-frame 64x64 GIFs (four motions), `video`;
- `csv`: a CSV of reviews (text, label; four labels), `rnn` (no `cache` setting: its
  records are always streamed into a disk cache);
- `text`: a folder with a training text of each size in MB and the same 1 MB
  validation and test texts, `char-rnn` (the held-out texts stay small so that the
  run ends: scoring 100 MB held out would take most of an hour on 2 cores);

then for each `--cache` setting runs the command (with `--set time_limit=60`) in a
child process and reads its peak resident set size (`os.wait4`'s `ru_maxrss`), its
seconds from start to training (the `Data:` line: loaded and every file checked) and
in all. The figure is the ratio of the peak memory on the largest dataset to the
smallest, per cache setting: the goal (issue 27) is <= 1.3 with memory flat. The time
limit (`--time-limit`, 0 for none) ends the epoch early on large datasets: the loading
pass, the cache and the first batches, where memory peaks, all come before it; the
held-out splits are still evaluated whole. `--compare-commit REV` runs the same
commands on another commit of this repository (a temporary `git worktree`), the
loaders before a change, side by side.

    python benchmarks/data_memory.py [--format images] [--sizes 1000 16000]
        [--cache disk none auto] [--compare-commit 52c2e8b] [--time-limit 60] [--root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ("circle", "square", "triangle", "ring")
SIDE = 256


def make_images(root: str, count: int) -> str:
    """`root/images/<count>/<class>/<i>.jpg`: `count` scenes, reused if already there."""
    from PIL import Image

    from kerasnotes.data import scenes

    folder = os.path.join(root, "images", str(count))
    if not os.path.exists(os.path.join(folder, ".done")):
        rng = np.random.default_rng(count)
        for i in range(count):
            shape = CLASSES[i % len(CLASSES)]
            os.makedirs(os.path.join(folder, shape), exist_ok=True)
            image = scenes.render(rng, [scenes.random_object(rng, SIDE, shape=shape)], SIDE)
            Image.fromarray(image).save(os.path.join(folder, shape, f"{i}.jpg"), quality=90)
        open(os.path.join(folder, ".done"), "w").close()
    return folder


def make_sounds(root: str, count: int) -> str:
    """`root/sounds/<count>/<class>/<i>.wav`: one-second 16 kHz 16-bit sounds, one pitch
    band per class, noisy."""
    import wave

    folder = os.path.join(root, "sounds", str(count))
    if not os.path.exists(os.path.join(folder, ".done")):
        rng = np.random.default_rng(count)
        t = np.arange(16000) / 16000
        for i in range(count):
            label = CLASSES[i % len(CLASSES)]
            os.makedirs(os.path.join(folder, label), exist_ok=True)
            pitch = 200 * (1 + CLASSES.index(label)) * rng.uniform(0.9, 1.1)
            sound = 0.5 * np.sin(2 * np.pi * pitch * t) + rng.normal(0, 0.05, t.size)
            with wave.open(os.path.join(folder, label, f"{i}.wav"), "wb") as f:
                f.setnchannels(1)
                f.setsampwidth(2)
                f.setframerate(16000)
                f.writeframes((np.clip(sound, -1, 1) * 32767).astype("<i2").tobytes())
        open(os.path.join(folder, ".done"), "w").close()
    return folder


def make_coco(root: str, count: int) -> str:
    """`root/coco/<count>/captions.json` and its `count` PNG scenes (256x256), COCO
    caption format."""
    from PIL import Image

    from kerasnotes.data import scenes
    from kerasnotes.data.shapes_captions import describe, random_scene

    folder = os.path.join(root, "coco", str(count))
    path = os.path.join(folder, "captions.json")
    if not os.path.exists(path):
        rng = np.random.default_rng(count)
        os.makedirs(os.path.join(folder, "images"), exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            objects, relation = random_scene(rng, SIDE)
            name = f"{i:05d}.jpg"
            image = scenes.render(rng, objects, SIDE)
            Image.fromarray(image).save(os.path.join(folder, "images", name), quality=90)
            images.append({"id": i, "file_name": name})
            for j, caption in enumerate(describe(objects, relation)):
                annotations.append({"id": i * 10 + j, "image_id": i, "caption": caption})
        with open(f"{path}.tmp", "w") as f:
            json.dump({"images": images, "annotations": annotations}, f)
        os.replace(f"{path}.tmp", path)
    return path


def make_vqa(root: str, count: int) -> str:
    """`root/vqa/<count>/`: a VQA v2 directory of `count` COCO-named JPEG scenes
    (256x256) with five questions each, ten answers per question."""
    from PIL import Image

    from kerasnotes.data import scenes

    folder = os.path.join(root, "vqa", str(count))
    if not os.path.exists(os.path.join(folder, ".done")):
        rng = np.random.default_rng(count)
        os.makedirs(os.path.join(folder, "images"), exist_ok=True)
        questions, annotations = [], []
        for image_id in range(1, count + 1):
            objects = [scenes.random_object(rng, SIDE) for _ in range(rng.integers(1, 4))]
            name = f"COCO_train2014_{image_id:012d}.jpg"
            image = scenes.render(rng, objects, SIDE)
            Image.fromarray(image).save(os.path.join(folder, "images", name), quality=90)
            shapes = [o.shape for o in objects]
            asked = [
                ("What shape is the first object?", shapes[0], "other"),
                ("How many objects are there?", str(len(objects)), "number"),
                ("Is there a circle?", "yes" if "circle" in shapes else "no", "yes/no"),
                ("Is there a square?", "yes" if "square" in shapes else "no", "yes/no"),
                ("What shape is the last object?", shapes[-1], "other"),
            ]
            for n, (text, answer, kind) in enumerate(asked):
                qid = image_id * 10 + n
                questions.append({"image_id": image_id, "question": text, "question_id": qid})
                answers = [{"answer": answer, "answer_id": k + 1} for k in range(10)]
                annotations.append(
                    {"image_id": image_id, "question_id": qid, "answer_type": kind,
                     "answers": answers}
                )  # fmt: skip
        with open(os.path.join(folder, "v2_OpenEnded_mscoco_train2014_questions.json"), "w") as f:
            json.dump({"data_subtype": "train2014", "questions": questions}, f)
        with open(os.path.join(folder, "v2_mscoco_train2014_annotations.json"), "w") as f:
            json.dump({"annotations": annotations}, f)
        open(os.path.join(folder, ".done"), "w").close()
    return folder


def make_clips(root: str, count: int) -> str:
    """`root/clips/<count>/<motion>/<i>.gif`: 16-frame 64x64 moving-shape GIFs in four
    motions."""
    from kerasnotes.data import moving_shapes
    from kerasnotes.tasks.video_classification import encode_gif

    folder = os.path.join(root, "clips", str(count))
    if not os.path.exists(os.path.join(folder, ".done")):
        rng = np.random.default_rng(count)
        motions = ("left", "right", "up", "down")
        for i in range(count):
            motion = motions[i % len(motions)]
            os.makedirs(os.path.join(folder, motion), exist_ok=True)
            objects = moving_shapes.clip_objects(rng, motion, 64, 16)
            clip = moving_shapes.render_clip(rng, objects, 64)
            with open(os.path.join(folder, motion, f"{i}.gif"), "wb") as f:
                f.write(encode_gif(clip))
        open(os.path.join(folder, ".done"), "w").close()
    return folder


def make_csv(root: str, count: int) -> str:
    """`root/csv/<count>.csv`: `count` reviews (text,label) of 6 to 30 words, four
    labels, each told by the words it uses."""
    path = os.path.join(root, "csv", f"{count}.csv")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        rng = np.random.default_rng(count)
        common = [f"word{i}" for i in range(2000)]
        marks = {label: [f"{label}{i}" for i in range(50)] for label in CLASSES}
        with open(f"{path}.tmp", "w") as f:
            f.write("text,label\n")
            for i in range(count):
                label = CLASSES[i % len(CLASSES)]
                words = list(rng.choice(common, rng.integers(5, 30)))
                words.insert(rng.integers(0, len(words)), rng.choice(marks[label]))
                f.write(f"{' '.join(words)},{label}\n")
        os.replace(f"{path}.tmp", path)
    return path


def make_text(root: str, megabytes: int) -> str:
    """`root/text/<megabytes>/`: `train.txt` of `megabytes` MB (the Python
    documentation topics again and again, each copy numbered), and the same 1 MB
    `valid.txt` and `test.txt` beside every size."""
    import pydoc_data.topics

    folder = os.path.join(root, "text", str(megabytes))
    if not os.path.exists(os.path.join(folder, ".done")):
        os.makedirs(folder, exist_ok=True)
        topics = "\n".join(pydoc_data.topics.topics.values())
        for name, size in (("train.txt", megabytes), ("valid.txt", 1), ("test.txt", 1)):
            with open(os.path.join(folder, name), "w") as f:
                copy = 0
                while f.tell() < size * 10**6:
                    f.write(f"Copy {copy} of {name}.\n{topics}\n"[: size * 10**6 - f.tell()])
                    copy += 1
        open(os.path.join(folder, ".done"), "w").close()
    return folder


# Format -> (what makes its data, the model trained on it, its settings).
FORMATS = {
    "images": (make_images, "cnn", ["image_size=224"]),
    "sounds": (make_sounds, "wavenet", []),
    "coco": (make_coco, "captioner", []),
    "vqa": (make_vqa, "vqa", []),
    "clips": (make_clips, "video", []),
    "csv": (make_csv, "rnn", []),  # Its loader has no cache setting.
    "text": (make_text, "char-rnn", []),  # Sizes in MB; no cache setting.
}


def measure(
    data_format: str, dataset: str, cache: str | None, pythonpath: str, cache_dir: str, limit
) -> dict:
    """One training run's peak memory (MB), seconds to training and in all."""
    _, model, settings = FORMATS[data_format]
    command = [
        *(sys.executable, "-c", "from cli.main import main; main()", "train", model),
        *("--dataset", dataset, "--epochs", "1", "--no-export"),
        *(item for setting in settings for item in ("--set", setting)),
        *(("--set", f"cache={cache}") if cache else ()),
        *(("--set", f"time_limit={limit}") if limit else ()),
        *("--run-dir", tempfile.mkdtemp(prefix="data-memory-run-")),
    ]
    env = {**os.environ, "PYTHONPATH": pythonpath, "KERASNOTES_CACHE": cache_dir}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    ready, rate, tail = None, None, []
    for line in child.stdout:
        tail = [*tail[-20:], line]
        if ready is None and line.startswith("Data: "):  # Loaded and checked.
            ready = time.perf_counter() - started
        if line.startswith("Decoded "):  # The first pass: "Decoded N units in S s (R units/s)."
            rate = line.split("(")[-1].split()[0]
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        sys.exit(f"{' '.join(command)} failed:\n{''.join(tail)}")
    return {
        "peak_mb": round(usage.ru_maxrss / 1024),
        "seconds_to_training": round(ready or float("nan"), 1),
        "decoded_per_second": rate,  # None where nothing was decoded (a disk cache read).
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=list(FORMATS), default="images")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 16000])
    parser.add_argument("--cache", nargs="+", default=["disk", "none", "auto"])
    parser.add_argument("--compare-commit", default=None)
    parser.add_argument("--time-limit", type=float, default=60)
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "data-memory"))
    args = parser.parse_args()

    make = FORMATS[args.format][0]
    folders = {count: make(args.root, count) for count in args.sizes}
    caches = [None] if args.format in ("csv", "text") else args.cache
    contenders = [("this tree", REPOSITORY, caches)]
    worktree = None
    if args.compare_commit:
        worktree = tempfile.mkdtemp(prefix="data-memory-worktree-")
        subprocess.run(
            [
                "git",
                "-C",
                REPOSITORY,
                "worktree",
                "add",
                "--detach",
                worktree,
                args.compare_commit,
            ],
            check=True,
            capture_output=True,
        )
        contenders.append((args.compare_commit, worktree, [None]))
    try:
        for name, path, caches in contenders:
            for cache in caches:
                # A fresh disk cache per setting: its first run decodes, its second reads.
                cache_dir = tempfile.mkdtemp(prefix="data-memory-cache-")
                rows = {}
                for count, folder in folders.items():
                    rows[count] = measure(
                        args.format, folder, cache, path, cache_dir, args.time_limit
                    )
                    print(
                        json.dumps({"code": name, "cache": cache, "files": count, **rows[count]})
                    )
                if (
                    cache == "disk" or args.format == "csv"
                ):  # The second run on the largest folder: no decoding.
                    again = measure(
                        args.format, folders[max(folders)], cache, path, cache_dir, args.time_limit
                    )
                    print(json.dumps({"code": name, "cache": cache, "files": max(folders),
                                      "second_run": True, **again}))  # fmt: skip
                ratio = rows[max(folders)]["peak_mb"] / rows[min(folders)]["peak_mb"]
                print(
                    f"{name}, cache={cache or 'its default'}: peak memory {max(folders)} / "
                    f"{min(folders)} {args.format} = {ratio:.2f} (goal <= 1.3)",
                    flush=True,
                )
    finally:
        if worktree:
            subprocess.run(["git", "-C", REPOSITORY, "worktree", "remove", "--force", worktree])


if __name__ == "__main__":
    main()
