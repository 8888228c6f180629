"""geosr's options, declared once (geosr.options): the API checks, the command line and the QGIS
plugin's parameters all come from the same declarations, and cannot drift apart."""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import geosr
from geosr import options
from geosr.cli import build_parser
from geosr.cli_parser import api_values
from geosr.errors import ConfigError, ModelError

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "qgis_plugin" / "geosr_qgis" / "options.json"
REGENERATE = f"{sys.executable} -m geosr options --json > {SHIPPED.relative_to(REPO)}"
#: The QGIS parameters the plugin's algorithms and tests use by name.
QGIS_PARAMETERS = {
    "upscale": {
        "MODEL",
        "BAND_NAMES",
        "BANDS",
        "RESOLUTION",
        "STRENGTH",
        "TTA",
        "PRESERVE_SPECTRA",
        "STRICT",
        "UNCERTAINTY",
        "DEVICE",
        "CHUNK_SIZE",
        "MASK",
        "GUIDED",
        "COG",
        "STAC",
    },
    "evaluate": {"MODEL", "SCALE", "DEVICE"},
    "train": {"SCALE", "DEVICE"},
}


def geosr_options_json() -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "geosr", "options", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_plugin_ships_the_current_declarations() -> None:
    """qgis_plugin/geosr_qgis/options.json, the plugin's fallback, is what geosr prints."""
    done = geosr_options_json()
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed == options.to_json()
    assert json.loads(SHIPPED.read_text(encoding="utf-8")) == printed, (
        f"{SHIPPED.name} is out of date: run {REGENERATE}"
    )
    assert SHIPPED.read_text(encoding="utf-8") == done.stdout, f"run {REGENERATE}"


def test_json_schema() -> None:
    data = options.to_json()
    assert (data["schema"], data["version"]) == ("geosr-options", options.SCHEMA_VERSION)
    keys = {
        "name", "kind", "help", "default", "choices", "suggestions", "none_value", "minimum",
        "maximum", "exclusive_minimum", "many", "nullable", "api", "cli", "qgis",
    }  # fmt: skip
    parameters: dict[str, list[str]] = {}
    for option in data["options"]:
        assert set(option) == keys, option["name"]
        assert option["kind"] in options.KINDS and option["help"]
        for cli in option["cli"]:
            assert cli["dest"] == option["name"] and all(f.startswith("-") for f in cli["flags"])
        for qgis in option["qgis"]:
            assert qgis["widget"] in options.WIDGETS and qgis["label"] and qgis["help"]
            assert qgis["parameter"].isupper() and qgis["flag"].startswith("--")
            if qgis["widget"] == "enum":
                assert qgis["default"] is None or qgis["default"] in qgis["choices"]
            parameters.setdefault(qgis["algorithm"], []).append(qgis["parameter"])
    for algorithm, names in parameters.items():
        assert len(names) == len(set(names)), f"a parameter of geosr:{algorithm} twice"
        assert set(names) == QGIS_PARAMETERS[algorithm]


def test_options_command_lists_every_option() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "geosr", "options"], capture_output=True, text=True, check=True
    )
    for option in options.OPTIONS:
        assert f"{option.name}: {option.kind}" in result.stdout
    assert "geosr upscale --strength" in result.stdout
    assert "QGIS geosr:upscale STRENGTH" in result.stdout


@pytest.mark.parametrize("command", ["upscale", "evaluate", "demo", "blend"])
def test_every_declared_flag_is_on_the_command_line(command: str) -> None:
    parser = build_parser()
    [sub] = [a for a in parser._actions if a.dest == "command"]
    actions = {s for a in sub.choices[command]._actions for s in a.option_strings or [a.dest]}
    for option, cli in options.for_command(command):
        assert set(cli.flags or [option.name]) <= actions, option.name


