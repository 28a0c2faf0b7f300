"""`wavenet` with its defaults on one-second spoken digits made by text-to-speech, tested
on voices it never heard (not part of the test suite).

The sounds: the words "zero" to "nine" spoken by eSpeak NG (formant synthesis; the
`espeakng-loader` wheel bundles the library and its voices: `pip install
'kerasnotes[bench]'`), in 8 English accents and about 90 voice variants, each sound at a
random speed, pitch and pitch range, placed at a random offset in one second, at a
random loudness, over white or brown noise at 10-40 dB SNR, resampled to `--rate`.
A quarter of the voice variants never speak in the training folder: the held-out
folder is spoken only by them.

Contenders, in alternating rounds on the same folders:

1. `kerasnotes train wavenet --dataset TRAIN` with every default; its held-out figure
   is the export's accuracy on the held-out voices' folder (every file, through
   `serving_default`: WAV bytes in);
2. the same with `frame_stride=1` and `time_limit=600`: the stack over every sample,
   as the defaults were before they followed the sounds' length, stopped at the goal's
   10 minutes;
3. the reference of issue 32: a linear classifier (logistic regression, scikit-learn)
   on log-mel spectra (64 bands, 25 ms frames every 10 ms, `tf.signal`), averaged over
   quarters of the second, fitted on the training folder.

The goal (issue 32, item 9): the defaults reach >= 0.9 on the held-out voices in <= 10
minutes of training on 2 cores.

    python benchmarks/spoken_digits.py [--rate 8000] [--per-class 670] [--rounds 1]
        [--contenders defaults linear stride1] [--set key=value ...] [--folders DIR]
"""

from __future__ import annotations

import argparse
import ctypes
import math
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = ("en", "en-029", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
           "en-gb-x-rp", "en-us", "en-us-nyc")  # fmt: skip
# eSpeak's API constants (speak_lib.h).
_SYNCHRONOUS, _RATE, _PITCH, _RANGE, _POS_CHARACTER = 2, 1, 3, 4, 1


class Speaker:
    """eSpeak NG through its C API: `say(text, voice, speed, pitch, range_)` returns the
    int16 samples at `self.rate` (22,050 Hz)."""

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError:
            raise SystemExit(
                "This benchmark needs espeakng-loader: pip install 'kerasnotes[bench]'"
            ) from None
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.data = espeakng_loader.get_data_path()
        self.rate = self.lib.espeak_Initialize(_SYNCHRONOUS, 0, self.data.encode(), 0)
        if self.rate <= 0:
            raise SystemExit(f"eSpeak NG did not start (data at {self.data}).")
        self.chunks = []
        callback_type = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
        )

        def collect(wav, count, events):
            if count > 0:
                self.chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
            return 0

        self.callback = callback_type(collect)  # kept: eSpeak holds the pointer
        self.lib.espeak_SetSynthCallback(self.callback)

    def variants(self) -> list[str]:
        return sorted(os.listdir(os.path.join(self.data, "voices", "!v")))

    def say(self, text: str, voice: str, speed: int, pitch: int, range_: int) -> np.ndarray:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"eSpeak NG has no voice {voice!r}")
        for parameter, value in ((_RATE, speed), (_PITCH, pitch), (_RANGE, range_)):
            self.lib.espeak_SetParameter(parameter, value, 0)
        self.chunks = []
        encoded = text.encode()
        self.lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, 0, None, None)
        self.lib.espeak_Synchronize()
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)


