"""SavedModel exports in the TensorFlow Serving layout: `<root>/<name>/<version>/`.

Each version is written into a hidden staging directory beside the versions, checked
in a process that imports only TensorFlow, and only then renamed to the next
free number, so a server never sees a half-written or broken version. The manifest
(builder, hyperparameters, class names, metrics, versions) is in
`assets/kerasnotes.json`.

A writer holds an exclusive lock on `.staging-<id>.lock` for as long as its staging
directory `.staging-<id>` exists. The kernel drops the lock when the writer dies, even
by `kill -9`, so the next export removes exactly the staging directories whose writer
is gone and never a running writer's.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid

from kerasnotes.errors import DataError, TrainingError
from kerasnotes.files import probe_directory

MANIFEST = os.path.join("assets", "kerasnotes.json")
STAGING_PREFIX = ".staging-"


def versions(model_dir: str) -> list[int]:
    """Numeric versions present under `model_dir`, sorted."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(d) for d in os.listdir(model_dir) if d.isdigit())


def check_writable(export_root: str) -> None:
    """Fail early, before any training, if exports cannot be written under `export_root`."""
    probe_directory(
        export_root, "Export directory", "choose another --export-dir or pass --no-export"
    )


@contextlib.contextmanager
def _staging_directory(model_dir: str):
    """A new staging directory in `model_dir`, locked for as long as it exists."""
    while True:
        staging = os.path.join(model_dir, f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}")
        lock = os.open(f"{staging}.lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.fstat(lock).st_nlink:
            break
        os.close(lock)  # A cleaner took the new lock file for a dead writer's: again.
    try:
        os.mkdir(staging)
        try:
            yield staging
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.unlink(f"{staging}.lock")
    finally:
        os.close(lock)


def remove_abandoned_staging(model_dir: str) -> int:
    """Remove the staging directories in `model_dir` whose writer is gone; their count.

    A staging directory whose lock can be taken (or that has no lock file: a writer
    older than the lock, or one killed before it locked) has no live writer.
    """
    if not os.path.isdir(model_dir):
        return 0
    removed = 0
    for entry in sorted(os.listdir(model_dir)):
        if not entry.startswith(STAGING_PREFIX):
            continue
        path = os.path.join(model_dir, entry)
        if entry.endswith(".lock"):
            if os.path.exists(path.removesuffix(".lock")):
                continue  # Handled with its directory.
            staging = None
        elif os.path.isdir(path):
            staging = path
            path = f"{path}.lock"
        else:
            continue
        try:
            lock = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            lock = None
        try:
            if lock is not None:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # A live writer.
            if staging is not None and os.path.isdir(staging):
                shutil.rmtree(staging, ignore_errors=True)
                removed += 1
            with contextlib.suppress(OSError):
                os.unlink(path)
        finally:
            if lock is not None:
                os.close(lock)
    return removed


def _encode(value):
    """JSON form of example inputs: bytes become base64 text."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


class _Checker:
    """A TensorFlow-only interpreter that checks exports (`_export_check.py --serve`).

    Started at the first export and kept for the next ones, so a process that exports
    several models pays TensorFlow's start-up once; each export is still loaded from disk
    by an interpreter that has never imported Keras or kerasnotes. It ends with this
    process, however this one ends (it watches for its parent).
    """

    def __init__(self):
        self.process = None
        self.lock = threading.Lock()

    def _start(self):
        script = os.path.join(os.path.dirname(__file__), "_export_check.py")
        self.errors = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-P", script, "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
            env={
                **os.environ,
                "TF_CPP_MIN_LOG_LEVEL": "2",
                "KERASNOTES_CHECK_PARENT": str(os.getpid()),
            },
        )

    def problems(self, export_dir: str, check: dict) -> list[str]:
        with self.lock:
            if self.process is None or self.process.poll() is not None:
                self._start()
            request = json.dumps({"export_dir": export_dir, "check": check})
            try:
                self.process.stdin.write(request + "\n")
                self.process.stdin.flush()
                answer = self.process.stdout.readline()
            except BrokenPipeError:
                answer = ""
            if answer:
                return json.loads(answer)["problems"]
            # The checker died (a crash while loading the export): its last words.
            self.process.wait()
            self.process = None
            self.errors.seek(0)
            return [self.errors.read().decode("utf-8", "replace").strip()[-2000:]]


_checker = _Checker()


def verify(export_dir: str, contract: dict, examples: list[dict]) -> None:
    """Load the export in a TensorFlow-only process and check it answers right."""
    problems = _checker.problems(export_dir, {"contract": contract, "examples": _encode(examples)})
    if problems:
        detail = "\n".join(problems)
        raise TrainingError(f"The export failed its check in a TensorFlow-only process: {detail}")


def checked_inputs(fn, input_signature, batch_axes=None):
    """`fn` (a signature function of `input_signature`'s named inputs) with its inputs
    checked in the graph before `fn` sees them, the same for every signature:

    - float inputs (pixels, samples) must be finite: NaN or infinity is an
      `InvalidArgumentError` naming the input;
    - batched inputs (rank 1 or more) must agree on the batch size, an error naming
      both inputs otherwise;
    - a batch of 0 is answered with empty outputs (the dtypes and the known sizes of
      `fn`'s outputs), as a server batching requests expects, never run through `fn`.

    `batch_axes` maps an input's name to its batch axis where it is not 0 (time-major
    token ids); inputs of rank 0 (sampling settings) are passed through, `fn` checks
    their ranges.
    """
    import tensorflow as tf

    batch_axes = batch_axes or {}
    batched = [
        (i, spec.name, batch_axes.get(spec.name, 0))
        for i, spec in enumerate(input_signature)
        if spec.shape.rank != 0
    ]

    def checked(*inputs):
        checks = [
            tf.debugging.assert_all_finite(value, f"Input {spec.name} has NaN or infinite values")
            for spec, value in zip(input_signature, inputs, strict=True)
            if spec.dtype.is_floating
        ]
        sizes = [(name, tf.shape(inputs[i])[axis]) for i, name, axis in batched]
        for name, size in sizes[1:]:
            checks.append(
                tf.debugging.assert_equal(
                    size,
                    sizes[0][1],
                    message=f"Inputs {sizes[0][0]} and {name} differ in batch size",
                )
            )
        with tf.control_dependencies(checks):
            inputs = [tf.identity(value) for value in inputs]
        if not sizes:
            return fn(*inputs)
        traced = {}

        def answer():
            traced["outputs"] = fn(*inputs)
            return traced["outputs"]

        def empty():  # Traced after `answer` (tf.cond builds its true branch first).
            return tf.nest.map_structure(
                lambda t: tf.zeros([0, *(d or 0 for d in t.shape[1:])], t.dtype),
                traced["outputs"],
            )

        return tf.cond(sizes[0][1] > 0, answer, empty)

    return checked


def write_saved_model(model, task, info: dict, config, path: str) -> list[str]:
    """Write `model` as a SavedModel at `path` with `task`'s signatures, each behind
    `checked_inputs`; the signatures' names. What an export holds, without the
    manifest, the check and the publishing `write_export` adds."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    signatures = task.signatures(model, info, config)
    for name, (fn, specs, *batch_axes) in signatures.items():
        archive.add_endpoint(name, checked_inputs(fn, specs, *batch_axes), input_signature=specs)
    archive.write_out(path, verbose=False)
    return list(signatures)


def write_export(
    model,
    task,
    *,
    info: dict,
    config: dict,
    manifest: dict,
    examples,
    export_root: str,
    name: str,
    echo=print,
) -> str:
    """Export `model` as the next version of `<export_root>/<name>`; its path.

    `examples` are held-out examples (a `tf.data.Dataset`) the export is checked on.
    Staging directories of killed writers of the same model are removed first, and
    their number said through `echo`.
    """
    import keras
    import tensorflow as tf

    check_writable(export_root)
    model_dir = os.path.join(export_root, name)
    os.makedirs(model_dir, exist_ok=True)
    removed = remove_abandoned_staging(model_dir)
    if removed:
        echo(
            f"Removed {removed} staging director{'y' if removed == 1 else 'ies'} left by killed exports in {model_dir}."
        )
    with _staging_directory(model_dir) as staging:
        saved_model_dir = os.path.join(staging, "export")
        signatures = write_saved_model(model, task, info, config, saved_model_dir)
        contract = task.signature_contract(info, config)
        if "neighbours" not in signatures:  # Only models with a token embedding have it.
            contract.pop("neighbours", None)
        full_manifest = {
            **manifest,
            "signatures": contract,
            "versions": {
                "kerasnotes": _version("kerasnotes"),
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
            },
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        os.makedirs(os.path.join(saved_model_dir, "assets"), exist_ok=True)
        with open(os.path.join(saved_model_dir, MANIFEST), "w") as f:
            json.dump(full_manifest, f, indent=2)
        verify(saved_model_dir, contract, task.export_examples(model, examples, info, config))
        # Publish atomically under the next free version number.
        while True:
            version = (versions(model_dir) or [0])[-1] + 1
            target = os.path.join(model_dir, str(version))
            try:
                os.rename(saved_model_dir, target)
                return target
            except OSError:
                if not os.path.exists(target):
                    raise


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def read_manifest(export_dir: str) -> dict:
    """The manifest of an export, with a clear error if `export_dir` is not one."""
    path = os.path.join(export_dir, MANIFEST)
    if not os.path.isfile(os.path.join(export_dir, "saved_model.pb")):
        raise DataError(
            f"{export_dir!r} is not a kerasnotes export: expected a SavedModel version "
            "directory such as saved_models/cnn/1."
        )
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        raise DataError(
            f"{export_dir!r} has no readable kerasnotes manifest ({MANIFEST})."
        ) from None
