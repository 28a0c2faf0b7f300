import contextlib
import csv
import json
import os
import re
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


def test_same_seed_repeats_a_run(tmp_path, monkeypatch):
    import random

    import numpy as np

    from kerasnotes.tasks.image_classification import ImageClassification

    settings = ["dataset=shapes/small", "epochs=1", "filters=[8]", "dense_units=0", "seed=7"]

    def loss(name):
        return kerasnotes.train(
            "cnn",
            overrides=settings,
            run_dir=str(tmp_path / name),
            export_dir=None,
            echo=lambda line: None,
        ).metrics["loss"]

    first = loss("first")
    assert loss("again") == pytest.approx(first, rel=1e-5)
    # Loading that draws from the global generators, as tfds does when it prepares a
    # dataset (a first run on a machine): the same run all the same.
    load = ImageClassification.load_data

    def drawing_load(self, config):
        random.random(), np.random.random()
        return load(self, config)

    monkeypatch.setattr(ImageClassification, "load_data", drawing_load)
    assert loss("prepared") == pytest.approx(first, rel=1e-5)


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
        fresh_process=True,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Error: The loss became nan at epoch 1, batch 1" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "backup").exists()  # no NaN weights were backed up
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["status"] == "failed" and "loss became nan" in state["error"], state


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

    resumed = run_cli(*args, "--resume", cwd=tmp_path, fresh_process=True)
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


def test_the_trained_run_measures_its_best_epoch(trained):
    # restore_best (the default): the figures come from the epoch of lowest val_loss.
    result, _ = trained
    history = plots.read_history(os.path.join(result.run_dir, "history.csv"))
    best_epoch = min(range(len(history["val_loss"])), key=history["val_loss"].__getitem__) + 1
    with open(os.path.join(result.run_dir, "checkpoints", "best.json")) as f:
        assert json.load(f)["epoch"] == best_epoch
    assert result.metrics["weights_epoch"] == best_epoch
    assert result.metrics["epochs"] == 6


def _fit_against_the_validation(run_dir, overrides, epochs=8):
    """Fit a tiny model whose validation labels are the opposite of its training labels,
    so the validation loss is lowest after the first epoch and rises after it."""
    import keras
    import numpy as np

    from kerasnotes import config as config_lib
    from kerasnotes import training

    config = config_lib.resolve_config(kerasnotes.get_spec("cnn"), overrides=overrides)
    os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    snapshots = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: snapshots.append(model.get_weights())
    )
    history = model.fit(
        x,
        y,
        validation_data=(x, 1 - y),
        epochs=epochs,
        verbose=0,
        callbacks=[record, *training._callbacks(str(run_dir), config, resume=False)],
    )
    return model, history, snapshots


def test_best_weights_are_restored_and_early_stopping_stops(tmp_path):
    import numpy as np

    from kerasnotes import training

    model, history, snapshots = _fit_against_the_validation(tmp_path / "run", ["early_stopping=2"])
    assert len(history.epoch) == 3  # epoch 1 is best; 2 and 3 show no improvement
    with open(tmp_path / "run" / "checkpoints" / "best.json") as f:
        assert json.load(f)["epoch"] == 1
    assert training._restore_best(model, str(tmp_path / "run"), last_epoch=3) == 1
    for restored, best in zip(model.get_weights(), snapshots[0], strict=True):
        np.testing.assert_array_equal(restored, best)


def test_a_resumed_run_keeps_the_best_of_all_its_epochs(tmp_path):
    # The record of the best epoch outlives the fit() that wrote it: a resumed run's
    # epochs replace the best weights only when they are better.
    record = tmp_path / "run" / "checkpoints" / "best.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"epoch": 1, "val_loss": 0.0}))  # Before the resume.
    _fit_against_the_validation(tmp_path / "run", [], epochs=2)
    assert json.loads(record.read_text()) == {"epoch": 1, "val_loss": 0.0}
    assert not (record.parent / "best.weights.h5").exists()


@pytest.mark.parametrize(
    "overrides, at_step",
    [
        (["lr_schedule=constant"], {0: 0.01, 99: 0.01}),
        (["lr_schedule=cosine"], {0: 0.01, 100: 0.0001}),
        (["lr_schedule=warmup_cosine", "warmup_epochs=2"], {0: 0.0, 20: 0.01, 100: 0.0001}),
        (["lr_schedule=step", "lr_decay_epochs=3"], {0: 0.01, 29: 0.01, 30: 0.001, 60: 0.0001}),
        (
            ["lr_schedule=exponential", "lr_decay_epochs=2", "lr_decay_rate=0.5"],
            {10: 0.01 * 0.5**0.5, 20: 0.005},
        ),
    ],
)
def test_learning_rate_schedules(overrides, at_step):
    from kerasnotes import config as config_lib
    from kerasnotes.training import learning_rate_schedule

    config = config_lib.resolve_config(
        kerasnotes.get_spec("cnn"), overrides=["epochs=10", "learning_rate=0.01", *overrides]
    )
    schedule = learning_rate_schedule(config, steps_per_epoch=10)
    for step, rate in at_step.items():
        got = float(schedule(step)) if callable(schedule) else schedule
        assert got == pytest.approx(rate, rel=1e-4, abs=1e-7), (step, got)


