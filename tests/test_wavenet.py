"""The `wavenet` family: the embedded signals, WAV folders, tfds audio datasets, the
dilated causal stack, training, exports that label WAV bytes, and `kerasnotes predict`
on WAV files."""

import json
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import kerasnotes
from kerasnotes.data import signals, waveforms
from kerasnotes.errors import DataError
from kerasnotes.models.wavenet import (
    describe_receptive_field,
    frame_stride_for,
    layer_dilations,
    receptive_field,
    receptive_field_of,
)
from tests.conftest import assert_one_line_error, run_cli, train_quietly

# Data ------------------------------------------------------------------------------------


def _dominant_frequency(wave, start, stop):
    part = wave[start:stop] * np.hanning(stop - start)
    spectrum = np.abs(np.fft.rfft(part))
    return np.argmax(spectrum) * signals.SAMPLE_RATE / (stop - start)


@pytest.mark.parametrize("kind", ["chirp_up", "chirp_down"])
def test_a_chirp_sweeps_its_way_and_its_reversal_the_other(kind):
    rng = np.random.default_rng(1)
    for _ in range(10):
        wave = signals.synthesize(rng, kind, 2048)
        first, last = _dominant_frequency(wave, 0, 512), _dominant_frequency(wave, 1536, 2048)
        assert (last > first + 300) == (kind == "chirp_up"), (first, last)


def test_sounds_are_bounded_and_their_loudness_tells_nothing():
    rng = np.random.default_rng(2)
    peaks = {kind: [] for kind in signals.CLASSES}
    for kind in signals.CLASSES:
        for _ in range(40):
            wave = signals.synthesize(rng, kind, 1024)
            assert wave.shape == (1024,) and wave.dtype == np.float32
            assert np.abs(wave).max() <= 1
            peaks[kind].append(np.abs(wave).max())
    medians = [np.median(p) for p in peaks.values()]
    assert max(medians) - min(medians) < 0.2, medians  # Levels are drawn alike.


def test_the_embedded_signals_are_balanced_and_reproducible():
    data = waveforms.load("signals/small")
    assert data.class_names == list(signals.CLASSES)
    assert data.waveform_shape == (512, 1) and data.sample_rate == signals.SAMPLE_RATE
    first = [(w.numpy(), int(y)) for w, y in data.test]
    again = [(w.numpy(), int(y)) for w, y in waveforms.load("signals/small").test]
    assert all(
        np.array_equal(a, b) and y == z for (a, y), (b, z) in zip(first, again, strict=True)
    )
    assert np.bincount([y for _, y in first]).tolist() == [25] * 8
    assert first[0][0].dtype == np.float32 and np.abs(first[0][0]).max() <= 1
    train = next(iter(data.train))[0].numpy()
    assert not any(np.array_equal(train, w) for w, _ in first)  # Held-out sounds are new.


def _write_wav(path, wave, rate, channels=1):
    wave = np.repeat(np.asarray(wave, np.float32)[:, None], channels, axis=1)
    path.write_bytes(waveforms.encode_wav(wave, rate))
    return path


