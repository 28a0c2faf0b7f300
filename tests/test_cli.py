import ast
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from cli.main import COMMANDS
from kerasnotes.data import scenes
from tests.conftest import assert_one_line_error, run_cli

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_help_does_not_import_tensorflow():
    code = (
        "import sys\nfrom cli.main import main\n"
        "code = main(['--help'])\n"
        "print('TF_LOADED' if 'tensorflow' in sys.modules else 'TF_FREE', code)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip().splitlines()[-1] == "TF_FREE 0"


def test_library_never_imports_the_cli():
    for path in (ROOT / "kerasnotes").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in ("cli", "click"), f"{path} imports {name}"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_help_with_an_example(command):
    from click.testing import CliRunner

    from cli.main import cli

    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


def test_models_and_datasets():
    proc = run_cli("models")
    assert proc.returncode == 0
    listed = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()}
    assert list(listed) == sorted(listed)
    assert listed["captioner"] == "captioning" and listed["cnn"] == "image_classification"
    assert listed["char-rnn"] == listed["ngram"] == "language_modelling"
    proc = run_cli("datasets")
    assert proc.returncode == 0 and "shapes" in proc.stdout and "mnist" in proc.stdout
    assert "shapes_captions" in proc.stdout and "coco_captions" in proc.stdout
    assert "text_classification (models: rnn):" in proc.stdout
    assert "sequence_tagging (models: rnn-tagger):" in proc.stdout and "conll2003" in proc.stdout
    assert "language_modelling (models: char-rnn, ngram, transformer-lm):" in proc.stdout
    assert "python_docs" in proc.stdout and "tiny_shakespeare" in proc.stdout


PLUGIN_TASK = textwrap.dedent(
    """
    import kerasnotes
    from kerasnotes.tasks.image_classification import ImageClassification


    class Greyscale(ImageClassification):
        name = "greyscale_classification"

        def datasets_help(self):
            return ["greyscale folders (a plugin's own task)"]


    kerasnotes.register_task("greyscale_classification", Greyscale())


    @kerasnotes.register_model("grey-mlp", task="greyscale_classification")
    def grey_mlp(input_shape=(32, 32, 3), num_classes=6, data_format="channels_last"):
        import keras

        inputs = keras.Input(input_shape)
        x = keras.layers.Flatten()(inputs)
        return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
    """
)


def test_a_plugin_brings_its_own_task(tmp_path):
    (tmp_path / "grey.py").write_text(PLUGIN_TASK)
    proc = run_cli("--plugin", "grey", "datasets", cwd=tmp_path, fresh_process=True)
    assert proc.returncode == 0, proc.stderr
    assert "greyscale_classification (models: grey-mlp):" in proc.stdout
    assert "greyscale folders (a plugin's own task)" in proc.stdout
    proc = run_cli("--plugin", "grey", "models", "grey*", cwd=tmp_path, fresh_process=True)
    assert proc.stdout.split()[:2] == ["grey-mlp", "greyscale_classification"]


def test_a_task_name_cannot_be_registered_twice():
    import kerasnotes

    with pytest.raises(ValueError, match="A task named 'vqa' is already registered"):
        kerasnotes.register_task("vqa", object())


