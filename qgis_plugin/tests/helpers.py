"""Helpers for the plugin tests: paths, child processes, /proc scans, qgis_process runs, a
feedback that records what it is told.

Run with the system Python (QGIS's own interpreter) from a venv made with
``--system-site-packages`` that holds only pytest and pytest-qgis; ``qgis_plugin/run_tests.sh``
sets everything up. geosr itself is never imported here: it runs in ``GEOSR_PYTHON``.

Where QGIS or geosr's interpreter is missing the tests skip with the reason, except under
``CI=true``, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from no_virtualenv import without_virtualenv
from qgis.core import QgsProcessingFeedback

HERE = Path(__file__).resolve().parent
PLUGIN_PARENT = HERE.parent  # QGIS_PLUGINPATH: the folder that contains geosr_qgis/
REPO = PLUGIN_PARENT.parent
DATA = REPO / "tests" / "data"  # crops of the shared scenes, committed (see its PROVENANCE.md)
LANDSAT8 = DATA / "landsat8_lc80200392015216" / "LC08_020039_20150804_B2B3B4B5_30m.tif"
RGB_BYTE = DATA / "landsat7_rgb_byte" / "RGB.byte.tif"
QGIS_PROCESS = os.environ.get("QGIS_PROCESS", "/usr/bin/qgis_process.bin")
IN_CI = os.environ.get("CI", "").lower() == "true"
ALGORITHM_IDS = ("geosr:upscale", "geosr:train", "geosr:evaluate", "geosr:setup")


def require(condition: bool, reason: str) -> None:
    """Skip the test when ``condition`` is false; fail it instead under CI."""
    if not condition:
        if IN_CI:
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)


def geosr_python_path() -> str:
    return os.environ.get("GEOSR_PYTHON") or str(REPO / ".venv" / "bin" / "python")


def geosr_wheel() -> Path | None:
    """The geosr wheel the set-up tests install: GEOSR_WHEEL, else the newest dist/geosr-*.whl."""
    if os.environ.get("GEOSR_WHEEL"):
        return Path(os.environ["GEOSR_WHEEL"]).resolve()
    wheels = sorted((REPO / "dist").glob("geosr-*.whl"), key=lambda path: path.stat().st_mtime)
    return wheels[-1] if wheels else None


def child_env(environ: Mapping[str, str] | None = None, **extra: str | None) -> dict[str, str]:
    """The environment for a QGIS child: ``environ`` (default: this process's) without an
    active virtualenv (see ``no_virtualenv.py``), with ``extra`` set (None removes a name)."""
    env = without_virtualenv(os.environ if environ is None else environ)
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


class RecordingFeedback(QgsProcessingFeedback):
    """Keeps what an algorithm logs; calls ``on_console(line)`` for each console line."""

    def __init__(self, on_console=None):
        super().__init__()
        self.console: list[str] = []
        self.commands: list[str] = []
        self.on_console = on_console

    def pushConsoleInfo(self, info):  # noqa: N802 - QGIS API
        self.console.append(info)
        super().pushConsoleInfo(info)
        if self.on_console is not None:
            self.on_console(info)

    def pushCommandInfo(self, info):  # noqa: N802 - QGIS API
        self.commands.append(info)
        super().pushCommandInfo(info)


# ---------------------------------------------------------------- processes


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def geosr_children(marker: str) -> list[int]:
    """PIDs of live geosr children whose command line contains ``marker`` (found via /proc).

    qgis_process itself (whose ``--OUTPUT=`` also holds the marker) and this process are left
    out, so what remains are the processes the plugin started.
    """
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        args = cmdline(int(entry.name))
        if not args or os.path.basename(args[0]).startswith("qgis_process"):
            continue
        if any(marker in arg for arg in args) and not is_zombie(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not is_zombie(pid)


def wait_until(predicate, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def leftovers(output: Path) -> list[Path]:
    """The output and any temporary sibling a run may have left (``.STEM.*``)."""
    found = [output] if output.exists() else []
    found += sorted(output.parent.glob(f".{output.stem}.*"))
    return found


def qgis_process(env: dict[str, str], *args: str, timeout: float = 300):
    """Run qgis_process.bin; return the CompletedProcess (text)."""
    return subprocess.run(
        [QGIS_PROCESS, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def run_json(
    env: dict[str, str], algorithm: str, *, timeout: float = 300, **parameters
) -> tuple[int, dict, str]:
    """``qgis_process.bin --json run ALG --NAME=value ...``: (exit code, JSON or {}, stderr).

    A list value is given as the parameter repeated (``--NAME=a --NAME=b``), one per item."""
    args = ["--json", "run", algorithm]
    for key, value in parameters.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        args += [f"--{key}={item}" for item in values]
    done = qgis_process(env, *args, timeout=timeout)
    try:
        result = json.loads(done.stdout)
    except ValueError:
        result = {}
    return done.returncode, result, done.stderr


def assert_clean_failure(code: int, stderr: str, *needles: str) -> None:
    """The run failed with a message (each of ``needles`` in it), not a traceback."""
    assert code != 0
    assert "Traceback" not in stderr, stderr
    for needle in needles:
        assert needle in stderr, stderr


def run_upscale(env: dict[str, str], output: Path, **parameters) -> dict:
    """Run geosr:upscale through qgis_process, check that it succeeded and reported
    ``output``, and return qgis_process's JSON result."""
    code, result, stderr = run_json(env, "geosr:upscale", OUTPUT=output, **parameters)
    assert code == 0, stderr
    assert result["results"]["OUTPUT"] == str(output)
    return result


def upscale(env: dict[str, str], gdal, source: Path, output: Path, scale: int, **parameters):
    """Run geosr:upscale through qgis_process and check that it wrote ``output`` with the
    georeference of ``source`` and pixels ``scale`` times smaller.

    Returns:
        qgis_process's JSON result, and the source and output as GDAL datasets.
    """
    result = run_upscale(env, output, INPUT=source, **parameters)
    src, out = assert_same_georeference(gdal, source, output, scale)
    return result, src, out


_FEATURES: dict[str, bool] = {}


def geosr_has(*names: str) -> bool:
    """Whether ``from geosr import NAME`` works in geosr's interpreter for every name.

    Used in ``skipif`` marks for the parts of geosr that are built in parallel (issue 3:
    ``geosr.train``, ``geosr.evaluate``); checked once, in one child.
    """
    if not _FEATURES:
        wanted = ("train", "evaluate")
        script = (
            "import importlib, json, geosr\n"
            "found = {}\n"
            f"for name in {wanted!r}:\n"
            "    try:\n"
            "        importlib.import_module('geosr.' + name)\n"
            "        found[name] = True\n"
            "    except ImportError:\n"
            "        found[name] = hasattr(geosr, name)\n"
            "print(json.dumps(found))\n"
        )
        try:
            done = subprocess.run(
                [geosr_python_path(), "-c", script],
                capture_output=True,
                text=True,
                cwd="/",
                timeout=300,
                check=False,
            )
            _FEATURES.update(json.loads(done.stdout.strip().splitlines()[-1]))
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            _FEATURES.update(dict.fromkeys(wanted, False))
    return all(_FEATURES.get(name, False) for name in names)


def needs(feature: str) -> pytest.MarkDecorator:
    """Skip a test that needs ``geosr.<feature>`` when geosr's interpreter lacks it."""
    return pytest.mark.skipif(
        not geosr_has(feature),
        reason=f"geosr.{feature} is not importable in GEOSR_PYTHON yet (issue 3)",
    )


def copy(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(path, folder / path.name))


def assert_same_georeference(gdal, source, output, scale):
    """The output covers the input's exact footprint with pixels ``scale`` times smaller."""
    from osgeo import osr

    src, out = gdal.Open(str(source)), gdal.Open(str(output))
    assert out.GetDriver().ShortName == "GTiff"
    assert (out.RasterXSize, out.RasterYSize) == (src.RasterXSize * scale, src.RasterYSize * scale)
    assert out.RasterCount == src.RasterCount
    src_srs, out_srs = osr.SpatialReference(src.GetProjection()), osr.SpatialReference()
    out_srs.ImportFromWkt(out.GetProjection())
    assert src_srs.IsSame(out_srs), (src.GetProjection(), out.GetProjection())
    sx0, sdx, srx, sy0, sry, sdy = src.GetGeoTransform()
    ox0, odx, orx, oy0, ory, ody = out.GetGeoTransform()
    assert (srx, sry) == (0, 0) and (orx, ory) == (0, 0)
    assert (ox0, oy0) == pytest.approx((sx0, sy0), abs=1e-6 * abs(sdx))
    assert (odx, ody) == pytest.approx((sdx / scale, sdy / scale), rel=1e-12)
    src_bounds = (sx0, sy0 + sdy * src.RasterYSize, sx0 + sdx * src.RasterXSize, sy0)
    out_bounds = (ox0, oy0 + ody * out.RasterYSize, ox0 + odx * out.RasterXSize, oy0)
    assert out_bounds == pytest.approx(src_bounds, abs=1e-6 * abs(sdx))
    for index in range(1, src.RasterCount + 1):
        src_band, out_band = src.GetRasterBand(index), out.GetRasterBand(index)
        assert out_band.DataType == src_band.DataType
        assert out_band.GetNoDataValue() == src_band.GetNoDataValue()
    return src, out
