import os
import types

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import kerasnotes
from kerasnotes.data import downloads, scenes, streams
from kerasnotes.data import images as image_data
from kerasnotes.errors import DataError


def write_image(path, array, fmt="png"):
    path.parent.mkdir(parents=True, exist_ok=True)
    encode = tf.io.encode_png if fmt == "png" else tf.io.encode_jpeg
    path.write_bytes(encode(array).numpy())


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for shape in ["circle", "square"]:
        for i in range(10):
            obj = scenes.random_object(rng, 40, shape=shape)
            write_image(
                tmp_path / shape / f"{i}.{'png' if i % 2 else 'jpg'}",
                scenes.render(rng, [obj], 40),
                "png" if i % 2 else "jpg",
            )
    return tmp_path


def test_embedded_shapes_is_deterministic_and_balanced():
    data = image_data.load("shapes/small")
    assert data.class_names == list(scenes.SHAPES)
    assert data.image_shape == (32, 32, 3)
    assert data.num_examples == {"train": 1200, "validation": 300, "test": 300, "shifted": 300}
    labels = [int(y) for _, y in data.test]
    assert np.bincount(labels).tolist() == [50] * 6
    first = [x.numpy() for x, _ in data.test.take(3)]
    again = [x.numpy() for x, _ in image_data.load("shapes/small").test.take(3)]
    np.testing.assert_array_equal(first, again)


def _outside(training, shifted):
    """Every shifted value lies outside the range of the training ones, some on
    either side where `both`."""
    low, high = min(training), max(training)
    assert all(v < low or v > high for v in shifted), (low, high, sorted(shifted)[:5])
    return any(v < low for v in shifted), any(v > high for v in shifted)


def test_the_shifted_splits_draw_outside_every_training_range():
    from kerasnotes.data import moving_shapes, shapes_captions

    rng = np.random.default_rng(0)

    def radii(draw, shifted, times=300):
        return [draw(shifted) for _ in range(times)]

    # shapes: one object per image.
    def one(shifted):
        return scenes.random_object(rng, 32, shifted=shifted, largest=0.46).radius

    assert _outside(radii(one, False), radii(one, True)) == (True, True)
    # shapes_captions and shapes_vqa, by number of objects (three at most 0.15 to fit).
    by_count = {(n, s): [] for n in (1, 2, 3) for s in (False, True)}
    for shifted in (False, True):
        for _ in range(400):
            objects, _ = shapes_captions.random_scene(rng, 48, shifted)
            by_count[len(objects), shifted] += [o.radius for o in objects]
    for n, both in ((1, (True, True)), (2, (True, True)), (3, (True, False))):
        assert _outside(by_count[n, False], by_count[n, True]) == both, n
    # moving_shapes: the moving shape, and growing shapes' smallest and largest frames.
    for motion in ("left", "bounce", "grow"):
        frames = {
            s: [moving_shapes.clip_objects(rng, motion, 32, 9, s) for _ in range(200)]
            for s in (False, True)
        }
        for frame in (0, -1):
            found = {s: [clip[frame].radius for clip in frames[s]] for s in frames}
            assert any(_outside(found[False], found[True])), (motion, frame)
    # Backgrounds: noise and textures rougher than any in training (neighbouring
    # pixels' differences).
    rough = {
        s: [np.std(np.diff(scenes.background(rng, 32, s), axis=1)) for _ in range(200)]
        for s in (False, True)
    }
    assert max(rough[False]) < min(rough[True]), (max(rough[False]), min(rough[True]))


def test_scene_rendering_is_seeded():
    a = scenes.render(
        np.random.default_rng(5), [scenes.random_object(np.random.default_rng(1), 32)], 32
    )
    b = scenes.render(
        np.random.default_rng(5), [scenes.random_object(np.random.default_rng(1), 32)], 32
    )
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and a.shape == (32, 32, 3)


def test_image_folder(image_folder):
    data = image_data.load(str(image_folder), image_size=24)
    assert data.class_names == ["circle", "square"]
    assert data.image_shape == (24, 24, 3)
    assert sum(data.num_examples.values()) == 20
    image, label = next(iter(data.train))
    assert image.shape == (24, 24, 3) and image.dtype == tf.uint8


