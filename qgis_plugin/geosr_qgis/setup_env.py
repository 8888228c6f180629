"""Make a Python environment for geosr from inside QGIS: find a Python, make a venv, pip install.

This is what "Plugins > geosr > Set up geosr..." (the algorithm ``geosr:setup``) runs, for users
who have no terminal. It never imports geosr and never touches QGIS's own Python: it starts
other interpreters as child processes, like :mod:`geosr_qgis.runner` does for geosr itself.

The steps, each a plain function that tests call directly:

1. :func:`find_pythons` / :func:`check_python`: an interpreter, Python ≥ 3.10, that can make
   venvs (each candidate is *run*, because a name on PATH can be a broken shim or too old);
2. :func:`create_venv`: ``python -m venv`` in :func:`venv_path` (the QGIS profile folder), or
   reuse the environment already there;
3. :func:`pip_install_command`: ``pip install`` of a geosr wheel (offline; its dependencies come
   from pip's own configuration) or of ``geosr`` from the package index;
4. :func:`verify_geosr`: ``python -m geosr --version`` in the new environment.

:func:`install_geosr` runs them in order, reports each step and every line of pip's output to
callbacks, and stops (killing pip) when ``cancel()`` turns true. Errors are :class:`SetupError`
with a one-line message that names the problem and the fix.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .environment import child_process_options
from .runner import POLL_INTERVAL, command_line, kill_process_tree, pump_lines, redact
from .setup_python import (
    MIN_PYTHON,
    NEWEST_PREFERRED,
    PROBE_TIMEOUT,
    PYTHON_NAMES,
    WINDOWS,
    Cancel,
    Log,
    PythonInfo,
    SetupCanceledError,
    SetupError,
    Step,
    check_python,
    choose_python,
    find_pythons,
    inspect_python,
)

#: Seconds allowed for ``python -m geosr --version`` (the first import of torch compiles bytecode).
VERIFY_TIMEOUT = 600
#: The package installed from an index.
PACKAGE = "geosr"
_WHEEL_NAME = re.compile(r"^geosr-[^-]+-.+\.whl$", re.IGNORECASE)
_VERSION_LINE = re.compile(r"^geosr (\S+)$")
_PIP_ERROR = re.compile(r"^ERROR: (.+)$")

__all__ = [  # the interpreters' part lives in setup_python; its names are this module's too
    "MIN_PYTHON",
    "NEWEST_PREFERRED",
    "PACKAGE",
    "PROBE_TIMEOUT",
    "PYTHON_NAMES",
    "WINDOWS",
    "Cancel",
    "Installed",
    "Log",
    "PythonInfo",
    "SetupCanceledError",
    "SetupError",
    "Step",
    "check_python",
    "check_wheel",
    "choose_python",
    "create_venv",
    "find_pythons",
    "inspect_python",
    "install_geosr",
    "install_into",
    "pip_install_command",
    "split_pip_options",
    "venv_path",
    "venv_python",
    "verify_geosr",
]


@dataclass(frozen=True)
class Installed:
    """The outcome of :func:`install_geosr`."""

    python: str  #: the environment's interpreter, for the provider setting
    version: str  #: what ``python -m geosr --version`` reported
    env_dir: str


# ---------------------------------------------------------------- environment


def venv_path(profile_dir: str | os.PathLike | None = None) -> Path:
    """Where the set-up puts geosr's environment: ``<QGIS profile>/geosr/venv``.

    Args:
        profile_dir: the QGIS profile folder; None: the running QGIS's
            (``QgsApplication.qgisSettingsDirPath()``).
    """
    if profile_dir is None:
        from qgis.core import QgsApplication

        profile_dir = QgsApplication.qgisSettingsDirPath()
    return Path(profile_dir) / "geosr" / "venv"


def venv_python(env_dir: str | os.PathLike) -> Path:
    """The interpreter inside the environment ``env_dir``."""
    env_dir = Path(env_dir)
    return env_dir / "Scripts" / "python.exe" if WINDOWS else env_dir / "bin" / "python"


def is_venv(env_dir: str | os.PathLike) -> bool:
    """Whether ``env_dir`` holds a virtual environment (made by ``venv`` or virtualenv)."""
    return (Path(env_dir) / "pyvenv.cfg").is_file()


def existing_venv(env_dir: str | os.PathLike) -> PythonInfo | None:
    """The working Python ≥ 3.10 of the environment in ``env_dir``, or None."""
    if not is_venv(env_dir):
        return None
    try:
        return check_python(venv_python(env_dir))
    except SetupError:
        return None  # e.g. its base Python was removed or upgraded: make it anew


def create_venv_command(
    python: PythonInfo, env_dir: str | os.PathLike, *, clear: bool
) -> list[str]:
    """``python -m venv [--clear] ENV_DIR``, from the base interpreter (never a venv's copy)."""
    return [
        python.base_executable,
        "-m",
        "venv",
        *(["--clear"] if clear else []),
        str(Path(env_dir).absolute()),
    ]


def create_venv(
    python: PythonInfo, env_dir: str | os.PathLike, log: Log, cancel: Cancel
) -> PythonInfo:
    """Make a venv in ``env_dir`` with ``python``, or reuse the one there if it matches.

    An environment made from the same Python (same ``base_prefix``) is kept, so running the
    set-up again only updates geosr. One made from another Python is emptied and made anew.
    A folder that holds anything but a venv is refused: the set-up deletes nothing it did not
    make.

    Returns:
        The environment's own interpreter.

    Raises:
        SetupError: the folder is in the way, or ``python -m venv`` failed.
    """
    env_dir = Path(env_dir)
    current = existing_venv(env_dir)
    if current is not None and current.base_prefix == python.base_prefix:
        log(f"Reusing the environment {env_dir} ({current}).")
        return current
    if env_dir.exists() and not is_venv(env_dir) and (env_dir.is_file() or any(env_dir.iterdir())):
        raise SetupError(
            f"{env_dir} exists and is not a Python environment: choose an empty or new folder "
            "for 'Environment folder'."
        )
    clear = is_venv(env_dir)
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    returncode, tail = run_logged(create_venv_command(python, env_dir, clear=clear), log, cancel)
    if returncode != 0:
        reason = tail[-1] if tail else f"exit status {returncode}"
        hint = (
            "install python3-venv (Debian/Ubuntu) or choose another interpreter"
            if "ensurepip" in " ".join(tail)
            else "check the log above, or choose another folder or interpreter"
        )
        raise SetupError(f"{python} could not create the environment {env_dir} ({reason}): {hint}.")
    created = existing_venv(env_dir)
    if created is None:
        raise SetupError(
            f"{python} made {env_dir}, but {venv_python(env_dir)} does not run: choose another "
            "interpreter."
        )
    return created


# ---------------------------------------------------------------- pip


def check_wheel(path: str | os.PathLike) -> str:
    """Return the absolute path of a geosr wheel file.

    Raises:
        SetupError: the file is missing or not named like a geosr wheel.
    """
    path = os.path.abspath(os.path.expanduser(str(path)))
    if not os.path.isfile(path):
        raise SetupError(
            f"The wheel {path} does not exist: choose the geosr-<version>-py3-none-any.whl "
            "file, or leave 'geosr wheel' empty to install geosr from the package index."
        )
    if not _WHEEL_NAME.match(os.path.basename(path)):
        raise SetupError(
            f"{os.path.basename(path)} is not a geosr wheel (geosr-<version>-py3-none-any.whl): "
            "choose the geosr wheel, or leave 'geosr wheel' empty to install from the package "
            "index."
        )
    return path


def split_pip_options(options: str | Sequence[str] | None, *, windows: bool = WINDOWS) -> list[str]:
    """Extra pip options as typed in one text field (shell quoting), or already a list.

    Quotes ('...' or "...") group words and are removed. On Windows a backslash is a folder
    separator, not an escape, so ``"C:\\my dir\\wheels"`` keeps its backslashes.

    Args:
        windows: split the Windows way (default: whether this is Windows).

    Raises:
        SetupError: unbalanced quotes.
    """
    if not options:
        return []
    if not isinstance(options, str):
        return [str(option) for option in options]
    # posix rules remove the quotes (shlex's posix=False keeps them); Windows has no escape char
    lexer = shlex.shlex(options, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    if windows:
        lexer.escape = ""
    try:
        return list(lexer)
    except ValueError as error:
        raise SetupError(
            f"The extra pip options cannot be read ({error}): check their quotes."
        ) from None


def pip_install_command(
    python: str | os.PathLike,
    wheel: str | None = None,
    pip_options: str | Sequence[str] | None = None,
) -> list[str]:
    """The pip command that installs geosr into ``python``'s environment.

    Args:
        python: the environment's interpreter (pip runs as ``python -m pip``).
        wheel: a geosr wheel file (installed offline; its dependencies come from pip's own
            configuration: ``pip config list``); None: ``geosr`` from the package index.
        pip_options: extra options for ``pip install`` (e.g. ``--index-url URL``).
    """
    return [
        str(python),
        "-m",
        "pip",
        "install",
        "--upgrade",  # running the set-up again updates geosr
        "--no-input",  # never wait for a password prompt nobody can see
        "--disable-pip-version-check",
        "--progress-bar",
        "off",  # no carriage-return bars in the log
        *split_pip_options(pip_options),
        check_wheel(wheel) if wheel else PACKAGE,
    ]


class _PipProgress:
    """Turn pip's lines into a rough fraction: pip reports no total, so each package it
    collects moves the bar a little closer to the install phase."""

    def __init__(self, step: Step, start: float, end: float):
        self.step, self.start, self.end = step, start, end
        self.collected = 0

    def __call__(self, line: str) -> None:
        if line.startswith(("Collecting ", "Processing ")):
            self.collected += 1
            share = 1.0 - 0.9**self.collected  # approaches 1 as packages keep coming
            self.step("", self.start + 0.7 * (self.end - self.start) * share)
        elif line.startswith("Installing collected packages"):
            self.step(
                "Installing the packages (PyTorch takes a few minutes)…",
                self.start + 0.8 * (self.end - self.start),
            )


def install_into(
    python: PythonInfo,
    wheel: str | None,
    pip_options: str | Sequence[str] | None,
    log: Log,
    step: Step,
    cancel: Cancel,
    span: tuple[float, float] = (0.0, 1.0),
) -> None:
    """Run pip in ``python``'s environment.

    Raises:
        SetupError: pip failed; the message carries pip's own ``ERROR:`` line.
    """
    command = pip_install_command(python.executable, wheel, pip_options)
    log("$ " + command_line(command))
    progress = _PipProgress(step, *span)

    def relay(line: str) -> None:
        log(line)
        progress(line)

    returncode, tail = run_logged(command, relay, cancel)
    if returncode != 0:
        errors = [match.group(1) for match in map(_PIP_ERROR.match, tail) if match]
        reason = errors[-1] if errors else (tail[-1] if tail else f"exit status {returncode}")
        where = (
            "pip's configured index (pip config list) must hold geosr's dependencies"
            if wheel
            else "pip must reach a package index that holds geosr"
        )
        raise SetupError(
            f"pip could not install geosr ({reason.strip()[:300]}): see the pip log above; "
            f"{where}, or give one in 'Extra pip options' (e.g. --index-url URL)."
        )


def verify_geosr(python: str | os.PathLike, log: Log, cancel: Cancel) -> str:
    """Run ``python -m geosr --version`` and return the version it reports.

    Raises:
        SetupError: geosr does not start in that environment.
    """
    returncode, tail = run_logged(
        [str(python), "-m", "geosr", "--version"], log, cancel, timeout=VERIFY_TIMEOUT
    )
    versions = [match.group(1) for match in map(_VERSION_LINE.match, tail) if match]
    if returncode != 0 or not versions:
        reason = tail[-1] if tail else f"exit status {returncode}"
        raise SetupError(
            f"geosr was installed, but '{python} -m geosr --version' fails ({reason[:300]}): see "
            "the log above, then run the set-up again."
        )
    return versions[-1]


# ---------------------------------------------------------------- child processes


def run_logged(
    argv: Sequence[str], log: Log, cancel: Cancel, *, timeout: float | None = None
) -> tuple[int, list[str]]:
    """Run ``argv``, pass each line of its output (stdout and stderr) to ``log``.

    Returns:
        The exit status and the last lines of output.

    Raises:
        SetupCanceledError: ``cancel()`` turned true; the child and its own children were killed.
        SetupError: the child could not start or ran past ``timeout`` seconds.
    """
    try:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # a group of its own, so a cancel also stops pip's own children
            **child_process_options(new_group=True),
        )
    except OSError as error:
        raise SetupError(f"{argv[0]} cannot be started: {error.strerror or error}.") from None
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=pump_lines, args=(process.stdout, "out", lines), daemon=True)
    reader.start()
    tail: collections.deque[str] = collections.deque(maxlen=40)
    deadline = None if timeout is None else time.monotonic() + timeout
    finished = False
    try:
        while True:
            if cancel():
                raise SetupCanceledError("The set-up was canceled.")
            if deadline is not None and time.monotonic() > deadline:
                raise SetupError(f"{argv[0]} did not finish within {timeout:.0f} s.")
            try:
                _, line = lines.get(timeout=POLL_INTERVAL)
            except queue.Empty:
                continue
            if line is None:
                break
            if line.strip():
                line = redact(line)  # pip echoes its index URL with the query (a token) kept
                tail.append(line)
                log(line)
        finished = True
    finally:
        # On cancel, timeout or an exception from ``log``: never leave the child running.
        if not finished:
            kill_process_tree(process)
        returncode = process.wait()
        reader.join(timeout=1.0)
        if not reader.is_alive():
            with contextlib.suppress(OSError):
                process.stdout.close()
    return returncode, list(tail)