def test_parsed_options_reach_the_api_as_declared() -> None:
    args = build_parser().parse_args(
        [
            "upscale",
            "in.tif",
            "--mask",
            "none",
            "--guided",
            "none",
            "--workers",
            "3",
            "--no-consistency",
            "--strength",
            "0.5",
            "--bands",
            "4,B03",
            "--chunk-size",
            "64",
            "--tta",
            "--format",
            "zarr",
        ]
    )
    values = api_values(args, "upscale")
    assert set(values) == {o.name for o in options.for_api("upscale")}
    assert values["mask"] is None and values["guided"] is None
    assert values["num_workers"] == 3 and values["consistency"] is False
    assert values["strength"] == 0.5 and values["bands"] == [4, "B03"]
    assert values["chunk_size"] == 64 and values["tta"] is True and values["format"] == "zarr"
    assert values["device"] == "auto" and values["precision"] == "auto"
    defaults = api_values(build_parser().parse_args(["upscale", "in.tif"]), "upscale")
    assert defaults == options.defaults("upscale")
    args = build_parser().parse_args(
        [
            "evaluate",
            "a.tif",
            "--pair",
            "lr.tif",
            "hr.tif",
            "--strength",
            "0",
            "1",
            "--bands",
            "1,2",
        ]
    )
    values = api_values(args, "evaluate")
    assert values["pairs"] == [("lr.tif", "hr.tif")] and values["strengths"] == [0.0, 1.0]
    assert values["bands"] == [1, 2] and values["degradations"] == ["box", "bicubic"]


def _engine_functions():
    from geosr.evaluate_guided import evaluate_guided
    from geosr.evaluate_temporal import evaluate_temporal

    return {
        "upscale": geosr.upscale,
        "upscale_dataarray": geosr.upscale_dataarray,
        "evaluate": geosr.evaluate,
        "evaluate_guided": evaluate_guided,
        "evaluate_temporal": evaluate_temporal,
    }


@pytest.mark.parametrize(
    "function",
    ["upscale", "upscale_dataarray", "evaluate", "evaluate_guided", "evaluate_temporal"],
)
def test_declared_defaults_are_the_apis(function: str) -> None:
    """Each API function takes every option declared for it, with the declared default."""
    signature = inspect.signature(_engine_functions()[function])
    for option in options.for_api(function):
        assert option.name in signature.parameters, f"{function} has no {option.name}="
        default = signature.parameters[option.name].default
        if isinstance(default, tuple | list):
            default = tuple(default)
        assert default == option.default, f"{function}({option.name}=...)"
    # as the engine may call it: check_options(function, locals()) on its defaults
    given = {name: p.default for name, p in signature.parameters.items()}
    options.check_options(function, given)


def test_declared_choices_are_the_engines() -> None:
    from geosr.engine.devices import PRECISIONS
    from geosr.errors import ConfigError
    from geosr.products import MASK_MODES, check_mask_mode

    assert options.PRECISIONS is PRECISIONS
    assert None in MASK_MODES and "auto" in MASK_MODES
    for mode in MASK_MODES:
        assert check_mask_mode(mode) == mode
    with pytest.raises(ConfigError, match="'cloud' is not a mask mode"):
        check_mask_mode("cloud")


def _engine_error(call) -> str:
    with pytest.raises((ConfigError, ModelError)) as raised:
        call()
    return f"{type(raised.value).__name__}: {raised.value}"


