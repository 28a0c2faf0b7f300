"""Every registered model through the whole CLI on tiny data: `train`, `evaluate` of
the run and of its export (the same figures as the run's metrics.json), `export
RUN_DIR` (a new version with the same signatures) and `predict` on a raw input."""

import json

import numpy as np
import pytest
import tensorflow as tf

import kerasnotes
from kerasnotes.data import waveforms
from kerasnotes.tasks.video_classification import encode_gif
from tests.conftest import assert_one_line_error, run_cli

# Each model at a small width on its small embedded dataset, stopped by `time_limit`
# after its first batch (of two epochs): enough to run every path, not to learn (the families'
# own tests hold the learning bars).
TINY = {
    "cnn": ["dataset=shapes/small", "filters=[8]", "dense_units=0"],
    "captioner": [
        "dataset=shapes_captions/small",
        "encoder_filters=[8,16]",
        "units=16",
        "embedding_dim=16",
        "attention_units=16",
        "beam_width=2",
    ],
    "vqa": [
        "dataset=shapes_vqa/small",
        "encoder_filters=[8,16]",
        "units=16",
        "embedding_dim=16",
        "attention_units=16",
        "classifier_units=16",
    ],
    "rnn": ["dataset=sentiment/small", "units=8", "embedding_dim=8"],
    "rnn-tagger": ["dataset=entities/small", "units=8", "embedding_dim=8"],
    "ngram": ["dataset=python_docs/small", "order=3"],
    "char-rnn": [
        "dataset=python_docs/small",
        "units=[16]",
        "embedding_dim=8",
        "sequence_length=32",
        "max_length=20",
    ],
    "transformer-lm": [
        "dataset=python_docs/small",
        "num_layers=1",
        "width=16",
        "num_heads=2",
        "sequence_length=32",
        "max_length=20",
    ],
    "video": [
        "dataset=moving_shapes/small",
        "encoder_filters=[8]",
        "encoder_units=8",
        "frame_units=8",
        "head_units=8",
    ],
    "wavenet": ["dataset=signals/small", "layers_per_block=3", "residual_channels=8"],
    "wavenet-generator": [
        "dataset=SERIES",
        "layers_per_block=3",
        "residual_channels=8",
        "skip_channels=8",
        "num_levels=16",
        "window=16",
        "max_length=8",
    ],
}


def _sample(task: str, tmp_path) -> list[str]:
    """A raw input `predict` takes for a model of `task`, and its options."""
    rng = np.random.default_rng(0)
    if task in ("image_classification", "captioning", "vqa"):
        pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        (tmp_path / "scene.png").write_bytes(tf.io.encode_png(pixels).numpy())
        question = ["--question", "what colour is the circle?"] if task == "vqa" else []
        return [str(tmp_path / "scene.png"), *question]
    if task == "video_classification":
        frames = rng.integers(0, 256, (9, 32, 32, 3), dtype=np.uint8)
        (tmp_path / "clip.gif").write_bytes(encode_gif(frames))
        return [str(tmp_path / "clip.gif")]
    if task in ("waveform_classification", "waveform_modelling"):
        sound = np.sin(np.arange(600) / 5.0)[:, None].astype(np.float32)
        (tmp_path / "sound.wav").write_bytes(waveforms.encode_wav(sound, 8000))
        return [str(tmp_path / "sound.wav")]
    if task == "language_modelling":
        return ["def "]
    return ["the plot was not bad"]  # Texts to label or tag.


def _metrics(proc) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _close(got: dict, want: dict) -> None:
    """The figures both hold agree (the exports answer like the model, to float32)."""
    shared = [k for k, v in want.items() if isinstance(v, (int, float)) and k in got]
    assert shared, (got, want)
    for key in shared:
        assert got[key] == pytest.approx(want[key], rel=1e-3, abs=1e-3), key


def _through_the_cli(name: str, tmp_path) -> None:
    from kerasnotes.registry import get_spec

    run, exports = tmp_path / "run", tmp_path / "saved_models"
    series = tmp_path / "series.csv"  # A sine with a little noise, for the generator.
    noise = np.random.default_rng(0).normal(0, 0.05, 600)
    series.write_text(
        "value\n" + "\n".join(f"{v:.4f}" for v in np.sin(np.arange(600) / 4) + noise)
    )
    tiny = [item.replace("SERIES", str(series)) for item in TINY[name]]
    settings = [arg for item in ["epochs=2", "time_limit=0.001", *tiny] for arg in ("--set", item)]
    proc = run_cli(
        "train", name, *settings, "--run-dir", run, "--export-dir", exports, "--seed", "1"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = json.loads((run / "metrics.json").read_text())
    assert trained["epochs"] == 1, trained  # Stopped by time_limit.
    export = exports / name / "1"

    # The run directory and the export, evaluated afresh, give the run's figures; the
    # validation split gives the same measures of other examples.
    _close(_metrics(run_cli("evaluate", run, "--json")), trained)
    _close(_metrics(run_cli("evaluate", export, "--json")), trained)
    validation = _metrics(run_cli("evaluate", export, "--split", "validation", "--json"))
    measures = {k for k, v in trained.items() if isinstance(v, float) and k != "train_seconds"}
    assert measures <= set(validation), (measures, validation)
    # Runs on the scene generators report their shifted split too, as evaluate does.
    if name in OF_SCENES:
        shifted = _metrics(run_cli("evaluate", export, "--split", "shifted", "--json"))
        _close(shifted, trained["shifted"])
    else:
        assert "shifted" not in trained
        if name in ("rnn", "wavenet"):  # Text and series data: no shifted split.
            proc = run_cli("evaluate", export, "--split", "shifted")
            assert_one_line_error(proc, "no shifted split")

    # export RUN_DIR writes a version that holds the same signatures.
    proc = run_cli("export", run, "--export-dir", exports)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifests = [
        json.loads((exports / name / v / "assets" / "kerasnotes.json").read_text()) for v in "12"
    ]
    assert manifests[1]["signatures"] == manifests[0]["signatures"]
    assert set(manifests[0]["signatures"]) == set(tf.saved_model.load(str(export)).signatures)

    # predict answers a raw input with one JSON object for it.
    proc = run_cli("predict", export, *_sample(get_spec(name).task, tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and isinstance(json.loads(lines[0]), dict), proc.stdout


# The models whose embedded data have a split drawn outside their training ranges.
OF_SCENES = ("cnn", "captioner", "vqa", "video")


# The models in two halves, one class each: pytest-xdist (`--dist=loadscope`) gives each
# class a worker of its own, as it gives each module, so the halves run side by side.
OF_IMAGES_CLIPS_AND_SOUNDS = ("cnn", "captioner", "vqa", "video", "wavenet", "wavenet-generator")


class TestModelsOfImagesClipsAndSounds:
    @pytest.mark.parametrize("name", OF_IMAGES_CLIPS_AND_SOUNDS)
    def test_trains_evaluates_exports_and_predicts(self, name, tmp_path):
        _through_the_cli(name, tmp_path)


class TestModelsOfText:
    @pytest.mark.parametrize(
        "name", [m for m in kerasnotes.list_models() if m not in OF_IMAGES_CLIPS_AND_SOUNDS]
    )
    def test_trains_evaluates_exports_and_predicts(self, name, tmp_path):
        _through_the_cli(name, tmp_path)


def test_every_registered_model_is_covered():
    assert sorted(TINY) == sorted(kerasnotes.list_models())
