"""Command-line plumbing shared by ``geosr`` and ``geosr-train``.

One place for what every geosr command does around its own work: argparse with one-line
usage errors (exit 2), logging and warnings on stderr (or as JSON events), the JSON-lines
event stream of ``--progress jsonl``, stopping cleanly on Ctrl-C, SIGTERM or a closed stdin
(exit 130), and turning errors into one ``PROG: error: ...`` line (exit 1; ``--debug``
shows the traceback instead).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TextIO

from geosr.errors import GeosrError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

PROGRESS_MODES = ("bar", "jsonl", "none")


class UsageError(Exception):
    """Bad command-line usage (exit code 2)."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors in geosr's format."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


class EventStream:
    """Writes machine-readable events (JSON lines on stdout) or nothing."""

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        if not self.enabled:
            return
        line = json.dumps({"event": event, **fields}, default=str)
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def progress(self, done: int, total: int, **fields: Any) -> None:
        """A ``(done, total)`` progress callback as a ``progress`` event."""
        fraction = round(done / total, 4) if total else 1.0
        self.emit("progress", fraction=fraction, done=done, total=total, **fields)


class _EventLogHandler(logging.Handler):
    def __init__(self, events: EventStream) -> None:
        super().__init__()
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        self.events.emit("log", level=record.levelname.lower(), message=record.getMessage())


def add_console_options(parser: argparse.ArgumentParser) -> None:
    """The options every command has: --debug, --verbose, --progress, --exit-on-stdin-eof."""
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    parser.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        default="bar",
        help="progress display: a bar on stderr (default), JSON lines on stdout, or none",
    )
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="stop (cleaning up) when standard input closes, so a child dies with its parent",
    )


def configure_logging(prog: str, events: EventStream, level: int, verbose: bool) -> None:
    """geosr's log records and warnings go to stderr as ``PROG: ...`` lines, or become
    ``log`` events; ``level`` is what stderr shows without ``--verbose``."""
    root = logging.getLogger("geosr")
    root.handlers.clear()
    root.setLevel(logging.DEBUG if verbose else min(level, logging.INFO))
    if events.enabled:
        handler: logging.Handler = _EventLogHandler(events)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"{prog}: %(message)s"))
        handler.setLevel(logging.DEBUG if verbose else level)
    root.addHandler(handler)
    root.propagate = False

    def show(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
        if events.enabled:
            events.emit("log", level="warning", message=str(message))
        else:
            print(f"{prog}: warning: {message}", file=sys.stderr)

    warnings.showwarning = show  # type: ignore[assignment]


def watch_stdin() -> None:
    """Interrupt the main thread when stdin reaches EOF (the parent went away)."""

    def watch() -> None:
        try:
            # the raw descriptor, not sys.stdin.buffer: a daemon thread blocked in a buffered
            # read holds its lock and makes interpreter shutdown abort
            while os.read(sys.stdin.fileno(), 4096):
                pass
        except (OSError, ValueError):
            pass
        # SIGTERM, whose handler main() installs: a child started in the background ignores SIGINT
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="geosr-stdin-watch", daemon=True).start()


def _raise_interrupt(signum: int, frame: Any) -> None:
    # once: a second Ctrl-C or SIGTERM must not cut short the clean-up the first started (a
    # temporary output is removed on the way out); SIGKILL still ends the process at once
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def wants_jsonl(argv: Sequence[str]) -> bool:
    """``--progress jsonl`` on a command line that may not parse (for its usage error)."""
    pairs = itertools.pairwise(argv)
    return "--progress=jsonl" in argv or any(a == "--progress" and b == "jsonl" for a, b in pairs)


#: A command's work: parsed arguments and the event stream in, exit code out.
Command = Callable[[argparse.Namespace, EventStream], int]


@dataclass(frozen=True)
class Console:
    """One console script: how it names itself, parses, logs and words its errors.

    The parser sets ``func``, a :data:`Command`, on the parsed arguments.
    """

    prog: str
    build_parser: Callable[[], argparse.ArgumentParser]
    interrupted: str  # the error line after Ctrl-C, SIGTERM or a closed stdin
    out_of_memory: str
    log_level: int = logging.WARNING  # shown on stderr without --verbose

    def main(self, argv: Sequence[str] | None = None) -> int:
        """Parse, set up, run the command; returns the exit code."""
        argv = list(sys.argv[1:] if argv is None else argv)
        events = EventStream(wants_jsonl(argv))  # usage errors are reported before parsing ends
        try:
            args = self.build_parser().parse_args(argv)
        except UsageError as exc:
            self.report(str(exc), events)
            return EXIT_USAGE
        events = EventStream(getattr(args, "progress", "bar") == "jsonl")
        configure_logging(self.prog, events, self.log_level, getattr(args, "verbose", False))
        signal.signal(signal.SIGTERM, _raise_interrupt)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored
            signal.signal(signal.SIGINT, _raise_interrupt)
        if getattr(args, "exit_on_stdin_eof", False):
            watch_stdin()
        return self.run(args, events, debug="--debug" in argv)

    def exit(self, argv: Sequence[str] | None = None) -> NoReturn:
        """Run as a script: exit with :meth:`main`'s code."""
        sys.exit(self.main(argv))

    def run(self, args: argparse.Namespace, events: EventStream, debug: bool) -> int:
        try:
            return args.func(args, events)
        except KeyboardInterrupt:
            self.report(self.interrupted, events)
            sys.stderr.flush()
            sys.stdout.flush()
            # worker threads may still be busy; their output is discarded, so exit now
            os._exit(EXIT_INTERRUPTED)
        except UsageError as exc:  # argument combinations argparse cannot express
            self.report(f"{exc} (see '{self.prog} --help')", events)
            return EXIT_USAGE
        except GeosrError as exc:
            if debug:
                raise
            message = str(exc)
        except MemoryError:
            if debug:
                raise
            message = self.out_of_memory
        except Exception as exc:
            if debug:
                raise
            message = f"{type(exc).__name__}: {exc} (unexpected; rerun with --debug and report it)"
        self.report(message, events)
        return EXIT_ERROR

    def report(self, message: str, events: EventStream) -> None:
        """One ``PROG: error: ...`` line on stderr, and an ``error`` event."""
        message = " ".join(message.split())  # one line, always
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        events.emit("error", message=message)
