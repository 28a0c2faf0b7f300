"""Train, evaluate and export a registered model: what `kerasnotes train` runs.

A run directory holds:

    config.json                  the resolved configuration (feed it back with --config)
    data.json                    what the task learned from the data (class names, shapes)
    examples/                    a few held-out examples, which every export of the run
                                 is checked on (so a run exports after its data is gone)
    backup/                      BackupAndRestore state for --resume (weights, optimizer,
                                 epoch), replaced atomically at the end of every epoch
    checkpoints/best.weights.h5  the weights with the best validation loss, and
    checkpoints/best.json        their epoch; restored before evaluating (restore_best)
    history.csv, logs/           CSV and TensorBoard logs
    model.keras                  the final model
    metrics.json                 held-out metrics, and the epoch of the weights measured
    *.png                        learning curves and the task's plots
    state.json                   "training" or "complete", epochs done, export path

`train` runs in phases: resolve the configuration, check everything that can be
checked without data (every key and value, the model built on stand-in shapes, the
run and export directories), load the data, build, fit, evaluate, export. Bad input
fails in the first two, in seconds, before any data is prepared.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kerasnotes import config as config_lib
from kerasnotes.data import SHIFTED, held_out
from kerasnotes.errors import ConfigError, TrainingError, UsageError, one_line
from kerasnotes.files import (
    disk_full_is_a_clear_error,
    file_digest,
    probe_directory,
    read_json,
    write_json,
)
from kerasnotes.registry import create_model, get_spec
from kerasnotes.tasks import task_for_model

CONFIG_FILE = "config.json"
DATA_FILE = "data.json"
STATE_FILE = "state.json"
METRICS_FILE = "metrics.json"
MODEL_FILE = "model.keras"
MODEL_DIGEST = "model_sha256"  # state.json's record of MODEL_FILE as the run saved it.
HISTORY_FILE = "history.csv"
EXAMPLES_DIR = "examples"
NUM_EXAMPLES = 4
BEST_WEIGHTS = os.path.join("checkpoints", "best.weights.h5")
BEST_RECORD = os.path.join("checkpoints", "best.json")


@dataclasses.dataclass
class TrainResult:
    run_dir: str
    metrics: dict
    export_dir: str | None
    epochs_trained: int
    train_seconds: float


def make_strategy(name: str):
    """The `tf.distribute` strategy named in the configuration."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    raise ConfigError(
        f"Invalid strategy {name!r}: expected one of {', '.join(config_lib.STRATEGIES)}."
    )