def _checked_error(name: str, value) -> str:
    with pytest.raises((ConfigError, ModelError)) as raised:
        options.check_options("upscale", {name: value})
    return f"{type(raised.value).__name__}: {raised.value}"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("strength", 2),
        ("strength", "strong"),
        ("chunk_size", 0),
        ("chunk_size", 1.5),
        ("precision", "fp8"),
        ("mask", "none"),
        ("format", "png"),
        ("device", "tpu"),
    ],
)
def test_check_options_raises_what_the_engine_raises(name: str, value) -> None:
    """The engine can call geosr.options.check_options first: same error, same message."""
    from geosr.checkpoint import check_strength
    from geosr.pipeline import chunk_side, resolve_device
    from geosr.products import check_mask_mode
    from geosr.zarr_store import is_zarr_output

    engine = {
        "strength": check_strength,
        "chunk_size": chunk_side,
        "mask": check_mask_mode,
        "format": lambda v: is_zarr_output("out.tif", v),
        "device": resolve_device,
        "precision": lambda v: (
            f"precision must be one of {', '.join(map(repr, options.PRECISIONS))}, got {v!r}"
        ),
    }[name]
    if name == "precision":
        assert _checked_error(name, value) == f"ConfigError: {engine(value)}"
    else:
        assert _checked_error(name, value) == _engine_error(lambda: engine(value))


def test_check_options_accepts_what_the_engine_accepts() -> None:
    good = {
        "strength": 0.25,
        "chunk_size": np.int64(256),
        "device": "cuda:1",
        "mask": None,
        "guided": None,
        "format": "GTiff",
        "precision": "bf16",
        "strict": None,
        "tta": np.bool_(True),
        "resolution": 2.5,
        "scale": 4,
        "overlap": 0,
        "num_workers": 2,
        "stats": object(),  # not declared: the function's own business
    }
    checked = options.check_options("upscale", good)
    assert "stats" not in checked and checked["tta"] is True and checked["chunk_size"] == 256
    assert options.check_options("evaluate", strengths=[0, "0.5", 1])["strengths"] == [0, 0.5, 1]
    # what the engine took before the declarations: 0/1 for a flag, a whole float for a scale
    legacy = options.check_options("upscale", tta=1, uncertainty=0, scale=4.0)
    assert legacy == {"tta": True, "uncertainty": False, "scale": 4}
    with pytest.raises(ConfigError, match="scale must be a whole number, got 4.5"):
        options.validate("scale", 4.5)
    for name, value, message in (
        ("tta", "yes", "tta must be True or False, got 'yes'"),
        ("resolution", 0, "resolution must be a positive number, got 0"),
        ("overlap", -1, "overlap must be at least 0 pixels, got -1"),
        ("scale", "4", "scale must be a whole number, got '4'; pass e.g. 4"),
    ):
        with pytest.raises(ConfigError, match=message):
            options.validate(name, value)


def test_accessor_checks_its_options_before_any_work() -> None:
    import xarray as xr

    da = xr.DataArray(np.zeros((1, 4, 4), np.uint8), dims=("band", "y", "x"))
    with pytest.raises(ConfigError, match="chunk_size must be a positive number of pixels"):
        da.geosr.upscale("/no/such/model.safetensors", chunk_size=0)
    with pytest.raises(ModelError, match="strength must be a number from 0"):
        da.to_dataset(dim="band").geosr.upscale("/no/such/model.safetensors", strength=3)
    assert geosr.check_options is options.check_options and geosr.OPTIONS is options.OPTIONS


MINE = [
    *sorted((REPO / "geosr" / "options").glob("*.py")),
    REPO / "geosr" / "cli.py",
    REPO / "geosr" / "cli_parser.py",
    REPO / "geosr" / "accessor.py",
    REPO / "geosr" / "__init__.py",
]


@pytest.mark.parametrize("path", MINE, ids=lambda p: str(p.relative_to(REPO)))
def test_modules_and_functions_stay_short(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 600
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno - node.lineno + 1 <= 80, f"{node.name} is too long"


def test_options_package_imports_nothing_heavy() -> None:
    code = (
        "import sys, geosr.options, geosr.cli_parser; "
        "print(sorted(m for m in ('torch', 'rasterio', 'dask') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    for path in (REPO / "geosr" / "options").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("geosr"):
                names = [alias.name for alias in node.names]
                allowed = node.module == "geosr.errors" or node.module.startswith("geosr.options")
                assert allowed or (node.module == "geosr" and names == ["errors"]), (
                    f"{path.name} imports {node.module}"
                )
