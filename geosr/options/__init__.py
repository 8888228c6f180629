"""Every user option of geosr, declared once: name, kind, default, help, allowed values, and
how the Python API, the ``geosr`` command line and the QGIS plugin take it.

* The API checks values with :func:`check_options` (the engine's own messages and errors).
* The command line (:mod:`geosr.cli_parser`) builds its arguments from :attr:`Option.cli`.
* The QGIS plugin cannot import geosr: ``geosr options --json`` prints :func:`to_json`, from
  which it builds its Processing parameters (:attr:`Option.qgis`); the plugin ships a copy,
  ``qgis_plugin/geosr_qgis/options.json``, for when geosr cannot be run.

Adding an option is one :class:`Option` here (in the module of its subject), plus its
implementation. This package imports nothing of geosr but :mod:`geosr.errors`.

The JSON (``geosr options --json``), schema ``geosr-options`` version :data:`SCHEMA_VERSION`::

    {"schema": "geosr-options", "version": 1, "options": [OPTION, ...]}

    OPTION: {"name": keyword of the API, "kind": one of KINDS, "help": text,
             "default": the API's default (null: unset), "choices": [...] (a choice's values as
             written on the command line and in QGIS), "suggestions": [...] (common values of
             an open kind), "none_value": the word for the API's None or null, "minimum",
             "maximum": numbers or null, "exclusive_minimum": bool, "many": bool (a list of
             values), "nullable": bool, "api": [API functions taking name=],
             "cli": [CLI, ...], "qgis": [QGIS, ...]}
    CLI:    {"command": geosr subcommand, "flags": [...] ([]: positional), "dest": the parsed
             argument's name, "help", "metavar", "nargs", "append", "kind", "negate"}
    QGIS:   {"algorithm": "upscale" (geosr:upscale), "parameter": "STRENGTH", "label", "help",
             "advanced": bool, "widget": one of WIDGETS, "optional": bool, "default": QGIS's,
             "choices": [...] (enum), "minimum", "maximum", "exclusive_minimum", "decimal": bool
             (number), "list": bool (comma-separated values), "parent" (band: the raster
             parameter), "extension" (file), "flag": what passes the value to geosr (or
             geosr-train), "skip": a value not passed, since it is the default (or null)}

A new field may appear within a version; a field's meaning changes only with a new version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from geosr.options.declare import KIND_WIDGETS, KINDS, LIST_KINDS, WIDGETS, Cli, Option, Qgis
from geosr.options.evaluate import REPORTS, SCENES, SCORING, STRENGTHS, TEMPORAL
from geosr.options.products import BANDS, GUIDED, MASK, RESOLUTION
from geosr.options.runtime import CHUNK_SIZE, DEVICE, OVERLAP, RUNNER, WRITING
from geosr.options.upscale import MODEL, NETWORK, PRECISIONS, SOURCES

SCHEMA = "geosr-options"
SCHEMA_VERSION = 1

#: Every option, in the order of the command line's help and of QGIS's parameters.
OPTIONS: tuple[Option, ...] = (
    *SOURCES,
    MODEL,
    BANDS,
    RESOLUTION,
    *NETWORK,
    DEVICE,
    CHUNK_SIZE,
    MASK,
    GUIDED,
    OVERLAP,
    *RUNNER,
    *WRITING,
    SCENES,
    STRENGTHS,
    *SCORING,
    *TEMPORAL,
    *REPORTS,
)
BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
if len(BY_NAME) != len(OPTIONS):
    raise ValueError("two geosr options share a name")

__all__ = [
    "BY_NAME",
    "KINDS",
    "OPTIONS",
    "PRECISIONS",
    "SCHEMA_VERSION",
    "WIDGETS",
    "Cli",
    "Option",
    "Qgis",
    "check_options",
    "defaults",
    "for_command",
    "get",
    "to_json",
    "validate",
]


def get(name: str) -> Option:
    """The option called ``name``."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"geosr has no option {name!r}") from None