def test_optimizer_momentum_nesterov_and_clipping():
    from kerasnotes import config as config_lib
    from kerasnotes.training import make_optimizer

    config = config_lib.resolve_config(
        kerasnotes.get_spec("cnn"),
        overrides=["momentum=0.9", "nesterov=true", "clipnorm=1.0"],
        flags={"optimizer": "sgd"},
    )
    optimizer = make_optimizer(config, steps_per_epoch=10)
    assert (optimizer.momentum, optimizer.nesterov) == (0.9, True)
    assert (optimizer.clipnorm, optimizer.clipvalue) == (1.0, None)
    adam = make_optimizer(
        config_lib.resolve_config(kerasnotes.get_spec("cnn"), overrides=["clipvalue=2"]), 10
    )
    assert type(adam).__name__ == "Adam" and adam.clipvalue == 2.0


TINY = ["dataset=shapes/small", "epochs=3", "filters=[8]", "dense_units=0"]


def test_a_full_disk_during_a_backup_leaves_the_last_one_whole(tmp_path, monkeypatch):
    # Fault injection: the second epoch's backup fails half-written, as on a full disk.
    import errno

    import keras

    save_weights = keras.Model.save_weights
    backups = []

    def fill_the_disk(self, filepath, *args, **kwargs):
        if os.path.basename(os.path.dirname(filepath)) == "backup":
            backups.append(filepath)
            if len(backups) == 2:
                with open(filepath, "wb") as f:
                    f.write(b"\x89HDF half a file")
                raise OSError(errno.ENOSPC, "No space left on device")
        return save_weights(self, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save_weights", fill_the_disk)
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match="No space left on the device") as raised:
        kerasnotes.train("cnn", overrides=TINY, run_dir=str(run), export_dir=None, echo=print)
    assert "--resume" in str(raised.value)
    assert json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"] == 1
    assert sorted(os.listdir(run / "backup")) == ["latest.weights.h5", "training_metadata.json"]

    monkeypatch.setattr(keras.Model, "save_weights", save_weights)  # Space again.
    result = kerasnotes.train(
        "cnn", overrides=TINY, run_dir=str(run), resume=True, export_dir=None, echo=print
    )
    assert result.epochs_trained == 2 and result.metrics["epochs"] == 3


def _mount_tmpfs(path, size):
    path.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return proc.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_disk_that_fills_during_training_stops_clearly_and_resumes(tmp_path, shapes_small):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "8m"):
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        args = ["train", "cnn", "--run-dir", str(disk / "run"), "--no-export"]
        args += [f"--set={s}" for s in [*TINY, "epochs=4"]]
        kerasnotes_bin = os.path.join(os.path.dirname(sys.executable), "kerasnotes")
        proc = subprocess.Popen(
            [kerasnotes_bin, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        metadata = disk / "run" / "backup" / "training_metadata.json"
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and not metadata.exists():
            time.sleep(0.01)
        # The first epoch is backed up: fill the disk to the last byte.
        filler = disk / "filler"
        with open(filler, "wb", buffering=0) as f:
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 4096)
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 1, stderr[-2000:]
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "No space left on the device" in lines[0], lines
        assert "--resume" in lines[0]
        epoch = json.loads(metadata.read_text())["epoch"]
        assert 1 <= epoch < 4

        filler.unlink()  # Space again: the run continues from its last backup.
        resumed = run_cli(*args, "--resume", fresh_process=True)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        epochs = [line for line in resumed.stdout.splitlines() if line.startswith("Epoch ")]
        assert epochs[0].startswith(f"Epoch {epoch + 1}/4") and epochs[-1].startswith("Epoch 4/4")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.parametrize(
    "model, overrides, flags, message",
    [
        ("cnn", ["lr_schedule=linear"], {}, "Invalid lr_schedule 'linear'"),
        ("cnn", ["momentum=0.9"], {}, "momentum applies to sgd and rmsprop"),
        ("cnn", ["momentum=1.5"], {"optimizer": "sgd"}, "Invalid momentum 1.5"),
        ("cnn", ["nesterov=true"], {"optimizer": "adam"}, "Nesterov momentum applies to sgd"),
        ("cnn", ["clipnorm=1", "clipvalue=1"], {}, "not both"),
        ("cnn", ["clipvalue=abc"], {}, "Invalid clipvalue 'abc'"),
        ("cnn", ["early_stopping=-2"], {}, "Invalid early_stopping -2"),
        ("cnn", ["restore_best=maybe"], {}, "Invalid value 'maybe' for 'restore_best'"),
        ("cnn", ["lr_decay_rate=0"], {}, "Invalid lr_decay_rate 0"),
        ("cnn", ["lr_decay_epochs=0"], {}, "Invalid lr_decay_epochs 0"),
        ("cnn", ["warmup_epochs=-1"], {}, "Invalid warmup_epochs -1"),
        ("cnn", ["kernel_size=33"], {}, "larger than its 32x32 input"),
        ("vqa", ["fusion=sum"], {}, "Invalid fusion 'sum'"),
    ],
)
def test_invalid_settings_fail_before_the_run_starts(model, overrides, flags, message, tmp_path):
    with pytest.raises(UsageError, match=re.escape(message)):
        kerasnotes.train(model, overrides=overrides, flags=flags, run_dir=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_export_disk_is_found_before_training(tmp_path):
    from kerasnotes.exports import check_writable

    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "1m"):
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        with open(disk / "filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 4096)
        with pytest.raises(UsageError, match="No space left on device"):
            check_writable(str(disk / "exports"))
        assert os.listdir(disk) == ["filler"]  # The probe left nothing behind.
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