def test_a_folder_loads_at_its_images_own_small_size_and_channels(image_folder, tmp_path):
    # 40x40 colour images: their own size, three channels (no blowing up to 64).
    data = image_data.load(str(image_folder))
    assert data.image_shape == (40, 40, 3)
    # Greyscale images of one size, as PNG, JPEG and GIF: one channel, as they are.
    from PIL import Image

    rng = np.random.default_rng(0)
    grey = {}
    for label in ("zero", "one"):
        (tmp_path / "grey" / label).mkdir(parents=True)
        for i, fmt in enumerate(["png", "png", "gif", "jpeg"]):
            pixels = rng.integers(0, 256, (28, 20), dtype=np.uint8)
            path = tmp_path / "grey" / label / f"{i}.{fmt}"
            Image.fromarray(pixels, mode="L").save(path)
            grey[str(path)] = pixels
    data = image_data.load(str(tmp_path / "grey"))
    assert data.image_shape == (28, 20, 1)
    images = [x.numpy() for x, _ in data.train.concatenate(data.validation).concatenate(data.test)]
    assert all(x.shape == (28, 20, 1) and x.dtype == np.uint8 for x in images)

    # Lossless formats hold their pixels exactly.
    def read(name):
        return image_data.decode_image(tf.io.read_file(str(tmp_path / "grey" / "one" / name)), 1)

    png = read("0.png").numpy()
    np.testing.assert_array_equal(png[..., 0], grey[str(tmp_path / "grey" / "one" / "0.png")])
    gif = read("2.gif").numpy()
    np.testing.assert_array_equal(gif[..., 0], grey[str(tmp_path / "grey" / "one" / "2.gif")])
    # A colour image among them makes the folder colour; sizes that differ, or one
    # larger than 64, load at 64x64.
    write_image(tmp_path / "grey" / "one" / "colour.png", np.zeros((28, 20, 3), np.uint8))
    assert image_data.load(str(tmp_path / "grey")).image_shape == (28, 20, 3)
    write_image(tmp_path / "grey" / "one" / "big.png", np.zeros((30, 20, 3), np.uint8))
    assert image_data.folder_image_format(str(tmp_path / "grey")) == ((64, 64), 3)
    for path in (tmp_path / "grey").glob("*/*"):
        path.unlink()
    for label in ("zero", "one"):
        write_image(tmp_path / "grey" / label / "big.png", np.zeros((96, 96, 3), np.uint8))
    assert image_data.folder_image_format(str(tmp_path / "grey")) == ((64, 64), 3)
    # Images too small for the default cnn's three pooled blocks are scaled up whole.
    for path in (tmp_path / "grey").glob("*/*"):
        path.unlink()
    for label in ("zero", "one"):
        write_image(tmp_path / "grey" / label / "tiny.png", np.zeros((8, 6, 3), np.uint8))
    assert image_data.folder_image_format(str(tmp_path / "grey")) == ((24, 18), 3)
    # image_size set by the user wins.
    assert image_data.load(str(image_folder), image_size=24).image_shape == (24, 24, 3)


def test_corrupt_image_is_named(image_folder):
    (image_folder / "square" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"broken\.png"):
        image_data.load(str(image_folder))


def test_corrupt_images_can_be_skipped_and_counted(image_folder, capsys):
    (image_folder / "square" / "broken.png").write_bytes(b"not an image")
    data = image_data.load(str(image_folder), skip_bad_records=True)
    assert sum(data.num_examples.values()) == 20
    assert "Skipped 1 unreadable image" in capsys.readouterr().err


def _pixels(split):
    """The images of a split, as a sorted list of byte strings (order-free)."""
    return sorted(image.numpy().tobytes() for image, _ in split)


