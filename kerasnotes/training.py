"""Train, evaluate and export a registered model: what `kerasnotes train` runs.

A run directory holds:

    config.json                  the resolved configuration (feed it back with --config)
    data.json                    what the task learned from the data (class names, shapes)
    backup/                      BackupAndRestore state for --resume (weights, optimizer,
                                 epoch), written at the end of every epoch
    checkpoints/best.weights.h5  the weights with the best validation loss
    history.csv, logs/           CSV and TensorBoard logs
    model.keras                  the final model
    metrics.json                 held-out metrics
    *.png                        learning curves and the task's plots
    state.json                   "training" or "complete", epochs done, export path
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kerasnotes import config as config_lib
from kerasnotes.errors import ConfigError, TrainingError, UsageError
from kerasnotes.registry import create_model, get_spec
from kerasnotes.tasks import task_for_model

CONFIG_FILE = "config.json"
DATA_FILE = "data.json"
STATE_FILE = "state.json"
METRICS_FILE = "metrics.json"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"


@dataclasses.dataclass
class TrainResult:
    run_dir: str
    metrics: dict
    export_dir: str | None
    epochs_trained: int
    train_seconds: float


def write_json(path: str, value: Any) -> None:
    """Write JSON atomically (a crash never leaves half a file)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2)
    os.replace(tmp, path)


def read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


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


def make_optimizer(config: Mapping[str, Any], total_steps: int):
    """The configured optimizer with a cosine-decayed learning rate."""
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(
        config["learning_rate"], decay_steps=max(1, total_steps), alpha=0.01
    )
    try:
        return keras.optimizers.get(
            {"class_name": config["optimizer"], "config": {"learning_rate": schedule}}
        )
    except (ValueError, TypeError):
        raise ConfigError(
            f"Invalid optimizer {config['optimizer']!r}: expected a Keras optimizer name "
            "such as adam, adamw, sgd or rmsprop."
        ) from None


def _default_run_dir(model: str) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join("runs", f"{model}-{stamp}")
    run_dir, n = base, 1
    while os.path.exists(run_dir):
        n += 1
        run_dir = f"{base}-{n}"
    return run_dir


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
    config = {k: v for k, v in saved.items() if k != "model"}
    # Only the number of epochs may change when resuming (to train further).
    requested = config_lib.resolve_config(
        get_spec(model),
        derived_keys=task_for_model(model).derived_keys,
        task_settings=task_for_model(model).settings,
        config_file=config_file,
        overrides=overrides,
        flags=flags,
    )
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
    return config


