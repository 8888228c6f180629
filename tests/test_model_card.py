"""The model card ``geosr info`` prints, on the real bundled models: sections, each field once,
one training scene a line, and provenance that ships with the package."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from collections import Counter
from fnmatch import fnmatch
from pathlib import Path

import pytest

import geosr
from geosr.checkpoint import bundled_models, is_guided, read_guided_meta, read_meta
from geosr.model_card import PROVENANCE

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
#: The provenance file as an installed geosr has it.
INSTALLED_PROVENANCE = Path(geosr.__file__).resolve().parent / "weights" / "PROVENANCE.md"
SR_SECTIONS = [
    "Model",
    "Strength dial",
    "Training",
    "Training data (11 scenes)",
    "Validation",
    "Input contract",
    "Known limits",
    "Provenance",
]
GUIDED_SECTIONS = ["Model", "Training", "Validation", "Training domain", "Provenance"]
#: ``  key:   value``: a field line (a key of a few words, then its value).
FIELD = re.compile(r"^  ([A-Za-z][A-Za-z0-9 ]{0,20}):\s")


def _card(name: str) -> tuple[object, str]:
    meta = read_guided_meta(name) if is_guided(name) else read_meta(name)
    return meta, meta.summary()


def _sections(card: str) -> list[str]:
    """Headings: the unindented lines after a blank line."""
    lines = card.splitlines()
    return [b for a, b in itertools.pairwise(lines) if not a and b and b[0] != " "]


def _section(card: str, heading: str) -> list[str]:
    lines = card.splitlines()
    start = lines.index(heading) + 1
    body = []
    for line in lines[start:]:
        if not line:
            break
        body.append(line)
    return body


def test_all_four_models_are_bundled() -> None:
    assert set(bundled_models()) == {"srgan", "srresnet", "s2-guided", "landsat-pan"}


@pytest.mark.parametrize("name", ["srgan", "srresnet"])
def test_a_super_resolution_card_has_its_sections(name: str) -> None:
    meta, card = _card(name)
    assert card.splitlines()[0] == f"Model card: {name}"
    expected = [s for s in SR_SECTIONS if s != "Strength dial" or meta.default_strength]
    assert _sections(card) == expected
    assert ("Strength dial" in expected) == (name == "srgan")
    # one scene a line, in the order the file lists them
    scenes = [line.strip() for line in _section(card, "Training data (11 scenes)")]
    assert scenes == meta.trained_on["scenes"]
    contract = _section(card, "Input contract")
    assert "training domain" in contract[0] and "pixel size:    5\u2013300 m" in card
    limits = _section(card, "Known limits")
    assert sum(line.startswith("  - ") for line in limits) == 5


@pytest.mark.parametrize("name", ["s2-guided", "landsat-pan"])
def test_a_guided_card_has_its_sections(name: str) -> None:
    meta, card = _card(name)
    assert card.splitlines()[0] == f"Model card: {name}"
    products = meta.trained_on["products"]
    noun = "products" if len(products) > 1 else "product"
    expected = [*GUIDED_SECTIONS[:2], f"Training data ({len(products)} {noun})"]
    assert _sections(card) == expected + GUIDED_SECTIONS[2:]
    assert [line.strip() for line in _section(card, expected[-1])] == products
    stages = [line for line in _section(card, "Model") if line.startswith("  stage ")]
    assert len(stages) == len(meta.stages)


@pytest.mark.parametrize("name", ["srgan", "srresnet", "s2-guided", "landsat-pan"])
def test_no_line_repeats_a_prefix(name: str) -> None:
    _, card = _card(name)
    keys = Counter(m.group(1) for line in card.splitlines() if (m := FIELD.match(line)))
    assert keys and max(keys.values()) == 1, keys
    assert not any(line.lstrip().startswith("trained on") for line in card.splitlines())
    assert all(len(line) <= 100 for line in card.splitlines() if "  stage " not in line)


@pytest.mark.parametrize("name", ["srgan", "srresnet", "s2-guided", "landsat-pan"])
def test_the_card_cites_provenance_that_ships_with_geosr(name: str) -> None:
    meta, card = _card(name)
    assert "../shared" not in card and "shared/data" not in card
    assert PROVENANCE.resolve() == INSTALLED_PROVENANCE and INSTALLED_PROVENANCE.is_file()
    provenance = _section(card, "Provenance")
    assert any(line.startswith("  licences:") for line in provenance)
    assert f"sources:       {INSTALLED_PROVENANCE} " in card
    # the file names every scene or product the card lists, with its licence
    text = INSTALLED_PROVENANCE.read_text(encoding="utf-8")
    for item in meta.trained_on.get("scenes") or meta.trained_on["products"]:
        token = item.split(" ")[0]
        assert token in text or Path(token).name in text, item
    assert "../shared" not in text and "Copernicus Sentinel data" in text
    assert "public domain" in text and "Attribution" in text


def test_the_provenance_file_goes_into_the_wheel() -> None:
    """setuptools ships the package data its globs name (pyproject.toml)."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    globs = config["tool"]["setuptools"]["package-data"]["geosr"]
    relative = INSTALLED_PROVENANCE.relative_to(Path(geosr.__file__).resolve().parent).parts

    def matches(glob: str) -> bool:  # setuptools' globs: "*" stays within a folder
        parts = glob.split("/")
        return len(parts) == len(relative) and all(map(fnmatch, relative, parts))

    assert any(matches(glob) for glob in globs), f"no glob in {globs} ships {relative}"


def test_geosr_info_prints_the_card() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "geosr", "info", "srgan"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == read_meta("srgan").summary()
