"""The `video` family: moving_shapes clips, clip folders, tfds video datasets, training,
exports that label GIF bytes, and `kerasnotes predict` on clip files."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from kerasnotes.data import moving_shapes, videos
from kerasnotes.errors import DataError
from kerasnotes.tasks.video_classification import encode_gif
from tests.conftest import assert_one_line_error, run_cli, train_quietly

# Data ------------------------------------------------------------------------------------


def _track(objects):
    return [(o.center_x, o.center_y, o.radius) if o else None for o in objects]


@pytest.mark.parametrize("motion", moving_shapes.MOTIONS)
def test_each_motion_is_what_its_name_says(motion):
    rng = np.random.default_rng(7)
    for _ in range(20):
        track = _track(moving_shapes.clip_objects(rng, motion, 32, 8))
        shown = [t for t in track if t]
        for x, y, r in shown:  # Always inside the image.
            assert r < x < 32 - r and r < y < 32 - r
        (x0, y0, r0), (x1, y1, r1) = shown[0], shown[-1]
        if motion in moving_shapes.DIRECTIONS:
            dx, dy = moving_shapes.DIRECTIONS[motion]
            assert (x1 - x0) * dx + (y1 - y0) * dy > 3 and r0 == r1
        elif motion == "grow":
            assert r1 > 1.8 * r0 and (x0, y0) == (x1, y1)
        elif motion == "shrink":
            assert r0 > 1.8 * r1
        elif motion == "bounce":
            middle = track[len(track) // 2 - 1]
            assert (x0, y0) == pytest.approx((x1, y1))
            assert abs(middle[0] - x0) + abs(middle[1] - y0) > 3
        else:  # appear / vanish: absent at one end, present at the other.
            present = [t is not None for t in track]
            assert present[-1] == (motion == "appear") and present[0] == (motion == "vanish")
            assert 2 <= present.count(False) <= 6


def test_the_middle_frame_tells_neither_direction_nor_growth():
    """Where the shape is, and how large, in the frame the single-frame baseline sees is
    spread alike for a label and its time reversal (the first frame is not)."""
    rng = np.random.default_rng(0)

    def middle(motion, what):
        return np.mean(
            [getattr(moving_shapes.clip_objects(rng, motion, 32, 9)[4], what) for _ in range(400)]
        )

    assert abs(middle("left", "center_x") - middle("right", "center_x")) < 0.5
    assert abs(middle("up", "center_y") - middle("down", "center_y")) < 0.5
    assert abs(middle("grow", "radius") - middle("shrink", "radius")) < 0.3
    first = [np.mean([moving_shapes.clip_objects(rng, m, 32, 9)[0].radius for _ in range(50)])
             for m in ("grow", "shrink")]  # fmt: skip
    assert first[1] > 2 * first[0]


def test_moving_shapes_builds_balanced_splits_of_new_scenes():
    data = videos.load("moving_shapes/small")
    assert data.clip_shape == (9, 24, 24, 3)
    assert data.class_names == list(moving_shapes.MOTIONS)
    assert data.num_examples == {"train": 720, "validation": 180, "test": 180, "shifted": 180}
    train = [(c.numpy(), int(y)) for c, y in data.train.take(18)]
    test = [(c.numpy(), int(y)) for c, y in data.test.take(18)]
    assert train[0][0].shape == (9, 24, 24, 3) and train[0][0].dtype == np.uint8
    labels = [int(y) for _, y in data.train.as_numpy_iterator()]
    assert np.bincount(labels).tolist() == [80] * 9
    assert not any(np.array_equal(a, b) for a, _ in train for b, _ in test)
    again = videos.load("moving_shapes/small", num_frames=4, image_size=16)
    assert again.clip_shape == (4, 16, 16, 3)
    assert next(iter(again.test))[0].shape == (4, 16, 16, 3)


def test_frames_are_sampled_evenly_from_first_to_last():
    assert videos.frame_indices(20, 5).tolist() == [0, 5, 10, 14, 19]
    assert videos.frame_indices(3, 5).tolist() == [0, 0, 1, 2, 2]
    assert videos.frame_indices(tf.constant(20), 5).numpy().tolist() == [0, 5, 10, 14, 19]


def _write_clip(path, clip):
    """`clip` encoded by FFmpeg in the container its extension names (VP8 in WebM)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx" if path.suffix == ".webm" else "mpeg4", rate=8)
        stream.width, stream.height = clip.shape[2], clip.shape[1]
        stream.pix_fmt = "yuv420p"
        for frame in clip:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