@pytest.fixture
def wav_folder(tmp_path):
    """Tones and noise bursts at 8 kHz, one stereo file and one at 16 kHz per class."""
    rng = np.random.default_rng(0)
    for kind in ("tone", "noise_burst"):
        (tmp_path / kind).mkdir()
        for i in range(6):
            rate = 16000 if i == 0 else 8000
            wave = signals.synthesize(rng, kind, rate // 8)  # 125 ms
            _write_wav(tmp_path / kind / f"{i}.wav", wave, rate, channels=2 if i == 1 else 1)
    return tmp_path


def test_a_folder_of_wav_files_loads_resampled_and_mixed_down(wav_folder):
    data = waveforms.load(str(wav_folder), num_samples=800)
    assert data.class_names == ["noise_burst", "tone"]
    assert data.sample_rate == 8000 and data.waveform_shape == (800, 1)
    assert sum(data.num_examples.values()) == 12
    wave, _ = next(iter(data.train))
    assert wave.shape == (800, 1) and wave.dtype == tf.float32
    # The 16 kHz file is resampled to 1,000 samples of 8 kHz: a tone keeps its pitch.
    resampled = waveforms.read_wav(str(wav_folder / "tone" / "0.wav"), 1200, 8000)
    original = waveforms.read_wav(str(wav_folder / "tone" / "0.wav"), 2000, 16000)
    assert np.all(resampled[1000:] == 0)  # Padded with silence after its 125 ms.
    pitch = _dominant_frequency(original[:, 0], 0, 2000) * 2  # At 16 kHz: twice the bins.
    assert _dominant_frequency(resampled[:, 0], 0, 1000) == pytest.approx(pitch, abs=20)


def test_a_corrupt_wav_is_named_or_skipped_and_counted(wav_folder, capsys):
    (wav_folder / "tone" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt nope")
    with pytest.raises(DataError, match=r"broken\.wav"):
        waveforms.load(str(wav_folder))
    data = waveforms.load(str(wav_folder), skip_bad_records=True)
    assert sum(data.num_examples.values()) == 12
    assert "Skipped 1 unreadable sound(s)" in capsys.readouterr().err


def test_folders_without_sounds_are_clear_errors(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match="holds no sounds"):
        waveforms.load(str(tmp_path))
    with pytest.raises(DataError, match="does not exist"):
        waveforms.load(str(tmp_path / "missing") + "/")


@pytest.mark.parametrize("name, rate, classes", [("spoken_digit", 8000, 10), ("speech_commands", 16000, 12)])  # fmt: skip
def test_tfds_audio_datasets_with_mock_data(name, rate, classes):
    with tfds.testing.mock_data(num_examples=4):
        data = waveforms.load(name)
        wave, label = next(iter(data.train))
        assert data.sample_rate == rate and data.waveform_shape == (rate, 1)
        assert tuple(wave.shape) == (rate, 1) and len(data.class_names) == classes
        assert np.abs(wave.numpy()).max() <= 1
        with pytest.raises(DataError, match="sample_rate"):
            waveforms.load(name, sample_rate=rate + 1)


# The model ---------------------------------------------------------------------------------


def test_the_receptive_field_is_read_from_the_graph():
    for options, expected in [
        ({}, 1025),  # 1 + (1 + 1 + 2 + ... + 512)
        ({"dilation_growth": 1}, 12),  # The plain causal CNN: linear in depth.
        ({"num_blocks": 2, "layers_per_block": 4, "kernel_size": 3}, 63),
    ]:
        model = kerasnotes.create_model("wavenet", input_shape=(1024, 1), **options)
        dilations = layer_dilations(
            options.get("num_blocks", 1),
            options.get("layers_per_block", 10),
            options.get("dilation_growth", 2),
        )
        assert receptive_field_of(model) == receptive_field(
            options.get("kernel_size", 2), dilations
        )
        assert receptive_field_of(model) == expected
    assert receptive_field_of(kerasnotes.create_model("cnn")) is None


def test_long_sounds_are_framed_and_the_field_counts_the_frames():
    assert [frame_stride_for(n) for n in (256, 1024, 1025, 8000, 16000)] == [1, 1, 2, 8, 16]
    second = kerasnotes.create_model("wavenet", input_shape=(8000, 1), layers_per_block=4)
    assert second.get_layer("frames").output.shape == (None, 1000, 32)
    # The frames' 16 samples, then every tap of the stack 8 samples apart.
    assert receptive_field_of(second) == 16 + 8 * (receptive_field(2, [1, 2, 4, 8]) - 1)
    assert describe_receptive_field(second) == "Receptive field: 144 samples (frames of 8 samples)"
    by_sample = kerasnotes.create_model("wavenet", input_shape=(8000, 1), frame_stride=1)
    assert "frames" not in [layer.name for layer in by_sample.layers]
    first = kerasnotes.create_model(
        "wavenet", input_shape=(1, 8000), data_format="channels_first", layers_per_block=4
    )
    assert receptive_field_of(first) == receptive_field_of(second)
    # Loudness does not matter: a sound and the same sound four times quieter score alike.
    sound = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 8000, 1)).astype("float32")
    assert np.allclose(second(sound), second(sound / 4), atol=1e-3)
    with pytest.raises(ValueError, match="frame_stride"):
        kerasnotes.create_model("wavenet", frame_stride=-2)


