"""Pages written at build time, before Sphinx reads its sources (``docs/generated/``):

- a model card per bundled model (``geosr.bundled_models()``), the text ``geosr info NAME``
  prints and the metadata ``geosr info NAME --json`` prints, so the cards are the
  checkpoints' own metadata and never go stale;
- the notebooks of ``notebooks/``, copied in as they are committed (without outputs):
  myst-nb executes them during the build (``nb_execution_mode = "cache"`` in conf.py).

Links to the committed HTML reports (``html_extra_path``, copied beside the pages) stay plain
links, so they open in the browser instead of downloading a copy.

It also hands sphinx-argparse the real parsers (:func:`geosr_parser`, :func:`train_parser`),
with their text escaped for reStructuredText: help written for a terminal
(``S2B_MSIL2A_...SAFE``, ``scenes/*.tif``) is shown as written, never read as markup.

Files are rewritten only when their content changes, so incremental builds stay incremental.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.transforms import SphinxTransform

GENERATED = "generated"


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.is_file() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _sync(folder: Path, files: dict[str, bytes]) -> None:
    """Make ``folder`` hold exactly ``files`` (name -> content)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        if stale.name not in files:
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink()
    for name, data in files.items():
        _write_if_changed(folder / name, data)


def geosr_info(*args: str) -> str:
    """What ``geosr info ARGS`` prints on stdout (an error if it fails)."""
    from geosr.cli import main

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["info", *args])
    if code:
        raise RuntimeError(f"geosr info {' '.join(args)} exited {code}")
    return stdout.getvalue().rstrip("\n")


def _fence(text: str, language: str) -> str:
    """A code fence long enough for any backticks inside ``text``."""
    ticks = "`" * max(3, max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    return f"{ticks}{language}\n{text}\n{ticks}"


def model_card(name: str) -> str:
    import geosr
    from geosr.checkpoint import ALIASES, resolve_model_path

    path = resolve_model_path(name)
    size = path.stat().st_size / 1e6
    aliases = [alias for alias, target in ALIASES.items() if target == name]
    # the card names the installed provenance file by its path on the building machine
    package = str(Path(geosr.__file__).parent)
    card = geosr_info(name).replace(package, "<site-packages>/geosr")
    metadata = json.dumps(json.loads(geosr_info(name, "--json")), indent=2, sort_keys=False)
    also = f" (also `{'`, `'.join(aliases)}`)" if aliases else ""
    return "\n".join(
        [
            f"# `{name}`",
            "",
            f"The bundled model `{name}`{also}: `geosr/weights/{path.name}`, {size:.1f} MB of "
            "safetensors (weights and JSON metadata, never unpickled). This page is written "
            "from the checkpoint's own metadata when the documentation is built. "
            "[Bundled models](../../models.md) says how the models were trained and how they "
            "score.",
            "",
            f"## `geosr info {name}`",
            "",
            _fence(card, "text"),
            "",
            f"## Metadata: `geosr info {name} --json`",
            "",
            ":::{dropdown} The checkpoint's metadata",
            _fence(metadata, "json"),
            ":::",
            "",
        ]
    )


def write_generated(app: Any) -> None:
    import geosr

    srcdir = Path(app.srcdir)
    repo = srcdir.parent
    out = srcdir / GENERATED
    names = geosr.bundled_models()
    if not names:
        raise RuntimeError("no bundled models found: the model cards need geosr/weights/")
    _sync(out / "models", {f"{name}.md": model_card(name).encode() for name in names})
    notebooks = sorted((repo / "notebooks").glob("*.ipynb"))
    _sync(out / "notebooks", {path.name: path.read_bytes() for path in notebooks})


_RST_SPECIAL = re.compile(r"([\\`*_|])")


def rst_escape(text: str | None) -> str | None:
    """``text`` with reStructuredText's inline markup characters escaped."""
    return None if text is None else _RST_SPECIAL.sub(r"\\\1", text)


def _escaped(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Escape the descriptions, epilogs and help of ``parser`` and its subcommands, in place."""
    parser.description = rst_escape(parser.description)
    parser.epilog = rst_escape(parser.epilog)
    for group in parser._action_groups:
        group.description = rst_escape(group.description)
    for action in parser._actions:
        if action.help and action.help != argparse.SUPPRESS:
            action.help = rst_escape(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                choice.help = rst_escape(choice.help)
            for sub in {id(p): p for p in action.choices.values()}.values():
                _escaped(sub)
    return parser


def geosr_parser() -> argparse.ArgumentParser:
    """The parser of the ``geosr`` command, for the CLI reference."""
    from geosr import cli

    build = getattr(cli, "build_parser", None) or cli.CONSOLE.build_parser
    return _escaped(build())


def train_parser() -> argparse.ArgumentParser:
    """The parser of ``geosr-train``, for the CLI reference."""
    from geosr import train

    build = getattr(train, "build_parser", None) or train.CONSOLE.build_parser
    return _escaped(build())


class PagesNotDownloads(SphinxTransform):
    """A link to a file of ``html_extra_path`` points at that file, not at a download copy."""

    default_priority = 500

    def apply(self, **kwargs: Any) -> None:
        confdir = Path(self.app.confdir)
        extra = {(confdir / path).resolve() for path in self.config.html_extra_path}
        for node in list(self.document.findall(addnodes.download_reference)):
            _, path = self.env.relfn2path(node["reftarget"], self.env.docname)
            if Path(path).resolve() in extra:
                link = nodes.reference("", "", *node.children, refuri=node["reftarget"])
                node.replace_self(link)


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", write_generated)
    app.add_transform(PagesNotDownloads)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
