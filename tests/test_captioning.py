"""The captioner: scene captions, tokens, decoding, learning, export and COCO data."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasnotes
from kerasnotes.data import scenes
from kerasnotes.data.shapes_captions import describe, random_scene
from kerasnotes.errors import DataError
from kerasnotes.models.captioner import RESERVED, captioner
from kerasnotes.tasks.captioning import caption_scores, words
from tests.conftest import run_cli, train_quietly

QUICK_CAPTIONER = [
    "dataset=shapes_captions/small",
    "epochs=10",
    "batch_size=32",
    "encoder_filters=[16,32,64]",
    "units=128",
    "attention_units=64",
]

# Serve captions in a process that imports only TensorFlow.
TF_ONLY = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    export, signature, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    serve = tf.saved_model.load(export).signatures[signature]
    out = serve(image_bytes=tf.constant([open(f, "rb").read() for f in files]))
    assert "kerasnotes" not in sys.modules
    print(json.dumps([c.decode() for c in out["caption"].numpy()]))
    """
)


def obj(shape, colour, x=10.0, y=10.0):
    return scenes.SceneObject(shape, colour, x, y, 5.0)


# Scene captions --------------------------------------------------------------------


def test_captions_state_what_the_scene_holds():
    assert describe([obj("circle", "red")])[0] == "a red circle"
    pair = describe([obj("square", "blue"), obj("square", "blue")])
    assert "two blue squares" in pair and "a pair of blue squares" in pair
    left = describe([obj("circle", "red"), obj("cross", "green")], "horizontal")
    assert "a red circle left of a green cross" in left
    assert "a green cross to the right of a red circle" in left
    above = describe([obj("ring", "white"), obj("diamond", "yellow")], "vertical")
    assert "a white ring above a yellow diamond" in above
    assert "a yellow diamond below a white ring" in above
    mixed = describe([obj("circle", "red"), obj("square", "blue"), obj("circle", "red")])
    assert "two red circles and a blue square" in mixed
    assert "a blue square and two red circles" in mixed
    three = describe([obj("circle", "red"), obj("square", "blue"), obj("cross", "green")])
    assert three[0] == "a red circle, a blue square and a green cross"
    assert describe([obj("ring", "red")] * 3)[0] == "three red rings"
    assert describe([obj("cross", "red")] * 2)[0] == "two red crosses"


def test_random_scenes_are_deterministic_and_their_relations_hold():
    first = [random_scene(np.random.default_rng(7), 48) for _ in range(3)]
    again = [random_scene(np.random.default_rng(7), 48) for _ in range(3)]
    assert first == again
    rng = np.random.default_rng(1)
    counts = {1: 0, 2: 0, 3: 0}
    for _ in range(300):
        objects, relation = random_scene(rng, 48)
        counts[len(objects)] += 1
        references = describe(objects, relation)
        assert 3 <= len(references) <= 5
        for a, b in zip(objects, objects[1:], strict=False):  # No overlaps.
            assert np.hypot(a.center_x - b.center_x, a.center_y - b.center_y) > a.radius + b.radius
        if relation == "horizontal":
            a, b = objects
            assert b.center_x - a.center_x > 2 * abs(b.center_y - a.center_y)
        elif relation == "vertical":
            a, b = objects
            assert b.center_y - a.center_y > 2 * abs(b.center_x - a.center_x)
        if len(objects) == 3:  # Listed left to right.
            xs = [o.center_x for o in objects]
            assert xs == sorted(xs)
    assert all(counts.values())


def test_embedded_dataset_has_splits_and_references():
    from kerasnotes.data.captions import load

    data = load("shapes_captions/small")
    assert data.num_examples == {"train": 2000, "validation": 200, "test": 200, "shifted": 200}
    image, references = next(iter(data.test))
    assert image.shape == (48, 48, 3) and image.dtype == tf.uint8
    assert 3 <= len(references) <= 5
    train_images = {i.numpy().tobytes() for i, _ in data.train.take(200)}
    assert not any(i.numpy().tobytes() in train_images for i, _ in data.test)