def test_the_stack_is_causal_and_sees_exactly_its_receptive_field():
    import keras

    model = kerasnotes.create_model("wavenet", input_shape=(128, 1), layers_per_block=5)
    skips = keras.Model(model.input, model.get_layer("skips").output)
    field = receptive_field_of(model)  # 1 + (1 + 1 + 2 + 4 + 8 + 16) = 33
    x = np.random.default_rng(0).uniform(-1, 1, (1, 128, 1)).astype("float32")
    changed = x.copy()
    changed[0, 60] += 0.5
    moved = np.abs(np.asarray(skips(changed)) - np.asarray(skips(x)))[0].max(axis=-1) > 1e-6
    assert not moved[:60].any()  # Nothing before the change moves...
    assert moved[60 : 60 + field].all()  # ...everything it can reach does,
    assert not moved[60 + field :].any()  # and nothing beyond.


def test_bad_wavenet_options_are_clear_errors():
    with pytest.raises(ValueError, match="pooling"):
        kerasnotes.create_model("wavenet", pooling="median")
    with pytest.raises(ValueError, match="input_shape"):
        kerasnotes.create_model("wavenet", input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="dilation_growth"):
        kerasnotes.create_model("wavenet", dilation_growth=0)


# Training, measuring and serving ----------------------------------------------------------

QUICK_WAVENET = [
    "dataset=signals/small",
    "layers_per_block=8",
    "residual_channels=16",
    "skip_channels=32",
    "epochs=6",
    "learning_rate=0.005",
    # The settings the bars below were measured with (the defaults are now max pooling
    # and batches of 16, for longer sounds).
    "pooling=average",
    "batch_size=32",
]


@pytest.fixture(scope="module")
def trained_wavenet(tmp_path_factory):
    return train_quietly("wavenet", QUICK_WAVENET, tmp_path_factory.mktemp("wavenet"))


def test_wavenet_learns_the_signals(trained_wavenet):
    metrics = trained_wavenet.metrics
    # Above the nearest weaker model: the same stack without dilations (a plain causal
    # CNN, dilation_growth=1, receptive field 9 samples instead of 256) scores 0.845
    # accuracy and 0.837 macro F1 on the same split and settings; this one 0.905 and
    # 0.904 (Xeon, 2 cores). Chance: 1/8.
    assert metrics["accuracy"] > 0.87, metrics
    # Every class counts alike in macro F1: a class left out would cost it an eighth.
    assert metrics["macro_f1"] > 0.86 and metrics["macro_f1"] > metrics["accuracy"] - 0.05
    for plot in ("label_confusion.png", "sounds.png", "learning_curves.png"):
        assert os.path.isfile(os.path.join(trained_wavenet.run_dir, plot)), plot


TF_ONLY = """
import json, sys
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
wavs = [open(path, "rb").read() for path in sys.argv[2:]]
out = serve(audio_bytes=tf.constant(wavs))
assert "kerasnotes" not in sys.modules
print(json.dumps([label.decode() for label in out["label"].numpy()]))
"""


