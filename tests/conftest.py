"""Shared fixtures. Point every cache at a temporary directory before TensorFlow loads."""

import os
import subprocess
import sys
import tempfile
import textwrap

# Test modules import this file again as `tests.conftest`; both share one home. Each
# pytest-xdist worker has its own under the run's (its own prepared datasets and caches).
_BASE = os.environ.get("KERASNOTES_TEST_HOME") or tempfile.mkdtemp(prefix="kerasnotes-tests-")
_HOME = os.path.join(_BASE, os.environ.get("PYTEST_XDIST_WORKER", "main"))
os.makedirs(_HOME, exist_ok=True)
os.environ.update(
    {
        "KERASNOTES_TEST_HOME": _BASE,
        "HOME": _HOME,
        "KERAS_HOME": os.path.join(_HOME, ".keras"),
        "TFDS_DATA_DIR": os.path.join(_HOME, "tensorflow_datasets"),
        "XDG_CACHE_HOME": os.path.join(_HOME, ".cache"),
        "MPLCONFIGDIR": os.path.join(_HOME, ".matplotlib"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
)

import pytest  # noqa: E402

# Small, fast settings that still learn the embedded shapes well above chance.
QUICK = [
    "dataset=shapes/small",
    "epochs=6",
    "batch_size=32",
    "filters=[16,32,64]",
    "dense_units=64",
    "learning_rate=0.003",
]


def run_cli(*args, cwd=None, env=None, timeout=600, fresh_process=False):
    """Run `kerasnotes ARGS` and capture what it writes to file descriptors 1 and 2.

    In this process through the console script's `main` (its native-log filter and
    error handling included), which spares each call TensorFlow's start-up; with
    `fresh_process` (for what is read at start-up: plugins, `TFDS_DATA_DIR`,
    `PYTHONPATH`, or a process to kill) the installed command in a new process.
    """
    if fresh_process:
        return subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "kerasnotes"), *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            timeout=timeout,
        )
    from cli.main import main

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_streams = sys.stdout, sys.stderr
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        saved_fds = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        sys.stdout = open(1, "w", closefd=False, buffering=1)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115
        try:
            os.environ.update(env or {})
            if cwd is not None:
                os.chdir(cwd)
            code = main([str(a) for a in args])
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.stdout, sys.stderr = saved_streams
            os.dup2(saved_fds[0], 1)
            os.dup2(saved_fds[1], 2)
            for fd in saved_fds:
                os.close(fd)
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    return subprocess.CompletedProcess(list(args), code, stdout, stderr)


def assert_one_line_error(proc, *fragments):
    """`proc` failed with exit 2 and one line, `Error: ...`, holding every fragment."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def train_quietly(model: str, overrides: list[str], root):
    """Train `model` into `root/run`, exporting under `root/saved_models`, silently."""
    import kerasnotes

    return kerasnotes.train(
        model,
        overrides=overrides,
        run_dir=str(root / "run"),
        export_dir=str(root / "saved_models"),
        echo=lambda line: None,
    )


def train_mirrored(model: str, overrides: list[str], run_dir, metric: str) -> float:
    """Train `model` under a mirrored strategy over two logical CPUs, in a fresh
    process (logical devices must be set before TensorFlow starts); returns `metric`."""
    script = textwrap.dedent(
        f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import kerasnotes
        result = kerasnotes.train({model!r}, overrides={overrides!r} + ["strategy=mirrored"],
                                  run_dir={str(run_dir)!r}, export_dir=None)
        print("METRIC", result.metrics[{metric!r}])
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Strategy: MirroredStrategy, 2 replica(s)" in proc.stdout
    return float(proc.stdout.split("METRIC")[-1])


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """One small cnn run on shapes/small, exported: (TrainResult, export root)."""
    root = tmp_path_factory.mktemp("trained")
    return train_quietly("cnn", QUICK, root), str(root / "saved_models")


@pytest.fixture(scope="session")
def shapes_small():
    """Prepare the small embedded dataset once, so later runs print no progress."""
    from kerasnotes.data.images import load

    return load("shapes/small")


@pytest.fixture
def clean_registry():
    """The model registry as it was before the test: models a test registers go."""
    from kerasnotes import registry

    saved = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)
