"""geosr's declarations of its options, from which the algorithms build their parameters.

geosr declares each user option once (name, kind, default, allowed values, help, and the QGIS
parameter that gives it); ``python -m geosr options --json`` prints those declarations
(schema ``geosr-options``, see geosr's ``geosr/options/__init__.py``). The plugin never imports
geosr, so it runs geosr's own interpreter (the one :mod:`geosr_qgis.environment` finds) for
them, once per interpreter and session. When no interpreter is configured yet, or it cannot
print them (a geosr older than the ``options`` command, a broken environment, a schema this
plugin does not know), the algorithms use ``options.json``, the copy shipped in the plugin,
generated from the same declarations (geosr's tests check that it is up to date).

So the installed geosr decides which options QGIS shows: a newer geosr brings its new
options, an older one hides what it would refuse.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading

from qgis.core import Qgis, QgsMessageLog

from .environment import child_process_options, configured_executable

SCHEMA = "geosr-options"
#: The schema version this plugin reads.
SCHEMA_VERSION = 1
#: The copy shipped in the plugin zip.
SHIPPED = os.path.join(os.path.dirname(__file__), "options.json")
#: Seconds allowed for ``geosr options --json`` (it imports no PyTorch).
TIMEOUT = 60
#: The fields of a QGIS entry this plugin needs.
REQUIRED = ("algorithm", "parameter", "label", "help", "widget")

_cache: dict[tuple[str, float], list[dict]] = {}
_lock = threading.Lock()


def _log(message: str) -> None:
    QgsMessageLog.logMessage(message, "geosr", Qgis.Info)


def read_declarations(text: str) -> list[dict]:
    """The options of a ``geosr options --json`` text.

    Raises:
        ValueError: not JSON, another schema or version, or no option list.
    """
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError("not geosr's option declarations")
    if data.get("version") != SCHEMA_VERSION:
        raise ValueError(
            f"declarations of version {data.get('version')}; this plugin reads version "
            f"{SCHEMA_VERSION}"
        )
    options = data.get("options")
    if not isinstance(options, list):
        raise ValueError("no option list")
    return options


def shipped() -> list[dict]:
    """The declarations shipped with the plugin (``options.json``)."""
    with open(SHIPPED, encoding="utf-8") as file:
        return read_declarations(file.read())


def from_python(python: str) -> list[dict]:
    """The declarations that ``python -m geosr options --json`` prints.

    Raises:
        ValueError: it failed, timed out or printed something else.
    """
    try:
        done = subprocess.run(
            [python, "-m", "geosr", "options", "--json"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
            **child_process_options(),
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise ValueError(str(error)) from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise ValueError(lines[-1] if lines else f"exit status {done.returncode}")
    return read_declarations(done.stdout)


def declarations() -> list[dict]:
    """geosr's option declarations: its interpreter's, else the shipped copy."""
    python = configured_executable()
    try:
        key = (python, os.stat(python).st_mtime) if python else ("", 0.0)
    except OSError:
        key = ("", 0.0)
    with _lock:
        if key not in _cache:
            options = None
            if key[0]:
                try:
                    options = from_python(python)
                except ValueError as error:
                    _log(
                        f"'{python} -m geosr options --json' gave no option declarations "
                        f"({error}); the plugin shows the options of its own copy"
                    )
            _cache[key] = options if options is not None else shipped()
        return _cache[key]


def parameters_of(algorithm: str) -> list[dict]:
    """The QGIS parameters geosr declares for ``geosr:<algorithm>``, in order, each a QGIS
    entry of the schema with the option's ``name`` and ``kind`` added."""
    entries = []
    for option in declarations():
        for entry in option.get("qgis") or ():
            if entry.get("algorithm") == algorithm and all(key in entry for key in REQUIRED):
                entries.append({**entry, "name": option.get("name"), "kind": option.get("kind")})
    return entries