@pytest.fixture(scope="module")
def bad_folders(tmp_path_factory):
    import tensorflow as tf

    root = tmp_path_factory.mktemp("folders")
    (root / "empty" / "a").mkdir(parents=True)
    (root / "empty" / "b").mkdir(parents=True)
    for label in ("a", "b"):
        folder = root / "corrupt" / label
        folder.mkdir(parents=True)
        for i in range(3):
            image = tf.cast(tf.fill((8, 8, 3), 40 * i), tf.uint8)
            (folder / f"{i}.png").write_bytes(tf.io.encode_png(image).numpy())
    (root / "corrupt" / "b" / "oops.jpg").write_bytes(b"\xff\xd8 truncated")
    rows = "".join(f"text {i},{'pos' if i % 2 else 'neg'}\n" for i in range(20))
    (root / "bad.csv").write_text("text,label\nfine,pos\nonly one column\n" + rows)
    return root


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["train", "cnnn"], ["Unknown model 'cnnn'", "Did you mean 'cnn'"]),
        (
            ["train", "cnn", "--set", "fliters=[8]"],
            ["Unknown configuration key 'fliters'", "filters"],
        ),
        (["train", "cnn", "--set", "filters=abc"], ["Invalid value 'abc' for 'filters'"]),
        # image_size belongs to models of images and clips; elsewhere it would be ignored.
        (["train", "rnn", "--set", "image_size=32"], ["Unknown configuration key 'image_size'"]),
        (["train", "wavenet", "--set", "image_size=32"], ["key 'image_size'"]),
        (["train", "cnn", "--epochs", "many"], ["'many' is not a valid integer"]),
        (
            ["train", "cnn", "--dataset", "shapes/small", "--set", "filters=[0,8]"],
            ["Invalid filters 0"],
        ),
        (
            ["train", "cnn", "--dataset", "shapes/small", "--set", "filters=[-8]"],
            ["Invalid filters -8"],
        ),
        (
            ["train", "cnn", "--dataset", "shapes/small", "--set", "kernel_size=64"],
            ["kernel_size 64", "larger than its 32x32 input"],
        ),
        (["train", "cnn", "--dataset", "./missing/photos"], ["'./missing/photos' does not exist"]),
        (["train", "cnn", "--dataset", "{empty}"], ["holds no images"]),
        (["train", "cnn", "--dataset", "{corrupt}"], ["oops.jpg"]),
        (["train", "cnn", "--dataset", "imagenet_typo"], ["Unknown dataset 'imagenet_typo'"]),
        (["train", "cnn", "--export-dir", "{file}/exports"], ["not writable", "not a directory"]),
        (
            ["train", "cnn", "--export-dir", "/proc/kn-export"],
            ["Export directory '/proc/kn-export' is not writable", "'/proc'"],
        ),
        (["train", "cnn", "--run-dir", "/proc/kn-run"], ["Run directory '/proc/kn-run'"]),
        (["train", "cnn", "--set", "clipnorm=-1"], ["Invalid clipnorm -1"]),
        (["train", "cnn", "--set", "cache=ram"], ["Invalid cache 'ram'", "auto, memory, disk"]),
        (["train", "cnn", "--set", "cache_memory_limit=-1"], ["Invalid cache_memory_limit -1"]),
        (["train", "rnn", "--set", "cache=disk"], ["Unknown configuration key 'cache'"]),
        (["train", "cnn", "--optimizer", "adamx"], ["Invalid optimizer 'adamx'"]),
        (
            ["train", "captioner", "--set", "encoder=mobilenet_v2"],
            ["encoder 'mobilenet_v2' needs its imagenet weights", "encoder_weights=null"],
        ),
        (["train", "cnn", "--data-format", "nchw"], ["'nchw' is not one of"]),
        (["train", "rnn", "--set", "cell=transformer"], ["Invalid cell 'transformer'"]),
        (
            ["train", "rnn-tagger", "--set", "token_level=character"],
            ["Invalid token_level 'character' for tagging"],
        ),
        (["train", "rnn", "--dataset", "{csv}"], ["bad.csv' line 3: it has 1 columns"]),
        (["train", "video", "--set", "head=transformer"], ["Invalid head 'transformer'"]),
        (["train", "video", "--dataset", "{empty}"], ["holds no clips"]),
        (["neighbours", "no/such/run", "good"], ["does not exist"]),
        (["trian"], ["Did you mean 'train'"]),
        (["evaluate", "no/such/run"], ["does not exist"]),
        (["predict", "no/such/export", "x.png"], ["does not exist"]),
        (
            ["--plugin", "no_such_module", "models"],
            ["Plugin module 'no_such_module' was not found"],
        ),
    ],
)
def test_bad_input_gets_one_clear_line_and_exit_2(
    args, fragments, bad_folders, tmp_path, shapes_small
):
    (tmp_path / "file").write_text("not a directory")
    args = [
        a.format(
            empty=bad_folders / "empty",
            corrupt=bad_folders / "corrupt",
            csv=bad_folders / "bad.csv",
            file=tmp_path / "file",
        )
        for a in args
    ]
    if args[0] == "train" and "--run-dir" not in args:
        args += ["--run-dir", str(tmp_path / "run")]
    # No network: a download (of backbone weights) fails at once.
    proc = run_cli(*args, env={"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""})
    assert_one_line_error(proc, *fragments)
    assert not (tmp_path / "run").exists()  # bad input leaves no run behind


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "cnn", "--set", "filters=[0]"], "Invalid filters 0"),
        (["train", "captioner", "--set", "beam_width=0"], "Invalid beam_width 0"),
    ],
)
def test_invalid_values_fail_before_any_data_is_prepared(args, fragment, tmp_path):
    data_dir = tmp_path / "tensorflow_datasets"
    proc = run_cli(
        *args,
        "--run-dir",
        str(tmp_path / "run"),
        env={"TFDS_DATA_DIR": str(data_dir)},
        fresh_process=True,
    )
    assert_one_line_error(proc, fragment)
    assert proc.stdout == ""
    assert not data_dir.exists()  # Nothing was generated or downloaded.
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("model, dataset", [("cnn", "mnist"), ("rnn", "imdb_reviews")])
def test_a_download_without_network_fails_at_once_with_one_line(model, dataset, tmp_path):
    # The download host is unreachable: every connection goes to a closed local port.
    proxy = "http://127.0.0.1:9"
    env = {"TFDS_DATA_DIR": str(tmp_path / "tfds"), "NO_PROXY": ""}
    env |= {name: proxy for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}
    proc = run_cli(
        "train",
        model,
        "--dataset",
        dataset,
        "--run-dir",
        str(tmp_path / "run"),
        env=env,
        fresh_process=True,
    )
    assert_one_line_error(proc, f"Dataset {dataset!r} is not prepared", "cannot reach 127.0.0.1:9")
    assert proc.stdout == ""  # No progress bars either.
    assert not (tmp_path / "run").exists()