@pytest.fixture
def clip_folder(tmp_path):
    """Two classes of moving_shapes clips, as GIFs and one MP4 per class."""
    rng = np.random.default_rng(0)
    for motion in ("left", "right"):
        (tmp_path / motion).mkdir()
        for i in range(6):
            clip = moving_shapes.render_clip(
                rng, moving_shapes.clip_objects(rng, motion, 32, 10), 32
            )
            if i == 0:
                _write_clip(tmp_path / motion / "clip0.mp4", clip)
            else:
                (tmp_path / motion / f"clip{i}.gif").write_bytes(encode_gif(clip))
    return tmp_path


def test_a_folder_of_gif_and_mp4_clips_loads(clip_folder):
    data = videos.load(str(clip_folder), image_size=24, num_frames=5)
    assert data.class_names == ["left", "right"]
    assert data.clip_shape == (5, 24, 24, 3)
    assert sum(data.num_examples.values()) == 12
    clip, _ = next(iter(data.train))
    assert clip.shape == (5, 24, 24, 3) and clip.dtype == tf.uint8


def test_gif_and_ffmpeg_clips_decode_to_their_frames(tmp_path):
    """Every format is lossy (a palette, a video codec); each stays near the frames."""
    rng = np.random.default_rng(3)
    clip = moving_shapes.render_clip(rng, moving_shapes.clip_objects(rng, "grow", 32, 6), 32)
    names = [f"a{extension}" for extension in videos.FFMPEG_EXTENSIONS]
    for name in names:
        _write_clip(tmp_path / name, clip)
    (tmp_path / "a.gif").write_bytes(encode_gif(clip))
    for name in [*names, "a.gif"]:
        decoded = videos.read_clip(str(tmp_path / name), 6, (32, 32))
        assert decoded.shape == (6, 32, 32, 3) and decoded.dtype == np.uint8
        assert np.mean(np.abs(decoded.astype(float) - clip)) < 12, name


