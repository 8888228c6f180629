"""Run one geosr command in a child process and relay its JSON-lines progress to QGIS.

The child is ``PYTHON -m geosr ... --progress jsonl``; its stdout carries one JSON object per
line (``start``, ``progress``, ``log``, ``done``, ``error`` events), its stderr free text
(logging, and ``geosr: error: ...`` on failure). Both pipes are read by daemon threads into one
queue; the calling thread polls that queue every 0.1 s, so it notices a cancel request within
a tenth of a second even while the child prints nothing.

The child starts in its own session (its own process group), so cancelling kills it *and* any
workers it started (SIGTERM to the group, SIGKILL after :data:`KILL_GRACE` seconds). Its stdin
is a pipe that stays open for the whole run: if QGIS dies, the pipe closes and a child started
with ``--exit-on-stdin-eof`` exits on its own.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence

from qgis.core import QgsProcessingException, QgsProcessingFeedback

from .environment import child_process_options

#: Seconds between a cancel check and the next (the queue poll timeout).
POLL_INTERVAL = 0.1
#: Seconds a process group gets between SIGTERM and SIGKILL.
KILL_GRACE = 5.0
#: Seconds to wait for the pipes to close after the child itself exited (a worker that
#: inherited them and lingers is killed after that).
PIPE_GRACE = 5.0
_POSIX = os.name == "posix"
#: The one-line error geosr's commands print on stderr: "geosr: error: ...",
#: "geosr-train: error: ...".
_ERROR_LINE = re.compile(r"^geosr[-\w]*: error: (.*)$")
# A URL runs to the end of its line (one argument, when a command line is logged), spaces
# included: pip prints "file:///my index?token=..." as is. The userinfo runs to the LAST "@"
# before the path's "/", so a password holding "@" is removed whole.
_USERINFO = re.compile(r"://[^/\n]*@")
_QUERY = re.compile(r"((?:://|/vsi[a-z0-9_]+)[^?\n]*)\?.*", re.IGNORECASE)


def _drop_userinfo(match: re.Match) -> str:
    # a "?" before the "@" starts a query holding an "@": keep a "?" so the query goes too
    return "://?" if "?" in match.group() else "://"


def redact(text: str) -> str:
    """``text`` without URL userinfo (``user:password@``) and without the query strings of
    URLs and /vsi names: signed URLs and pip index URLs carry their secrets there."""
    return _QUERY.sub(r"\1?…", _USERINFO.sub(_drop_userinfo, text))


def command_line(argv: Iterable[str]) -> str:
    """``argv`` as one shell-quoted line for the log, each argument :func:`redact`-ed."""
    return " ".join(shlex.quote(redact(str(part))) for part in argv)


class OutputGuard:
    """Remember what the output paths were before a run; remove what a failed run left.

    A path is removed only when the run created or replaced it, so a file the user already had
    at that path survives a failed or cancelled run untouched. Temporary siblings that a child
    killed with SIGKILL could not clean (``.NAME.*``, ``NAME.tmp*``, ``NAME.*.tmp``) go too.
    """

    def __init__(self, paths: Iterable[str]):
        self.paths = [os.path.abspath(path) for path in paths if path]
        self._before = {path: self._signature(path) for path in self.paths}
        self._siblings_before = {path: set(self._temp_siblings(path)) for path in self.paths}

    @staticmethod
    def _signature(path: str):
        try:
            stat = os.stat(path)
        except OSError:
            return None
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    @staticmethod
    def _temp_siblings(path: str) -> list[str]:
        folder, name = os.path.split(path)
        stem = os.path.splitext(name)[0]
        try:
            entries = os.listdir(folder or ".")
        except OSError:
            return []
        found = []
        for entry in entries:
            if entry == name:
                continue
            hidden = entry.startswith(("." + name, "." + stem + "."))
            tmp = entry.startswith(name) and ".tmp" in entry[len(name) :]
            if hidden or tmp:
                found.append(os.path.join(folder, entry))
        return found

    def clean(self) -> list[str]:
        """Delete what the run left behind; return the deleted paths."""
        removed = []
        for path in self.paths:
            after = self._signature(path)
            if after is not None and after != self._before[path]:
                with contextlib.suppress(OSError):
                    remove(path)
                    removed.append(path)
            for sibling in self._temp_siblings(path):
                if sibling not in self._siblings_before[path]:
                    with contextlib.suppress(OSError):
                        remove(sibling)
                        removed.append(sibling)
        return removed


def remove(path: str) -> None:
    """Delete a file, or a folder with its contents (a Zarr store is a folder)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def pump_lines(stream, name: str, lines: queue.Queue) -> None:
    """Copy ``stream`` line by line into ``lines`` as ``(name, line)``; ``(name, None)`` at EOF."""
    try:
        for line in iter(stream.readline, ""):
            lines.put((name, line.rstrip("\r\n")))
    except (OSError, ValueError):
        pass
    finally:
        lines.put((name, None))


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_process_tree(process: subprocess.Popen, grace: float = KILL_GRACE) -> None:
    """Stop ``process`` and every process of its group: SIGTERM, then SIGKILL after ``grace``."""
    if not _POSIX:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return
    pgid = process.pid  # start_new_session=True: the child leads its own group
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if process.poll() is not None and not _group_alive(pgid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    process.wait()


class GeosrRun:
    """One child run: relays events to ``feedback`` and remembers the outcome.

    Attributes:
        done: the ``done`` event (a dict) once the child reported success.
        error: the one-line message of the child's ``error`` event, if any.
        stderr_tail: the last lines the child wrote to stderr.
    """

    def __init__(self, feedback: QgsProcessingFeedback | None):
        self.feedback = feedback or QgsProcessingFeedback()
        self.done: dict | None = None
        self.error: str | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=20)

    def handle_stdout(self, line: str) -> None:
        """Map one stdout line (a JSON event, or plain text) to the feedback object."""
        if not line.strip():
            return
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict) or "event" not in event:
            self.feedback.pushInfo(line)
            return
        kind = event.get("event")
        if kind == "progress":
            fraction = event.get("fraction")
            if fraction is None and event.get("total"):
                fraction = float(event.get("done", 0)) / float(event["total"])
            if fraction is not None:
                self.feedback.setProgress(100.0 * min(max(float(fraction), 0.0), 1.0))
        elif kind == "log":
            message = str(event.get("message", ""))
            level = str(event.get("level", "info")).lower()
            if level in ("warning", "warn"):
                self.feedback.pushWarning(message)
            elif level in ("error", "critical"):
                self.feedback.reportError(message)
            elif level == "debug":
                self.feedback.pushDebugInfo(message)
            else:
                self.feedback.pushInfo(message)
        elif kind == "start":
            details = ", ".join(f"{key}: {value}" for key, value in event.items() if key != "event")
            self.feedback.pushInfo(f"geosr started ({details})")
        elif kind == "done":
            self.done = event
            self.feedback.setProgress(100.0)
            seconds = event.get("seconds")
            took = f" in {float(seconds):.1f} s" if isinstance(seconds, (int, float)) else ""
            written = event.get("output")
            self.feedback.pushInfo(f"geosr finished{took}" + (f": {written}" if written else ""))
        elif kind == "error":
            self.error = " ".join(str(event.get("message", "")).split()) or None
        else:
            self.feedback.pushDebugInfo(line)

    def handle_stderr(self, line: str) -> None:
        """Keep stderr for the error message and show it in the log's debug level."""
        if line.strip():
            self.stderr_tail.append(line.strip())
            self.feedback.pushDebugInfo(line)

    def failure_message(self, returncode: int) -> str:
        """The child's own one-line error, or the best substitute (never a traceback)."""
        if self.error:
            return self.error
        for line in reversed(self.stderr_tail):
            match = _ERROR_LINE.match(line)
            if match:
                return match.group(1).strip()
        if returncode < 0:
            try:
                name = signal.Signals(-returncode).name
            except ValueError:
                name = str(-returncode)
            return f"the geosr process was killed by signal {name}"
        for line in reversed(self.stderr_tail):
            if not line.startswith(("Traceback", "File ", "  ")):
                return line
        return f"the geosr process exited with status {returncode}"


