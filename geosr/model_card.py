"""Model metadata, stored beside the weights, and the model card ``geosr info`` prints.

:class:`ModelMeta` (a super-resolution generator) and :class:`GuidedMeta` (a guided model)
are the JSON document under the ``"geosr"`` key of a model file's safetensors header
(:mod:`geosr.checkpoint` reads and writes it). Their ``summary()`` is the card: sections
(model, strength dial, training, training data one scene a line, validation, the input
contract, known limits, provenance), each field once. The bundled models' provenance (scenes,
upstream sources, licences, attribution) ships with the package: :data:`PROVENANCE`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from geosr.errors import CheckpointError, ModelError
from geosr.models.config import GeneratorConfig
from geosr.models.guided import GuidedConfig
from geosr.training_domain import TrainingDomain

FORMAT = "geosr-model/1"
#: The format of guided models (:mod:`geosr.models.guided`).
GUIDED_FORMAT = "geosr-guided/1"
#: Sources, licences and attribution of the imagery the bundled models were trained on.
PROVENANCE = Path(__file__).parent / "weights" / "PROVENANCE.md"


@dataclass(frozen=True)
class Normalization:
    """How raster values become network inputs: ``x_norm = (x - offset) / scale`` per band.

    ``mode="fixed"`` uses the stored per-band ``offset``/``scale`` (learned from the training
    scenes). ``mode="scene"`` computes them for each input scene from its own robust
    ``percentiles`` (p_low -> 0, p_high -> 1), which is what lets a band-shared model work on
    any sensor; statistics are scene-wide, never per chunk, so tiles stay seamless.
    """

    mode: str = "scene"
    offset: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None
    percentiles: tuple[float, float] = (1.0, 99.0)

    def __post_init__(self) -> None:
        if self.mode not in ("fixed", "scene"):
            raise ModelError(f"normalization mode must be 'fixed' or 'scene', got {self.mode!r}")
        if self.mode == "fixed":
            if self.offset is None or self.scale is None or len(self.offset) != len(self.scale):
                raise ModelError(
                    "fixed normalization needs per-band offset and scale of equal length"
                )
            if any(s == 0 for s in self.scale):
                raise ModelError("normalization scale must not be zero")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normalization:
        values = dict(data)
        for key in ("offset", "scale", "percentiles"):
            if values.get(key) is not None:
                values[key] = tuple(float(v) for v in values[key])
        return cls(**values)


@dataclass(frozen=True)
class ModelMeta:
    """Everything needed to use a generator on rasters, stored beside its weights.

    Attributes:
        generator: the architecture config; rebuilding from it gives the exact module.
        band_shared: the network has one input band and is applied to every band of a raster
            in turn, so one model serves any band count.
        band_names: names of the bands a multiband model expects, in order.
        normalization: see :class:`Normalization`.
        value_range: (low, high) of the raster values the model was trained on.
        trained_on: free-form provenance (scenes, sensors, degradation, steps, hardware).
        name, description: shown by ``geosr info``.
        default_strength: set when the file carries two endpoints, the PSNR model
            (strength 0) and its GAN fine-tune (strength 1): the strength used when none is
            asked for. None: one set of weights, no strength dial.
        domain: the training scenes' domain (:class:`~geosr.contract.TrainingDomain`, or
            its dict), which ``upscale`` checks inputs against; None (older files): no check.
    """

    generator: GeneratorConfig
    band_shared: bool = False
    band_names: tuple[str, ...] | None = None
    normalization: Normalization = field(default_factory=Normalization)
    value_range: tuple[float, float] | None = None
    trained_on: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    description: str | None = None
    default_strength: float | None = None
    domain: TrainingDomain | None = None

    def __post_init__(self) -> None:
        _domain_field(self)

    @property
    def scale(self) -> int:
        return self.generator.scale

    @property
    def bands(self) -> int | None:
        """Bands a raster must have, or None when any count works (band-shared)."""
        return None if self.band_shared else self.generator.bands

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["format"] = FORMAT
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelMeta:
        values = dict(data)
        fmt = values.pop("format", None)
        if fmt != FORMAT:
            raise CheckpointError(f"unknown checkpoint format {fmt!r}; this geosr reads {FORMAT}")
        values["generator"] = GeneratorConfig.from_dict(values["generator"])
        values["normalization"] = Normalization.from_dict(values.get("normalization") or {})
        for key in ("band_names", "value_range"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        if values.get("domain") is not None:
            values["domain"] = TrainingDomain.from_dict(values["domain"])
        return cls(**values)

    def summary(self) -> str:
        """The model card, as ``geosr info`` prints it (see the module's notes)."""
        return render_card(
            self.name,
            [
                ("Model", _model_fields(self)),
                ("Strength dial", _strength_fields(self.default_strength)),
                *_training_sections(self.trained_on),
                ("Input contract", _contract_lines(self.domain)),
                *_closing_sections(self.trained_on),
            ],
        )


def _domain_field(meta: Any) -> None:
    """A ``domain`` given as a dict becomes a TrainingDomain (frozen dataclasses' way)."""
    if isinstance(meta.domain, Mapping):
        object.__setattr__(meta, "domain", TrainingDomain.from_dict(meta.domain))
    elif meta.domain is not None and not isinstance(meta.domain, TrainingDomain):
        raise ModelError(
            f"domain must be a TrainingDomain or its dict, got {type(meta.domain).__name__}"
        )


@dataclass(frozen=True)
class GuidedMeta:
    """Everything needed to use a guided model on products, stored beside its weights.

    Attributes:
        stages: the networks by stage name, each with its target and guide band names and
            its ratio (:class:`~geosr.models.guided.GuidedConfig`).
        normalization: per-band, per-scene robust percentiles (statistics of the whole
            product, never per chunk, so tiles stay seamless).
        holdout: fraction of rows (at the bottom of each product) kept out of training, the
            rows ``geosr evaluate --guided`` scores by default.
        mtf: the sensor MTF at Nyquist of the Gaussian that degraded training inputs.
        trained_on, name, description: provenance, shown by ``geosr info``.
        domain: the training products' domain (:class:`~geosr.contract.TrainingDomain`),
            for the card; None (older files): not recorded.
    """

    stages: dict[str, GuidedConfig]
    normalization: Normalization = field(default_factory=Normalization)
    holdout: float = 0.2
    mtf: float = 0.3
    trained_on: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    description: str | None = None
    domain: TrainingDomain | None = None

    def __post_init__(self) -> None:
        _domain_field(self)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stages"] = {k: v.to_dict() for k, v in self.stages.items()}
        data["format"] = GUIDED_FORMAT
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GuidedMeta:
        values = dict(data)
        fmt = values.pop("format", None)
        if fmt != GUIDED_FORMAT:
            raise CheckpointError(
                f"unknown guided model format {fmt!r}; this geosr reads {GUIDED_FORMAT}"
            )
        values["stages"] = {k: GuidedConfig.from_dict(v) for k, v in values["stages"].items()}
        values["normalization"] = Normalization.from_dict(values.get("normalization") or {})
        if values.get("domain") is not None:
            values["domain"] = TrainingDomain.from_dict(values["domain"])
        return cls(**values)

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(t for cfg in self.stages.values() for t in cfg.targets)

    def summary(self) -> str:
        """The model card, as ``geosr info`` prints it (see the module's notes)."""
        domain = [] if self.domain is None else _indent(self.domain.summary_lines())
        return render_card(
            self.name,
            [
                ("Model", _guided_fields(self)),
                *_training_sections(self.trained_on),
                ("Training domain", domain),
                *_closing_sections(self.trained_on),
            ],
        )


# --- the card -----------------------------------------------------------------------------------

#: Lines are wrapped at this column; values start at the one after the widest usual key.
CARD_WIDTH = 100
_KEY_COLUMN = 15
#: ``trained_on`` keys by the section that shows them; the others go under "Training".
_DATA_KEYS = ("scenes", "products")
_VALIDATION_KEYS = ("validation", "held_out")
_LIMIT_KEYS = ("known_limits",)
_PROVENANCE_KEYS = ("licences", "licenses", "attribution", "provenance")
_SECTION_KEYS = _DATA_KEYS + _VALIDATION_KEYS + _LIMIT_KEYS + _PROVENANCE_KEYS
#: The "Training" section starts with these, in this order (then the others, as stored).
_TRAINING_ORDER = ("stage", "init", "steps", "time", "protocol", "degradation", "patch")

Section = tuple[str, Sequence[str]]


def render_card(name: str | None, sections: Iterable[Section]) -> str:
    """A title line, then each section with lines: its heading and its indented lines."""
    lines = [f"Model card: {name or '(unnamed)'}"]
    for heading, body in sections:
        if body:
            lines += ["", heading, *body]
    return "\n".join(lines)


def card_field(key: str, value: Any) -> list[str]:
    """``  key:          value``, the value wrapped at :data:`CARD_WIDTH` under itself."""
    label = f"  {key}:".ljust(_KEY_COLUMN + 2)
    if not label.endswith(" "):
        label += " "
    return _wrap(_text(value), label, " " * len(label))


def _wrap(text: str, first: str, rest: str) -> list[str]:
    return textwrap.wrap(
        text,
        CARD_WIDTH,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [first.rstrip()]


def _text(value: Any) -> str:
    """A metadata value in words: lists joined, mappings as ``key value`` pairs, yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):  # a long list in it is counted, not listed
        return ", ".join(
            f"{len(v)} {_label(k)}"
            if isinstance(v, list | tuple) and len(v) > 3
            else f"{_label(k)} {_text(v)}"
            for k, v in value.items()
        )
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _label(key: str) -> str:
    return str(key).replace("_", " ")


def _indent(lines: Iterable[str]) -> list[str]:
    return [f"  {line}" for line in lines]


def _normalization_text(n: Normalization) -> str:
    if n.mode == "fixed":
        pairs = ", ".join(
            f"{o:g}/{s:g}" for o, s in zip(n.offset or (), n.scale or (), strict=True)
        )
        return f"fixed offset/scale per band: {pairs}"
    return f"per scene, percentiles {n.percentiles[0]:g}-{n.percentiles[1]:g}"


def _model_fields(meta: ModelMeta) -> list[str]:
    g = meta.generator
    lines = card_field("description", meta.description) if meta.description else []
    lines += card_field(
        "architecture",
        f"{g.arch}, width {g.width}, {g.blocks} blocks, "
        f"batch norm {'on' if g.batch_norm else 'off'}, skip {g.skip}",
    )
    lines += card_field("scale", f"x{g.scale}")
    lines += card_field("bands", "any (band-shared network)" if meta.band_shared else g.bands)
    if meta.band_names:
        lines += card_field("band names", meta.band_names)
    lines += card_field("normalization", _normalization_text(meta.normalization))
    if meta.value_range:
        lines += card_field("value range", f"{meta.value_range[0]:g} to {meta.value_range[1]:g}")
    return lines


def _guided_fields(meta: GuidedMeta) -> list[str]:
    lines = card_field("kind", "guided")
    if meta.description:
        lines += card_field("description", meta.description)
    for stage, cfg in meta.stages.items():  # one line each, never wrapped
        lines.append(
            f"  stage {stage}: {', '.join(cfg.targets)} x{cfg.ratio}, guided by "
            f"{', '.join(cfg.guides)} (width {cfg.width}, {cfg.blocks} blocks)"
        )
    return lines + card_field("normalization", _normalization_text(meta.normalization))


def _strength_fields(default: float | None) -> list[str]:
    if default is None:
        return []
    return card_field(
        "strength",
        f"0 (fidelity, the PSNR model) to 1 (texture, the GAN endpoint); default {default:g}",
    )


def _training_sections(trained_on: Mapping[str, Any]) -> list[Section]:
    """ "Training" (how: every key no other section shows), "Training data" (one scene or
    product a line) and "Validation"."""
    first = {key: i for i, key in enumerate(_TRAINING_ORDER)}
    keys = sorted(
        (k for k in trained_on if k not in _SECTION_KEYS), key=lambda k: first.get(k, len(first))
    )
    how = [line for key in keys for line in card_field(_label(key), trained_on[key])]
    data: list[str] = []
    heading = "Training data"
    for key in _DATA_KEYS:
        items = trained_on.get(key)
        if isinstance(items, list | tuple):
            heading = f"Training data ({len(items)} {key if len(items) != 1 else key[:-1]})"
            data += [line for item in items for line in _wrap(_text(item), "  ", "    ")]
        elif items:
            data += card_field(_label(key), items)
    validation = []
    for key in _VALIDATION_KEYS:
        value = trained_on.get(key)
        if isinstance(value, str) and key == "validation":  # a sentence: no key
            validation += _wrap(value, "  ", "  ")
        elif isinstance(value, list | tuple) and key == "validation":
            validation += card_field("scenes", value)
        elif value is not None:
            validation += card_field(_label(key), value)
    return [("Training", how), (heading, data), ("Validation", validation)]


def _contract_lines(domain: TrainingDomain | None) -> list[str]:
    """What ``upscale`` checks inputs against (:mod:`geosr.contract`)."""
    if domain is None:
        return ["  training domain: not recorded, so inputs are not checked"]
    return [
        "  upscale warns about inputs outside the training domain (strict=True, --strict: "
        "refuses them)",
        *_indent(domain.summary_lines()),
    ]


def _closing_sections(trained_on: Mapping[str, Any]) -> list[Section]:
    """ "Known limits" (one a line) and "Provenance" (licences, the provenance file)."""
    limits: list[str] = []
    for key in _LIMIT_KEYS:
        value = trained_on.get(key)
        items = value.split("; ") if isinstance(value, str) else value or []
        limits += [line for item in items for line in _wrap(_text(item), "  - ", "    ")]
    provenance = [
        line
        for key in _PROVENANCE_KEYS
        if key in trained_on
        for line in card_field(
            "sources" if key == "provenance" else _label(key),
            _provenance_value(key, trained_on[key]),
        )
    ]
    return [("Known limits", limits), ("Provenance", provenance)]


def _provenance_value(key: str, value: Any) -> Any:
    """A ``provenance`` file named inside the package (``geosr/weights/PROVENANCE.md``) as
    the installed file's path, which users have."""
    if key != "provenance" or not isinstance(value, str) or not value.startswith("geosr/"):
        return value
    installed = Path(__file__).parent.joinpath(*value.split("/")[1:])
    if installed.is_file():
        return f"{installed} (the training scenes' sources, licences and attribution)"
    return f"{value} (not installed with this geosr)"