def test_a_corrupt_clip_is_named_or_skipped_and_counted(clip_folder, capsys):
    (clip_folder / "right" / "broken.gif").write_bytes(b"GIF89a not really")
    (clip_folder / "right" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 nope")
    with pytest.raises(DataError, match=r"broken\.(gif|mp4)"):
        videos.load(str(clip_folder))
    _write_sound_only(clip_folder / "left" / "speech.mp4")
    data = videos.load(str(clip_folder), skip_bad_records=True)
    assert sum(data.num_examples.values()) == 12
    assert "Skipped 3 unreadable clip(s)" in capsys.readouterr().err
    (clip_folder / "right" / "broken.gif").unlink()
    (clip_folder / "right" / "broken.mp4").unlink()
    with pytest.raises(DataError, match=r"speech\.mp4.*no video stream"):
        videos.load(str(clip_folder))


def _write_sound_only(path):
    """An MP4 holding an AAC sound and no video stream."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)


def test_folders_without_clips_or_classes_are_clear_errors(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match="holds no clips"):
        videos.load(str(tmp_path))
    with pytest.raises(DataError, match="does not exist"):
        videos.load(str(tmp_path / "missing") + "/")


def test_tfds_ucf101_with_mock_data_and_moving_mnist_is_refused():
    with tfds.testing.mock_data(num_examples=6):
        data = videos.load("ucf101", image_size=16, num_frames=4)
        clip, label = next(iter(data.train))
        assert data.clip_shape == (4, 16, 16, 3) and tuple(clip.shape) == (4, 16, 16, 3)
        assert len(data.class_names) == 101
        with pytest.raises(DataError, match="class label"):
            videos.load("moving_mnist", image_size=16, num_frames=4)


# Training, measuring and serving ----------------------------------------------------------

QUICK_VIDEO = ["dataset=moving_shapes/small", "epochs=8", "batch_size=32", "learning_rate=0.003"]


@pytest.fixture(scope="module")
def trained_video(tmp_path_factory):
    return train_quietly("video", QUICK_VIDEO, tmp_path_factory.mktemp("video"))


def test_video_learns_the_motions(trained_video):
    metrics = trained_video.metrics
    assert metrics["accuracy"] > 0.6, metrics  # Chance: 1/9.
    # Every class counts alike in macro F1: a class left out would cost it a ninth or
    # an eighth. Measured: 0.79 accuracy, 0.785 macro F1 (Xeon, 2 cores).
    assert metrics["macro_f1"] > 0.6 and metrics["macro_f1"] > metrics["accuracy"] - 0.1
    for plot in ("label_confusion.png", "clips.png", "learning_curves.png"):
        assert os.path.isfile(os.path.join(trained_video.run_dir, plot)), plot


TF_ONLY = """
import json, sys
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
gifs = [open(path, "rb").read() for path in sys.argv[2:]]
out = serve(video_bytes=tf.constant(gifs))
print(json.dumps([label.decode() for label in out["label"].numpy()]))
"""


def test_a_tensorflow_only_process_labels_gif_bytes(trained_video, tmp_path):
    data = videos.load("moving_shapes/small")
    clips = [(c.numpy(), data.class_names[int(y)]) for c, y in data.test.take(9)]
    files = []
    for i, (clip, _) in enumerate(clips):
        files.append(tmp_path / f"{i}.gif")
        files[-1].write_bytes(encode_gif(clip))
    proc = subprocess.run(
        [sys.executable, "-P", "-c", TF_ONLY, trained_video.export_dir, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    labels = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(labels) == 9 and set(labels) <= set(data.class_names)
    assert np.mean([got == want for got, (_, want) in zip(labels, clips, strict=True)]) > 0.5


def test_predict_takes_gif_and_mp4_files_and_names_bad_ones(trained_video, clip_folder):
    gif, mp4 = clip_folder / "left" / "clip1.gif", clip_folder / "left" / "clip0.mp4"
    proc = run_cli("predict", trained_video.export_dir, str(gif), str(mp4))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line.split("\t") for line in proc.stdout.strip().splitlines()]
    assert [line[0] for line in lines] == [str(gif), str(mp4)]
    # A GIF goes to the export as it is: the CLI says what the export says.
    serve = tf.saved_model.load(trained_video.export_dir).signatures["serving_default"]
    out = serve(video_bytes=tf.constant([gif.read_bytes()]))
    assert lines[0][1] == out["label"].numpy()[0].decode()
    assert float(lines[0][2]) == pytest.approx(float(out["scores"].numpy()[0].max()), abs=1e-3)
    (clip_folder / "bad.gif").write_bytes(b"GIF89a nothing")
    bad = run_cli("predict", trained_video.export_dir, str(clip_folder / "bad.gif"))
    assert_one_line_error(bad, "Corrupt or unsupported clip", "bad.gif")
    # Inputs of the wrong kind: a photo (a clip of one frame to a decoder, once labelled)
    # and a sound in a video container (no video stream) are named, not labelled.
    from PIL import Image

    Image.new("RGB", (32, 32), "red").save(clip_folder / "photo.jpg")
    bad = run_cli("predict", trained_video.export_dir, str(clip_folder / "photo.jpg"))
    assert_one_line_error(bad, "Unsupported clip", "photo.jpg", "expected an animated GIF")
    _write_sound_only(clip_folder / "speech.mp4")
    bad = run_cli("predict", trained_video.export_dir, str(clip_folder / "speech.mp4"))
    assert_one_line_error(bad, "speech.mp4", "no video stream")


# The model ---------------------------------------------------------------------------------


def test_a_keras_applications_backbone_encodes_frames_frozen_or_fine_tuned():
    import kerasnotes

    options = dict(input_shape=(2, 32, 32, 3), num_classes=3, encoder="mobilenet_v2")
    tuned = kerasnotes.create_model("video", **options)
    frozen = kerasnotes.create_model("video", trainable_encoder=False, **options)
    encoder_weights = frozen.get_layer("frames_encoded").layer.count_params()
    assert len(frozen.trainable_weights) < len(tuned.trainable_weights)
    trainable = sum(int(np.prod(w.shape)) for w in frozen.trainable_weights)
    assert trainable == frozen.count_params() - encoder_weights
    clips = np.random.default_rng(0).uniform(0, 255, (2, 2, 32, 32, 3)).astype("float32")
    assert frozen(clips).shape == (2, 3)


@pytest.mark.parametrize("head", ["lstm", "average", "max", "conv1d", "single_frame"])
def test_every_head_builds_and_trains_a_step(head):
    import keras

    import kerasnotes

    model = kerasnotes.create_model(
        "video", input_shape=(4, 16, 16, 3), num_classes=3, encoder_filters=[8], head=head,
        bidirectional=head == "lstm",
    )  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    clips = np.random.default_rng(0).uniform(0, 255, (4, 4, 16, 16, 3)).astype("float32")
    loss = model.train_on_batch(clips, np.array([0, 1, 2, 0]))
    assert np.isfinite(loss) and model(clips).shape == (4, 3)


def test_bad_video_options_are_clear_errors():
    import kerasnotes

    with pytest.raises(ValueError, match="head"):
        kerasnotes.create_model("video", head="transformer")
    with pytest.raises(ValueError, match="bidirectional"):
        kerasnotes.create_model("video", head="average", bidirectional=True)
    with pytest.raises(ValueError, match="input_shape"):
        kerasnotes.create_model("video", input_shape=(32, 32, 3))