# Tokens, decoding ------------------------------------------------------------------

VOCABULARY = [*RESERVED, "a", "red", "blue", "circle", "square", "left", "of"]


def small_model(**options):
    keras.utils.set_random_seed(3)
    defaults = dict(
        vocabulary=VOCABULARY,
        max_length=6,
        input_shape=(24, 24, 3),
        encoder_filters=[8, 16],
        units=16,
        embedding_dim=8,
        attention_units=8,
    )
    return captioner(**{**defaults, **options})


def test_tokenize_adds_boundaries_and_cuts_long_captions():
    model = small_model(max_length=3)
    ids = model.tokenize(tf.constant(["A red, circle!", "a red circle left of a blue square"]))
    assert ids.shape == (2, 5)
    assert ids.numpy().tolist() == [[2, 4, 5, 7, 3], [2, 4, 5, 7, 3]]
    unknown = model.tokenize(tf.constant(["a green circle"])).numpy()[0]
    assert unknown.tolist() == [2, 4, 1, 7, 3]  # "green" is out of vocabulary.


def full_model_greedy(model, images, steps):
    """The keras-io decoding style: run the whole model on the prefix for each word."""
    tokens = np.full((len(images), 1), 2)
    for _ in range(steps):
        logits = model({"images": images, "token_ids": tokens}).numpy()[:, -1]
        logits[:, [0, 1, 2]] = -np.inf
        tokens = np.concatenate([tokens, logits.argmax(-1)[:, None]], axis=1)
    return tokens[:, 1:]


def sequence_log_prob(model, images, ids):
    """log P(ids | image) under teacher forcing, up to and including [end]."""
    inputs = np.concatenate([np.full((len(ids), 1), 2), ids[:, :-1]], axis=1)
    logits = model({"images": images, "token_ids": inputs})
    log_probs = tf.nn.log_softmax(logits).numpy()
    total = np.zeros(len(ids))
    for i, row in enumerate(ids):
        for t, token in enumerate(row):
            total[i] += log_probs[i, t, token]
            if token == 3:
                break
    return total


@pytest.mark.parametrize("rnn,num_layers", [("gru", 1), ("lstm", 2)])
def test_in_graph_greedy_decoding_matches_rerunning_the_model(rnn, num_layers):
    model = small_model(rnn=rnn, num_layers=num_layers)
    images = np.random.default_rng(0).uniform(0, 255, (5, 24, 24, 3)).astype("float32")
    out = model.generate(images, beam_width=1, max_length=6)
    reference = full_model_greedy(model, images, out["token_ids"].shape[1])
    for got, want, length in zip(
        out["token_ids"].numpy(), reference, out["lengths"].numpy(), strict=True
    ):
        n = length + (1 if length < 6 else 0)  # Up to and including [end].
        assert got[:n].tolist() == want[:n].tolist()
    assert out["attention"].shape[:2] == out["token_ids"].shape
    np.testing.assert_allclose(out["attention"].numpy().sum(-1), 1.0, atol=1e-5)


def test_beam_search_finds_sequences_at_least_as_likely_as_greedy():
    model = small_model(length_penalty=0.0)
    images = np.random.default_rng(1).uniform(0, 255, (8, 24, 24, 3)).astype("float32")
    greedy = model.generate(images, beam_width=1)
    beam = model.generate(images, beam_width=4)
    greedy_lp = sequence_log_prob(model, images, greedy["token_ids"].numpy())
    beam_lp = sequence_log_prob(model, images, beam["token_ids"].numpy())
    np.testing.assert_allclose(beam["scores"].numpy(), beam_lp, atol=1e-4)
    assert np.all(beam_lp >= greedy_lp - 1e-4)
    captions = model.caption(images, beam_width=4).numpy()
    for caption, ids, length in zip(
        captions, beam["token_ids"].numpy(), beam["lengths"], strict=True
    ):
        assert caption.decode().split() == [VOCABULARY[t] for t in ids[: int(length)]]


