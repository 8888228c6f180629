"""Checkpoints: safetensors round trip, metadata, and refusal of unsafe or damaged files."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import geosr
from geosr.checkpoint import Normalization, resolve_model_path


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return geosr.build_model(bands=4, scale=4, width=8, blocks=2, batch_norm=True)


def test_round_trip_keeps_weights_and_metadata(tmp_path: Path) -> None:
    model = _model()
    model.train()
    model(torch.randn(4, 4, 16, 16))  # move BN running statistics off their defaults
    model.eval()
    norm = Normalization(mode="fixed", offset=(1.0, 2.0, 3.0, 4.0), scale=(10.0, 20.0, 30.0, 40.0))
    path = geosr.save_model(
        model,
        tmp_path / "m.safetensors",
        name="unit",
        band_names=("B2", "B3", "B4", "B5"),
        normalization=norm,
        value_range=(0.0, 65535.0),
        trained_on={"scenes": ["a.tif"], "steps": 10},
    )
    loaded = geosr.load_model(path)
    assert not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    meta = loaded.meta
    assert meta.name == "unit" and meta.band_names == ("B2", "B3", "B4", "B5")
    assert meta.normalization == norm and meta.value_range == (0.0, 65535.0)
    assert meta.trained_on == {"scenes": ["a.tif"], "steps": 10}
    assert meta.generator == model.meta.generator
    x = torch.randn(1, 4, 20, 20)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert geosr.read_meta(path) == meta


def test_metadata_is_plain_json_in_the_header(tmp_path: Path) -> None:
    path = geosr.save_model(_model(), tmp_path / "m.safetensors")
    raw = path.read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    meta = json.loads(header["__metadata__"]["geosr"])
    assert meta["format"] == "geosr-model/1" and meta["generator"]["scale"] == 4


def test_torch_pickles_are_refused_without_being_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(pickle.dumps(Exploit(), protocol=2))
    zipped = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(3), "evil": Exploit()}, zipped)
    marker.unlink(missing_ok=True)  # torch.save pickled it without running it; be sure
    for path in (legacy, zipped):
        with pytest.raises(geosr.CheckpointError, match="pickle .* geosr reads only .safetensors"):
            geosr.load_model(path)
    assert not marker.exists()


@pytest.mark.parametrize("cut", [4, 20, -100])
def test_truncated_files_are_reported(tmp_path: Path, cut: int) -> None:
    path = geosr.save_model(_model(), tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    with pytest.raises(geosr.CheckpointError, match="truncated|corrupt|not a safetensors"):
        geosr.load_model(path)


def test_corrupt_header_and_non_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "junk.safetensors"
    path.write_bytes((20).to_bytes(8, "little") + b"{not json at all!!!" + b"\0" * 50)
    with pytest.raises(geosr.CheckpointError, match="corrupt"):
        geosr.load_model(path)
    text = tmp_path / "notes.safetensors"
    text.write_text("hello, this is not a model at all")
    with pytest.raises(geosr.CheckpointError):
        geosr.load_model(text)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(geosr.CheckpointError, match="empty or truncated"):
        geosr.load_model(empty)


def test_safetensors_without_geosr_metadata(tmp_path: Path) -> None:
    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(geosr.CheckpointError, match="no geosr metadata"):
        geosr.load_model(path)


def test_weights_that_do_not_match_the_config(tmp_path: Path) -> None:
    model = _model()
    good = geosr.save_model(model, tmp_path / "good.safetensors")
    # same keys, wrong shapes: metadata claims 13 bands
    other = geosr.build_model(bands=13, scale=4, width=8, blocks=2, batch_norm=True)
    wrong = tmp_path / "wrong.safetensors"
    geosr.save_model(model, wrong, generator=other.meta.generator)
    with pytest.raises(geosr.CheckpointError, match="do not match the architecture"):
        geosr.load_model(wrong)
    # missing keys: metadata claims more blocks than the file holds
    deeper = geosr.build_model(bands=4, scale=4, width=8, blocks=3, batch_norm=True)
    missing = tmp_path / "missing.safetensors"
    geosr.save_model(model, missing, generator=deeper.meta.generator)
    with pytest.raises(geosr.CheckpointError, match="missing"):
        geosr.load_model(missing)
    assert geosr.load_model(good).meta.bands == 4


def test_missing_files_and_names() -> None:
    with pytest.raises(geosr.ModelNotFoundError, match="does not exist"):
        geosr.load_model("/nonexistent/model.safetensors")
    with pytest.raises(geosr.ModelNotFoundError, match="no model named 'nosuch'"):
        geosr.load_model("nosuch")
    with pytest.raises(FileNotFoundError):  # the builtin still catches it
        geosr.load_model("nosuch")


def test_bundled_names_resolve_to_package_files() -> None:
    for name in geosr.bundled_models():
        assert resolve_model_path(name).parent.name == "weights"
    if "srgan" in geosr.bundled_models():
        assert resolve_model_path("default") == resolve_model_path("srgan")


def test_save_is_atomic_and_checks_the_folder(tmp_path: Path) -> None:
    with pytest.raises(geosr.CheckpointError, match="does not exist"):
        geosr.save_model(_model(), tmp_path / "nope" / "m.safetensors")
    path = geosr.save_model(_model(), tmp_path / "m.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_loading_runs_no_code_in_a_fresh_interpreter(tmp_path: Path) -> None:
    """safetensors loading must not import pickle-based torch.load at all."""
    path = geosr.save_model(_model(), tmp_path / "m.safetensors")
    code = (
        "import torch, geosr\n"
        "def boom(*a, **k): raise SystemExit('torch.load was called')\n"
        "torch.load = boom\n"
        f"m = geosr.load_model({str(path)!r}); print(m.meta.scale)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4"


def test_network_interpolation(tmp_path: Path) -> None:
    from geosr.checkpoint import interpolate_models

    torch.manual_seed(0)
    a = geosr.build_model(bands=None, scale=4, width=8, blocks=1)
    b = geosr.build_model(bands=None, scale=4, width=8, blocks=1)
    half = interpolate_models(a, b, 0.5)
    for key, value in half.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, (a.state_dict()[key] + b.state_dict()[key]) / 2), key
    assert torch.equal(interpolate_models(a, b, 1.0).conv_head.weight, a.conv_head.weight)
    assert half.meta.trained_on["interpolation"]["alpha"] == 0.5
    with pytest.raises(geosr.ModelError, match="same architecture"):
        interpolate_models(a, geosr.build_model(bands=None, scale=4, width=16, blocks=1), 0.5)
    with pytest.raises(geosr.ModelError, match="between 0 and 1"):
        interpolate_models(a, b, 1.5)
    path_a, path_b = (
        geosr.save_model(a, tmp_path / "a.safetensors"),
        geosr.save_model(b, tmp_path / "b.safetensors"),
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "geosr",
            "blend",
            str(path_a),
            str(path_b),
            "--alpha",
            "0.25",
            "--out",
            str(tmp_path / "c.safetensors"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert geosr.read_meta(tmp_path / "c.safetensors").trained_on["interpolation"]["alpha"] == 0.25


def test_names_of_every_length_save_and_load(tmp_path: Path) -> None:
    """A header length whose low byte is 0x80 (a pickle's first byte) is valid safetensors."""
    torch.manual_seed(0)
    model = geosr.build_model(bands=4, scale=2, width=8, blocks=1, batch_norm=False)
    first_bytes = set()
    for length in range(100, 421):
        path = geosr.save_model(model, tmp_path / "m.safetensors", name="x" * length)
        first_bytes.add(path.read_bytes()[0])
        assert geosr.load_model(path).meta.name == "x" * length, length
        assert geosr.read_meta(path).name == "x" * length, length
    assert 0x80 in first_bytes  # the range reaches the lengths that were refused


def test_a_dial_saves_its_endpoints_until_training_moves_its_weights(tmp_path: Path) -> None:
    """save_model writes what the module computes: a strength dial while its weights are the
    dial's, the trained weights as one loadable network after a real optimiser step (it wrote
    the untouched endpoints, with no default_strength, in a file load_model refused)."""
    from geosr.checkpoint import with_endpoints

    torch.manual_seed(0)
    fidelity, texture = (geosr.build_model(bands=None, scale=2, width=8, blocks=1) for _ in "ab")
    dial = with_endpoints(fidelity, texture, 0.3)
    kept = geosr.load_model(geosr.save_model(dial, tmp_path / "dial.safetensors"), strength=1)
    assert kept.meta.default_strength == 0.3
    assert torch.equal(kept.conv_head.weight, texture.conv_head.weight)

    optimiser = torch.optim.Adam(dial.parameters(), lr=1e-3)
    dial.train()
    dial(torch.rand(2, 1, 16, 16)).abs().mean().backward()
    optimiser.step()
    trained = geosr.load_model(geosr.save_model(dial, tmp_path / "trained.safetensors"))
    assert trained.meta.default_strength is None and trained.endpoints is None
    for key, value in trained.state_dict().items():
        assert torch.equal(value, dial.state_dict()[key]), key
    assert not torch.equal(
        trained.conv_head.weight, with_endpoints(fidelity, texture, 0.3).conv_head.weight
    )

    with pytest.raises(geosr.ModelError, match="default_strength needs a model with a strength"):
        geosr.save_model(fidelity, tmp_path / "no.safetensors", default_strength=0.5)
    assert not (tmp_path / "no.safetensors").exists()
