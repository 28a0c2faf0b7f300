"""The `kerasnotes` command: a thin Click adapter over the `kerasnotes` library.

Subcommands are imported only when invoked, so `kerasnotes --help` is instant and does
not import TensorFlow. Library errors become one line on stderr: exit 2 for bad usage or
input (`kerasnotes.UsageError`), exit 1 for failures while running. Native log lines
(TensorFlow's `I0000` / `W0000` / `E0000`, libjpeg's warnings) are filtered out of
stderr for the command's whole life. `--debug` shows tracebacks and native logs.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import threading

import click

# Quiet TensorFlow's C++ start-up logging unless the user asked for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

COMMANDS = {
    "models": "cli.commands:models",
    "datasets": "cli.commands:datasets",
    "train": "cli.commands:train",
    "evaluate": "cli.commands:evaluate",
    "export": "cli.commands:export",
    "predict": "cli.commands:predict",
    "neighbours": "cli.commands:neighbours",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, cmd_name):
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def resolve_command(self, ctx, args):
        name = args[0] if args else None
        if name is not None and name not in COMMANDS and not name.startswith("-"):
            import difflib

            close = difflib.get_close_matches(name, COMMANDS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise click.UsageError(
                f"Unknown command {name!r}.{hint} Commands: {', '.join(COMMANDS)}."
            )
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kerasnotes")
@click.option(
    "--plugin",
    "plugins",
    multiple=True,
    metavar="MODULE",
    help="Import MODULE first, so the models it registers can be used. Repeatable.",
)
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@click.pass_context
def cli(ctx, plugins, debug):
    """Models from deep-learning course notes: build, train, evaluate, export, serve.

    \b
    Examples:
      kerasnotes models
      kerasnotes train cnn --epochs 5
      kerasnotes predict saved_models/cnn/1 picture.png
      kerasnotes --plugin my_models train my-model
    """
    ctx.obj = {"debug": debug}
    if plugins:
        from kerasnotes.registry import load_plugin

        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        with handle_errors(debug):
            for module in plugins:
                load_plugin(module)


def _quiet_tensorflow_import() -> None:
    """Import TensorFlow with stderr closed at the file-descriptor level.

    TensorFlow's C++ start-up messages are logged before absl logging is initialized,
    which ignores TF_CPP_MIN_LOG_LEVEL. Import errors still raise normally.
    """
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices()  # Device discovery logs too.
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# Lines that TensorFlow's C++ code (absl / glog format, or the older dated one) and
# libjpeg write straight to file descriptor 2, bypassing Python and its log levels.
_NATIVE_LINE = re.compile(
    rb"^(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]\s]+:\d+\] "
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|Corrupt JPEG data|Premature end of JPEG file|Improper call to JPEG library"
    rb"|Invalid JPEG file structure|Not a JPEG file|Unsupported marker type|Bogus marker"
    rb"|Warning: unknown JFIF revision|JPEG datastream contains no image)"
)


class NativeLogFilter:
    """Pass the process's stderr (file descriptor 2) through, minus native log lines.

    File descriptor 2 becomes a pipe that a thread reads line by line (a line ends at
    a newline or a carriage return, so progress bars still move), forwarding every
    line but `_NATIVE_LINE`'s to the real stderr: Python's errors, warnings and
    progress stay visible, fatal `F` lines too.
    """

    def __enter__(self):
        sys.stderr.flush()
        self.stderr = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self.thread = threading.Thread(target=self._pump, args=(read,), daemon=True)
        self.thread.start()
        return self

    def _pump(self, read: int) -> None:
        pending = b""
        with os.fdopen(read, "rb", buffering=0) as pipe:
            while chunk := pipe.read(1 << 16):
                *lines, pending = re.split(rb"(?<=[\n\r])", pending + chunk)
                self._forward(lines)
        self._forward([pending])

    def _forward(self, lines: list[bytes]) -> None:
        kept = b"".join(line for line in lines if not _NATIVE_LINE.match(line))
        if kept:
            os.write(self.stderr, kept)

    def __exit__(self, *exc_info):
        sys.stderr.flush()
        os.dup2(self.stderr, 2)  # Closes the pipe: the thread forwards the rest and ends.
        self.thread.join(timeout=5)
        os.close(self.stderr)
        return False


class _Failure(click.ClickException):
    """A library error shown as one line with a chosen exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class handle_errors:
    """Turn library exceptions into one-line errors (or let them through with --debug)."""

    def __init__(self, debug: bool):
        self.debug = debug

    def __enter__(self):
        if not self.debug:
            _quiet_tensorflow_import()
        return self

    def __exit__(self, exc_type, exc, tb):
        if (
            exc is None
            or self.debug
            # Click ends the command quietly when the reader of stdout went away.
            or isinstance(exc, (click.ClickException, click.exceptions.Exit, BrokenPipeError))
        ):
            return False
        from kerasnotes.errors import KerasnotesError, UsageError

        message = " ".join(str(exc).split())
        if isinstance(exc, UsageError):
            raise _Failure(message, 2) from None
        if isinstance(exc, KerasnotesError):
            raise _Failure(message, 1) from None
        if isinstance(exc, KeyboardInterrupt):
            raise _Failure("Interrupted.", 130) from None
        raise _Failure(
            f"{type(exc).__name__}: {message} (run with --debug for the traceback)", 1
        ) from None


def main(argv=None) -> int:
    """Entry point of the `kerasnotes` console script."""
    args = sys.argv[1:] if argv is None else list(argv)
    if "--debug" in args:
        return _main(args)
    with NativeLogFilter():
        return _main(args)


def _main(args) -> int:
    try:
        result = cli.main(args=args, prog_name="kerasnotes", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except click.UsageError as e:
        # One line: what was wrong and where to look, without the usage block.
        command = e.ctx.command_path if e.ctx else "kerasnotes"
        click.echo(f"Error: {e.format_message()} (see '{command} --help')", err=True)
        return 2
    except click.ClickException as e:
        click.echo(f"Error: {e.format_message()}", err=True)
        return e.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