@pytest.mark.slow  # 25 s; test_video builds a keras.applications backbone too.
def test_backbone_encoder_trains_without_downloaded_weights():
    model = small_model(encoder="mobilenet_v2", encoder_weights=None, input_shape=(64, 64, 3))
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    images = np.zeros((2, 64, 64, 3), "float32")
    ids = np.array([[2, 4, 5, 7, 3, 0], [2, 4, 6, 8, 3, 0]])
    loss = model.train_on_batch({"images": images, "token_ids": ids[:, :-1]}, ids[:, 1:])
    assert np.isfinite(loss)
    assert model.caption(images).shape == (2,)


def test_metrics_come_from_the_coco_caption_scorers():
    references = [
        ["a red circle left of a blue square", "a blue square right of a red circle"],
        ["there are two blue squares", "two blue squares"],
    ]
    perfect = caption_scores(
        references, ["A blue square right of a red circle.", "there are two blue squares"]
    )
    assert perfect["bleu_4"] == pytest.approx(1.0, abs=1e-6)
    wrong = caption_scores(
        references, ["a red square left of a blue circle", "there are two red circles"]
    )
    assert wrong["bleu_4"] < 0.5 and wrong["cider"] < perfect["cider"] / 2
    assert words("Left-to-right: A, B!") == ["lefttoright", "a", "b"]


# Training, evaluation and export ----------------------------------------------------


@pytest.fixture(scope="module")
def trained_captioner(tmp_path_factory):
    root = tmp_path_factory.mktemp("captioner")
    return train_quietly("captioner", QUICK_CAPTIONER, root), root


def test_captioner_learns_to_describe_held_out_scenes(trained_captioner):
    result, _ = trained_captioner
    metrics = json.load(open(os.path.join(result.run_dir, "metrics.json")))
    # Chance level: answering every test scene with the most common training caption
    # ("a purple diamond") scores BLEU-4 0.003 and CIDEr 0.36 on this split.
    assert metrics["bleu_4"] > 0.5, metrics
    assert metrics["cider"] > 2.0, metrics
    assert metrics["bleu_4"] >= metrics["greedy"]["bleu_4"] - 0.02
    assert len(metrics["samples"]) == 5 and metrics["samples"][0]["references"]
    pngs = [f for f in os.listdir(result.run_dir) if f.startswith("attention_")]
    assert len(pngs) == 4
    assert os.path.exists(os.path.join(result.run_dir, "learning_curves.png"))


@pytest.fixture(scope="module")
def scene_files(trained_captioner, tmp_path_factory):
    """Held-out scenes as PNG and JPEG files, with the captions of the Keras model."""
    from kerasnotes.data.captions import load

    result, _ = trained_captioner
    model = keras.models.load_model(os.path.join(result.run_dir, "model.keras"))
    folder = tmp_path_factory.mktemp("scenes")
    files, images = [], []
    for i, (image, _) in enumerate(load("shapes_captions/small").test.take(3)):
        png = folder / f"scene{i}.png"
        png.write_bytes(tf.io.encode_png(image).numpy())
        jpeg = folder / f"scene{i}.jpg"
        jpeg.write_bytes(tf.io.encode_jpeg(image, quality=100).numpy())
        files += [png, jpeg]
        for f in (png, jpeg):
            decoded = tf.io.decode_image(f.read_bytes(), channels=3)
            images.append(tf.cast(decoded, tf.float32))
    captions = [c.decode() for c in model.caption(tf.stack(images)).numpy()]
    return files, captions


