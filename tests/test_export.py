import contextlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import kerasnotes
from kerasnotes.data import scenes
from kerasnotes.errors import DataError, TrainingError, UsageError
from kerasnotes.exports import MANIFEST, checked_inputs, versions
from tests.conftest import assert_one_line_error, run_cli

TF_ONLY = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    export, files = sys.argv[1], sys.argv[2:]
    serve = tf.saved_model.load(export).signatures["serving_default"]
    out = serve(image_bytes=tf.constant([open(f, "rb").read() for f in files]))
    assert "kerasnotes" not in sys.modules
    print(json.dumps({"labels": [l.decode() for l in out["label"].numpy()],
                      "scores": out["scores"].numpy().tolist()}))
    """
)


def serve_in_tf_only_process(export, files):
    proc = subprocess.run(
        [sys.executable, "-P", "-c", TF_ONLY, export, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def test_images(trained, tmp_path_factory):
    """Held-out images as PNG and JPEG files, and the labels the Keras model gives
    for each file decoded in this process."""
    import keras

    from kerasnotes.data.images import load

    result, _ = trained
    model = keras.models.load_model(os.path.join(result.run_dir, "model.keras"))
    names = json.load(open(os.path.join(result.run_dir, "data.json")))["class_names"]
    images = np.stack([x.numpy() for x, _ in load("shapes/small").test.take(6)])
    folder = tmp_path_factory.mktemp("images")
    pngs, jpegs = [], []
    for i, image in enumerate(images):
        pngs.append(folder / f"{i}.png")
        pngs[-1].write_bytes(tf.io.encode_png(image).numpy())
        jpegs.append(folder / f"{i}.jpg")
        jpegs[-1].write_bytes(tf.io.encode_jpeg(image, quality=95).numpy())

    def keras_labels(files):
        decoded = np.stack([tf.io.decode_image(f.read_bytes(), channels=3).numpy() for f in files])
        return [names[i] for i in model.predict(decoded.astype("float32"), verbose=0).argmax(-1)]

    return images, pngs, jpegs, keras_labels(pngs), keras_labels(jpegs)


def test_tf_only_process_labels_png_and_jpeg(trained, test_images):
    result, _ = trained
    _, pngs, jpegs, png_labels, jpeg_labels = test_images
    served = serve_in_tf_only_process(result.export_dir, pngs + jpegs)
    assert served["labels"] == png_labels + jpeg_labels
    assert np.allclose(np.sum(served["scores"], axis=1), 1, atol=1e-4)


def test_greyscale_rgba_and_palette_images_are_converted(trained, test_images, tmp_path):
    from PIL import Image

    result, _ = trained
    images = test_images[0]
    # Each image in another mode, beside the same pixels as PIL shows them in RGB: the
    # export must see what a viewer sees (grey replicated, the palette looked up,
    # opaque alpha dropped).
    files = []
    for mode in ["L", "RGBA", "P", "LA"]:
        converted = Image.fromarray(images[0]).convert(mode)
        converted.save(tmp_path / f"{mode}.png")
        converted.convert("RGB").save(tmp_path / f"{mode}-rgb.png")
        files += [tmp_path / f"{mode}.png", tmp_path / f"{mode}-rgb.png"]
    Image.fromarray(images[0]).save(tmp_path / "x.gif")
    Image.open(tmp_path / "x.gif").convert("RGB").save(tmp_path / "gif-rgb.png")
    files += [tmp_path / "x.gif", tmp_path / "gif-rgb.png"]
    served = serve_in_tf_only_process(result.export_dir, files)
    labels, scores = served["labels"], np.array(served["scores"])
    assert labels[0::2] == labels[1::2]
    np.testing.assert_allclose(scores[0::2], scores[1::2], atol=1e-5)
    assert labels[2] == test_images[3][0]  # RGBA with opaque alpha = the RGB image


def test_a_greyscale_folder_trains_and_serves_in_one_channel(tmp_path):
    """A folder of small greyscale images (dark or light) trains a one-channel model
    at their own size, whose export takes PNG, JPEG and GIF, grey or colour."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, (low, high) in {"dark": (0, 90), "light": (165, 256)}.items():
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(30):
            pixels = rng.integers(low, high, (20, 16), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(tmp_path / "data" / label / f"{i}.png")
    proc = run_cli(
        "train", "cnn", "--dataset", tmp_path / "data", "--run-dir", tmp_path / "run",
        "--export-dir", tmp_path / "exports", "--epochs", "8", "--batch-size", "8", "--set", "filters=[8]",
        "--set", "dense_units=0", "--set", "learning_rate=0.01",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["accuracy"] == 1.0, metrics  # Six held-out images, far apart.
    export = tmp_path / "exports" / "cnn" / "1"
    manifest = json.loads((export / MANIFEST).read_text())
    assert manifest["data"]["image_shape"] == [20, 16, 1]
    light = np.full((20, 16), 230, np.uint8)
    Image.fromarray(light, mode="L").save(tmp_path / "light.gif")
    Image.fromarray(np.zeros((40, 32, 3), np.uint8)).save(tmp_path / "dark.jpg")
    Image.fromarray(np.full((20, 16, 3), 220, np.uint8)).save(tmp_path / "light.png")
    files = [tmp_path / name for name in ("light.gif", "dark.jpg", "light.png")]
    served = serve_in_tf_only_process(str(export), files)
    assert served["labels"] == ["light", "dark", "light"], served


def test_corrupt_bytes_are_an_invalid_argument(trained):
    result, _ = trained
    serve = tf.saved_model.load(result.export_dir).signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError):
        serve(image_bytes=tf.constant([b"definitely not an image"]))


def test_manifest_and_signatures(trained):
    result, _ = trained
    manifest = json.load(open(os.path.join(result.export_dir, MANIFEST)))
    assert manifest["model"] == "cnn"
    assert manifest["data"]["class_names"] == list(scenes.SHAPES)
    assert manifest["metrics"]["accuracy"] == pytest.approx(result.metrics["accuracy"])
    assert set(manifest["versions"]) == {"kerasnotes", "tensorflow", "keras"}
    assert manifest["hyperparameters"]["filters"] == [16, 32, 64]
    cli = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "saved_model_cli"),
            "show",
            "--dir",
            result.export_dir,
            "--all",
        ],
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    for text in [
        "serving_default",
        "serving_images",
        "image_bytes",
        "DT_STRING",
        "(-1, 32, 32, 3)",
    ]:
        assert text in cli.stdout