def relay(process: subprocess.Popen, lines: queue.Queue, open_pipes: int, run: GeosrRun) -> bool:
    """Hand the child's lines to ``run`` until both pipes close (or, once the child exited,
    :data:`PIPE_GRACE` seconds pass) or the user cancels; return whether they did (the child
    is then killed)."""
    exited_at = None
    while True:
        if run.feedback.isCanceled():
            kill_process_tree(process)
            return True
        try:
            name, line = lines.get(timeout=POLL_INTERVAL)
        except queue.Empty:
            if process.poll() is not None:
                if open_pipes == 0:
                    return False
                exited_at = exited_at or time.monotonic()
                if time.monotonic() - exited_at > PIPE_GRACE:
                    kill_process_tree(process, grace=0.5)  # a worker holds the pipes
                    return False
            continue
        if line is None:
            open_pipes -= 1
        elif name == "stdout":
            run.handle_stdout(line)
        else:
            run.handle_stderr(line)


def run_geosr(
    python: str,
    args: Sequence[str],
    feedback: QgsProcessingFeedback | None,
    *,
    outputs: Iterable[str] = (),
    what: str = "geosr",
) -> dict:
    """Run ``python args...`` and return its ``done`` event (``{}`` if it sent none).

    Args:
        python: geosr's interpreter (see :func:`geosr_qgis.environment.resolve_python`).
        args: the rest of the command line, e.g. ``["-m", "geosr", "upscale", ...]``.
        feedback: progress, log and cancel; None runs without any.
        outputs: files the run writes; whatever a failed or cancelled run left there is removed.
        what: the command's name for messages ("geosr upscale").

    Raises:
        QgsProcessingException: the child failed (its one-line error is the message), could
            not start, or the user cancelled (the child and its workers are then killed).
    """
    run = GeosrRun(feedback)
    feedback = run.feedback
    guard = OutputGuard(outputs)
    argv = [python, *map(str, args)]
    feedback.pushCommandInfo(command_line(argv))
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            **child_process_options(new_group=True),
        )
    except OSError as error:
        raise QgsProcessingException(
            f"{what} could not start '{python}': {error.strerror or error}"
        ) from None

    lines: queue.Queue = queue.Queue()
    readers = [
        threading.Thread(target=pump_lines, args=(process.stdout, "stdout", lines), daemon=True),
        threading.Thread(target=pump_lines, args=(process.stderr, "stderr", lines), daemon=True),
    ]
    for reader in readers:
        reader.start()
    canceled = False
    relayed = False  # True once the loop ended normally (not through an exception)
    try:
        canceled = relay(process, lines, len(readers), run)
        relayed = True
    finally:
        # Also reached on an exception from a feedback slot: never leave the child running.
        if process.poll() is None:
            kill_process_tree(process)
        returncode = process.wait()
        with contextlib.suppress(OSError):
            process.stdin.close()
        for reader, pipe in zip(readers, (process.stdout, process.stderr), strict=True):
            reader.join(timeout=1.0)
            # A reader still blocked in readline() holds the pipe's lock: closing it then
            # would block too, so such a pipe is left to the daemon thread.
            if not reader.is_alive():
                with contextlib.suppress(OSError):
                    pipe.close()
        if canceled or returncode != 0 or not relayed:
            removed = guard.clean()
            for path in removed:
                feedback.pushDebugInfo(f"removed partial output {path}")

    if canceled:
        raise QgsProcessingException(f"{what} was canceled; no output was written.")
    if returncode != 0:
        raise QgsProcessingException(f"{what} failed: {run.failure_message(returncode)}")
    return run.done or {}
