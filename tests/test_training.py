import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import kerasnotes
from kerasnotes import plots
from kerasnotes.errors import TrainingError, UsageError
from tests.conftest import QUICK, run_cli, train_mirrored

CHANCE = 1 / 6
LEARNED = 0.6  # well above chance on six balanced classes


def test_train_learns_and_writes_the_run(trained):
    result, export_root = trained
    assert result.metrics["accuracy"] > LEARNED, result.metrics
    files = set(os.listdir(result.run_dir))
    for name in [
        "config.json",
        "data.json",
        "metrics.json",
        "model.keras",
        "history.csv",
        "learning_curves.png",
        "filters_and_feature_maps.png",
        "state.json",
        "backup",
        "checkpoints",
        "logs",
    ]:
        assert name in files, name
    with open(os.path.join(result.run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert {"accuracy", "loss"} <= set(metrics)
    with open(os.path.join(result.run_dir, "config.json")) as f:
        config = json.load(f)
    assert config["model"] == "cnn" and config["filters"] == [16, 32, 64]
    assert result.export_dir == os.path.join(export_root, "cnn", "1")


def test_channels_first_trains_on_this_cpu(tmp_path):
    result = kerasnotes.train(
        "cnn",
        overrides=QUICK,
        flags={"data_format": "channels_first"},
        run_dir=str(tmp_path / "run"),
        export_dir=None,
        echo=lambda line: None,
    )
    assert result.metrics["accuracy"] > LEARNED, result.metrics


def test_same_seed_repeats_a_run(tmp_path):
    settings = ["dataset=shapes/small", "epochs=1", "filters=[8]", "dense_units=0", "seed=7"]
    losses = [
        kerasnotes.train(
            "cnn",
            overrides=settings,
            run_dir=str(tmp_path / f"r{i}"),
            export_dir=None,
            echo=lambda line: None,
        ).metrics["loss"]
        for i in range(2)
    ]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_each_epoch_is_one_pass_over_the_training_data(trained):
    # Training repeats the data under one iterator, `steps_per_epoch` batches an epoch.
    import keras

    result, _ = trained
    with open(os.path.join(result.run_dir, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(result.run_dir, "data.json")) as f:
        examples = json.load(f)["num_examples"]["train"]
    model = keras.saving.load_model(os.path.join(result.run_dir, "model.keras"))
    batches = -(-examples // config["batch_size"])
    assert int(model.optimizer.iterations) == config["epochs"] * batches


def test_existing_run_dir_is_not_overwritten(trained):
    result, _ = trained
    before = {
        n: os.path.getmtime(os.path.join(result.run_dir, n)) for n in os.listdir(result.run_dir)
    }
    with pytest.raises(UsageError, match="already exists"):
        kerasnotes.train("cnn", overrides=QUICK, run_dir=result.run_dir, export_dir=None)
    after = {
        n: os.path.getmtime(os.path.join(result.run_dir, n)) for n in os.listdir(result.run_dir)
    }
    assert before == after


def test_resume_rejects_changed_settings(trained):
    result, _ = trained
    with pytest.raises(UsageError, match="Cannot change filters"):
        kerasnotes.train("cnn", overrides=["filters=[8]"], run_dir=result.run_dir, resume=True)
    with pytest.raises(UsageError, match="already finished its 6 epochs"):
        kerasnotes.train("cnn", run_dir=result.run_dir, resume=True)


NAN_PLUGIN = textwrap.dedent(
    '''
    import keras
    import kerasnotes

    @kerasnotes.register_model("nan-net", task="image_classification")
    def nan_net(input_shape=(32, 32, 3), num_classes=6, data_format="channels_last"):
        """Diverges at once: a dense layer with an infinite bias."""
        inputs = keras.Input(input_shape)
        x = keras.layers.Flatten()(inputs)
        x = keras.layers.Dense(num_classes, bias_initializer=keras.initializers.Constant(float("inf")))(x)
        return keras.Model(inputs, keras.layers.Softmax()(x))
    '''
)


def test_nan_loss_stops_with_exit_1(tmp_path):
    (tmp_path / "nan_plugin.py").write_text(NAN_PLUGIN)
    proc = run_cli(
        "--plugin",
        "nan_plugin",
        "train",
        "nan-net",
        "--dataset",
        "shapes/small",
        "--run-dir",
        "run",
        "--no-export",
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Error: The loss became nan at epoch 1, batch 1" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "backup").exists()  # no NaN weights were backed up


def _epochs_in(history_csv):
    with open(history_csv) as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def test_resume_after_kill_9_continues_from_the_last_epoch(tmp_path):
    args = [
        "train",
        "cnn",
        "--dataset",
        "shapes/small",
        "--epochs",
        "5",
        "--run-dir",
        "run",
        "--no-export",
        "--set",
        "filters=[16,32]",
    ]
    kerasnotes_bin = os.path.join(os.path.dirname(sys.executable), "kerasnotes")
    proc = subprocess.Popen(
        [kerasnotes_bin, *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    metadata = tmp_path / "run" / "backup" / "training_metadata.json"
    deadline = time.time() + 300
    done = 0
    while time.time() < deadline and proc.poll() is None:
        if metadata.exists():
            try:
                done = json.loads(metadata.read_text())["epoch"]
            except ValueError:
                done = 0
            if done >= 2:
                break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= done < 5, f"killed after {done} epochs"
    assert not (tmp_path / "run" / "model.keras").exists()

    resumed = run_cli(*args, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    trained_epochs = [line for line in resumed.stdout.splitlines() if line.startswith("Epoch ")]
    assert trained_epochs[0].startswith(f"Epoch {done + 1}/5"), trained_epochs
    assert trained_epochs[-1].startswith("Epoch 5/5")
    epochs = _epochs_in(tmp_path / "run" / "history.csv")
    assert sorted(set(epochs)) == [0, 1, 2, 3, 4]
    assert plots.read_history(tmp_path / "run" / "history.csv")["epoch"] == [0, 1, 2, 3, 4]
    import keras

    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    steps_per_epoch = 1200 // 64 + 1
    assert int(model.optimizer.iterations) == 5 * steps_per_epoch  # optimizer state restored


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    assert train_mirrored("cnn", QUICK, tmp_path / "run", "accuracy") > LEARNED


def test_training_error_is_a_runtime_error():
    assert issubclass(TrainingError, RuntimeError)