def learning_rate_schedule(config: Mapping[str, Any], steps_per_epoch: int):
    """The configured learning rate over the run's optimizer steps.

    `lr_schedule`: `cosine` decays to 1% of `learning_rate` by the last step;
    `warmup_cosine` first rises linearly from 0 over `warmup_epochs`; `constant`;
    `step` multiplies by `lr_decay_rate` every `lr_decay_epochs` epochs (default: a
    third of the epochs) and `exponential` does so smoothly.
    """
    import keras

    schedules = keras.optimizers.schedules
    rate, name = config["learning_rate"], config["lr_schedule"]
    total = max(1, config["epochs"] * steps_per_epoch)
    if name == "constant":
        return rate
    if name == "cosine":
        return schedules.CosineDecay(rate, decay_steps=total, alpha=0.01)
    if name == "warmup_cosine":
        warmup = min(total - 1, max(1, round(config["warmup_epochs"] * steps_per_epoch)))
        return schedules.CosineDecay(
            0.0,
            decay_steps=max(1, total - warmup),
            alpha=0.01,
            warmup_target=rate,
            warmup_steps=warmup,
        )
    decay_epochs = config["lr_decay_epochs"] or max(1, config["epochs"] // 3)
    return schedules.ExponentialDecay(
        rate,
        decay_steps=max(1, decay_epochs * steps_per_epoch),
        decay_rate=config["lr_decay_rate"],
        staircase=name == "step",
    )


def make_optimizer(config: Mapping[str, Any], steps_per_epoch: int):
    """The configured optimizer: its schedule, momentum and gradient clipping."""
    import keras

    options = {"learning_rate": learning_rate_schedule(config, steps_per_epoch)}
    for key in ("momentum", "clipnorm", "clipvalue"):
        if config[key] is not None:
            options[key] = config[key]
    if config["nesterov"]:
        options["nesterov"] = True
    try:
        optimizer_class = type(keras.optimizers.get(config["optimizer"]))
    except (ValueError, TypeError):
        raise ConfigError(
            f"Invalid optimizer {config['optimizer']!r}: expected a Keras optimizer name "
            "such as adam, adamw, sgd or rmsprop."
        ) from None
    return optimizer_class(**options)


def _default_run_dir(model: str) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join("runs", f"{model}-{stamp}")
    run_dir, n = base, 1
    while os.path.exists(run_dir):
        n += 1
        run_dir = f"{base}-{n}"
    return run_dir


def _resolve(model, task, config_file, overrides, flags) -> dict:
    return config_lib.resolve_config(
        get_spec(model),
        derived_keys=task.derived_keys,
        task_settings=task.settings,
        config_file=config_file,
        overrides=overrides,
        flags=flags,
    )


def _resume_config(run_dir: str, model: str, config_file, overrides, flags) -> dict:
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise UsageError(
            f"Cannot resume {run_dir!r}: no {CONFIG_FILE} there. Give the --run-dir of an "
            "interrupted run."
        )
    saved = read_json(path)
    if saved.get("model") != model:
        raise UsageError(f"Run {run_dir!r} trained model {saved.get('model')!r}, not {model!r}.")
    task = task_for_model(model)
    # Keys added since the run was written take their defaults.
    config = {**_resolve(model, task, None, (), None), **saved}
    config.pop("model")
    # Only the number of epochs may change when resuming (to train further).
    requested = _resolve(model, task, config_file, overrides, flags)
    given = set(dict(config_lib.parse_set(s) for s in overrides)) | {
        k for k, v in (flags or {}).items() if v is not None
    }
    if config_file is not None:
        given |= set(config_lib.read_config_file(config_file)) - {"model"}
    changed = sorted(k for k in given if k != "epochs" and requested[k] != config[k])
    if changed:
        raise UsageError(
            f"Cannot change {', '.join(changed)} when resuming {run_dir!r}; only --epochs "
            "may change. Start a new run instead."
        )
    if "epochs" in given:
        config["epochs"] = requested["epochs"]
    state_path = os.path.join(run_dir, STATE_FILE)
    state = read_json(state_path) if os.path.exists(state_path) else {}
    if state.get("status") == "complete" and state.get("epochs", 0) >= config["epochs"]:
        raise UsageError(
            f"Run {run_dir!r} already finished its {state['epochs']} epochs; pass a "
            "larger --epochs to train it further."
        )
    return config


def _build_network(model: str, task, config: Mapping[str, Any], info: dict):
    """The builder's model for data described by `info`; builder errors become
    `ConfigError`s that name the model."""
    _, hyperparameters = config_lib.split(config, task.settings)
    try:
        return create_model(model, **hyperparameters, **task.builder_arguments(info, config))
    except ConfigError:
        raise
    except ValueError as e:  # Builders validate their hyperparameters with ValueError.
        raise ConfigError(f"Invalid configuration for {model!r}: {e}") from None


def check(model: str, task, config: Mapping[str, Any], run_dir: str, export_dir) -> None:
    """Every check that needs no data: fails in seconds, before anything is prepared.

    The model is built once on the task's stand-in shapes (`task.example_info`),
    which validates every hyperparameter of any builder; the optimizer is made; the
    run and export directories are probed by writing in them. Checks that need the
    data's real shapes run again when the model is built on them.
    """
    import keras

    probe_directory(run_dir, "Run directory", "choose another --run-dir")
    if export_dir is not None:
        from kerasnotes.exports import check_writable

        check_writable(export_dir)
    make_optimizer(config, steps_per_epoch=1)
    with warnings.catch_warnings():  # About the stand-in shapes; the real build warns.
        warnings.simplefilter("ignore")
        _build_network(model, task, config, task.example_info(config))
    keras.backend.clear_session()  # The real model gets the names it always had.


def _atomic_save(save, path: str) -> None:
    """`save(partial)` then `partial` renamed over `path` (a sibling with the same
    suffix, which Keras reads as the format), so a kill or a full disk while writing
    leaves the previous file whole."""
    name = os.path.basename(path)
    partial = os.path.join(os.path.dirname(path), f"partial.{name.split('.', 1)[-1]}")
    try:
        save(partial)
        os.replace(partial, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)


def _atomic_save_weights(model, path: str) -> None:
    _atomic_save(lambda partial: model.save_weights(partial, overwrite=True), path)


def _callbacks(run_dir: str, config: Mapping[str, Any], resume: bool) -> list:
    import keras

    class StopOnNaN(keras.callbacks.Callback):
        """Stop at the first non-finite loss, before the epoch's backup is written."""

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                raise TrainingError(
                    f"The loss became {float(loss)} at epoch {self.epoch + 1}, batch "
                    f"{batch + 1}. Try a lower --learning-rate or check the data; the run "
                    "can be resumed from its last completed epoch."
                )

    class KeepBest(keras.callbacks.Callback):
        """The weights of the epoch with the lowest validation loss so far, across
        resumed runs, with that epoch and loss in `best.json`."""

        def on_train_begin(self, logs=None):
            record = os.path.join(run_dir, BEST_RECORD)
            self.best = read_json(record) if os.path.exists(record) else None

        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("val_loss")
            if loss is None or not math.isfinite(loss):
                return
            if self.best is None or loss < self.best["val_loss"]:
                _atomic_save_weights(self.model, os.path.join(run_dir, BEST_WEIGHTS))
                self.best = {"epoch": epoch + 1, "val_loss": float(loss)}
                write_json(os.path.join(run_dir, BEST_RECORD), self.best)

    class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
        """`BackupAndRestore` whose saves replace the last backup atomically: a kill or
        a full disk while saving leaves the last completed epoch's backup whole."""

        def _save_model(self):
            os.makedirs(self.backup_dir, exist_ok=True)
            _atomic_save_weights(self.model, self._weights_path)
            write_json(
                self._training_metadata_path,
                {"epoch": self._current_epoch, "batch": self._last_batch_seen},
            )

    class StopAfter(keras.callbacks.Callback):
        """End training at the first batch past `time_limit` seconds (the epoch is
        validated and kept as usual)."""

        def on_train_begin(self, logs=None):
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if time.perf_counter() - self.started >= config["time_limit"]:
                self.model.stop_training = True

    callbacks = [
        StopOnNaN(),
        keras.callbacks.CSVLogger(os.path.join(run_dir, HISTORY_FILE), append=resume),
        keras.callbacks.TensorBoard(os.path.join(run_dir, "logs"), profile_batch=0),
        KeepBest(),
    ]
    if config["time_limit"] is not None:
        callbacks.append(StopAfter())
    if config["early_stopping"]:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=config["early_stopping"])
        )
    # The backup commits an epoch, so it runs last: a kill before it leaves the logs
    # one epoch ahead (that epoch is trained again and its log row replaced), never behind.
    callbacks.append(
        AtomicBackupAndRestore(os.path.join(run_dir, "backup"), delete_checkpoint=False)
    )
    return callbacks


