"""Find the Python the set-up makes geosr's environment with (part of :mod:`geosr_qgis.setup_env`).

Each candidate interpreter is *run*, because a name on PATH can be a broken shim or too old;
it must be Python ≥ 3.10 and able to make venvs. Also the set-up's error classes and the
types of its callbacks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from .environment import child_process_options

#: geosr's own ``requires-python``.
MIN_PYTHON = (3, 10)
#: Newest minor version preferred by :func:`find_pythons`: PyTorch wheels appear some months
#: after a Python release, so a brand-new Python is chosen only when nothing older is found.
NEWEST_PREFERRED = (3, 13)
#: Names looked up on PATH, best first.
PYTHON_NAMES = (*(f"python3.{minor}" for minor in range(13, 9, -1)), "python3", "python")
WINDOWS = os.name == "nt"
#: Seconds allowed for running a candidate interpreter once (a pyenv shim is a shell script).
PROBE_TIMEOUT = 30

# Runs in the candidate itself, so it must also run on Python 2 (to say "too old", not "not a
# Python"). _base_executable is the interpreter a venv was made from (3.10+).
_PROBE = """\
import json, sys
def has(name):
    try:
        __import__(name)
        return True
    except Exception:
        return False
print(json.dumps({
    "version": list(sys.version_info[:3]),
    "executable": sys.executable,
    "base_executable": getattr(sys, "_base_executable", sys.executable),
    "base_prefix": getattr(sys, "base_prefix", sys.prefix),
    "venv": has("venv") and has("ensurepip"),
}))
"""

Log = Callable[[str], None]
Step = Callable[[str, float], None]
Cancel = Callable[[], bool]


class SetupError(Exception):
    """The set-up cannot go on; the message is one line: the problem, then the fix."""


class SetupCanceledError(SetupError):
    """The user canceled the set-up."""


@dataclass(frozen=True)
class PythonInfo:
    """One interpreter, as it describes itself when run.

    Attributes:
        path: what was run (a name on PATH, a shim, or the file the user chose).
        executable: ``sys.executable``, the interpreter itself (shims resolved).
        base_executable: the interpreter a venv is made from (``executable`` outside venvs).
        base_prefix: ``sys.base_prefix``; equal for a venv and the Python it was made from.
        version: ``sys.version_info[:3]``.
        can_make_venvs: ``venv`` and ``ensurepip`` import (Debian splits them into python3-venv).
    """

    path: str
    executable: str
    base_executable: str
    base_prefix: str
    version: tuple[int, int, int]
    can_make_venvs: bool

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    def __str__(self) -> str:
        return f"Python {self.version_text} ({self.executable})"


# ---------------------------------------------------------------- interpreters


def inspect_python(path: str | os.PathLike) -> PythonInfo:
    """Run ``path`` and return what it says about itself.

    Raises:
        SetupError: ``path`` is missing, a folder, not executable, or not a Python interpreter.
    """
    path = os.path.expanduser(str(path))
    fix = "choose the python executable of Python 3.10 or newer (e.g. /usr/bin/python3)"
    if os.path.isdir(path):
        raise SetupError(f"{path} is a folder, not a Python interpreter: {fix}.")
    if not os.path.isfile(path):
        raise SetupError(f"{path} does not exist: {fix}.")
    if not os.access(path, os.X_OK):
        raise SetupError(f"{path} is not an executable file, so not a Python interpreter: {fix}.")
    try:
        done = subprocess.run(
            [path, "-c", _PROBE],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=PROBE_TIMEOUT,
            check=False,
            **child_process_options(),
        )
    except subprocess.TimeoutExpired:
        raise SetupError(f"{path} did not answer within {PROBE_TIMEOUT} s: {fix}.") from None
    except OSError as error:
        raise SetupError(
            f"{path} cannot be run ({error.strerror or error}), so it is not a Python "
            f"interpreter: {fix}."
        ) from None
    try:
        facts = json.loads(done.stdout.strip().splitlines()[-1])
        version = tuple(int(part) for part in facts["version"])
        info = PythonInfo(
            path=path,
            executable=str(facts["executable"] or path),
            base_executable=str(facts["base_executable"] or facts["executable"] or path),
            base_prefix=str(facts["base_prefix"]),
            version=(*version, 0, 0, 0)[:3],
            can_make_venvs=bool(facts["venv"]),
        )
    except (ValueError, KeyError, TypeError, IndexError):
        raise SetupError(
            f"{path} is not a Python interpreter (run with -c it reported no Python version; "
            f"exit status {done.returncode}): {fix}."
        ) from None
    return info


def check_python(path: str | os.PathLike) -> PythonInfo:
    """Like :func:`inspect_python`, and refuse a Python that cannot hold geosr.

    Raises:
        SetupError: not a Python, older than :data:`MIN_PYTHON`, or without ``venv``.
    """
    info = inspect_python(path)
    minimum = ".".join(map(str, MIN_PYTHON))
    if info.version < MIN_PYTHON:
        raise SetupError(
            f"{info.path} is Python {info.version_text}, but geosr needs Python {minimum} or "
            "newer: choose a newer interpreter, or leave 'Python interpreter' empty to let the "
            "set-up search for one."
        )
    if not info.can_make_venvs:
        raise SetupError(
            f"{info} cannot create virtual environments (its 'venv'/'ensurepip' modules are "
            "missing): install them (Debian/Ubuntu: apt install python3-venv) or choose another "
            "interpreter."
        )
    return info


def _candidates(search_path: str | None) -> list[str]:
    """Executables named like a Python on PATH (best names first), then QGIS's own Python."""
    folders = (os.environ.get("PATH", "") if search_path is None else search_path).split(os.pathsep)
    suffix = ".exe" if WINDOWS else ""
    found = []
    for name in PYTHON_NAMES:
        for folder in folders:
            candidate = os.path.join(folder, name + suffix) if folder else ""
            if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                found.append(candidate)
    # QGIS's interpreter can make a venv too (OSGeo4W and the macOS bundle put none on PATH).
    # sys.executable is the QGIS binary here, so look under the prefix instead.
    if search_path is None:
        for relative in ("python.exe", "bin/python3", "bin/python"):
            candidate = os.path.join(sys.base_prefix, relative)
            if os.path.isfile(candidate):
                found.append(candidate)
    return list(dict.fromkeys(found))


