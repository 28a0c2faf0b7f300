"""Files a run or an export writes: atomic JSON, directory probes, a full disk.

Everything here is about the file system, not about models: the trainer and the
exporter share it so that every family fails the same way, early and clearly.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from typing import Any

from kerasnotes.errors import TrainingError, UsageError

# Errors that mean "the disk (or the quota) is full", whatever wrote the file.
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_PROBE_BYTES = 64 * 1024  # Room for a config, a log row and a small manifest.


def write_json(path: str, value: Any) -> None:
    """Write JSON atomically: a crash or a full disk never leaves half a file."""
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(value, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def file_digest(path: str) -> str:
    """The SHA-256 of a file, in hex."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def probe_directory(path: str, what: str, hint: str) -> None:
    """Check that `path` (created if missing) can hold new files, by writing one.

    Creates and removes a directory with a small file in the nearest existing
    ancestor of `path`, so read-only mounts, full disks, paths under a file and
    pseudo file systems fail here, before any work, and not at the end. `what`
    names the directory in the error (`"Export directory"`); `hint` says what to do.
    """
    existing = os.path.abspath(path)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(
            f"{what} {path!r} is not writable: {existing!r} is not a directory; {hint}."
        )
    probe = None
    try:
        probe = tempfile.mkdtemp(prefix=".kerasnotes-probe-", dir=existing)
        with open(os.path.join(probe, "probe"), "wb") as f:
            f.write(b"\0" * _PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise UsageError(
            f"{what} {path!r} is not writable: cannot create files in {existing!r} "
            f"({reason}); {hint}."
        ) from None
    finally:
        if probe is not None:
            shutil.rmtree(probe, ignore_errors=True)


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` (from Python, h5py or TensorFlow) says the disk is full."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _FULL:
            return True
        text = str(error)
        if "No space left on device" in text or "Disk quota exceeded" in text:
            return True
        error = error.__cause__ or error.__context__
    return False


@contextlib.contextmanager
def disk_full_is_a_clear_error(what: str, advice: str):
    """Turn a full disk while doing `what` into one clear `TrainingError` (exit 1)."""
    try:
        yield
    except Exception as e:
        if not is_disk_full(e):
            raise
        raise TrainingError(f"No space left on the device while {what}. {advice}") from None
