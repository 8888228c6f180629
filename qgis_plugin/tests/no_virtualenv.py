"""The environment for processes started for QGIS: the caller's virtualenv left out.

QGIS's embedded Python finds its prefix from the first ``python3`` on PATH. With a virtualenv
active (its ``bin`` first on PATH) that is the venv's interpreter, whose ``sys.path`` lacks
Debian's ``qgis`` package, and ``qgis_process`` fails at start ("Couldn't load SIP module ...
No module named 'qgis'"). So every process started for QGIS gets the environment without
``VIRTUAL_ENV``, without the venv's scripts folder on PATH and without PYTHONHOME/PYTHONPATH
entries inside the venv.

Imported by ``helpers.py``; ``run_tests.sh`` runs it before pytest exists, as a script with
QGIS's Python (stdlib only), and evaluates the shell lines it prints::

    eval "$(/usr/bin/python3 -I no_virtualenv.py)"
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping


def _inside(path: str, roots: set[str]) -> bool:
    real = os.path.realpath(path)
    return any(os.path.commonpath([real, root]) == root for root in roots)


def _venv_of(folder: str) -> str | None:
    """The venv whose scripts folder (``bin``, ``Scripts``) ``folder`` is, or None."""
    parent = os.path.dirname(os.path.realpath(folder))
    return parent if os.path.isfile(os.path.join(parent, "pyvenv.cfg")) else None


def without_virtualenv(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` as if no virtualenv were active (what ``deactivate`` would leave)."""
    env = dict(environ)
    roots = set()
    active = env.pop("VIRTUAL_ENV", None)
    env.pop("VIRTUAL_ENV_PROMPT", None)
    if active:
        roots.add(os.path.realpath(active))
    # a venv's bin on PATH counts without VIRTUAL_ENV too (PATH=.venv/bin:$PATH make test)
    roots.update(filter(None, map(_venv_of, filter(None, env.get("PATH", "").split(os.pathsep)))))
    if not roots:
        return env
    for name in ("PATH", "PYTHONPATH"):
        if name in env:
            parts = env[name].split(os.pathsep)
            kept = [part for part in parts if not (part and _inside(part, roots))]
            env[name] = os.pathsep.join(kept)
    if not env.get("PYTHONPATH"):
        env.pop("PYTHONPATH", None)
    if env.get("PYTHONHOME") and _inside(env["PYTHONHOME"], roots):
        del env["PYTHONHOME"]
    return env


def shell_lines(environ: Mapping[str, str]) -> list[str]:
    """The ``unset``/``export`` lines that turn ``environ`` into :func:`without_virtualenv`'s."""
    clean = without_virtualenv(environ)
    lines = [f"unset {name}" for name in sorted(set(environ) - set(clean))]
    lines += [
        f"export {name}={shlex.quote(value)}"
        for name, value in sorted(clean.items())
        if environ.get(name) != value
    ]
    return lines


if __name__ == "__main__":
    print("\n".join(shell_lines(os.environ)))