def test_a_tensorflow_only_process_labels_wav_bytes(trained_wavenet, tmp_path):
    data = waveforms.load("signals/small")
    sounds = [(w.numpy(), data.class_names[int(y)]) for w, y in data.test.take(16)]
    files = [
        _write_wav(tmp_path / f"{i}.wav", wave[:, 0], 8000, channels=1 + i % 2)
        for i, (wave, _) in enumerate(sounds)
    ]
    proc = subprocess.run(
        [sys.executable, "-P", "-c", TF_ONLY, trained_wavenet.export_dir, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    labels = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(labels) == 16 and set(labels) <= set(data.class_names)
    assert np.mean([got == want for got, (_, want) in zip(labels, sounds, strict=True)]) > 0.5


def test_predict_takes_wav_files_and_names_bad_ones(trained_wavenet, tmp_path):
    wave = signals.synthesize(np.random.default_rng(5), "tone", 700)  # Shorter: padded.
    good = _write_wav(tmp_path / "tone.wav", wave, 8000, channels=2)
    proc = run_cli("predict", trained_wavenet.export_dir, str(good))
    assert proc.returncode == 0, proc.stderr[-2000:]
    path, label, score = proc.stdout.strip().split("\t")
    assert path.endswith("tone.wav") and label in signals.CLASSES and 0 < float(score) <= 1
    fast = _write_wav(tmp_path / "fast.wav", wave, 16000)
    bad = run_cli("predict", trained_wavenet.export_dir, str(fast))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "fast.wav" in bad.stderr and "16000 Hz" in bad.stderr and "8000 Hz" in bad.stderr
    (tmp_path / "noise.wav").write_bytes(b"RIFF....WAVEnothing")
    bad = run_cli("predict", trained_wavenet.export_dir, str(tmp_path / "noise.wav"))
    assert bad.returncode == 2 and "noise.wav" in bad.stderr and "Traceback" not in bad.stderr
    # A WAV of no samples was once padded to silence and labelled.
    _write_wav(tmp_path / "silent.wav", np.zeros(0), 8000)
    bad = run_cli("predict", trained_wavenet.export_dir, str(tmp_path / "silent.wav"))
    assert_one_line_error(bad, "silent.wav", "it has no samples")


def _write_raw_wav(path, samples: bytes, width: int, rate: int, float_samples=False):
    """A mono WAV of `samples` (`width` bytes each), PCM or IEEE float, as recorders
    write them (the standard library writes PCM only)."""
    import struct

    fmt = struct.pack(
        "<HHIIHH", 3 if float_samples else 1, 1, rate, rate * width, width, width * 8
    )
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(samples))
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body) + len(samples)) + body + samples)
    return path


def test_24_bit_and_float_wavs_load_and_are_labelled(trained_wavenet, tmp_path):
    wave = signals.synthesize(np.random.default_rng(5), "square", 1024) * 0.9
    pcm24 = b"".join(int(v * 2**23).to_bytes(3, "little", signed=True) for v in wave)
    files = {
        "24bit": _write_raw_wav(tmp_path / "24bit.wav", pcm24, 3, 8000),
        "float": _write_raw_wav(
            tmp_path / "float.wav", wave.astype("<f4").tobytes(), 4, 8000, True
        ),
        "16bit": _write_wav(tmp_path / "16bit.wav", wave, 8000),
    }
    for name, path in files.items():  # TensorFlow's decoder reads only 16-bit PCM.
        got = waveforms.read_wav(str(path), None, 8000)[:, 0]
        np.testing.assert_allclose(got, wave, atol=1e-4, err_msg=name)
    assert waveforms.wav_rate(str(files["float"])) == 8000
    # predict gives the export, whose contract is 16-bit PCM, such files as 16-bit PCM.
    proc = run_cli("predict", trained_wavenet.export_dir, *map(str, files.values()))
    assert proc.returncode == 0, proc.stderr[-2000:]
    labels = [line.split("\t")[1] for line in proc.stdout.strip().splitlines()]
    assert len(labels) == 3 and len(set(labels)) == 1, labels


