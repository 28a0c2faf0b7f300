"""Exceptions that the CLI maps to exit codes.

`UsageError` (and its subclasses) means the user asked for something invalid: an unknown
model, a bad configuration value, a missing or corrupt input. The CLI prints its message
on one line and exits with status 2. `TrainingError` means valid work failed while
running (for example the loss became NaN); the CLI exits with status 1.
"""

import re


def one_line(message: str, limit: int = 200) -> str:
    """What a library's error says, as one short line for one of ours: its first line,
    without TensorFlow's node and op names."""
    message = re.sub(r"\{\{[^}]*\}\}|\[Op:[^\]]*\](\s*name:.*)?", "", str(message)).strip()
    return (message.splitlines() or [""])[0][:limit].rstrip(" .")


class KerasnotesError(Exception):
    """Base class of every error kerasnotes raises on purpose."""


class UsageError(KerasnotesError, ValueError):
    """Invalid input from the user: exit status 2 at the CLI."""


class ConfigError(UsageError):
    """An unknown configuration key or an invalid configuration value."""


class DataError(UsageError):
    """A dataset that cannot be found, read or decoded."""


class TrainingError(KerasnotesError, RuntimeError):
    """A failure while running valid work: exit status 1 at the CLI."""
