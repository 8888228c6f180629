"""The README and the documentation's sources, checked without building (``make docs`` builds
the site with warnings as errors; CI runs it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.datasets import REPO

DOCS = REPO / "docs"
README = REPO / "README.md"
#: folders written by the build (docs/_ext/geosr_docs.py, autosummary), and where they come from
GENERATED = {
    "generated/notebooks": (REPO / "notebooks", "*.ipynb"),
    "generated/models": (REPO / "geosr" / "weights", "*.safetensors"),
}
SOURCE_SUFFIXES = (".md", ".ipynb", ".rst")

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def prose(text: str) -> str:
    """``text`` without its fenced code blocks (but with MyST directives' contents)."""
    out, fence = [], None
    for line in text.splitlines():
        stripped = line.strip()
        if fence is None and stripped.startswith("```") and not stripped.startswith("```{"):
            fence = stripped[: len(stripped) - len(stripped.lstrip("`"))]
            continue
        if fence is not None:
            if stripped == fence:
                fence = None
            continue
        out.append(line)
    return "\n".join(out)


def relative_links(text: str) -> list[str]:
    links = []
    for target in LINK.findall(prose(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (https:, mailto:, ...) or an anchor on the same page
        links.append(target.split("#", 1)[0])
    return links


def doc_pages() -> list[Path]:
    return sorted(
        p
        for p in DOCS.rglob("*.md")
        if "generated" not in p.relative_to(DOCS).parts and "_build" not in p.parts
    )


def toctree_entries(text: str) -> list[tuple[str, bool]]:
    """(entry, glob) for every entry of every ``{toctree}`` directive in a MyST page."""
    entries = []
    for block in re.findall(r"^```+\{toctree\}(.*?)^```+\s*$", text, re.MULTILINE | re.DOTALL):
        glob = bool(re.search(r"^:glob:", block, re.MULTILINE))
        for line in block.splitlines():
            line = line.strip()
            if not line or line.startswith(":"):
                continue
            match = re.match(r"^.*<(.+)>$", line)  # "Title <target>"
            entries.append((match.group(1) if match else line, glob))
    return entries


def test_readme_is_short() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, (
        f"README.md has {len(lines)} lines; keep it to 200 (move the rest to docs/)"
    )


def test_readme_links_point_to_files_that_exist() -> None:
    links = relative_links(README.read_text())
    assert links, "the README links into the docs"
    missing = [link for link in links if not (REPO / link).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_readme_picture_and_its_script_are_committed() -> None:
    assert "](docs/_static/before-after.png)" in README.read_text()
    assert (DOCS / "_static" / "before-after.png").stat().st_size > 10_000
    assert (DOCS / "make_figures.py").is_file()


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_doc_page_links_point_to_files_that_exist(page: Path) -> None:
    def exists(link: str) -> bool:
        target = (page.parent / link).resolve()
        generated = DOCS.resolve() / "generated" / "notebooks"
        if target.is_relative_to(generated):  # the build copies notebooks/ there
            return (REPO / "notebooks" / target.relative_to(generated)).exists()
        return target.exists()

    missing = [link for link in relative_links(page.read_text()) if not exists(link)]
    assert not missing, f"{page.relative_to(REPO)} links to missing files: {missing}"


def resolve_entry(page: Path, entry: str) -> Path:
    return DOCS / entry.lstrip("/") if entry.startswith("/") else page.parent / entry


def test_every_toctree_entry_exists() -> None:
    pages = doc_pages()
    seen = 0
    for page in pages:
        for entry, glob in toctree_entries(page.read_text()):
            seen += 1
            target = resolve_entry(page, entry)
            relative = target.resolve().relative_to(DOCS.resolve()).as_posix()
            if glob and "*" in entry:
                folder = relative.rsplit("/", 1)[0]
                if folder in GENERATED:  # written at build time from these sources
                    source, pattern = GENERATED[folder]
                    assert sorted(source.glob(pattern)), f"{page.name}: nothing for {entry}"
                else:
                    assert sorted(DOCS.glob(relative + ".*")), f"{page.name}: nothing for {entry}"
                continue
            assert any(target.with_name(target.name + s).is_file() for s in SOURCE_SUFFIXES), (
                f"{page.relative_to(REPO)}: toctree entry {entry!r} has no page"
            )
    assert seen >= 20


def test_every_page_is_in_a_toctree() -> None:
    """Sphinx warns about a page no toctree names (and ``make docs`` fails on it); this says
    which one without building."""
    named = set()
    for page in doc_pages():
        for entry, glob in toctree_entries(page.read_text()):
            if not glob:
                target = resolve_entry(page, entry).resolve()
                named.add(target.relative_to(DOCS.resolve()).as_posix())
    orphans = [
        p.relative_to(DOCS).with_suffix("").as_posix()
        for p in doc_pages()
        if p.name != "index.md" or p.parent != DOCS
    ]
    assert [o for o in orphans if o not in named] == []


def test_api_reference_names_every_public_name() -> None:
    """Each name ``geosr`` exports is in the API reference (errors through ``geosr.errors``)."""
    import geosr
    import geosr.errors

    api = (DOCS / "api.md").read_text()
    listed = set(re.findall(r"^   ([A-Za-z_][\w.]*)$", api, re.MULTILINE))
    missing = [
        name
        for name in geosr.__all__
        if name not in listed
        and not hasattr(geosr.errors, name)
        and name not in ("__version__", "OPTIONS")
    ]
    assert not missing, f"add these to docs/api.md: {missing}"


def test_docs_build_needs_no_network() -> None:
    conf = (DOCS / "conf.py").read_text()
    assert "sphinx.ext.intersphinx" not in conf and "sphinx.ext.linkcode" not in conf
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^docs:", makefile, re.MULTILINE)
    assert "sphinx-build -W --keep-going" in makefile