def test_a_wav_folder_trains_from_the_cli(wav_folder, tmp_path):
    proc = run_cli(
        "train", "wavenet", "--dataset", str(wav_folder), "--epochs", "1",
        "--set", "layers_per_block=3", "--run-dir", str(tmp_path / "run"), "--no-export",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    # One second at 8 kHz by default, framed 8 samples a step: 16 + 8 * (1 + 1 + 2 + 4).
    assert "Receptive field: 80 samples (frames of 8 samples)" in proc.stdout
    config = json.load(open(tmp_path / "run" / "data.json"))
    assert config["sample_rate"] == 8000 and config["waveform_shape"] == [8000, 1]


def test_spectrograms_of_padded_and_silent_sounds_draw_without_warnings(tmp_path):
    import warnings

    from kerasnotes import plots

    padded = np.zeros((8000, 1), np.float32)
    padded[:1000, 0] = np.sin(np.arange(1000) / 5)  # 125 ms of a tone, then silence
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # log10(0) of the silence was a RuntimeWarning
        plots.waveforms_and_spectrograms(
            [padded, np.zeros_like(padded)], ["tone", "silence"], 8000, str(tmp_path / "s.png")
        )
    assert os.path.getsize(tmp_path / "s.png") > 0


# Next-value modelling ------------------------------------------------------------------------


def test_levels_round_trip_mu_law_and_linear():
    from kerasnotes.data.series import from_levels, to_levels

    for quantization in ("mu_law", "linear"):
        levels = tf.range(256)
        values = from_levels(levels, 256, quantization)
        assert float(tf.reduce_min(values)) == -1 and float(tf.reduce_max(values)) == 1
        assert np.array_equal(to_levels(values, 256, quantization).numpy(), levels.numpy())
    # Mu-law spends its levels near zero: quiet samples get finer steps than loud ones.
    steps = np.diff(from_levels(tf.range(256), 256, "mu_law").numpy())
    assert steps[127] < steps[0] / 50


def test_queued_steps_give_the_whole_networks_scores():
    from kerasnotes.models.wavenet import QueuedGenerator

    model = kerasnotes.create_model(
        "wavenet-generator", num_levels=16, layers_per_block=4, kernel_size=3,
        residual_channels=8, skip_channels=8,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    for weight in model.weights:  # Non-zero biases, varied scores.
        weight.assign(rng.normal(0, 0.3, weight.shape))
    levels = rng.integers(0, 16, (2, 40)).astype("int32")
    whole = np.asarray(model(levels))
    generator = QueuedGenerator(model)
    for context in (1, 9):  # One sample of context, and a few.
        state = generator.initial_state(levels[:, :context])
        for t in range(context - 1, 40):
            logits, state, _ = generator.step(tf.constant(levels[:, t]), state)
            np.testing.assert_allclose(logits.numpy(), whole[:, t], atol=1e-5)
    assert np.abs(logits.numpy() - whole[:, -2]).max() > 0.1  # A step's own position.


def _write_series_csv(path, with_dates=False, rows=400):
    """Two noisy sines (periods 25 and 40 steps), optionally after a date column."""
    t = np.arange(rows)
    rng = np.random.default_rng(0)
    first = 20 + 5 * np.sin(2 * np.pi * t / 25) + rng.normal(0, 0.2, rows)
    second = 3 * np.sin(2 * np.pi * t / 40) + rng.normal(0, 0.1, rows)
    rows = [f"{a:.4f},{b:.4f}" for a, b in zip(first, second, strict=True)]
    if with_dates:
        rows = [f"2026-01-{i % 28 + 1:02d},{row}" for i, row in enumerate(rows)]
    path.write_text("\n".join([("date," if with_dates else "") + "load,wave", *rows]) + "\n")
    return path


@pytest.fixture
def series_csv(tmp_path):
    return _write_series_csv(tmp_path / "series.csv", with_dates=True)


def test_a_csv_of_series_is_scaled_and_split_in_time(series_csv, tmp_path):
    from kerasnotes.data import series

    data = series.load(str(series_csv))
    assert data.quantization == "linear" and data.sample_rate is None
    assert [len(s) for s in data.train] == [320, 320] and [len(s) for s in data.test] == [40, 40]
    assert data.scaling == "context"  # The values keep the file's units.
    assert data.test[0][0] == pytest.approx(float(series_csv.read_text().splitlines()[361].split(",")[1]), abs=1e-3)  # fmt: skip
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,x\n")
    with pytest.raises(DataError, match=r"line 3: 'x' in a numeric column.*skip_bad_records"):
        series.load(str(tmp_path / "bad.csv"))
    rows = [f"{i},{i * 2}" for i in range(30)]
    rows[4], rows[9] = "4,n/a", "9"  # Lines 6 and 11: a text value, a missing column.
    (tmp_path / "gaps.csv").write_text("a,b\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"gaps.csv' line 6: 'n/a'"):
        series.load(str(tmp_path / "gaps.csv"))
    kept = series.load(str(tmp_path / "gaps.csv"), skip_bad_records=True)
    values = np.concatenate([kept.train[0], kept.validation[0], kept.test[0]])
    restored = np.round(values).astype(int)
    assert restored.tolist() == [i for i in range(30) if i not in (4, 9)]
    (tmp_path / "short.csv").write_text("a\n1\n2\n3\n")
    with pytest.raises(DataError, match="too few"):
        series.load(str(tmp_path / "short.csv"))
    (tmp_path / "latin1.csv").write_bytes("temp\xe9rature\n1\n2\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.csv.*UTF-8.*byte offset 4"):
        series.load(str(tmp_path / "latin1.csv"))


def test_a_csv_of_series_is_read_as_a_stream(tmp_path):
    from kerasnotes.data import series

    path = tmp_path / "long.csv"
    with open(path, "w") as f:
        f.write("date,load,wave\n")
        for i in range(100_000):
            f.write(f"2020-01-{i % 28 + 1:02d},{20 + (i % 7) * 0.5},{(i % 13) - 6.5}\n")
    tracemalloc.start()
    try:
        columns = series.read_columns(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Only the values are held: reading the rows into lists first took 36 MB.
    assert peak < 15 * 2**20, f"{peak / 2**20:.1f} MB of Python objects"
    assert [name for name, _ in columns] == ["load", "wave"]
    assert columns[1][1][:14].tolist() == [*np.arange(13) - 6.5, -6.5]


def _windows(series, config):
    """Every window of `series`, as one array."""
    from kerasnotes.tasks.waveform_modelling import TASK

    windows, count = TASK.windows(series, config, batch_size=64)
    values = np.concatenate(list(windows.as_numpy_iterator()))
    assert len(values) == count
    return values


def test_every_column_of_a_csv_and_every_context_gets_the_same_share_of_levels(series_csv):
    from kerasnotes.data import series
    from kerasnotes.tasks.waveform_modelling import TASK

    data = series.load(str(series_csv))
    info = TASK.data_info(type("Data", (), {"series": data}))
    config = TASK.with_defaults(
        {"num_levels": 64, "window": 32, "kernel_size": 2, "num_blocks": 1,
         "layers_per_block": 5, "dilation_growth": 2}
    )  # fmt: skip
    field = TASK.receptive_field(config)
    for column in data.train:  # 'load' (20 +- 5) and 'wave' (0 +- 3)
        levels = np.asarray(TASK.window_levels(_windows([column], config), info, config))
        # One scale for the whole file gave 'wave' 15 of the 64 levels; scaled by its
        # context, each window's first receptive field spans half of them.
        spans = levels[:, :field].max(1) - levels[:, :field].min(1)
        assert set(spans) <= {31, 32}, spans
        assert levels.min() > 0 and levels.max() < 63  # Room around the context's range.
    # The same shape at another level and amplitude gets the same levels.
    values = _windows([data.train[1]], config)
    shifted = np.asarray(TASK.window_levels(1000 + 40 * values, info, config))
    np.testing.assert_array_equal(shifted, TASK.window_levels(values, info, config))


@pytest.mark.parametrize("setting", ["temperature=-1", "top_p=2", "top_k=-1", "temperature=nan"])
def test_bad_sampling_settings_stop_the_generator_before_training(series_csv, tmp_path, setting):
    proc = run_cli(
        "train", "wavenet-generator", "--set", f"dataset={series_csv}", "--set", setting,
        "--run-dir", str(tmp_path / "run"), "--export-dir", str(tmp_path / "exports"),
    )  # fmt: skip
    assert_one_line_error(proc, setting.split("=")[0])
    assert not (tmp_path / "run").exists() and not (tmp_path / "exports").exists()


QUICK_GENERATOR = [
    "layers_per_block=5",
    "residual_channels=16",
    "skip_channels=16",
    "num_levels=64",
    "window=32",
    "max_length=32",
    "epochs=8",
    "batch_size=16",
    "learning_rate=0.005",
]


@pytest.fixture(scope="module")
def trained_generator(tmp_path_factory):
    root = tmp_path_factory.mktemp("generator")
    dataset = _write_series_csv(root / "series.csv", rows=4000)
    return train_quietly("wavenet-generator", [f"dataset={dataset}", *QUICK_GENERATOR], root), root


def test_the_generator_learns_a_series_beyond_the_naive_forecast(trained_generator):
    result, _ = trained_generator
    metrics = result.metrics
    # Repeating the last value errs by about 1.2 on the first series (a sine of
    # amplitude 5 moving 1.26 per step at most); a model that learned the period less.
    assert metrics["mae"] < 0.7 * metrics["naive_mae"], metrics
    # Above a model that ignores time (the training levels' frequencies): 4.99 bits on
    # this split, this one 1.91 (Xeon, 2 cores); log2(64) = 6 for a uniform guess.
    assert 4.5 < metrics["marginal_bits_per_sample"] < 6, metrics
    assert metrics["bits_per_sample"] < metrics["marginal_bits_per_sample"] - 2, metrics
    assert os.path.isfile(os.path.join(result.run_dir, "continuation.png"))


TF_ONLY_CONTINUE = """
import json, sys
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
context = tf.constant(json.loads(sys.argv[2]), tf.float32)
out = loaded.signatures["generate"](context=context, max_length=tf.constant(50),
    temperature=tf.constant(0.0), top_k=tf.constant(0), top_p=tf.constant(1.0),
    seed=tf.constant(0, tf.int64))["continuation"]
default = loaded.signatures["serving_default"](context=context)["continuation"]
assert "kerasnotes" not in sys.modules
print(json.dumps([out.numpy().tolist(), default.shape.as_list()]))
"""


def test_a_tensorflow_only_process_continues_a_series(trained_generator):
    result, root = trained_generator
    sine = np.sin(2 * np.pi * np.arange(110) / 25)
    # The training sine, and the same at a level and amplitude training never saw.
    levels, amplitudes = np.array([[20], [1000]]), np.array([[5], [40]])
    truth = levels + amplitudes * sine
    context = json.dumps(truth[:, :60].tolist())
    proc = subprocess.run(
        [sys.executable, "-P", "-c", TF_ONLY_CONTINUE, result.export_dir, context],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    continuations, default_shape = json.loads(proc.stdout.strip().splitlines()[-1])
    assert default_shape == [2, 32]  # The run's max_length.
    # The greedy continuation keeps to the sine it was given (its phase included).
    rows = zip(continuations, truth[:, 60:], amplitudes[:, 0], strict=True)
    for continuation, wanted, amplitude in rows:
        # 0.10 and 0.81 measured: 2% of either amplitude.
        assert np.mean(np.abs(np.array(continuation) - wanted)) < 0.1 * amplitude
        assert np.corrcoef(continuation, wanted)[0, 1] > 0.8


def test_predict_continues_csv_columns_and_names_bad_files(
    trained_generator, series_csv, tmp_path
):
    result, _ = trained_generator
    proc = run_cli("predict", result.export_dir, str(series_csv), "--max-length", "5", "--greedy")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [f"{series_csv}:load", f"{series_csv}:wave"]
    assert all(len(line.split("\t")[1].split()) == 5 for line in lines)
    # A WAV file's sound is a context too.
    sound = np.concatenate(
        [signals.synthesize(np.random.default_rng(1), "tone", 300), np.zeros(50)]
    )
    wav = _write_wav(tmp_path / "tone.wav", sound, 8000)
    proc = run_cli("predict", result.export_dir, str(wav), "--max-length", "5", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(json.loads(proc.stdout)["continuation"]) == 5
    (tmp_path / "words.csv").write_text("a\nb\n")
    (tmp_path / "latin1.csv").write_bytes("caf\xe9\n1\n2\n".encode("latin-1"))
    (tmp_path / "photo.png").write_bytes(tf.io.encode_png(tf.zeros([4, 4, 3], tf.uint8)).numpy())
    _write_wav(tmp_path / "silent.wav", np.zeros(0), 8000)
    for name, fragment in (
        ("words.csv", "no numeric column"),
        ("latin1.csv", "byte offset 3"),
        ("photo.png", "byte offset 0"),
        ("silent.wav", "no samples"),
    ):
        bad = run_cli("predict", result.export_dir, str(tmp_path / name))
        assert_one_line_error(bad, name, fragment)
    bad = run_cli("predict", result.export_dir, str(series_csv), "--question", "why")
    assert bad.returncode == 2 and "question" in bad.stderr
    proc = run_cli("evaluate", result.export_dir, "--json")  # The export's own figures.
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads(proc.stdout)
    assert metrics["bits_per_sample"] == pytest.approx(result.metrics["bits_per_sample"], rel=1e-4)
