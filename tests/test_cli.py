"""The geosr command line, run as users run it: a real child process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rasterio
from rasterio.windows import Window

from tests.conftest import LANDSAT7_OLINDA, LANDSAT8

GEOSR = [sys.executable, "-m", "geosr"]


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*GEOSR, *map(str, args)], capture_output=True, text=True, timeout=300, **kwargs
    )


def test_upscale_prints_the_output_path(crop, model_factory) -> None:
    src = crop(LANDSAT8, Window(0, 0, 48, 40))
    result = run(
        "upscale",
        src,
        "--model",
        model_factory(bands=4),
        "--chunk-size",
        "32",
        "--progress",
        "none",
    )
    assert result.returncode == 0, result.stderr
    out = Path(result.stdout.strip())
    assert out == src.with_name("crop_x2.tif")
    with rasterio.open(out) as o:
        assert (o.width, o.height) == (96, 80)


def test_jsonl_progress_stream(crop, model_factory, tmp_path: Path) -> None:
    src = crop(LANDSAT8, Window(0, 0, 64, 64))
    result = run(
        "upscale",
        src,
        tmp_path / "o.tif",
        "--model",
        model_factory(bands=4),
        "--chunk-size",
        "32",
        "--progress",
        "jsonl",
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    fractions = [e["fraction"] for e in events if e["event"] == "progress"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) == 5
    assert events[-1]["output"] == str((tmp_path / "o.tif").resolve())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["upscale", "/no/such.tif", "--model", "{model}"], "does not exist"),
        (["upscale", str(LANDSAT7_OLINDA), "--model", "{model}"], "expects 4 band(s)"),
        (["upscale", str(LANDSAT8), str(LANDSAT8), "--model", "{model}"], "is the input file"),
        (["info", "/no/model.safetensors"], "does not exist"),
    ],
)
def test_errors_are_one_line_with_exit_1(args: list[str], message: str, model_factory) -> None:
    args = [a.replace("{model}", str(model_factory(bands=4))) for a in args]
    result = run(*args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geosr: error: ") and message in lines[0], (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_errors_in_jsonl_mode_are_events_too(model_factory) -> None:
    result = run(
        "upscale", LANDSAT7_OLINDA, "--model", model_factory(bands=4), "--progress", "jsonl"
    )
    assert result.returncode == 1
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["event"] == "error" and "expects 4 band(s)" in last["message"]


def test_usage_errors_exit_2() -> None:
    for args in (
        ["upscale"],
        ["upscale", "x.tif", "--chunk-size", "zero"],
        ["upscale", "x.tif", "--precision", "fp8"],
        ["frobnicate"],
        [],
    ):
        result = run(*args)
        assert result.returncode == 2, args
        assert result.stderr.strip().splitlines()[-1].startswith("geosr: error: ")


def test_debug_shows_the_traceback(model_factory) -> None:
    result = run("upscale", LANDSAT7_OLINDA, "--model", model_factory(bands=4), "--debug")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "BandMismatchError" in result.stderr


def test_info_prints_metadata(model_factory) -> None:
    path = model_factory(bands=None, scale=4)
    result = run("info", path)
    assert result.returncode == 0, result.stderr
    assert "x4" in result.stdout and "any (band-shared network)" in result.stdout
    as_json = json.loads(run("info", path, "--json").stdout)
    assert as_json["band_shared"] is True and as_json["generator"]["scale"] == 4


def _wait_for_progress(proc: subprocess.Popen) -> None:
    for line in proc.stdout:
        if json.loads(line)["event"] == "progress" and json.loads(line)["done"] >= 1:
            return
    raise AssertionError("no progress before the child ended: " + proc.stderr.read())


def _ignore_sigint() -> None:
    """What a shell does to a job it starts in the background: SIGINT is ignored there."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _default_sigint() -> None:
    """A foreground child: SIGINT acts, even when the tests themselves run as a background
    job (``make test &`` in a script), whose ignored SIGINT geosr would rightly keep."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("how", ["sigterm", "sigint", "stdin-eof", "stdin-eof-background"])
def test_killed_run_leaves_no_output(how: str, crop, model_factory, tmp_path: Path) -> None:
    src = crop(LANDSAT8, Window(0, 0, 384, 384))
    out = tmp_path / "out.tif"
    # 2,304 chunks: their progress lines overfill the pipe this test stops reading, so the
    # child cannot finish before the signal lands, however loaded the machine is
    model = model_factory(bands=4, scale=4, width=16, blocks=2)
    proc = subprocess.Popen(
        [
            *GEOSR,
            "upscale",
            str(src),
            str(out),
            "--model",
            str(model),
            "--chunk-size",
            "8",
            "--progress",
            "jsonl",
            "--exit-on-stdin-eof",
            "--workers",
            "1",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint if how.endswith("background") else _default_sigint,
    )
    try:
        _wait_for_progress(proc)
        if how.startswith("stdin-eof"):
            proc.stdin.close()
        else:
            proc.send_signal(signal.SIGINT if how == "sigint" else signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 130
    assert "interrupted" in proc.stderr.read()
    time.sleep(0.2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crop.tif"]


def test_a_second_interrupt_cannot_cut_the_clean_up_short() -> None:
    """After the first Ctrl-C or SIGTERM both are ignored, so the clean-up that the first
    started (removing the temporary output) runs to its end and the exit code stays 130."""
    from geosr.console import _raise_interrupt

    saved = {n: signal.getsignal(n) for n in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(KeyboardInterrupt):
            _raise_interrupt(signal.SIGTERM, None)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("geosr")
    assert script.exists()
    result = subprocess.run(
        [script, "--version"], capture_output=True, text=True, check=False, env=os.environ
    )
    assert result.returncode == 0 and result.stdout.startswith("geosr ")


def test_blend_and_demo_bad_output(model_factory, tmp_path: Path) -> None:
    model = model_factory(bands=None, scale=4)
    existing = tmp_path / "taken.safetensors"
    existing.write_bytes(b"keep me")
    result = run("blend", model, model, "--alpha", "0.5", "--out", existing)
    assert result.returncode == 1 and existing.read_bytes() == b"keep me"
    assert (
        result.stderr.strip().splitlines() == [result.stderr.strip()]
        and "--overwrite" in result.stderr
    )
    result = run(
        "demo", "--out", "/proc/geosr-cannot-write", "--model", model, "--progress", "none"
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("geosr: error: cannot create /proc/geosr-cannot-write")


def test_stack_of_band_files(model_factory, tmp_path: Path) -> None:
    from tests.conftest import LANDSAT8_ORIGINAL

    files = [LANDSAT8_ORIGINAL / f"l8_B{b}.tif" for b in (2, 3, 4, 5)]
    out = tmp_path / "stack.tif"
    model = model_factory(bands=4)
    result = run("upscale", "--stack", *files, "-o", out, "--model", model, "--progress", "none")
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == out
    with rasterio.open(out) as o:
        assert o.descriptions == ("l8_B2", "l8_B3", "l8_B4", "l8_B5") and o.width == 384
    for args in (["x.tif", "--stack", files[0]], ["x.tif", "y.tif", "-o", "z.tif"]):
        result = run("upscale", *args, "--model", model)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr


def test_url_tokens_never_reach_events_or_errors(model_factory) -> None:
    url = "https://127.0.0.1:1/scene.tif?X-Amz-Signature=SECRET"
    result = run("upscale", url, "--model", model_factory(bands=4), "--progress", "jsonl")
    assert result.returncode == 1
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["input"].startswith("https://127.0.0.1:1/scene.tif")
    assert events[-1]["event"] == "error" and "cannot read" in events[-1]["message"]
    assert "SECRET" not in result.stdout + result.stderr