def _restore_best(net, run_dir: str, last_epoch: int) -> int:
    """Load the best epoch's weights if they are not the last's; the epoch now loaded."""
    record = os.path.join(run_dir, BEST_RECORD)
    if not os.path.exists(record):
        return last_epoch
    best = read_json(record)["epoch"]
    if best != last_epoch:
        net.load_weights(os.path.join(run_dir, BEST_WEIGHTS))
    return best


def train(
    model: str,
    *,
    config_file: str | None = None,
    overrides: Iterable[str] = (),
    flags: Mapping[str, Any] | None = None,
    run_dir: str | None = None,
    resume: bool = False,
    export_dir: str | None = "saved_models",
    echo: Callable[[str], None] = print,
) -> TrainResult:
    """Train `model`, evaluate it on the held-out split, write plots and export it.

    Args:
        model: a registered model name.
        config_file: a YAML/JSON file of configuration keys.
        overrides: `key=value` strings (`--set`).
        flags: explicit settings; `None` values are ignored.
        run_dir: the run directory (default `runs/<model>-<time>`).
        resume: continue the interrupted run in `run_dir` from its last epoch.
        export_dir: the export root, or `None` for no export.
        echo: where progress lines go.
    """
    # Resolve and check: no data is touched until every check has passed.
    task = task_for_model(model)
    config, run_dir = _resolve_run(model, task, config_file, overrides, flags, run_dir, resume)
    check(model, task, config, run_dir, export_dir)
    run = _load_and_build(model, task, config)

    advice = (
        f"Every completed epoch is kept (backups in {os.path.join(run_dir, 'backup')} are "
        f"replaced whole): free some space, then continue with `kerasnotes train {model} "
        f"--run-dir {run_dir} --resume`."
    )
    from kerasnotes.data.streams import read_failures_are_clear_errors

    with (
        disk_full_is_a_clear_error(f"writing the run {run_dir!r}", advice),
        _failures_recorded(run_dir),
        read_failures_are_clear_errors(),
    ):
        _start_run_directory(model, task, config, run, run_dir, resume, echo)
        history, train_seconds = _fit(task, run, config, run_dir, resume)
        last_epoch = history.epoch[-1] + 1 if history.epoch else config["epochs"]
        metrics = _evaluate(task, config, run, run_dir, last_epoch, echo)
        metrics["train_seconds"] = round(train_seconds, 2)
        write_json(os.path.join(run_dir, METRICS_FILE), metrics)
        _plots(run.net, task, run.data, run.info, config, run_dir)

    exported = None
    if export_dir is not None:
        from kerasnotes.runs import export_model

        exported = export_model(
            run.net,
            task,
            model=model,
            config=config,
            info=run.info,
            metrics=metrics,
            run_dir=run_dir,
            export_root=export_dir,
            echo=echo,
        )
        echo(f"Exported: {exported}")
    write_json(
        os.path.join(run_dir, STATE_FILE),
        {
            "status": "complete",
            "epochs": config["epochs"],
            "epochs_trained": last_epoch,
            MODEL_DIGEST: file_digest(os.path.join(run_dir, MODEL_FILE)),
            "export": exported,
        },
    )
    return TrainResult(run_dir, metrics, exported, len(history.epoch), train_seconds)


