"""Check a SavedModel the way a server sees it, importing only TensorFlow.

Run as a script in a fresh interpreter (never imported by kerasnotes):

    python -P _export_check.py EXPORT_DIR CHECK_JSON
    python -P _export_check.py --serve

CHECK_JSON holds the signature contract (names, dtypes, shapes of inputs and outputs)
and examples with the answers the Keras model gave. Both `tf.saved_model.load` and the
session-based loader used by `saved_model_cli` and TensorFlow Serving must load the
export, expose exactly the contract and give those answers (every signature is called
by at least one example), and every signature must answer an empty batch with empty
outputs. Prints one line per
problem and exits 1 if there is any.

With `--serve` the interpreter stays up and checks one export per line of standard
input (`{"export_dir": ..., "check": CHECK_JSON's content}`), answering each with one
line of JSON (`{"problems": [...]}`) on standard output, so a process that exports
several models pays TensorFlow's start-up once. It ends when its input closes, and
within a fraction of a second of its parent (`KERASNOTES_CHECK_PARENT`, the parent's
pid) ending, even in the middle of a check or with its input held open elsewhere.
"""

import base64
import gc
import json
import os
import sys
import threading
import time
import traceback

import numpy as np
import tensorflow as tf


def _decode(value, dtype):
    if dtype == "string":
        return np.array([base64.b64decode(v) for v in value], dtype=object)
    return np.array(value, dtype=dtype)


def _shape(shape):
    return [None if d is None or d == -1 else int(d) for d in shape]


def _compare(where, name, got, want, problems):
    got = np.asarray(got)
    if got.dtype == object or got.dtype.kind == "S":
        got = [g.decode() if isinstance(g, bytes) else g for g in got.ravel().tolist()]
        if got != list(np.ravel(want)):
            problems.append(f"{where}: output {name!r} is {got}, expected {want}")
    elif not np.allclose(got, np.asarray(want), atol=1e-4, rtol=1e-4):
        error = np.max(np.abs(got - np.asarray(want)))
        problems.append(f"{where}: output {name!r} differs from the model by {error:.3g}")


def check(export_dir, spec):
    problems = []
    contract, examples = spec["contract"], spec["examples"]

    # 1. The TF2 loader.
    loaded = tf.saved_model.load(export_dir)
    if sorted(loaded.signatures) != sorted(contract):
        problems.append(f"signatures are {sorted(loaded.signatures)}, expected {sorted(contract)}")
    for name, want in contract.items():
        if name not in loaded.signatures:
            continue
        fn = loaded.signatures[name]
        inputs = fn.structured_input_signature[1]
        got_inputs = {k: [v.dtype.name, _shape(v.shape)] for k, v in inputs.items()}
        if got_inputs != want["inputs"]:
            problems.append(f"{name}: inputs are {got_inputs}, expected {want['inputs']}")
        got_outputs = {
            k: [v.dtype.name, _shape(v.shape)] for k, v in fn.structured_outputs.items()
        }
        if got_outputs != want["outputs"]:
            problems.append(f"{name}: outputs are {got_outputs}, expected {want['outputs']}")
    called = {example["signature"] for example in examples}
    for name in sorted(set(contract) - called):
        problems.append(f"{name}: no example calls this signature")
    for example in examples:
        name = example["signature"]
        if name not in loaded.signatures:
            continue
        dtypes = {k: v[0] for k, v in contract[name]["inputs"].items()}
        feed = {k: tf.constant(_decode(v, dtypes[k])) for k, v in example["inputs"].items()}
        result = loaded.signatures[name](**feed)
        for key, want in example["outputs"].items():
            _compare(f"tf.saved_model.load {name}", key, result[key].numpy(), want, problems)

    # An empty batch (every unknown size 0; settings as in an example) is answered with
    # empty outputs, as a server batching requests expects.
    for name, want in contract.items():
        if name not in loaded.signatures:
            continue
        settings = next((e["inputs"] for e in examples if e["signature"] == name), {})
        feed = {}
        for key, (dtype, shape) in want["inputs"].items():
            if not shape:
                if key not in settings:
                    break  # No example gives this setting.
                feed[key] = tf.constant(_decode(settings[key], dtype))
            else:
                empty = [0 if d is None else d for d in shape]
                feed[key] = tf.zeros(empty, dtype)
        else:
            try:
                result = loaded.signatures[name](**feed)
            except Exception as e:
                problems.append(f"{name}: an empty batch fails: {str(e).strip().splitlines()[0]}")
                continue
            for key, value in result.items():
                if value.shape[0] != 0:
                    problems.append(
                        f"{name}: output {key!r} has shape {value.shape.as_list()} for an "
                        "empty batch, expected a first size of 0"
                    )

    # 2. The session-based loader of saved_model_cli and TensorFlow Serving.
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], export_dir)
        for example in examples:
            name = example["signature"]
            signature = meta_graph.signature_def.get(name)
            if signature is None:
                problems.append(f"session loader: no signature {name!r}")
                continue
            dtypes = {k: v[0] for k, v in contract[name]["inputs"].items()}
            feed = {
                signature.inputs[k].name: _decode(v, dtypes[k])
                for k, v in example["inputs"].items()
            }
            fetch = {k: signature.outputs[k].name for k in example["outputs"]}
            result = session.run(fetch, feed)
            for key, want in example["outputs"].items():
                _compare(f"session loader {name}", key, result[key], want, problems)
    return problems


def _checked(export_dir, spec):
    problems = check(export_dir, spec)
    if "kerasnotes" in sys.modules:
        problems.append("the check imported kerasnotes; it must use TensorFlow alone")
    return problems


def _end_with(parent):
    """Exit as soon as the process `parent` is no longer this one's parent: a parent
    killed with SIGKILL closes nothing in time for a check under way to notice."""

    def watch():
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


def serve():
    parent = os.environ.get("KERASNOTES_CHECK_PARENT")
    _end_with(int(parent) if parent else os.getppid())
    # Answers go to the original standard output; anything else written to it (by
    # TensorFlow or Python) goes to standard error instead.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            problems = _checked(request["export_dir"], request["check"])
        except Exception:
            problems = [traceback.format_exc(limit=3).strip().splitlines()[-1]]
        gc.collect()  # Drop the loaded export before the next one.
        answers.write(json.dumps({"problems": problems}) + "\n")
        answers.flush()


def main():
    if sys.argv[1:] == ["--serve"]:
        serve()
        return
    export_dir, check_json = sys.argv[1], sys.argv[2]
    with open(check_json) as f:
        spec = json.load(f)
    problems = _checked(export_dir, spec)
    for problem in problems:
        print(problem)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
