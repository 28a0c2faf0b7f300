"""Plots written to run directories (matplotlib, no display needed)."""

from __future__ import annotations

import csv
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import mlab  # noqa: E402


def read_history(csv_path: str) -> dict[str, list[float]]:
    """Columns of a Keras `CSVLogger` file as lists of floats, one row per epoch.

    After a resume an epoch may appear twice (logged, then killed before its backup);
    the last row wins.
    """
    rows: dict[int, dict[str, str]] = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            rows[int(row["epoch"])] = row
    columns: dict[str, list[float]] = {}
    for epoch in sorted(rows):
        for key, value in rows[epoch].items():
            columns.setdefault(key, []).append(float(value))
    return columns


def learning_curves(history: dict[str, list[float]], path: str) -> str:
    """One panel per metric, training and validation curves over epochs."""
    epochs = [int(e) + 1 for e in history.get("epoch", [])]
    metrics = [
        k for k in history if k not in ("epoch", "learning_rate") and not k.startswith("val_")
    ]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        ax.plot(epochs, history[metric], "o-", label="train")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], "o-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _grid(count: int) -> tuple[int, int]:
    columns = min(count, 8)
    return math.ceil(count / columns), columns


def filters_and_feature_maps(
    kernel: np.ndarray, image: np.ndarray, feature_maps: np.ndarray, title: str, path: str
) -> str:
    """The first convolution's kernels, an input image and its feature maps.

    Args:
        kernel: (height, width, in_channels, filters).
        image: (height, width, channels) uint8 or float image.
        feature_maps: (height, width, filters) outputs of that convolution.
    """
    num_filters = min(kernel.shape[-1], 32)
    rows, columns = _grid(num_filters)
    fig = plt.figure(figsize=(2 * columns, 2.2 * (2 * rows + 1)))
    fig.suptitle(title)
    ax = fig.add_subplot(2 * rows + 1, columns, 1)
    ax.imshow(np.squeeze(image.astype(np.uint8)), cmap="gray")
    ax.set_title("input")
    ax.axis("off")
    for i in range(num_filters):
        k = kernel[..., i]
        if k.shape[-1] == 3:  # Show colour kernels in colour.
            k = (k - k.min()) / (np.ptp(k) + 1e-8)
        else:
            k = k.mean(axis=-1)
        ax = fig.add_subplot(2 * rows + 1, columns, columns + i + 1)
        ax.imshow(k, cmap=None if k.ndim == 3 else "coolwarm", interpolation="nearest")
        ax.set_title(f"filter {i}", fontsize=8)
        ax.axis("off")
        ax = fig.add_subplot(2 * rows + 1, columns, columns * (rows + 1) + i + 1)
        ax.imshow(feature_maps[..., i], cmap="viridis")
        ax.set_title(f"map {i}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def ensure_dir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path


def attention_maps(
    image: np.ndarray,
    tokens: list[str],
    attention: np.ndarray,
    grid: tuple[int, int],
    path: str,
    title: str | None = None,
) -> str:
    """The image, then one panel per word with the attention over regions laid over it.

    Args:
        image: uint8 `(height, width, 3)`.
        tokens: the generated words.
        attention: `(len(tokens), rows * columns)` weights behind each word.
        grid: `(rows, columns)` of the encoder's region grid.
        title: the figure's title (default: the words).
    """
    rows, columns = grid
    panels = len(tokens) + 1
    per_row = min(panels, 6)
    fig, axes = plt.subplots(
        math.ceil(panels / per_row),
        per_row,
        figsize=(2 * per_row, 2.2 * math.ceil(panels / per_row)),
        squeeze=False,
    )
    height, width = image.shape[:2]
    for ax in axes.ravel():
        ax.axis("off")
    axes.flat[0].imshow(image)
    axes.flat[0].set_title("input", fontsize=9)
    for ax, token, weights in zip(axes.flat[1:], tokens, attention, strict=False):
        ax.imshow(image)
        ax.imshow(
            np.asarray(weights).reshape(rows, columns),
            cmap="magma",
            alpha=0.6,
            extent=(0, width, height, 0),
            interpolation="bilinear",
        )
        ax.set_title(token, fontsize=9)
    fig.suptitle(title or " ".join(tokens), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def confusion(
    truth: list[str],
    predicted: list[str],
    labels: list[str],
    path: str,
    *,
    title: str = "answer confusion (row-normalised)",
    truth_label: str = "true (most common human answer)",
) -> str:
    """Row-normalised confusion matrix of `predicted` against `truth`, over `labels`.

    Answers outside `labels` are gathered in a last "other" row and column.
    """
    names = [*labels, "other"]
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(names), len(names)))
    for t, p in zip(truth, predicted, strict=True):
        counts[index.get(t, len(labels)), index.get(p, len(labels))] += 1
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.35 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel(truth_label)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def waveforms_and_spectrograms(
    waveforms: list[np.ndarray], titles: list[str], sample_rate: int, path: str
) -> str:
    """One row per sound: its waveform and its spectrogram, titled (a sound's predicted
    and true label).

    Args:
        waveforms: float `(samples, 1)` (or `(samples,)`) each, in [-1, 1].
        titles: one per sound.
        sample_rate: samples per second.
    """
    fig, axes = plt.subplots(len(waveforms), 2, figsize=(9, 1.7 * len(waveforms)), squeeze=False)
    for (wave_ax, spec_ax), waveform, title in zip(axes, waveforms, titles, strict=True):
        samples = np.ravel(waveform)
        seconds = np.arange(len(samples)) / sample_rate
        wave_ax.plot(seconds, samples, linewidth=0.5)
        wave_ax.set_ylim(-1, 1)
        wave_ax.set_title(title, fontsize=8, loc="left")
        nfft = int(min(256, 2 ** np.floor(np.log2(max(len(samples) // 8, 16)))))
        power, freqs, times = mlab.specgram(
            samples, NFFT=nfft, Fs=sample_rate, noverlap=nfft // 2
        )  # (frequencies, frames)
        # Silence (a padded sound's end) has no power: floored 120 dB under the peak.
        db = 10 * np.log10(np.maximum(power, power.max() * 1e-12 + 1e-30))
        spec_ax.pcolormesh(times, freqs, db, cmap="magma", shading="auto")
        spec_ax.set_ylabel("Hz", fontsize=7)
        for ax in (wave_ax, spec_ax):
            ax.tick_params(labelsize=6)
    axes[-1][0].set_xlabel("seconds", fontsize=7)
    axes[-1][1].set_xlabel("seconds", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def continuation(
    context: np.ndarray,
    real: np.ndarray,
    generated: np.ndarray,
    path: str,
    sample_rate: int | None = None,
) -> str:
    """A series' context, then its real and its generated continuation, on one axis
    (seconds when `sample_rate` is given, else steps)."""
    unit = 1 / sample_rate if sample_rate else 1
    start = len(context)
    fig, ax = plt.subplots(figsize=(10, 3.2))
    ax.plot(np.arange(start) * unit, context, color="0.4", linewidth=0.8, label="context")
    after = (start + np.arange(len(real))) * unit
    ax.plot(after, real, color="tab:blue", linewidth=0.8, label="real continuation")
    after = (start + np.arange(len(generated))) * unit
    ax.plot(after, generated, color="tab:orange", linewidth=0.8, label="generated")
    ax.axvline(start * unit, color="0.7", linestyle="--", linewidth=0.8)
    ax.set_xlabel("seconds" if sample_rate else "step")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def clip_strips(clips: list[np.ndarray], titles: list[str], path: str) -> str:
    """One row of frames per clip, titled (a clip's predicted and true label).

    Args:
        clips: uint8 `(frames, height, width, 3)` each.
        titles: one per clip.
    """
    num_frames = max(len(clip) for clip in clips)
    fig, axes = plt.subplots(
        len(clips), num_frames, figsize=(1.2 * num_frames, 1.45 * len(clips)), squeeze=False
    )
    for row, clip, title in zip(axes, clips, titles, strict=True):
        for ax in row:
            ax.axis("off")
        for ax, frame in zip(row, clip, strict=False):
            ax.imshow(frame)
        row[0].set_title(title, fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
