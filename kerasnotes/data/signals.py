"""`signals`: the embedded waveform dataset, as a tensorflow-datasets builder.

Short sounds at 8 kHz whose class is their shape over time, never their loudness (every
sound is scaled to a random level) nor, where the class allows, their pitch:

- `tone`: a steady sine; `square` and `sawtooth`: the same pitch with the harmonics of
  those shapes (their spectra differ, their pitch does not tell them apart);
- `chirp_up`, `chirp_down`: a sine whose pitch rises (falls) across the clip: the same
  frequencies in the other order, so only a model that hears far enough to compare the
  start with the end tells them apart;
- `noise_burst`: silence (quiet noise) with a burst of loud noise somewhere;
- `vowel_a`, `vowel_i`: a glottal pulse train at a random pitch through the formant
  resonances of "a" (about 700 and 1,200 Hz) or "i" (about 300 and 2,300 Hz): the
  formants, not the pitch, make the vowel.

Every sound gets background noise at a random level. Every split is drawn from its
own seed, so held-out sounds are new.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.signal
import tensorflow_datasets as tfds

from kerasnotes.data.shapes import SceneBuilder

SAMPLE_RATE = 8000
CLASSES = (
    "tone",
    "square",
    "sawtooth",
    "chirp_up",
    "chirp_down",
    "noise_burst",
    "vowel_a",
    "vowel_i",
)
FORMANTS = {"vowel_a": (700.0, 1220.0, 2600.0), "vowel_i": (300.0, 2300.0, 3000.0)}


def _resonance(pulses: np.ndarray, frequency: float, bandwidth: float) -> np.ndarray:
    """`pulses` through a two-pole resonator at `frequency` Hz (a formant)."""
    radius = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
    angle = 2 * np.pi * frequency / SAMPLE_RATE
    # y[n] = x[n] + 2 r cos(angle) y[n - 1] - r^2 y[n - 2]
    return scipy.signal.lfilter([1.0], [1.0, -2 * radius * np.cos(angle), radius**2], pulses)


def synthesize(rng: np.random.Generator, kind: str, num_samples: int) -> np.ndarray:
    """One sound of class `kind`: float32 `(num_samples,)` in [-1, 1]."""
    if kind not in CLASSES:
        raise ValueError(f"Unknown signal {kind!r}; expected one of {', '.join(CLASSES)}.")
    t = np.arange(num_samples) / SAMPLE_RATE
    duration = num_samples / SAMPLE_RATE
    if kind in ("tone", "square", "sawtooth"):
        phase = 2 * np.pi * rng.uniform(150, 900) * t + rng.uniform(0, 2 * np.pi)
        if kind == "tone":
            wave = np.sin(phase)
        elif kind == "square":
            wave = np.sign(np.sin(phase))
        else:
            wave = 2 * ((phase / (2 * np.pi)) % 1.0) - 1
    elif kind in ("chirp_up", "chirp_down"):
        low, high = rng.uniform(200, 500), rng.uniform(1200, 2500)
        start, end = (low, high) if kind == "chirp_up" else (high, low)
        # Frequency sweeps linearly; the phase is its integral.
        phase = 2 * np.pi * (start * t + (end - start) * t**2 / (2 * duration))
        wave = np.sin(phase + rng.uniform(0, 2 * np.pi))
    elif kind == "noise_burst":
        wave = np.zeros(num_samples)
        length = int(rng.uniform(0.15, 0.35) * num_samples)
        start = rng.integers(0, num_samples - length)
        wave[start : start + length] = rng.normal(0, 0.5, length)
    else:
        pitch = rng.uniform(90, 260)
        pulses = np.zeros(num_samples)
        pulses[:: max(1, int(SAMPLE_RATE / pitch))] = 1.0
        wave = np.zeros(num_samples)
        for frequency, bandwidth in zip(FORMANTS[kind], (80.0, 100.0, 140.0), strict=True):
            wave += _resonance(pulses, frequency * rng.uniform(0.93, 1.07), bandwidth)
    wave = wave / max(np.max(np.abs(wave)), 1e-6) * rng.uniform(0.2, 0.9)
    wave = wave + rng.normal(0, rng.uniform(0.005, 0.05), num_samples)
    return np.clip(wave, -1, 1).astype(np.float32)


@dataclasses.dataclass
class SignalsConfig(tfds.core.BuilderConfig):
    num_samples: int = 1024
    num_train: int = 3200
    num_validation: int = 400
    num_test: int = 400
    seed: int = 2468


class Signals(SceneBuilder, skip_registration=True):
    """Synthetic sounds classified by their shape over time."""

    SPLIT_SEEDS = {"train": 1, "validation": 2, "test": 3}

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        SignalsConfig(name="default", description="3,200 training sounds of 1,024 samples."),
        SignalsConfig(
            name="small",
            description="800 training sounds of 512 samples: for tests and quick tries.",
            num_samples=512,
            num_train=800,
            num_validation=200,
            num_test=200,
        ),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__.splitlines()[0],
            features=tfds.features.FeaturesDict(
                {
                    "audio": tfds.features.Audio(
                        shape=(self.builder_config.num_samples,),
                        dtype=np.int16,
                        sample_rate=SAMPLE_RATE,
                    ),
                    "label": tfds.features.ClassLabel(names=CLASSES),
                }
            ),
            supervised_keys=("audio", "label"),
        )

    def _example(self, rng, index, shifted):
        del shifted  # No shifted split: sounds have no scenes to draw outside of.
        kind = CLASSES[index % len(CLASSES)]  # Balanced splits.
        wave = synthesize(rng, kind, self.builder_config.num_samples)
        return {"audio": np.round(wave * 32767).astype(np.int16), "label": kind}