def split_variants(variants: list[str], seed: int = 0) -> tuple[list[str], list[str]]:
    """A fixed quarter of the voice variants held out of training."""
    order = np.random.default_rng(seed).permutation(len(variants))
    held = {variants[i] for i in order[: len(variants) // 4]}
    return [v for v in variants if v not in held], sorted(held)


def one_second(speech: np.ndarray, source_rate: int, rate: int, rng) -> np.ndarray:
    """The spoken word trimmed of silence, resampled to `rate`, at a random loudness and
    offset in one second, over noise; float32 in [-1, 1]."""
    import scipy.signal

    loud = np.flatnonzero(np.abs(speech) > 200)
    word = speech[loud[0] : loud[-1] + 1].astype(np.float32) / 32768 if len(loud) else speech
    divisor = math.gcd(rate, source_rate)
    word = scipy.signal.resample_poly(word, rate // divisor, source_rate // divisor)[:rate]
    word *= rng.uniform(0.1, 0.9) / max(np.abs(word).max(), 1e-6)
    sound = np.zeros(rate, np.float32)
    start = int(rng.integers(0, rate - len(word) + 1))
    sound[start : start + len(word)] = word
    noise = rng.normal(size=rate).astype(np.float32)
    if rng.random() < 0.5:  # brown noise: integrated white noise, its drift removed
        noise = np.cumsum(noise)
        noise = scipy.signal.detrend(noise)
    power = np.mean(word**2)
    snr_db = rng.uniform(10, 40)
    noise *= math.sqrt(power / 10 ** (snr_db / 10) / max(np.mean(noise**2), 1e-12))
    return np.clip(sound + noise, -1, 1)


def write_folder(root: str, speaker: Speaker, variants, per_class: int, rate: int, seed: int):
    """`root/<word>/<n>.wav`: `per_class` sounds of each digit, voices drawn from
    `variants` and the accents."""
    import scipy.io.wavfile

    rng = np.random.default_rng(seed)
    for word in WORDS:
        os.makedirs(os.path.join(root, word), exist_ok=True)
        for n in range(per_class):
            voice = (
                f"{ACCENTS[rng.integers(len(ACCENTS))]}+{variants[rng.integers(len(variants))]}"
            )
            speech = speaker.say(
                word,
                voice,
                speed=int(rng.integers(120, 230)),
                pitch=int(rng.integers(20, 80)),
                range_=int(rng.integers(20, 90)),
            )
            sound = one_second(speech, speaker.rate, rate, rng)
            scipy.io.wavfile.write(
                os.path.join(root, word, f"{n}.wav"), rate, (sound * 32767).astype(np.int16)
            )


def read_folder(root: str) -> tuple[list[bytes], np.ndarray, list[str]]:
    names = sorted(os.listdir(root))
    contents, labels = [], []
    for label, name in enumerate(names):
        for file in sorted(os.listdir(os.path.join(root, name))):
            with open(os.path.join(root, name, file), "rb") as f:
                contents.append(f.read())
            labels.append(label)
    return contents, np.array(labels), names


def export_accuracy(export_dir: str, held_out: str) -> float:
    """The export's accuracy on every file of `held_out`, WAV bytes in."""
    import tensorflow as tf

    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    contents, labels, names = read_folder(held_out)
    predicted = []
    for start in range(0, len(contents), 64):
        out = serve(audio_bytes=tf.constant(contents[start : start + 64]))
        predicted += [label.decode() for label in out["label"].numpy()]
    return float(np.mean([p == names[y] for p, y in zip(predicted, labels, strict=True)]))


def train_wavenet(train: str, held_out: str, overrides: list[str]) -> dict:
    import kerasnotes

    with tempfile.TemporaryDirectory() as tmp:
        result = kerasnotes.train(
            "wavenet",
            overrides=[f"dataset={train}", *overrides],
            run_dir=os.path.join(tmp, "run"),
            export_dir=os.path.join(tmp, "exports"),
            echo=lambda line: None,
        )
        return {
            "held-out voices": export_accuracy(result.export_dir, held_out),
            "own test split": result.metrics["accuracy"],
            "seconds": result.train_seconds,
        }


def log_mel(contents: list[bytes], rate: int):
    """Log-mel spectra averaged over quarters of the second: `(sounds, 4 * 64)`."""
    import tensorflow as tf

    waves = tf.stack([tf.audio.decode_wav(c).audio[:, 0] for c in contents])
    frame, hop = int(0.025 * rate), int(0.010 * rate)
    spectra = tf.abs(
        tf.signal.stft(waves, frame, hop, fft_length=2 ** math.ceil(math.log2(frame)))
    )
    mel = tf.signal.linear_to_mel_weight_matrix(64, spectra.shape[-1], rate, 60.0, rate / 2)
    features = tf.math.log(tf.tensordot(spectra**2, mel, 1) + 1e-6)  # (sounds, frames, 64)
    quarters = tf.split(features[:, : features.shape[1] // 4 * 4], 4, axis=1)
    return np.concatenate([tf.reduce_mean(q, axis=1).numpy() for q in quarters], axis=1)


def linear_reference(train: str, held_out: str, rate: int) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    contents, labels, _ = read_folder(train)
    started = time.perf_counter()
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    classifier.fit(log_mel(contents, rate), labels)
    seconds = time.perf_counter() - started
    contents, held_labels, _ = read_folder(held_out)
    accuracy = float(np.mean(classifier.predict(log_mel(contents, rate)) == held_labels))
    return {"held-out voices": accuracy, "own test split": None, "seconds": seconds}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=8000)
    parser.add_argument("--per-class", type=int, default=670)
    parser.add_argument("--held-out-per-class", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--contenders", nargs="+", default=["defaults", "linear"])
    parser.add_argument("--set", dest="overrides", nargs="*", default=[])
    parser.add_argument("--folders", help="write (or reuse) the folders here")
    args = parser.parse_args()

    root = args.folders or tempfile.mkdtemp()
    train, held_out = os.path.join(root, "train"), os.path.join(root, "held_out")
    if not os.path.isdir(train):
        speaker = Speaker()
        training_variants, held_variants = split_variants(speaker.variants())
        write_folder(train, speaker, training_variants, args.per_class, args.rate, seed=1)
        write_folder(held_out, speaker, held_variants, args.held_out_per_class, args.rate, 2)
        print(f"Voices: {len(training_variants)} variants in training, {len(held_variants)} "
              f"held out ({', '.join(held_variants)}); 8 accents.")  # fmt: skip

    contenders = {
        "defaults": lambda: train_wavenet(train, held_out, args.overrides),
        "stride1": lambda: train_wavenet(
            train, held_out, [*args.overrides, "frame_stride=1", "time_limit=600"]
        ),
        "linear": lambda: linear_reference(train, held_out, args.rate),
    }
    results = {name: [] for name in args.contenders}
    for round_ in range(args.rounds):
        order = args.contenders if round_ % 2 == 0 else args.contenders[::-1]
        for name in order:
            results[name].append(contenders[name]())
            print(name, results[name][-1], flush=True)

    print(f"\n{args.per_class * 10} sounds in the training folder (its own 80/10/10 split) at {args.rate} Hz, "
          f"{args.held_out_per_class * 10} held-out-voice sounds\n")  # fmt: skip
    print("| contender | held-out voices (median) | own test split | training s (median) |")
    print("| --- | --- | --- | --- |")
    for name, rounds in results.items():
        own = [r["own test split"] for r in rounds if r["own test split"] is not None]
        print(
            f"| {name} | {statistics.median(r['held-out voices'] for r in rounds):.4f} | "
            f"{f'{statistics.median(own):.4f}' if own else '-'} | "
            f"{statistics.median(r['seconds'] for r in rounds):.1f} |"
        )


if __name__ == "__main__":
    main()