def _nan_guard():
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

    return StopOnNaN()


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
    import keras

    spec = get_spec(model)
    task = task_for_model(model)
    if resume:
        if not run_dir:
            raise UsageError("--resume needs the --run-dir of the run to continue.")
        config = _resume_config(run_dir, model, config_file, overrides, flags)
        state = (
            read_json(os.path.join(run_dir, STATE_FILE))
            if os.path.exists(os.path.join(run_dir, STATE_FILE))
            else {}
        )
        if state.get("status") == "complete" and state.get("epochs", 0) >= config["epochs"]:
            raise UsageError(
                f"Run {run_dir!r} already finished its {state['epochs']} epochs; pass a "
                "larger --epochs to train it further."
            )
    else:
        config = config_lib.resolve_config(
            spec,
            derived_keys=task.derived_keys,
            task_settings=task.settings,
            config_file=config_file,
            overrides=overrides,
            flags=flags,
        )
        run_dir = run_dir or _default_run_dir(model)
        if os.path.exists(run_dir) and os.listdir(run_dir):
            raise UsageError(
                f"Run directory {run_dir!r} already exists and is not empty; pass --resume "
                "to continue it, or choose another --run-dir."
            )
    if export_dir is not None:
        from kerasnotes.exports import check_writable

        check_writable(export_dir)

    keras.utils.set_random_seed(config["seed"])
    data = task.load_data(config)
    info = task.data_info(data)
    _, hyperparameters = config_lib.split(config, task.settings)
    strategy = make_strategy(config["strategy"])
    train_batches = task.batches(
        data.train,
        config,
        info,
        training=True,
        num_examples=data.num_examples.get("train", 0),
    )
    validation_batches = task.batches(data.validation, config, info, training=False)
    steps_per_epoch = int(train_batches.cardinality())
    if steps_per_epoch > 0:
        # One iterator for the whole run, `steps_per_epoch` batches an epoch. Given
        # the data's own end instead, Keras starts a new iterator every epoch; with
        # VQA's pipeline about every other epoch then waited about 11 s before its
        # first step, in the C++ code that released the spent one.
        train_batches = train_batches.repeat()
    else:  # Of unknown length: each epoch is one pass, however long.
        steps_per_epoch = None
    optimizer_steps = steps_per_epoch or math.ceil(
        max(1, data.num_examples.get("train", 0)) / config["batch_size"]
    )
    with strategy.scope():
        try:
            net = create_model(model, **hyperparameters, **task.builder_arguments(info, config))
        except ConfigError:
            raise
        except ValueError as e:  # Builders validate their hyperparameters with ValueError.
            raise ConfigError(f"Invalid configuration for {model!r}: {e}") from None
        task.compile(net, make_optimizer(config, config["epochs"] * optimizer_steps))

    # Inputs are valid: only now touch the run directory.
    os.makedirs(run_dir, exist_ok=True)
    if not resume:
        write_json(os.path.join(run_dir, CONFIG_FILE), {"model": model, **config})
    write_json(os.path.join(run_dir, DATA_FILE), info)
    write_json(os.path.join(run_dir, STATE_FILE), {"status": "training"})
    echo(f"Run directory: {run_dir}")
    echo(f"Data: {info['source']} ({data.num_examples})")
    echo(f"Strategy: {type(strategy).__name__}, {strategy.num_replicas_in_sync} replica(s)")

    history_path = os.path.join(run_dir, HISTORY_FILE)
    os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
    # The backup commits an epoch, so it runs last: a kill before it leaves the logs
    # one epoch ahead (that epoch is trained again and its log row replaced), never behind.
    callbacks = [
        _nan_guard(),
        keras.callbacks.CSVLogger(history_path, append=resume),
        keras.callbacks.TensorBoard(os.path.join(run_dir, "logs"), profile_batch=0),
        keras.callbacks.ModelCheckpoint(
            os.path.join(run_dir, "checkpoints", "best.weights.h5"),
            monitor="val_loss",
            save_best_only=True,
            save_weights_only=True,
        ),
        keras.callbacks.BackupAndRestore(
            os.path.join(run_dir, "backup"), double_checkpoint=True, delete_checkpoint=False
        ),
    ]
    started = time.perf_counter()
    history = net.fit(
        train_batches,
        validation_data=validation_batches,
        epochs=config["epochs"],
        steps_per_epoch=steps_per_epoch,
        callbacks=callbacks,
        shuffle=False,  # The pipeline shuffles.
        verbose=1 if sys.stdout.isatty() else 2,
    )
    train_seconds = time.perf_counter() - started
    epochs_trained = len(history.epoch)
    net.save(os.path.join(run_dir, MODEL_FILE))

    echo("Evaluating on the held-out split...")
    metrics = task.evaluate(task.model_predictor(net), data, info, config)
    metrics["train_seconds"] = round(train_seconds, 2)
    metrics["epochs"] = config["epochs"]
    write_json(os.path.join(run_dir, METRICS_FILE), metrics)
    _plots(net, task, data, info, config, run_dir, history_path)

    exported = None
    if export_dir is not None:
        from kerasnotes.runs import export_model

        exported = export_model(
            net,
            task,
            model=model,
            config=config,
            info=info,
            metrics=metrics,
            data=data,
            export_root=export_dir,
            run_dir=run_dir,
        )
        echo(f"Exported: {exported}")
    write_json(
        os.path.join(run_dir, STATE_FILE),
        {"status": "complete", "epochs": config["epochs"], "export": exported},
    )
    return TrainResult(run_dir, metrics, exported, epochs_trained, train_seconds)


def _plots(net, task, data, info, config, run_dir, history_path) -> list[str]:
    from kerasnotes import plots

    paths = []
    if os.path.exists(history_path):
        paths.append(
            plots.learning_curves(
                plots.read_history(history_path), os.path.join(run_dir, "learning_curves.png")
            )
        )
    paths += task.plots(net, data, info, config, run_dir)
    return paths