@dataclasses.dataclass
class _Run:
    """What the load and build phases give the fit, evaluate and export phases."""

    data: Any
    info: dict
    strategy: Any
    net: Any  # The model that is saved, evaluated and exported.
    trained: Any  # What `fit` trains (`net`, or a part of it sharing its weights).
    train_batches: Any
    validation_batches: Any
    steps_per_epoch: int | None


def _resolve_run(model, task, config_file, overrides, flags, run_dir, resume):
    """The resolved configuration and the run directory (a new one unless resuming)."""
    if resume:
        if not run_dir:
            raise UsageError("--resume needs the --run-dir of the run to continue.")
        return _resume_config(run_dir, model, config_file, overrides, flags), run_dir
    config = _resolve(model, task, config_file, overrides, flags)
    run_dir = run_dir or _default_run_dir(model)
    if os.path.exists(run_dir) and os.listdir(run_dir):
        raise UsageError(
            f"Run directory {run_dir!r} already exists and is not empty; pass --resume "
            "to continue it, or choose another --run-dir."
        )
    return config, run_dir


def _load_and_build(model: str, task, config) -> _Run:
    """Load the data, batch it and build the compiled model on its shapes (the checks
    that need the real shapes run here)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config["seed"])
    data = task.load_data(config)
    # Again: preparing a dataset (tfds, on a first run) draws from the global random
    # generators, and the model's initial weights must not depend on whether it did.
    keras.utils.set_random_seed(config["seed"])
    info = task.data_info(data)
    strategy = make_strategy(config["strategy"])
    num_train = data.num_examples.get("train", 0)
    train_batches = task.batches(data.train, config, info, training=True, num_examples=num_train)
    validation_batches = task.batches(data.validation, config, info, training=False)
    # One iterator for the whole run, `steps_per_epoch` batches an epoch. Given the
    # data's own end instead, Keras starts a new iterator every epoch; with VQA's
    # pipeline about every other epoch then waited about 11 s before its first step,
    # in the C++ code that released the spent one.
    steps_per_epoch = int(train_batches.cardinality())
    if steps_per_epoch > 0:
        train_batches = train_batches.repeat()
    elif steps_per_epoch == tf.data.INFINITE_CARDINALITY and num_train:
        # Batches that never end (bucketed by length): an epoch is the split's worth.
        steps_per_epoch = math.ceil(num_train / config["batch_size"])
    else:  # Of unknown length: each epoch is one pass, however long.
        steps_per_epoch = None
    optimizer_steps = steps_per_epoch or math.ceil(max(1, num_train) / config["batch_size"])
    with strategy.scope():
        net = _build_network(model, task, config, info)
        # What `fit` trains: the model, or the part of it that the batches feed (a text
        # model's network on token ids), sharing its weights.
        trained = task.training_model(net, config) if hasattr(task, "training_model") else net
        task.compile(trained, make_optimizer(config, optimizer_steps))
    return _Run(
        data,
        info,
        strategy,
        net,
        trained,
        train_batches,
        validation_batches,
        steps_per_epoch,
    )


@contextlib.contextmanager
def _failures_recorded(run_dir: str):
    """A run that stops on an error says so in its state file (`failed` or
    `interrupted`, with the error); only a killed process leaves `training` behind.
    Its backups stay: `--resume` continues it either way."""
    try:
        yield
    except BaseException as e:
        path = os.path.join(run_dir, STATE_FILE)
        status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        with contextlib.suppress(OSError, ValueError):  # A full disk, a damaged file.
            if os.path.isfile(path):
                error = f"{type(e).__name__}: {one_line(str(e))}"
                write_json(path, {**read_json(path), "status": status, "error": error})
        raise


def _start_run_directory(model, task, config, run: _Run, run_dir, resume, echo) -> None:
    """Inputs are valid: only now is the run directory written."""
    os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
    if not resume:
        write_json(os.path.join(run_dir, CONFIG_FILE), {"model": model, **config})
    write_json(os.path.join(run_dir, DATA_FILE), run.info)
    write_json(os.path.join(run_dir, STATE_FILE), {"status": "training"})
    examples_dir = os.path.join(run_dir, EXAMPLES_DIR)
    if not os.path.exists(examples_dir):
        run.data.test.take(NUM_EXAMPLES).save(examples_dir)
    echo(f"Run directory: {run_dir}")
    echo(f"Data: {run.info['source']} ({run.data.num_examples})")
    strategy = run.strategy
    echo(f"Strategy: {type(strategy).__name__}, {strategy.num_replicas_in_sync} replica(s)")
    description = task.describe(run.net) if hasattr(task, "describe") else None
    if description:  # What the task says about the model (a receptive field).
        echo(description)


def _fit(task, run: _Run, config, run_dir, resume):
    """Train with the run's callbacks: (Keras history, seconds of training).

    A model that learns by counting (no trainable weights, an `adapt` method, as
    Keras's preprocessing layers) adapts to one pass over the training batches instead.
    """
    import keras

    started = time.perf_counter()
    if learns_by_counting(run.trained):
        run.trained.adapt(run.train_batches, steps=run.steps_per_epoch)
        history = keras.callbacks.History()
        history.epoch = [0]  # The one pass is its one epoch.
        return history, time.perf_counter() - started
    callbacks = _callbacks(run_dir, config, resume)
    if hasattr(task, "callbacks"):  # The task's own, such as resetting carried state.
        callbacks[-1:-1] = task.callbacks(run.trained, config)
    history = run.trained.fit(
        run.train_batches,
        validation_data=run.validation_batches,
        epochs=config["epochs"],
        steps_per_epoch=run.steps_per_epoch,
        callbacks=callbacks,
        shuffle=False,  # The pipeline shuffles.
        verbose=1 if sys.stdout.isatty() else 2,
    )
    return history, time.perf_counter() - started


def learns_by_counting(model) -> bool:
    """Whether `model` learns by counting (an `adapt` method and no trainable
    weights, as Keras's preprocessing layers), not by gradient descent."""
    return hasattr(model, "adapt") and not model.trainable_weights


def _evaluate(task, config, run: _Run, run_dir, last_epoch, echo) -> dict:
    """Restore the best weights (`restore_best`), save the model, and measure it on the
    held-out split."""
    weights_epoch = last_epoch
    if config["restore_best"]:
        weights_epoch = _restore_best(run.trained, run_dir, last_epoch)
        if weights_epoch != last_epoch:
            echo(f"Restored the weights of epoch {weights_epoch} (lowest validation loss).")
    model_path = os.path.join(run_dir, MODEL_FILE)
    _atomic_save(run.net.save, model_path)
    # What `runs` checks before it loads the model: this file, whole and unreplaced.
    write_json(
        os.path.join(run_dir, STATE_FILE),
        {"status": "trained", "epochs_trained": last_epoch, MODEL_DIGEST: file_digest(model_path)},
    )
    echo("Evaluating on the held-out split...")
    predictor = task.model_predictor(run.net, run.info, config)
    metrics = task.evaluate(predictor, run.data, run.info, config)
    if getattr(run.data, SHIFTED, None) is not None:
        echo(f"Evaluating on the {SHIFTED} split (outside the training ranges)...")
        shifted = held_out(run.data, SHIFTED)
        metrics[SHIFTED] = task.evaluate(predictor, shifted, run.info, config)
    metrics["epochs"] = last_epoch
    metrics["weights_epoch"] = weights_epoch
    return metrics


def _plots(net, task, data, info, config, run_dir) -> list[str]:
    from kerasnotes import plots

    paths = []
    history_path = os.path.join(run_dir, HISTORY_FILE)
    if os.path.exists(history_path):
        paths.append(
            plots.learning_curves(
                plots.read_history(history_path), os.path.join(run_dir, "learning_curves.png")
            )
        )
    paths += task.plots(net, data, info, config, run_dir)
    return paths