# ---------------------------------------------------------------- all steps


def install_geosr(
    env_dir: str | os.PathLike,
    wheel: str | None = None,
    *,
    python: str | None = None,
    pip_options: str | Sequence[str] | None = None,
    log: Log = print,
    step: Step = lambda message, fraction: None,
    cancel: Cancel = lambda: False,
) -> Installed:
    """Make (or update) geosr's environment in ``env_dir`` and check that geosr runs there.

    Args:
        env_dir: the environment's folder (see :func:`venv_path`).
        wheel: a geosr wheel to install offline; None: ``geosr`` from the package index.
        python: the interpreter to make the environment with; None: the one already in
            ``env_dir`` if it works, else the best one :func:`find_pythons` finds.
        pip_options: extra options for ``pip install``.
        log: receives every line the children print.
        step: receives a message (may be empty) and the fraction done, at each step.
        cancel: polled ten times a second; when it returns True the set-up stops.

    Raises:
        SetupError: with the one-line reason and fix (:class:`SetupCanceledError` on cancel).
    """
    env_dir = Path(os.path.abspath(os.path.expanduser(str(env_dir))))
    if wheel:
        wheel = check_wheel(wheel)  # before anything is made
    split_pip_options(pip_options)  # a quoting error shows before anything is made
    step("Looking for a Python 3.10 or newer…", 0.0)
    base = existing_venv(env_dir) if not python else None
    if base is None:
        base = choose_python(python, log)
        log(f"Using {base}.")
    step(f"Making the environment {env_dir}…", 0.05)
    env_python = create_venv(base, env_dir, log, cancel)
    source = wheel or f"'{PACKAGE}' from the package index"
    step(f"Installing {source} and its dependencies with pip…", 0.15)
    install_into(env_python, wheel, pip_options, log, step, cancel, span=(0.15, 0.9))
    step("Checking that geosr runs…", 0.9)
    python_path = str(venv_python(env_dir))
    version = verify_geosr(python_path, log, cancel)
    step(f"geosr {version} is installed in {env_dir}.", 1.0)
    return Installed(python=python_path, version=version, env_dir=str(env_dir))