def for_api(function: str) -> list[Option]:
    """The options the API function ``function`` (``"upscale"``) takes as keywords."""
    return [option for option in OPTIONS if function in option.api]


def for_command(command: str) -> list[tuple[Option, Cli]]:
    """The options of ``geosr COMMAND``, with how it takes each, in order."""
    return [(o, c) for o in OPTIONS for c in o.cli if c.command == command]


def defaults(function: str) -> dict[str, Any]:
    """The API function's declared defaults, by keyword."""
    return {option.name: option.default for option in for_api(function)}


def validate(name: str, value: Any) -> Any:
    """``value`` of the option ``name`` checked as the API takes it (see :meth:`Option.check`)."""
    return get(name).check(value)


def check_options(
    function: str, values: Mapping[str, Any] | None = None, /, **more: Any
) -> dict[str, Any]:
    """Check the keyword values given to the API function ``function`` (``"upscale"``,
    ``"upscale_dataarray"``, ``"evaluate"``...): each one that ``function`` declares is checked
    (:meth:`Option.check`); others are left to the function. Returns the checked values.

    Raises:
        GeosrError: the first bad value, with the engine's own message (ConfigError,
            ModelError for a strength).
    """
    given = {**(values or {}), **more}
    declared = {option.name: option for option in for_api(function)}
    return {name: declared[name].check(v) for name, v in given.items() if name in declared}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _cli_json(option: Option, cli: Cli) -> dict[str, Any]:
    return {
        "command": cli.command,
        "flags": list(cli.flags),
        "dest": option.name,
        "help": cli.help or option.help,
        "metavar": _jsonable(cli.metavar),
        "nargs": cli.nargs,
        "append": cli.append,
        "kind": cli.kind or option.kind,
        "negate": cli.negate,
    }


def _qgis_default(option: Option, qgis: Qgis, widget: str) -> Any:
    if qgis.default is not None:
        return qgis.default
    if widget == "boolean":
        return bool(option.default)
    if widget == "number":
        return option.default
    if widget == "enum" and option.default is not None:
        return str(option.text_value(option.default))
    return None


def _qgis_json(option: Option, qgis: Qgis) -> dict[str, Any]:
    widget = qgis.widget or KIND_WIDGETS[option.kind]
    default = _qgis_default(option, qgis, widget)
    cli = option.cli_for(qgis.algorithm) or (option.cli[0] if option.cli else None)
    skip = None if option.default is None else option.text_value(option.default)
    return {
        "algorithm": qgis.algorithm,
        "parameter": qgis.parameter,
        "label": qgis.label,
        "help": qgis.help,
        "advanced": qgis.advanced,
        "widget": widget,
        "optional": default is None and widget != "boolean",
        "default": default,
        "choices": [str(c) for c in option.choices or option.suggestions]
        if widget == "enum"
        else [],
        "minimum": qgis.minimum if qgis.minimum is not None else option.minimum,
        "maximum": option.maximum,
        "exclusive_minimum": option.exclusive_minimum,
        "decimal": option.kind == "float",
        "list": option.kind in LIST_KINDS,
        "parent": qgis.parent,
        "extension": qgis.extension,
        "flag": cli.flags[0] if cli and cli.flags else None,
        "skip": _jsonable(skip),
    }


def option_json(option: Option) -> dict[str, Any]:
    """One option as ``geosr options --json`` prints it."""
    return {
        "name": option.name,
        "kind": option.kind,
        "help": option.help,
        "default": _jsonable(option.default),
        "choices": list(option.choices),
        "suggestions": list(option.suggestions),
        "none_value": option.none_value,
        "minimum": option.minimum,
        "maximum": option.maximum,
        "exclusive_minimum": option.exclusive_minimum,
        "many": option.many,
        "nullable": option.accepts_none,
        "api": list(option.api),
        "cli": [_cli_json(option, cli) for cli in option.cli],
        "qgis": [_qgis_json(option, qgis) for qgis in option.qgis],
    }


def to_json() -> dict[str, Any]:
    """Every declaration as JSON-ready data (the schema above)."""
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "options": [option_json(option) for option in OPTIONS],
    }
