"""The shape of an option's declaration, and the rules that check a value given to the API.

Pure data and plain Python: nothing here imports torch, numpy or any geosr module but
:mod:`geosr.errors`, so the engine, the command line and ``geosr options --json`` (which the
QGIS plugin reads) can all use it.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

from geosr import errors

#: What an option's value is. ``flag``: True/False; ``int``/``float``: a number (``minimum``,
#: ``maximum``); ``choice``: one of ``choices``; ``device``: auto, cpu, cuda[:N] (or mps);
#: ``text``: free text (``suggestions`` lists common values); ``model``: a bundled model name
#: or a .safetensors file; ``bands``: band numbers from 1 or band names; ``band_numbers``:
#: band numbers from 1; ``names``: names; ``source``: a raster (file, URL or GDAL name);
#: ``path``/``paths``: local files; ``pairs``: (LR, HR) raster pairs.
KINDS = (
    "flag",
    "int",
    "float",
    "choice",
    "device",
    "text",
    "model",
    "bands",
    "band_numbers",
    "names",
    "source",
    "path",
    "paths",
    "pairs",
)
#: QGIS Processing widgets: ``boolean`` (QgsProcessingParameterBoolean), ``number``
#: (...Number, Integer or Double), ``enum`` (...Enum of static strings), ``band`` (...Band of
#: a raster parameter, several allowed), ``text`` (...String), ``file`` (...File).
WIDGETS = ("boolean", "number", "enum", "band", "text", "file")
#: The widget a kind gets in QGIS unless its :class:`Qgis` entry names another.
KIND_WIDGETS = {
    "flag": "boolean",
    "int": "number",
    "float": "number",
    "choice": "enum",
    "device": "enum",
    "model": "file",
    "bands": "band",
    "band_numbers": "band",
    "names": "text",
    "text": "text",
}
#: Kinds whose value is a list (a comma-separated text in QGIS and on the command line).
LIST_KINDS = ("bands", "band_numbers", "names", "paths", "pairs")


@dataclass(frozen=True)
class Cli:
    """How one ``geosr`` command takes an option.

    ``flags`` empty: a positional argument. ``help``: the option's help unless given.
    ``nargs``: argparse's (``"?"``, ``"*"``, ``"+"``, 2). ``append``: repeatable.
    ``kind``: how this command parses the value, when not as the option's kind.
    ``negate``: the flag turns off an option that is on by default (``--no-consistency``).
    """

    command: str
    flags: tuple[str, ...] = ()
    help: str | None = None
    metavar: str | tuple[str, ...] | None = None
    nargs: str | int | None = None
    append: bool = False
    kind: str | None = None
    negate: bool = False


@dataclass(frozen=True)
class Qgis:
    """A QGIS Processing parameter of the option, in the algorithm ``geosr:<algorithm>``.

    ``widget``: one of :data:`WIDGETS` (default: the kind's, :data:`KIND_WIDGETS`);
    ``minimum`` and ``default``: QGIS's, when not the option's; ``parent``: the raster
    parameter a ``band`` widget lists the bands of; ``extension``: a ``file`` widget's.
    """

    algorithm: str
    parameter: str
    label: str
    help: str
    advanced: bool = False
    widget: str | None = None
    minimum: float | None = None
    default: Any = None
    parent: str | None = None
    extension: str | None = None


@dataclass(frozen=True)
class Option:
    """One user option, declared once for the API, the command line and QGIS.

    Args:
        name: the keyword of the Python API, and the option's key.
        kind: one of :data:`KINDS`.
        help: what it does, in one or two sentences.
        default: the API's default (None: unset, the engine decides).
        choices: the allowed values of a ``choice``, as written on the command line.
        suggestions: common values of an open kind (``device``, ``model``, ``int``).
        none_value: the word that stands for the API's None on the command line and in
            QGIS (``--mask none`` is ``mask=None``).
        minimum, maximum: bounds of a number; ``exclusive_minimum``: the minimum itself is
            refused.
        many: the value is a list of such values (``strengths``).
        nullable: None is accepted although the default is not None (``strict``).
        unit, example: words of the error messages (``"pixels"``, ``"512"``).
        invalid: the error message for a value outside the allowed ones, a template of
            ``{name}``, ``{value!r}`` and ``{allowed}``; generic when not given.
        error: the geosr error class a bad API value raises.
        aliases: other spellings the API accepts (case-insensitive) and what they mean.
        api: the library functions that take it, as ``name=``.
        cli: how ``geosr`` commands take it.
        qgis: the QGIS parameters that give it.
    """

    name: str
    kind: str
    help: str
    default: Any = None
    choices: tuple[str, ...] = ()
    suggestions: tuple[Any, ...] = ()
    none_value: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    many: bool = False
    nullable: bool = False
    unit: str = ""
    example: str = ""
    invalid: str | None = None
    error: str = "ConfigError"
    aliases: tuple[tuple[str, str], ...] = ()
    api: tuple[str, ...] = ()
    cli: tuple[Cli, ...] = ()
    qgis: tuple[Qgis, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"option {self.name}: unknown kind {self.kind!r}")
        for q in self.qgis:
            if (q.widget or KIND_WIDGETS.get(self.kind)) not in WIDGETS:
                raise ValueError(f"option {self.name}: no QGIS widget for {q.parameter}")

    def cli_for(self, command: str) -> Cli | None:
        """How ``geosr COMMAND`` takes this option, or None."""
        return next((c for c in self.cli if c.command == command), None)

    @property
    def accepts_none(self) -> bool:
        return self.default is None or self.nullable or self.none_value is not None

    def allowed(self) -> str:
        """The allowed values as the API spells them: ``'auto', 'clouds', 'nodata', None``."""
        return ", ".join(repr(self.api_value(c)) for c in self.choices)

    def api_value(self, text: Any) -> Any:
        """A command-line or QGIS value as the API takes it (``"none"``: None)."""
        return None if self.none_value is not None and text == self.none_value else text

    def text_value(self, value: Any) -> Any:
        """An API value as the command line and QGIS write it (None: ``"none"``)."""
        return self.none_value if value is None and self.none_value is not None else value

    def check(self, value: Any) -> Any:
        """``value`` checked as the API takes it; returns it (a number as int or float).

        Raises:
            GeosrError: the class named by ``error``, with a one-line message.
        """
        if value is None and self.accepts_none:
            return None
        checker = _CHECKS.get(self.kind)
        if checker is None:
            return value
        if self.many and not isinstance(value, str | bytes):
            try:
                return [checker(self, item) for item in value]
            except TypeError:
                pass  # not a list: checked as one value, for its message
        return checker(self, value)

    def fail(self, message: str) -> errors.GeosrError:
        return getattr(errors, self.error)(message)

    def refuse(self, value: Any) -> errors.GeosrError:
        """The error for a value outside the allowed ones."""
        template = self.invalid or "{name} must be one of {allowed}, got {value!r}"
        return self.fail(template.format(name=self.name, value=value, allowed=self.allowed()))


_BOOLS = ("bool", "bool_")  # numpy's


def _check_flag(option: Option, value: Any) -> bool:
    kind = type(value)
    if isinstance(value, bool) or (kind.__module__ == "numpy" and kind.__name__ in _BOOLS):
        return bool(value)
    if isinstance(value, numbers.Integral) and value in (0, 1):  # tta=1, as before
        return bool(value)
    raise option.fail(f"{option.name} must be True or False, got {value!r}")


def _hint(option: Option) -> str:
    return f"; pass e.g. {option.example}" if option.example else ""


def _check_int(option: Option, value: Any) -> int:
    of_unit = f" of {option.unit}" if option.unit else ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # scale=4.0, as the engine always took it
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise option.fail(
            f"{option.name} must be a whole number{of_unit}, got {value!r}{_hint(option)}"
        )
    low, high = option.minimum, option.maximum
    if low is not None and value < low:
        unset = ", or leave it unset for the default" if option.default is None else ""
        if low == 1:
            raise option.fail(
                f"{option.name} must be a positive number{of_unit}, got {value}{_hint(option)}{unset}"
            )
        units = f" {option.unit}" if option.unit else ""
        raise option.fail(
            f"{option.name} must be at least {low:g}{units}, got {value}{_hint(option)}"
        )
    if high is not None and value > high:
        units = f" {option.unit}" if option.unit else ""
        raise option.fail(f"{option.name} must be at most {high:g}{units}, got {value}")
    return int(value)


def _check_float(option: Option, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    low, high = option.minimum, option.maximum
    inside = number == number  # not NaN
    if low is not None:
        inside = inside and (number > low if option.exclusive_minimum else number >= low)
    if high is not None:
        inside = inside and number <= high
    if inside:
        return number
    if option.invalid:
        raise option.refuse(value)
    if low is not None and high is not None:
        raise option.fail(f"{option.name} must be a number from {low:g} to {high:g}, got {value!r}")
    if low == 0 and option.exclusive_minimum:
        raise option.fail(f"{option.name} must be a positive number, got {value!r}")
    raise option.fail(f"{option.name} must be a number, got {value!r}")


def _check_choice(option: Option, value: Any) -> Any:
    allowed = [option.api_value(choice) for choice in option.choices]
    if isinstance(value, str | type(None)) and value in allowed:
        return value
    folded = value.lower() if isinstance(value, str) and option.aliases else None
    if folded is not None and (folded in allowed or folded in dict(option.aliases)):
        return value
    raise option.refuse(value)


def _check_device(option: Option, value: Any) -> Any:
    if not isinstance(value, str):
        if type(value).__name__ == "device":  # a torch.device
            return value
        raise option.refuse(value)
    name = value.lower()
    if name in ("auto", "cpu", "mps") or name.startswith("cuda"):
        return value
    raise option.refuse(value)


_CHECKS = {
    "flag": _check_flag,
    "int": _check_int,
    "float": _check_float,
    "choice": _check_choice,
    "device": _check_device,
}