def test_the_check_names_a_wrong_answer_and_outlives_its_checker(trained, tmp_path):
    from kerasnotes import exports

    result, _ = trained
    manifest = json.load(open(os.path.join(result.export_dir, MANIFEST)))
    image = tf.io.encode_png(tf.zeros((32, 32, 3), tf.uint8)).numpy()
    served = serve_in_tf_only_process(result.export_dir, [_write(tmp_path / "z.png", image)])
    wrong = next(name for name in manifest["data"]["class_names"] if name != served["labels"][0])
    example = {"signature": "serving_default", "inputs": {"image_bytes": [image]}}
    pixels = {
        "signature": "serving_images",
        "inputs": {"images": np.zeros((1, 32, 32, 3)).tolist()},
    }
    # Every signature must be called by an example.
    with pytest.raises(TrainingError, match="serving_images: no example calls this signature"):
        exports.verify(
            result.export_dir,
            manifest["signatures"],
            [{**example, "outputs": {"label": served["labels"]}}],
        )
    exports.verify(
        result.export_dir,
        manifest["signatures"],
        [{**e, "outputs": {"label": served["labels"]}} for e in (example, pixels)],
    )
    # A checker that died is replaced; a wrong answer is named with the expected one.
    exports._checker.process.kill()
    exports._checker.process.wait()
    with pytest.raises(TrainingError, match=f"is .*, expected \\['{wrong}'\\]"):
        exports.verify(
            result.export_dir, manifest["signatures"], [{**example, "outputs": {"label": [wrong]}}]
        )
    with pytest.raises(TrainingError, match="TensorFlow-only process"):
        exports.verify(str(tmp_path), manifest["signatures"], [])


KILLED_PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    from kerasnotes import exports
    exports._checker._start()
    checker = exports._checker.process
    # A child holding the checker's input open: its end of input never comes.
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                              pass_fds=[checker.stdin.fileno()])
    print(checker.pid, holder.pid, flush=True)
    time.sleep(60)
    """
)


def test_the_checker_ends_with_a_parent_killed_mid_work():
    import signal
    import time

    parent = subprocess.Popen(
        [sys.executable, "-c", KILLED_PARENT], stdout=subprocess.PIPE, text=True
    )
    checker, holder = map(int, parent.stdout.readline().split())
    try:
        os.kill(checker, 0)  # It is running.
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(checker):
            time.sleep(0.1)
        assert not _alive(checker), "the checker outlived its killed parent"
    finally:
        for pid in (checker, holder):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        parent.kill()


def _alive(pid):
    """Whether `pid` runs (a zombie, dead but not yet reaped by init, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _write(path, data):
    path.write_bytes(data)
    return path


def test_versions_count_up_atomically(trained, tmp_path):
    result, _ = trained
    root = str(tmp_path / "exports")
    first = kerasnotes.export(result.run_dir, export_root=root)
    second = kerasnotes.export(result.run_dir, export_root=root)
    assert (os.path.basename(first), os.path.basename(second)) == ("1", "2")
    assert versions(os.path.join(root, "cnn")) == [1, 2]
    assert sorted(os.listdir(os.path.join(root, "cnn"))) == ["1", "2"]  # no staging left


def test_unwritable_export_dir(trained, tmp_path):
    result, _ = trained
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="not writable"):
        kerasnotes.export(result.run_dir, export_root=str(blocker / "exports"))