def find_pythons(search_path: str | None = None) -> list[PythonInfo]:
    """Interpreters that can hold geosr, best first: each candidate is run and checked.

    Args:
        search_path: folders to search, as in PATH; None: this process's PATH (and QGIS's own
            Python).

    Returns:
        One entry per distinct interpreter (names and shims for the same binary are merged),
        Python ≥ 3.10 that can make venvs, newest first up to :data:`NEWEST_PREFERRED`, then
        newer ones.
    """
    found: dict[str, PythonInfo] = {}
    for candidate in _candidates(search_path):
        try:
            info = check_python(candidate)
        except SetupError:
            continue  # e.g. a pyenv shim for a version that is not active, or Python 3.9
        key = os.path.normcase(os.path.realpath(info.base_executable))
        found.setdefault(key, info)
    # sorted() is stable: interpreters of one version keep their PATH order.
    return sorted(
        found.values(),
        key=lambda info: (info.version[:2] <= NEWEST_PREFERRED, info.version),
        reverse=True,
    )


def choose_python(requested: str | None, log: Log | None = None) -> PythonInfo:
    """The interpreter the user chose (checked), else the best one :func:`find_pythons` finds.

    Raises:
        SetupError: the chosen one is unusable, or none was chosen and none is found.
    """
    if requested:
        return check_python(requested)
    found = find_pythons()
    if log is not None:
        log("Pythons found: " + ("; ".join(map(str, found)) or "none") + ".")
    if not found:
        raise SetupError(
            "No Python 3.10 or newer was found on PATH (looked for "
            + ", ".join(PYTHON_NAMES)
            + "): install Python 3.10 or newer (python.org), then choose its python executable "
            "in 'Python interpreter'."
        )
    return found[0]