NOISY_PLUGIN = textwrap.dedent(
    """
    import os

    os.write(2, b"E0000 00:00:1764372000.123456    4242 cpu_feature_guard.cc:12] oneDNN noise\\n")
    os.write(2, b"W0000 00:00:1764372000.123457    4242 gpu_device.cc:2] more noise\\n")
    os.write(2, b"Improper call to JPEG library in state 201\\n")
    os.write(2, b"a real message\\n")
    """
)


def test_native_log_lines_are_filtered_unless_debug(tmp_path):
    (tmp_path / "noisy.py").write_text(NOISY_PLUGIN)
    proc = run_cli("--plugin", "noisy", "models", "c*", cwd=tmp_path, fresh_process=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "a real message\n"
    assert proc.stdout.startswith("captioner")
    proc = run_cli(
        "--debug", "--plugin", "noisy", "models", "c*", cwd=tmp_path, fresh_process=True
    )
    assert "oneDNN noise" in proc.stderr and "state 201" in proc.stderr


def test_a_closed_pipe_ends_the_command_quietly():
    kerasnotes_bin = os.path.join(os.path.dirname(sys.executable), "kerasnotes")
    # `true` exits without reading, long before kerasnotes writes its first line.
    proc = subprocess.run(
        f"{kerasnotes_bin} datasets | true", shell=True, capture_output=True, text=True
    )
    assert proc.stderr == ""
    proc = subprocess.run(
        f"{kerasnotes_bin} datasets | head -1", shell=True, capture_output=True, text=True
    )
    assert proc.stdout.count("\n") == 1
    assert proc.stderr == ""


def test_predict_evaluate_and_export_commands(trained, tmp_path):
    result, _ = trained
    import tensorflow as tf

    from kerasnotes.data.images import load

    image = next(iter(load("shapes/small").test))[0]
    (tmp_path / "a.png").write_bytes(tf.io.encode_png(image).numpy())
    proc = run_cli("predict", result.export_dir, str(tmp_path / "a.png"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    path, label, score = proc.stdout.strip().split("\t")
    assert path.endswith("a.png") and label in scenes.SHAPES
    assert 0 < float(score) <= 1

    # A JPEG cut in half: libjpeg's own warning is kept out of the one-line error.
    jpeg = tf.io.encode_jpeg(image).numpy()
    (tmp_path / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    assert_one_line_error(
        run_cli("predict", result.export_dir, str(tmp_path / "cut.jpg")), "cut.jpg"
    )
    proc = run_cli(
        "--debug", "predict", result.export_dir, str(tmp_path / "cut.jpg"), fresh_process=True
    )
    assert "JPEG" in proc.stderr.split("Traceback")[0]  # What the filter takes out.

    proc = run_cli("evaluate", result.export_dir, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    assert json.loads(proc.stdout)["accuracy"] == pytest.approx(result.metrics["accuracy"])
    # The validation split: the accuracy Keras logged for the kept epoch's weights.
    from kerasnotes import plots

    proc = run_cli("evaluate", result.run_dir, "--split", "validation", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    history = plots.read_history(os.path.join(result.run_dir, "history.csv"))
    logged = history["val_accuracy"][result.metrics["weights_epoch"] - 1]
    assert json.loads(proc.stdout)["accuracy"] == pytest.approx(logged, abs=1e-6)
    assert_one_line_error(
        run_cli("evaluate", result.run_dir, "--split", "train"), "'train'", "validation"
    )

    proc = run_cli("export", result.run_dir, "--export-dir", str(tmp_path / "exp"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "exp" / "cnn" / "1" / "saved_model.pb").exists()


PLUGIN = textwrap.dedent(
    '''
    import keras
    import kerasnotes

    @kerasnotes.register_model("tiny-mlp", task="image_classification",
                               training_defaults={"epochs": 6, "learning_rate": 0.003})
    def tiny_mlp(input_shape=(32, 32, 3), num_classes=6, data_format="channels_last", units=64):
        """A small MLP from a plugin."""
        inputs = keras.Input(input_shape)
        x = keras.layers.Rescaling(1 / 255)(inputs)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(units, activation="relu")(x)
        return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
    '''
)


def test_plugin_module_trains_from_the_cli(tmp_path):
    (tmp_path / "my_models.py").write_text(PLUGIN)
    proc = run_cli("--plugin", "my_models", "models", cwd=tmp_path, fresh_process=True)
    assert proc.returncode == 0 and "tiny-mlp" in proc.stdout and "A small MLP" in proc.stdout
    proc = run_cli(
        "--plugin",
        "my_models",
        "train",
        "tiny-mlp",
        "--dataset",
        "shapes/small",
        "--set",
        "units=32",
        "--run-dir",
        "run",
        "--export-dir",
        "exports",
        cwd=tmp_path,
        fresh_process=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "exports" / "tiny-mlp" / "1" / "saved_model.pb").exists()
    # The plugin's training defaults and --set reached the run, which measured itself.
    # (No learning bar: this MLP's held-out accuracy ranged 0.24-0.37 between runs.)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["epochs"], config["learning_rate"], config["units"]) == (6, 0.003, 32)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["num_examples"] == 300 and len(metrics["per_class_accuracy"]) == 6


def test_entry_point_plugin_is_listed(tmp_path):
    (tmp_path / "ep_models.py").write_text(PLUGIN.replace("tiny-mlp", "ep-mlp"))
    dist = tmp_path / "ep_models-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-models\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[kerasnotes.models]\nep = ep_models\n")
    proc = run_cli("models", env={"PYTHONPATH": str(tmp_path)}, fresh_process=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ep-mlp" in proc.stdout


def test_readme_cli_reference_is_current():
    from cli.docs import README, readme_with_reference

    text = README.read_text()
    assert readme_with_reference(text) == text, "run `python -m cli.docs --write`"
