"""The installable zip: right layout and metadata, and QGIS loads the plugin from it."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from helpers import ALGORITHM_IDS, PLUGIN_PARENT, qgis_process


def test_zip_installs_and_loads(qgis_env, tmp_path):
    done = subprocess.run(
        [sys.executable, str(PLUGIN_PARENT / "build_zip.py"), "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    version = next(
        line.split("=", 1)[1]
        for line in (PLUGIN_PARENT / "geosr_qgis" / "metadata.txt").read_text().splitlines()
        if line.startswith("version=")
    )
    target = tmp_path / f"geosr_qgis-{version}.zip"
    assert target.is_file()
    with zipfile.ZipFile(target) as archive:
        names = archive.namelist()
        assert all(name.startswith("geosr_qgis/") for name in names)
        for required in (
            "metadata.txt",
            "__init__.py",
            "provider.py",
            "runner.py",
            "setup_env.py",
            "alg_setup.py",
            "declarations.py",
            "options.json",
            "icon.svg",
        ):
            assert f"geosr_qgis/{required}" in names
        assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
        metadata = archive.read("geosr_qgis/metadata.txt").decode()
        for field in ("version=", "about=", "tracker=", "homepage=", "changelog="):
            assert field in metadata
        plugins = tmp_path / "plugins"
        archive.extractall(plugins)

    # as after Plugins > Install from ZIP: a fresh profile, the plugin from the zip only
    env = dict(qgis_env, QGIS_PLUGINPATH=str(plugins), XDG_DATA_HOME=str(tmp_path / "data"))
    enable = qgis_process(env, "plugins", "enable", "geosr_qgis")
    assert enable.returncode == 0, enable.stdout + enable.stderr
    listing = qgis_process(env, "list")
    assert "error loading plugin" not in listing.stderr, listing.stderr
    for algorithm_id in ALGORITHM_IDS:
        assert algorithm_id in listing.stdout

    # building twice gives the same bytes
    first = target.read_bytes()
    subprocess.run(
        [sys.executable, str(PLUGIN_PARENT / "build_zip.py"), "--out-dir", str(tmp_path)],
        capture_output=True,
        check=True,
    )
    assert target.read_bytes() == first