def test_a_folder_is_decoded_in_the_pipeline_and_cached_as_the_setting_says(image_folder):
    # Without a cache every epoch reads the files: an image replaced after loading is
    # what the next pass sees (a loader that held the decoded folder would not see it).
    plain = image_data.load(str(image_folder), cache=streams.Cache("none"))
    cached = image_data.load(str(image_folder), cache=streams.Cache("memory"))
    before = _pixels(plain.train)
    assert _pixels(cached.train) == before
    for data in (plain, cached):  # Of known length: the trainer counts its steps.
        assert all(
            getattr(data, name).cardinality() == count for name, count in data.num_examples.items()
        )
    new = tf.io.encode_png(np.full((40, 40, 3), 7, np.uint8)).numpy()
    for path in image_folder.glob("*/*"):
        path.write_bytes(new)  # The same names, new pixels (PNG decodes by content).
    after = _pixels(plain.train)
    assert after != before and all(set(image) == {7} for image in after)
    assert _pixels(cached.train) == before  # Filled when it was loaded.
    # `auto` keeps splits in memory under the limit, on disk above it.
    assert streams.Cache("auto", memory_limit=10**6).choose(10**5) == "memory"
    assert streams.Cache("auto", memory_limit=10**6).choose(10**7) == "disk"
    assert streams.shuffle_buffer(plain.train.element_spec, 16_000) == 10_000
    big = tf.TensorSpec((224, 224, 3), tf.uint8), tf.TensorSpec((), tf.int64)
    assert streams.shuffle_buffer(big, 16_000) == streams.SHUFFLE_BUFFER_BYTES // (
        224 * 224 * 3 + 8
    )


def test_the_disk_cache_is_reused_and_rebuilt_when_a_file_changes(
    image_folder, tmp_path_factory, monkeypatch
):
    cache_dir = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv(streams.CACHE_ENV, str(cache_dir))
    disk = streams.Cache("disk")
    # (The size given: garbage headers below would change the folder's own size.)
    first = image_data.load(str(image_folder), image_size=24, cache=disk)
    before = {name: _pixels(getattr(first, name)) for name in ("train", "validation", "test")}
    # Every file made undecodable, its size and modification time kept: the cache
    # answers, so nothing was decoded.
    files = sorted(image_folder.glob("*/*"))
    for path in files:
        stat = path.stat()
        path.write_bytes(b"x" * stat.st_size)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = image_data.load(str(image_folder), image_size=24, cache=disk)
    assert again.num_examples == first.num_examples
    assert again.train.cardinality() == first.num_examples["train"]
    assert {name: _pixels(getattr(again, name)) for name in before} == before
    (cache_root,) = cache_dir.iterdir()
    (stale,) = cache_root.iterdir()
    # A file that changes (new modification time) makes the cache stale: rebuilt,
    # and here the garbage is named.
    os.utime(files[0], ns=(files[0].stat().st_atime_ns, files[0].stat().st_mtime_ns + 10**9))
    with pytest.raises(DataError, match="is corrupt"):
        image_data.load(str(image_folder), image_size=24, cache=disk)
    # The stale cache replaced by the new one, which lists the files it skipped: the
    # next run that skips them decodes nothing.
    (rebuilt,) = cache_root.iterdir()
    assert rebuilt.name != stale.name
    with pytest.raises(DataError, match="has no readable images left"):
        image_data.load(str(image_folder), image_size=24, cache=disk, skip_bad_records=True)


def test_a_disk_cache_is_prepared_whole_or_not_at_all(tmp_path, monkeypatch):
    monkeypatch.setenv(streams.CACHE_ENV, str(tmp_path))
    calls = []

    def prepare(folder, fail=False):
        calls.append(folder)
        with open(os.path.join(folder, "part"), "w") as f:
            f.write("half")
        if fail:
            raise KeyboardInterrupt  # Interrupted while writing.
        return {"written": 1}

    with pytest.raises(KeyboardInterrupt):
        streams.prepared("source", "key", lambda folder: prepare(folder, fail=True))
    (home,) = tmp_path.iterdir()
    assert list(home.iterdir()) == []  # Nothing half-written is left.
    folder, manifest = streams.prepared("source", "key", prepare)
    assert manifest == {"written": 1} and os.path.basename(folder) == "key"
    assert streams.prepared("source", "key", prepare) == (folder, manifest)
    assert len(calls) == 2  # The finished cache is reused, not prepared again.
    streams.prepared("source", "new-key", prepare)  # The files changed: the old goes.
    assert [p.name for p in home.iterdir()] == ["new-key"]


