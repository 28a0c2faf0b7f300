"""Resident memory of an export under concurrent calls, good and junk inputs mixed (not
part of the test suite).

For each model: `kerasnotes.train` on its small embedded dataset (1 epoch; the weights
do not matter here), then a child process that imports TensorFlow only loads the export
and calls `serving_default` from `--threads` threads, batch 1, one call in ten with junk
(bytes that are not an image or not UTF-8, an empty input, a 20 KB input). The child
reads its resident set size (`/proc/self/statm`) after `--warm-up` calls and every
1,000 calls after that; the figure is the growth over `--calls` calls past the warm-up,
against the warm-up's own size in the same process.

The goal (issue 32, item 9): growth <= 5% after warm-up over 10,000 calls. The size
once loaded, before any call, is printed beside it: what the warm-up itself takes.

    python benchmarks/serving_memory.py [--models rnn cnn captioner] [--calls 10000]
        [--warm-up 1000] [--threads 8] [--malloc-arena-max N]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CHILD = r"""
import base64, json, os, sys, threading
import tensorflow as tf

export_dir, inputs_file, calls, warm_up, threads = sys.argv[1:6]
calls, warm_up, threads = int(calls), int(warm_up), int(threads)
spec = json.load(open(inputs_file))
good = [base64.b64decode(v) for v in spec["good"]]
junk = [base64.b64decode(v) for v in spec["junk"]]
serve = tf.saved_model.load(export_dir).signatures["serving_default"]
name = spec["input"]
page = os.sysconf("SC_PAGE_SIZE")

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page / 2**20

counter = iter(range(10**9))
lock = threading.Lock()
samples, errors, unexpected = [], [0], []

def work(total):
    while True:
        with lock:
            n = next(counter)
        if n >= total:
            return
        value = junk[n // 10 % len(junk)] if n % 10 == 9 else good[n % len(good)]
        try:
            serve(**{name: tf.constant([value])})
        except tf.errors.InvalidArgumentError:
            with lock:
                errors[0] += 1
        except Exception as e:  # noqa: BLE001
            with lock:
                unexpected.append(f"{type(e).__name__}: {e}"[:200])
        if n % 1000 == 999:
            with lock:
                samples.append((n + 1, rss_mb()))

def run(total):
    pool = [threading.Thread(target=work, args=(total,)) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()

loaded = rss_mb()
run(warm_up)
start = rss_mb()
counter = iter(range(warm_up, 10**9))
samples.clear()
run(warm_up + calls)
end = rss_mb()
print(json.dumps({"loaded_mb": loaded, "start_mb": start, "end_mb": end, "samples": samples,
                  "errors": errors[0], "unexpected": unexpected[:3]}))
"""


def inputs_for(model: str) -> dict:
    """The export's input name, good values (held-out examples of the embedded data)
    and junk."""
    import numpy as np
    import tensorflow as tf

    junk_bytes = bytes(range(256)) * 4
    if model == "rnn":
        from kerasnotes.data import text as text_data

        data = text_data.load("sentiment/small", "classification")
        good = [text.numpy() for text, _ in data.test.take(64)]
        junk = [b"", b"\xff\xfe not UTF-8 \xc3", b"word " * 4000, junk_bytes]
        return {"input": "text", "good": good, "junk": junk}
    from kerasnotes.data import captions, images

    if model == "cnn":
        data = images.load("shapes/small")
        pictures = [image.numpy() for image, _ in data.test.take(64)]
    else:
        data = captions.load("shapes_captions/small")
        pictures = [example[0].numpy() for example in data.test.take(64)]
    good = [tf.io.encode_png(np.asarray(p, np.uint8)).numpy() for p in pictures]
    junk = [b"", b"GIF89a truncated", b"\x89PNG" + bytes(20000), junk_bytes]
    return {"input": "image_bytes", "good": good, "junk": junk}


def measure(model: str, root: str, args) -> dict:
    import kerasnotes

    small = {"rnn": "sentiment/small", "cnn": "shapes/small", "captioner": "shapes_captions/small"}
    result = kerasnotes.train(
        model,
        overrides=[f"dataset={small[model]}", "epochs=1"],
        run_dir=os.path.join(root, model, "run"),
        export_dir=os.path.join(root, model, "exports"),
        echo=lambda line: None,
    )
    spec = inputs_for(model)
    spec = {
        **spec,
        **{k: [base64.b64encode(v).decode() for v in spec[k]] for k in ("good", "junk")},
    }
    inputs_file = os.path.join(root, model, "inputs.json")
    with open(inputs_file, "w") as f:
        json.dump(spec, f)
    env = dict(os.environ)
    if args.malloc_arena_max:
        env["MALLOC_ARENA_MAX"] = str(args.malloc_arena_max)
    out = subprocess.run(
        [
            sys.executable,
            "-P",
            "-c",
            CHILD,
            result.export_dir,
            inputs_file,
            str(args.calls),
            str(args.warm_up),
            str(args.threads),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["rnn", "cnn", "captioner"])
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--warm-up", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--malloc-arena-max", type=int, default=0)
    args = parser.parse_args()

    print(f"| model | RSS loaded (MB) | after {args.warm_up:,} calls | after {args.calls:,} more "
          "| growth | largest on the way | junk refused | unexpected errors |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as root:
        for model in args.models:
            r = measure(model, root, args)
            peak = max([mb for _, mb in r["samples"]] + [r["end_mb"]])
            growth = (r["end_mb"] / r["start_mb"] - 1) * 100
            print(
                f"| {model} | {r['loaded_mb']:.0f} | {r['start_mb']:.0f} | {r['end_mb']:.0f} | "
                f"{growth:+.1f}% | "
                f"{peak:.0f} | {r['errors']} | {len(r['unexpected'])} {r['unexpected']} |",
                flush=True,
            )
            print("  every 1,000 calls:", ", ".join(f"{mb:.0f}" for _, mb in r["samples"]))


if __name__ == "__main__":
    main()