def test_evaluate_export_matches_run(trained):
    result, _ = trained
    from_run = kerasnotes.evaluate(result.run_dir)
    from_export = kerasnotes.evaluate(result.export_dir)
    assert from_run["accuracy"] == pytest.approx(result.metrics["accuracy"])
    assert from_export["accuracy"] == pytest.approx(from_run["accuracy"])
    assert from_export["loss"] == pytest.approx(from_run["loss"], rel=1e-4)


def test_a_damaged_run_directory_is_named_before_it_is_loaded(trained, tmp_path):
    import shutil

    import keras

    result, _ = trained
    other = tmp_path / "other.keras"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(other)
    model = os.path.join(result.run_dir, "model.keras")
    with open(model, "rb") as f:
        saved = f.read()
    damages = {
        "another model": ("model.keras", other.read_bytes(), "not the model this run saved"),
        "truncated model": ("model.keras", saved[: len(saved) // 2], "not the model this run"),
        "truncated config": ("config.json", b'{"model": "cnn", "epo', "not valid JSON"),
        "missing model": ("model.keras", None, "model.keras is missing"),
    }
    for damage, (name, content, fragment) in damages.items():
        run = tmp_path / damage.replace(" ", "-")
        shutil.copytree(result.run_dir, run)
        if content is None:
            os.unlink(run / name)
        else:
            (run / name).write_bytes(content)
        for command in (["evaluate"], ["export", "--export-dir", str(tmp_path / "x")]):
            assert_one_line_error(run_cli(*command, str(run)), name, fragment)
    assert not (tmp_path / "x").exists()
    # A run saved before its model's digest was recorded still loads; a damaged model
    # is then named by what Keras found.
    run = tmp_path / "unrecorded"
    shutil.copytree(result.run_dir, run)
    state = json.loads((run / "state.json").read_text())
    del state["model_sha256"]
    (run / "state.json").write_text(json.dumps(state))
    assert kerasnotes.evaluate(str(run))["accuracy"] == pytest.approx(result.metrics["accuracy"])
    (run / "model.keras").write_bytes(saved[: len(saved) // 2])
    assert_one_line_error(run_cli("evaluate", str(run)), "model.keras", "cannot be loaded")


def test_evaluate_rejects_a_mismatched_dataset(trained):
    result, _ = trained
    with tfds_mock():
        with pytest.raises(DataError, match="class_names"):
            kerasnotes.evaluate(result.export_dir, dataset="mnist")


def tfds_mock():
    import tensorflow_datasets as tfds

    return tfds.testing.mock_data(num_examples=10)


def test_predict_labels_files_and_names_bad_ones(trained, test_images, tmp_path):
    result, _ = trained
    _, pngs, _, expected, _ = test_images
    predictions = kerasnotes.predict(result.export_dir, [str(p) for p in pngs])
    assert [p["label"] for p in predictions] == expected
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    with pytest.raises(DataError, match="bad.png"):
        kerasnotes.predict(result.export_dir, [str(bad)])
    with pytest.raises(DataError, match="missing.png"):
        kerasnotes.predict(result.export_dir, [str(tmp_path / "missing.png")])
    with pytest.raises(DataError, match="not a kerasnotes export"):
        kerasnotes.predict(str(tmp_path), [str(pngs[0])])


def test_abandoned_staging_is_removed_and_a_live_writers_is_kept(tmp_path):
    import fcntl

    from kerasnotes.exports import remove_abandoned_staging

    model_dir = tmp_path / "cnn"
    (model_dir / "1").mkdir(parents=True)
    for name in ("dead", "live"):  # A killed writer's and a running writer's.
        (model_dir / f".staging-{name}" / "export").mkdir(parents=True)
        (model_dir / f".staging-{name}.lock").touch()
    (model_dir / ".staging-old").mkdir()  # From a writer that kept no lock.
    (model_dir / ".staging-gone.lock").touch()  # Killed before its directory existed.
    live = os.open(model_dir / ".staging-live.lock", os.O_WRONLY)
    try:
        fcntl.flock(live, fcntl.LOCK_EX)
        assert remove_abandoned_staging(str(model_dir)) == 2
        assert sorted(os.listdir(model_dir)) == [".staging-live", ".staging-live.lock", "1"]
    finally:
        os.close(live)
    assert remove_abandoned_staging(str(model_dir)) == 1  # Its writer is gone now.
    assert os.listdir(model_dir) == ["1"]


def test_export_says_what_it_cleaned_and_needs_no_dataset(trained, tmp_path, monkeypatch):
    result, _ = trained
    root = tmp_path / "exports"
    (root / "cnn" / ".staging-killed" / "export").mkdir(parents=True)
    # The run's dataset is gone: the export is checked on the examples the run kept.
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "no-data"))
    proc = run_cli("export", result.run_dir, "--export-dir", str(root), fresh_process=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Removed 1 staging directory left by killed exports" in proc.stdout
    assert sorted(os.listdir(root / "cnn")) == ["1"]
    assert not (tmp_path / "no-data").exists()


# A writer that waits, its export staged, until the other writer has staged one too:
# the two exports overlap for certain. It says so in overlapped-<pid>.
BARRIER_PLUGIN = textwrap.dedent(
    """
    import os, time
    from kerasnotes import exports

    checked = exports.verify

    def verify(export_dir, *args, **kwargs):
        model_dir = os.path.dirname(os.path.dirname(export_dir))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            staged = [
                n for n in os.listdir(model_dir)
                if n.startswith(exports.STAGING_PREFIX) and not n.endswith(".lock")
            ]
            if len(staged) == 2:
                open(f"overlapped-{os.getpid()}", "w").close()
                break
            time.sleep(0.05)
        return checked(export_dir, *args, **kwargs)

    exports.verify = verify
    """
)


def test_concurrent_exports_give_intact_versions(trained, tmp_path):
    result, _ = trained
    root = tmp_path / "exports"
    (tmp_path / "barrier.py").write_text(BARRIER_PLUGIN)
    kerasnotes_bin = os.path.join(os.path.dirname(sys.executable), "kerasnotes")
    procs = [
        subprocess.Popen(
            [kerasnotes_bin, "--plugin", "barrier", "export", result.run_dir,
             "--export-dir", str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for _ in range(2)
    ]  # fmt: skip
    outputs = [proc.communicate(timeout=600) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], [err[-1000:] for _, err in outputs]
    # Both writers held a staging directory at once, then each published its own.
    assert len(list(tmp_path.glob("overlapped-*"))) == 2
    assert sorted(os.listdir(root / "cnn")) == ["1", "2"]  # No staging left.
    image = tf.cast(tf.random.stateless_uniform((32, 32, 3), (0, 1), maxval=255), tf.uint8)
    (tmp_path / "a.png").write_bytes(tf.io.encode_png(image).numpy())
    served = [serve_in_tf_only_process(str(root / "cnn" / v), [tmp_path / "a.png"]) for v in "12"]
    assert served[0] == served[1]


def test_every_signature_checks_its_inputs_before_the_model_sees_them():
    """Pixels must be finite, batched inputs agree on their batch size, and a batch of 0
    is answered with empty outputs of the right dtypes and sizes without running the
    model (which here would fail on it)."""

    def fn(images, question, temperature):
        first = images[0, 0]  # Fails for an empty batch.
        scores = tf.reduce_sum(images, axis=1) * temperature + first
        return {"scores": scores, "answer": tf.strings.as_string(question)}

    specs = [
        tf.TensorSpec([None, 3], tf.float32, name="images"),
        tf.TensorSpec([None], tf.int32, name="question"),
        tf.TensorSpec([], tf.float32, name="temperature"),
    ]
    served = tf.function(checked_inputs(fn, specs), input_signature=specs)
    out = served(tf.ones([2, 3]), tf.constant([1, 2]), tf.constant(2.0))
    assert out["scores"].numpy().tolist() == [7.0, 7.0] and out["answer"].numpy().tolist() == [b"1", b"2"]  # fmt: skip
    empty = served(tf.zeros([0, 3]), tf.zeros([0], tf.int32), tf.constant(2.0))
    assert empty["scores"].shape == (0,) and empty["answer"].dtype == tf.string
    with pytest.raises(tf.errors.InvalidArgumentError, match="images and question differ in batch size"):  # fmt: skip
        served(tf.ones([2, 3]), tf.constant([1]), tf.constant(1.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="Input images has NaN or infinite"):
        served(tf.constant([[1.0, float("nan"), 0.0]]), tf.constant([1]), tf.constant(1.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="Input temperature has NaN"):
        served(tf.ones([1, 3]), tf.constant([1]), tf.constant(float("inf")))
    # Time-major inputs name their batch axis.
    time_major = [tf.TensorSpec([None, None], tf.int64, name="token_ids")]
    served = tf.function(
        checked_inputs(
            lambda ids: {"n": tf.reduce_sum(ids, axis=0)}, time_major, {"token_ids": 1}
        ),
        input_signature=time_major,
    )
    assert served(tf.zeros([0, 3], tf.int64))["n"].shape == (3,)  # No steps, three texts.
    assert served(tf.zeros([4, 0], tf.int64))["n"].shape == (0,)