def test_export_captions_image_bytes_in_a_tensorflow_only_process(trained_captioner, scene_files):
    result, _ = trained_captioner
    files, expected = scene_files
    proc = subprocess.run(
        [
            sys.executable,
            "-P",
            "-c",
            TF_ONLY,
            result.export_dir,
            "serving_default",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == expected
    assert all(len(c.split()) >= 2 for c in expected)


def test_export_signatures_manifest_and_corrupt_bytes(trained_captioner):
    result, _ = trained_captioner
    loaded = tf.saved_model.load(result.export_dir)
    assert sorted(loaded.signatures) == ["serving_default", "serving_greedy", "serving_images"]
    with pytest.raises(tf.errors.InvalidArgumentError):
        loaded.signatures["serving_default"](image_bytes=tf.constant([b"not an image"]))
    manifest = json.load(open(os.path.join(result.export_dir, "assets", "kerasnotes.json")))
    assert manifest["data"]["vocabulary"][:4] == list(RESERVED)
    assert manifest["hyperparameters"]["beam_width"] == 3
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run(
        [cli, "show", "--dir", result.export_dir, "--all"], capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    for name in ("serving_default", "serving_greedy", "serving_images", "caption"):
        assert name in shown.stdout


def test_cli_predict_and_evaluate_the_export(trained_captioner, scene_files):
    result, _ = trained_captioner
    files, expected = scene_files
    proc = run_cli("predict", result.export_dir, str(files[0]), str(files[1]))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines == [f"{files[0]}\t{expected[0]}", f"{files[1]}\t{expected[1]}"]
    greedy = run_cli("predict", result.export_dir, str(files[0]), "--greedy", "--json")
    assert greedy.returncode == 0, greedy.stderr
    # --greedy is the export's greedy signature, word for word.
    serve = tf.saved_model.load(result.export_dir).signatures["serving_greedy"]
    want = serve(image_bytes=tf.constant([files[0].read_bytes()]))["caption"].numpy()[0]
    assert json.loads(greedy.stdout)["caption"] == want.decode() != ""
    # The export scores what its manifest records, measured afresh from the SavedModel.
    metrics = kerasnotes.evaluate(result.export_dir)
    manifest = json.load(open(os.path.join(result.export_dir, "assets", "kerasnotes.json")))
    assert metrics["bleu_4"] == pytest.approx(manifest["metrics"]["bleu_4"], abs=1e-6)


def test_corrupt_image_file_is_a_clear_error(trained_captioner, tmp_path):
    result, _ = trained_captioner
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    proc = run_cli("predict", result.export_dir, str(bad))
    assert proc.returncode == 2
    assert "Corrupt or unsupported image" in proc.stderr and "Traceback" not in proc.stderr


# COCO caption data -------------------------------------------------------------------


def write_coco(folder, num_images=20, broken=None):
    """A COCO caption file with 2-4 captions per image and its PNG images."""
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True)
    images, annotations = [], []
    for i in range(num_images):
        objects, relation = random_scene(rng, 32)
        image = scenes.render(rng, objects, 32)
        name = f"{i:04d}.png"
        (folder / "images" / name).write_bytes(tf.io.encode_png(image).numpy())
        images.append({"id": 100 + i, "file_name": name})
        for j, caption in enumerate(describe(objects, relation)[: 2 + i % 3]):
            annotations.append({"id": 1000 * i + j, "image_id": 100 + i, "caption": caption})
    if broken == "missing":
        images.append({"id": 999, "file_name": "missing.png"})
        annotations.append({"id": 1, "image_id": 999, "caption": "a lost image"})
    path = folder / "captions.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations}), "utf-8")
    return path


def test_coco_json_trains_and_evaluates_with_all_references(tmp_path):
    path = write_coco(tmp_path / "coco")
    from kerasnotes.data.captions import load

    data = load(str(path), image_size=32)
    assert sum(data.num_examples.values()) == 20
    # Every caption is kept: training's plus the held-out references are all of them.
    total = len(json.loads(path.read_text())["annotations"])
    held_out = sum(len(c) for _, c in data.validation.concatenate(data.test))
    assert len(data.train_captions()) == total - held_out
    # Known from the JSON file, as the training split gives them (no image read).
    from_split = [c.decode() for _, captions in data.train.as_numpy_iterator() for c in captions]
    assert data.train_captions() == from_split
    proc = run_cli(
        "train",
        "captioner",
        "--dataset",
        str(path),
        "--epochs",
        "1",
        "--set",
        "image_size=32",
        "--set",
        "encoder_filters=[8,16]",
        "--set",
        "units=16",
        "--run-dir",
        str(tmp_path / "run"),
        "--no-export",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.load(open(tmp_path / "run" / "metrics.json"))
    assert {"bleu_1", "bleu_4", "cider"} <= set(metrics) and metrics["num_examples"] == 2
    assert all(len(s["references"]) >= 2 for s in metrics["samples"])


def test_training_batches_rotate_through_every_caption(tmp_path):
    from kerasnotes.data.captions import load
    from kerasnotes.models.captioner import make_tokenizer, tokenize
    from kerasnotes.tasks import get_task

    task = get_task("captioning")
    data = load(str(write_coco(tmp_path / "coco")), image_size=32)
    captions = data.train_captions()
    info = {"vocabulary": [*RESERVED, *sorted({w for c in captions for w in words(c)})]}
    info["max_length"] = max(len(words(c)) for c in captions)
    config = {"batch_size": 4, "seed": 0, "data_format": "channels_last"}
    batches = task.batches(data.train, config, info, training=True, num_examples=16)
    tokenizer = make_tokenizer(info["vocabulary"])
    expected = {  # Each training image's captions, as targets (without [start]).
        image.tobytes(): {
            tuple(ids[1:]) for ids in tokenize(tokenizer, refs, info["max_length"]).numpy()
        }
        for image, refs in data.train.as_numpy_iterator()
    }
    used = {key: set() for key in expected}
    for epoch in range(4):  # At most 4 captions per image.
        for x, y, _ in batches:
            for image, target in zip(x["images"].numpy(), y.numpy(), strict=True):
                used[image.astype("uint8").tobytes()].add(tuple(target))
        if epoch == 0:
            assert all(len(u) == 1 for u in used.values())
    assert used == expected


def test_coco_json_errors_name_the_bad_file(tmp_path):
    from kerasnotes.data.captions import load

    # (Enough images that no split is left empty by the one skipped.)
    path = write_coco(tmp_path / "coco", num_images=30, broken="missing")
    with pytest.raises(DataError, match="missing.png"):
        load(str(path))
    assert load(str(path), skip_bad_records=True).skipped[0].endswith("missing.png")
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"images": [], "annotations": [{"caption": "caf\xe9"}]}'.encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load(str(latin))
    proc = run_cli("train", "captioner", "--dataset", str(tmp_path / "nope.json"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_tfds_coco_captions_loads_under_mock_data():
    import tensorflow_datasets as tfds

    from kerasnotes.data.captions import load

    with tfds.testing.mock_data(num_examples=6):
        data = load("coco_captions", image_size=32)
        image, references = next(iter(data.train))
    assert image.shape == (32, 32, 3) and references.dtype == tf.string
    assert references.shape[0] >= 1


def test_bad_captioner_settings_exit_2(tmp_path):
    for setting, expected in (
        ("encoder=vgg99", "Invalid encoder 'vgg99'"),
        ("rnn=transformer", "Invalid rnn 'transformer'"),
        ("vocabulary_size=0", "Invalid vocabulary_size 0"),
    ):
        proc = run_cli(
            "train",
            "captioner",
            "--set",
            "dataset=shapes_captions/small",
            "--set",
            setting,
            "--run-dir",
            str(tmp_path / "run"),
            cwd=tmp_path,
        )
        assert proc.returncode == 2, proc.stderr
        assert expected in proc.stderr and "Traceback" not in proc.stderr
        assert not (tmp_path / "run").exists()
