"""Work on finished runs and exports: export, evaluate, predict."""

from __future__ import annotations

import json
import os
from typing import Any

from kerasnotes import training
from kerasnotes.errors import DataError, UsageError, one_line
from kerasnotes.exports import check_writable, read_manifest, write_export
from kerasnotes.files import disk_full_is_a_clear_error, file_digest, read_json
from kerasnotes.registry import get_spec
from kerasnotes.tasks import get_task, task_for_model


def _load_run(run_dir: str):
    """(model name, config, data info, Keras model) of a finished run, each file of
    it checked before it is used: a `UsageError` names the file that is missing,
    damaged or not the one the run wrote."""
    import keras

    for name in (training.CONFIG_FILE, training.DATA_FILE, training.MODEL_FILE):
        if not os.path.isfile(os.path.join(run_dir, name)):
            raise UsageError(
                f"{run_dir!r} is not a finished run directory: {name} is missing. Give the "
                "--run-dir of a completed `kerasnotes train`."
            )
    saved = _run_json(run_dir, training.CONFIG_FILE)
    info = _run_json(run_dir, training.DATA_FILE)
    state = (
        _run_json(run_dir, training.STATE_FILE)
        if os.path.isfile(os.path.join(run_dir, training.STATE_FILE))
        else {}
    )
    model = saved.pop("model", None) if isinstance(saved, dict) else None
    if not isinstance(model, str) or not isinstance(info, dict):
        raise UsageError(
            f"{run_dir!r} is not a run directory kerasnotes wrote: its "
            f"{training.CONFIG_FILE} names no model or its {training.DATA_FILE} is no object."
        )
    get_spec(model)  # Imports the builder's module, registering its custom layers.
    path = os.path.join(run_dir, training.MODEL_FILE)
    recorded = state.get(training.MODEL_DIGEST) if isinstance(state, dict) else None
    if recorded is not None and file_digest(path) != recorded:
        raise UsageError(
            f"{path!r} is not the model this run saved (its SHA-256 differs from the one "
            f"in {training.STATE_FILE}): it was replaced or damaged. Restore it, or train "
            "again."
        )
    try:
        net = keras.models.load_model(path)
    except Exception as e:  # Keras raises anything from ValueError to zipfile's errors.
        raise UsageError(
            f"{path!r} cannot be loaded as a {model} model ({type(e).__name__}: "
            f"{one_line(str(e))}). Restore it, or train again."
        ) from None
    return model, saved, info, net


def _run_json(run_dir: str, name: str):
    """A JSON file of a run directory; a `UsageError` naming it if it is damaged."""
    path = os.path.join(run_dir, name)
    try:
        return read_json(path)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(
            f"{path!r} is damaged: it is not valid JSON ({e}). Restore it, or train again."
        ) from None


def _examples(run_dir: str, task, config: dict):
    """The held-out examples an export of the run is checked on: those kept in the run
    directory, or (for a run written before they were kept) the dataset's first ones."""
    import tensorflow as tf

    path = os.path.join(run_dir, training.EXAMPLES_DIR)
    if os.path.isdir(path):
        return tf.data.Dataset.load(path)
    return task.load_data(config).test.take(training.NUM_EXAMPLES)


def export_model(
    net,
    task,
    *,
    model: str,
    config: dict,
    info: dict,
    metrics: dict | None,
    run_dir: str,
    export_root: str,
    echo=print,
) -> str:
    """Write the next export version of a trained model (used by train and export)."""
    from kerasnotes.config import split

    training_settings, hyperparameters = split(config, task.settings)
    manifest = {
        "model": model,
        "task": task.name,
        "hyperparameters": hyperparameters,
        "training": training_settings,
        "data": info,
        "metrics": metrics,
        "run_dir": os.path.abspath(run_dir),
    }
    with disk_full_is_a_clear_error(
        f"writing an export under {export_root!r}",
        f"The run {run_dir!r} is complete: free some space, then export it with "
        f"`kerasnotes export {run_dir}`.",
    ):
        return write_export(
            net,
            task,
            info=info,
            config=config,
            manifest=manifest,
            examples=_examples(run_dir, task, config),
            export_root=export_root,
            name=model,
            echo=echo,
        )


def export_run(run_dir: str, export_root: str = "saved_models", echo=print) -> str:
    """Export a finished run as the next version under `<export_root>/<model>/`.

    Needs only the run directory: the export is checked on the held-out examples the
    run kept, so the run's dataset may be gone. `echo` says what was cleaned up.
    """
    check_writable(export_root)
    model, config, info, net = _load_run(run_dir)
    task = task_for_model(model)
    metrics_path = os.path.join(run_dir, training.METRICS_FILE)
    metrics = _run_json(run_dir, training.METRICS_FILE) if os.path.exists(metrics_path) else None
    return export_model(
        net,
        task,
        model=model,
        config=config,
        info=info,
        metrics=metrics,
        run_dir=run_dir,
        export_root=export_root,
        echo=echo,
    )