def test_a_file_removed_during_training_is_a_clear_error(
    image_folder, tmp_path_factory, monkeypatch
):
    load = image_data.load

    def load_then_remove(*args, **kwargs):
        data = load(*args, **kwargs)
        for path in image_folder.glob("*/*"):
            path.unlink()
        return data

    monkeypatch.setattr(image_data, "load", load_then_remove)
    with pytest.raises(
        DataError, match=r"Reading the data failed during the run \(.*No such file"
    ):
        kerasnotes.train(
            "cnn",
            overrides=[f"dataset={image_folder}", "cache=none", "epochs=1", "batch_size=4"],
            run_dir=str(tmp_path_factory.mktemp("run") / "run"),
            export_dir=None,
            echo=lambda line: None,
        )


def test_only_failures_to_read_files_become_that_error():
    reading = (
        "Error in user-defined function passed to ParallelMapDatasetV2:23 transformation "
        "with iterator: Iterator::Root::ParallelMapV2: /data/a.png; No such file or "
        "directory\n\t [[{{node ReadFile}}]]\n\t [[IteratorGetNext]]"
    )
    with pytest.raises(DataError, match=r"\(/data/a.png; No such file or directory\)"):
        with streams.read_failures_are_clear_errors():
            raise tf.errors.NotFoundError(None, None, reading)
    # A model's own error in the training step (its function's name has "iterator" in
    # it) is not a data file's.
    model = "Matrix size-incompatible\n\t [[{{node MatMul}}]] [Op:__inference_multi_step_on_iterator_1]"
    with pytest.raises(tf.errors.InvalidArgumentError):
        with streams.read_failures_are_clear_errors():
            raise tf.errors.InvalidArgumentError(None, None, model)


def test_empty_folder(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        image_data.load(str(tmp_path))


def test_missing_path():
    with pytest.raises(DataError, match="does not exist"):
        image_data.load("./no/such/folder")


def test_unknown_tfds_name():
    with pytest.raises(DataError, match="Unknown dataset 'no_such_dataset'"):
        image_data.load("no_such_dataset")


def test_offline_download_gives_a_clear_message(monkeypatch):
    def offline(self, *args, **kwargs):
        raise ConnectionError("Failed to establish a new connection: [Errno -3]")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(DataError, match="'mnist' is not prepared.*could not be downloaded"):
        image_data.load("mnist")


@pytest.mark.parametrize(
    "name, shape, num_classes",
    [("mnist", (28, 28, 1), 10), ("fashion_mnist", (28, 28, 1), 10), ("cifar10", (32, 32, 3), 10)],
)
def test_tfds_names_with_mock_data(name, shape, num_classes):
    with tfds.testing.mock_data(num_examples=20):
        data = image_data.load(name)
        image, label = next(iter(data.train))
        assert data.image_shape == shape
        assert len(data.class_names) == num_classes
        assert tuple(image.shape) == shape
        resized = image_data.load(name, image_size=16)
        assert tuple(next(iter(resized.test))[0].shape) == (16, 16, shape[2])


@pytest.mark.parametrize(
    "splits, parts",
    [
        (["train", "validation", "test"], ("train", "validation", "test")),
        (["train", "test"], ("train[:90%]", "train[90%:100%]", "test")),
        (["train", "dev"], ("train[:90%]", "dev", "train[90%:100%]")),
        (["train"], ("train[:80%]", "train[80%:90%]", "train[90%:100%]")),
    ],
)
def test_a_missing_held_out_split_is_cut_from_train_never_borrowed(splits, parts):
    # Validation chooses the kept epoch: a test split that were validation would report
    # figures chosen on it.
    info = types.SimpleNamespace(splits=dict.fromkeys(splits))
    found = downloads.tfds_parts(info)
    assert (found["train"], found["validation"], found["test"]) == parts
