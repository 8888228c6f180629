"""Build the installable plugin zip: ``dist/geosr_qgis-<version>.zip``.

The zip holds one top-level folder, ``geosr_qgis/``, as QGIS's Plugins > Install from ZIP
expects. ``metadata.txt`` is checked first: every field the QGIS plugin repository requires
must be there, and ``hasProcessingProvider=yes``; so is ``options.json``, the copy of geosr's
option declarations the algorithms fall back on (regenerate it with
``python -m geosr options --json > qgis_plugin/geosr_qgis/options.json``; geosr's tests fail
while it differs). The archive is reproducible (sorted entries,
fixed timestamps), so the same sources give the same bytes.

Usage (from anywhere; plain Python 3, no QGIS needed)::

    python qgis_plugin/build_zip.py [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import configparser
import json
import re
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLUGIN = HERE / "geosr_qgis"
REPO = HERE.parent
REQUIRED = (
    "name",
    "qgisMinimumVersion",
    "description",
    "about",
    "version",
    "author",
    "email",
    "repository",
    "tracker",
    "homepage",
    "changelog",
    "icon",
    "hasProcessingProvider",
)
EXCLUDED_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo", ".orig", ".rej", ".swp"}
EXTRA_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md")  # from the repo root, if present
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


class BuildError(Exception):
    """The plugin folder cannot be packaged as it is."""


def read_metadata(path: Path = PLUGIN / "metadata.txt") -> dict[str, str]:
    """Return metadata.txt's ``[general]`` section, checked for the required fields."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive (qgisMinimumVersion)
    parser.read(path, encoding="utf-8")
    if not parser.has_section("general"):
        raise BuildError(f"{path} has no [general] section")
    meta = dict(parser["general"])
    missing = [key for key in REQUIRED if not meta.get(key, "").strip()]
    if missing:
        raise BuildError(f"{path} lacks required field(s): {', '.join(missing)}")
    if meta["hasProcessingProvider"].strip().lower() != "yes":
        raise BuildError(f"{path}: hasProcessingProvider must be 'yes'")
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?([-.\w]*)", meta["version"].strip()):
        raise BuildError(f"{path}: version {meta['version']!r} is not like 1.2.3")
    if not (path.parent / meta["icon"].strip()).is_file():
        raise BuildError(f"{path}: icon {meta['icon']!r} does not exist")
    return meta


def check_options(path: Path = PLUGIN / "options.json") -> int:
    """Check the shipped option declarations (``geosr options --json``); return their count."""
    regenerate = f"regenerate it with 'python -m geosr options --json > {path}'"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BuildError(f"{path} cannot be read as JSON ({error}); {regenerate}") from None
    if not isinstance(data, dict) or data.get("schema") != "geosr-options":
        raise BuildError(f"{path} is not geosr's option declarations; {regenerate}")
    if not isinstance(data.get("version"), int) or not data.get("options"):
        raise BuildError(f"{path} has no version or no options; {regenerate}")
    return len(data["options"])


def project_version() -> str | None:
    """geosr's version: geosr/version.py (where pyproject.toml reads it), else pyproject.toml."""
    for path, pattern in (
        (REPO / "geosr" / "version.py", r'(?m)^__version__\s*=\s*"([^"]+)"'),
        (REPO / "pyproject.toml", r'(?m)^version\s*=\s*"([^"]+)"'),
    ):
        if path.is_file():
            match = re.search(pattern, path.read_text(encoding="utf-8"))
            if match:
                return match.group(1)
    return None


def plugin_files() -> list[Path]:
    """The files that go into the zip, sorted."""
    files = []
    for path in sorted(PLUGIN.rglob("*")):
        relative = path.relative_to(PLUGIN)
        if any(part in EXCLUDED_DIRS or part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and path.suffix not in EXCLUDED_SUFFIXES:
            files.append(path)
    return files


def build(out_dir: Path) -> Path:
    """Write ``out_dir/geosr_qgis-<version>.zip`` and return its path."""
    meta = read_metadata()
    check_options()
    version = meta["version"].strip()
    geosr_version = project_version()
    if geosr_version and geosr_version != version:
        print(
            f"build_zip: note: plugin version {version} differs from geosr's {geosr_version}",
            file=sys.stderr,
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PLUGIN.name}-{version}.zip"
    entries = [
        (path, f"{PLUGIN.name}/{path.relative_to(PLUGIN).as_posix()}") for path in plugin_files()
    ]
    for name in EXTRA_FILES:
        if (REPO / name).is_file() and not (PLUGIN / name).exists():
            entries.append((REPO / name, f"{PLUGIN.name}/{name}"))
    partial = target.with_name(target.name + ".part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for source, arcname in sorted(entries, key=lambda entry: entry[1]):
            info = zipfile.ZipInfo(arcname, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, source.read_bytes())
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the geosr QGIS plugin zip.")
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=REPO / "dist",
        help="folder for geosr_qgis-<version>.zip (default: dist/ in the repo)",
    )
    args = parser.parse_args(argv)
    try:
        target = build(args.out_dir)
    except BuildError as error:
        print(f"build_zip: error: {error}", file=sys.stderr)
        return 1
    with zipfile.ZipFile(target) as archive:
        count = len(archive.namelist())
    print(
        f"{target} ({count} files) - install with Plugins > Manage and Install Plugins > Install from ZIP"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