def is_export(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def evaluate(
    path: str,
    *,
    dataset: str | None = None,
    batch_size: int | None = None,
    split: str = "test",
) -> dict:
    """Held-out metrics of a run directory or an export.

    Args:
        path: a run directory or an export version directory.
        dataset: evaluate on this dataset instead of the one trained on.
        batch_size: evaluation batch size (default: the training one).
        split: `"test"` (the held-out figures a run reports), `"validation"` (the
            split that choices between settings are made on, leaving test unseen) or
            `"shifted"` (the embedded generators' split outside their training ranges).
    """
    from kerasnotes.data import HELD_OUT_SPLITS, held_out

    if split not in HELD_OUT_SPLITS:
        raise UsageError(f"Invalid split {split!r}: expected one of {', '.join(HELD_OUT_SPLITS)}.")
    if not os.path.exists(path):
        raise UsageError(f"{path!r} does not exist: give a run directory or an export.")
    if is_export(path):
        import tensorflow as tf

        manifest = read_manifest(path)
        config = {**manifest["training"], **manifest["hyperparameters"]}
        info = manifest["data"]
        task = get_task(manifest["task"])
        predict = task.export_predictor(tf.saved_model.load(path).signatures)
    else:
        model, config, info, net = _load_run(path)
        task = task_for_model(model)
        predict = task.model_predictor(net, info, config)
    config = {**config, **({"dataset": dataset} if dataset else {})}
    if batch_size:
        config["batch_size"] = batch_size
    data = task.load_data(config)
    new_info = task.data_info(data)
    for key in ("class_names", "image_shape"):
        if key in info and new_info.get(key) != info[key]:
            raise DataError(
                f"Dataset {config['dataset']!r} does not match the model: its {key} "
                f"{new_info.get(key)} differs from the trained {info[key]}."
            )
    return task.evaluate(predict, held_out(data, split), info, config)


def read_inputs(path: str) -> list[str]:
    """The non-empty lines of the UTF-8 file `path` (`predict --file`)."""
    from kerasnotes.data.images import read_text

    return [line.strip() for line in read_text(path, "input file").splitlines() if line.strip()]


def predict(
    export_dir: str, inputs: list[str], *, input_file: str | None = None, **options: Any
) -> list[dict]:
    """Run an export on raw inputs (files or strings, by task); one dict per input.

    `input_file` adds the lines of a UTF-8 file to `inputs`, one input per line.
    With `stream=True` (language models), each dict's `stream` yields the text as it
    is generated.
    """
    import tensorflow as tf

    if not os.path.exists(export_dir):
        raise UsageError(f"Export {export_dir!r} does not exist.")
    if input_file is not None:
        inputs = [*inputs, *read_inputs(input_file)]
    if not inputs:
        raise UsageError("Nothing to predict: give inputs, or --file with one per line.")
    manifest = read_manifest(export_dir)
    task = get_task(manifest["task"])
    signatures = tf.saved_model.load(export_dir).signatures
    if options.get("stream"):
        if not hasattr(task, "stream_export"):
            raise UsageError(
                f"--stream applies to language models; {export_dir!r} is a {task.name} export."
            )
        return [
            {
                "input": prompt,
                "stream": task.stream_export(signatures, manifest, prompt, **options),
            }
            for prompt in inputs
        ]
    return task.predict_export(signatures, manifest, inputs, **options)


def _check_neighbour_words(path: str, settings: dict, words: list[str]) -> None:
    """A character-level language model embeds characters: its neighbours are of one
    character, and a longer word is a `UsageError` rather than its first character's."""
    if settings.get("token_level") != "character":
        return
    long = [w for w in words if len(w) != 1]
    if long:
        raise UsageError(
            f"The model of {path!r} is character-level: its embedding holds characters, "
            f"not words; give single characters, not {long[0]!r}."
        )


def neighbours(path: str, words: list[str], count: int = 10) -> list[dict]:
    """The nearest words by cosine similarity in the embedding of a run or an export.

    An export answers through its `neighbours` signature (TensorFlow alone); a run
    directory through its model's first `Embedding` layer and its data's vocabulary.
    One dict per word: `{"word", "neighbours": [(word, similarity), ...]}`, with
    `"unknown": True` for a word outside the vocabulary.
    """
    if not os.path.exists(path):
        raise UsageError(f"{path!r} does not exist: give a run directory or an export.")
    if not words:
        raise UsageError("Give at least one word.")
    if is_export(path):
        import tensorflow as tf

        _check_neighbour_words(path, read_manifest(path).get("training", {}), words)
        signatures = tf.saved_model.load(path).signatures
        if "neighbours" not in signatures:
            raise UsageError(
                f"Export {path!r} has no neighbours signature (its model has no word "
                "embedding); give an export of a text model."
            )
        out = signatures["neighbours"](word=tf.constant(words))
        found, similarities = out["neighbours"].numpy(), out["similarities"].numpy()
        results = []
        for i, word in enumerate(words):
            pairs = [
                (n.decode(), float(s))
                for n, s in zip(found[i][:count], similarities[i][:count], strict=True)
                if n
            ]
            results.append(
                {"word": word, "neighbours": pairs, **({} if pairs else {"unknown": True})}
            )
        return results
    import keras

    from kerasnotes.text import find_embedding, nearest_words

    _, config, info, net = _load_run(path)
    _check_neighbour_words(path, config, words)
    embedding = find_embedding(net)
    if embedding is None or "vocabulary" not in info:
        raise UsageError(f"The model of {path!r} has no word embedding: it has no neighbours.")
    matrix = keras.ops.convert_to_numpy(embedding.embeddings)
    return nearest_words(matrix, info["vocabulary"], words, count)
