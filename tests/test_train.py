"""geosr-train: real training steps on real scenes, resume, data parallel, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import geosr
from geosr.train import TrainConfig, Trainer, main
from tests.conftest import LANDSAT7_OLINDA, LANDSAT8, NAIP_DIR

TINY = {
    "width": 8,
    "blocks": 1,
    "patch": 32,
    "batch_size": 4,
    "val_every": 1000,
    "max_val_samples": 8,
}


def config(tmp_path: Path, **overrides) -> TrainConfig:
    values = {"data": [str(LANDSAT8)], "out": str(tmp_path / "run"), **TINY, **overrides}
    return TrainConfig(**values)


def test_pretraining_lowers_the_pixel_loss(tmp_path: Path) -> None:
    """A few dozen real steps on a real scene lower the L1 error on held-out patches."""
    trainer = Trainer(
        config(tmp_path, bands=4, lr=2e-3, steps=60, max_val_samples=16), progress="none"
    )
    held_out = [trainer.data.val[i] for i in range(len(trainer.data.val))]
    lr = torch.stack([s.lr for s in held_out])
    hr = torch.stack([s.hr for s in held_out])

    def error() -> float:
        with torch.no_grad():
            return float((trainer.generator(lr) - hr).abs().mean())

    before = error()
    batches = iter(trainer.stream)
    losses = []
    for _ in range(60):
        losses.append(trainer.train_step(next(batches))["g_pixel"])
        trainer.step += 1
    assert error() < 0.9 * before
    assert np.mean(losses[-20:]) < np.mean(losses[:20])


def test_full_run_writes_models_config_and_metrics(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = main(
        [
            "--data",
            str(LANDSAT8),
            str(LANDSAT7_OLINDA),
            "--out",
            str(out),
            "--steps",
            "6",
            "--val-every",
            "3",
            "--width",
            "8",
            "--blocks",
            "1",
            "--patch",
            "32",
            "--batch-size",
            "4",
            "--max-val-samples",
            "6",
            "--progress",
            "none",
        ]
    )
    assert code == 0
    for name in (
        "best.safetensors",
        "last.safetensors",
        "state.safetensors",
        "config.toml",
        "metrics.csv",
        "metrics.png",
    ):
        assert (out / name).is_file(), name
    model = geosr.load_model(out / "best.safetensors")
    meta = model.meta
    assert meta.band_shared and meta.scale == 4 and meta.normalization.mode == "scene"
    assert meta.trained_on["stage"] == "pretrain"
    assert sorted(meta.trained_on["scenes"]) == sorted([LANDSAT8.name, LANDSAT7_OLINDA.name])
    rows = (out / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert len(rows) == 3 and "val_model_psnr" in header and "val_bicubic_psnr" in header
    assert "steps = 6" in (out / "config.toml").read_text()


def test_gan_stage_from_a_pretrained_model(tmp_path: Path) -> None:
    pre = Trainer(config(tmp_path / "pre", bands=4, steps=3), progress="none")
    init = pre.run()
    gan = Trainer(
        config(
            tmp_path / "gan",
            bands=4,
            steps=3,
            stage="gan",
            init=str(init),
            disc_width=8,
            sam_weight=0.1,
        ),
        progress="none",
    )
    batches = iter(gan.stream)
    logs = gan.train_step(next(batches))
    assert {"g_pixel", "g_content", "g_adversarial", "g_sam", "d_loss"} <= set(logs)
    assert all(np.isfinite(v) for v in logs.values())
    meta = geosr.load_model(gan.run()).meta
    assert meta.trained_on["stage"] == "gan" and meta.trained_on["init"]["stage"] == "pretrain"
    assert meta.normalization.mode == "fixed" and len(meta.normalization.offset) == 4


def test_unet_discriminator_and_relativistic_loss(tmp_path: Path) -> None:
    trainer = Trainer(
        config(
            tmp_path,
            bands=4,
            steps=2,
            stage="gan",
            discriminator="unet",
            gan_type="ragan",
            patch=64,
        ),
        progress="none",
    )
    logs = trainer.train_step(next(iter(trainer.stream)))
    assert np.isfinite(logs["d_loss"]) and logs["g_adversarial"] >= 0


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from geosr.checkpoint import load_tensors

    return load_tensors(path)[0]


def test_resume_equals_uninterrupted(tmp_path: Path) -> None:
    common = {"bands": 4, "stage": "pretrain", "checkpoint_every": 2, "seed": 3}
    straight = Trainer(config(tmp_path / "a", steps=8, **common), progress="none")
    straight.run()
    first = Trainer(config(tmp_path / "b", steps=4, **common), progress="none")
    first.run()
    resumed = Trainer(config(tmp_path / "b", steps=8, **common), resume=True, progress="none")
    assert resumed.step == 4
    resumed.run()
    a, b = (
        _weights(tmp_path / "a" / "run" / "state.safetensors"),
        _weights(tmp_path / "b" / "run" / "state.safetensors"),
    )
    assert a.keys() == b.keys()
    for key in a:
        if not key.startswith("rng"):
            assert torch.equal(a[key], b[key]), key


def test_time_limit_stops_validates_and_resumes(tmp_path: Path) -> None:
    """A stage with a time limit stops early with a validated, resumable checkpoint."""
    out = tmp_path / "run"
    trainer = Trainer(
        config(tmp_path, bands=4, steps=100_000, time_limit=0.02, val_every=100_000),
        progress="none",
    )
    best = trainer.run()
    assert 0 < trainer.step < 100_000
    assert best.is_file() and (out / "state.safetensors").is_file()
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[-1].split(",")[0] == str(trainer.step)  # validated at the stop
    assert trainer.elapsed() >= 0.02 * 60
    resumed = Trainer(
        config(tmp_path, bands=4, steps=100_000, time_limit=0.04, val_every=100_000),
        resume=True,
        progress="none",
    )
    assert resumed.step == trainer.step
    assert resumed.elapsed() >= 0.02 * 60  # the clock carries over
    resumed.run()
    assert resumed.step > trainer.step


def test_cosine_schedule_decays_to_the_floor(tmp_path: Path) -> None:
    trainer = Trainer(
        config(tmp_path, bands=4, steps=100, lr=1e-3, lr_schedule="cosine", lr_min_ratio=0.1),
        progress="none",
    )
    factors = []
    for step in (0, 50, 100):
        trainer.step = step
        trainer._apply_lr()
        factors.append(trainer.opt_g.param_groups[0]["lr"] / 1e-3)
    assert factors == pytest.approx([1.0, 0.55, 0.1])


def test_resume_from_the_saved_config(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [
        "--data",
        str(LANDSAT8),
        "--out",
        str(out),
        "--width",
        "8",
        "--blocks",
        "1",
        "--patch",
        "32",
        "--batch-size",
        "4",
        "--val-every",
        "2",
        "--max-val-samples",
        "4",
        "--progress",
        "none",
    ]
    assert main([*args, "--steps", "2"]) == 0
    assert (
        main(
            ["--config", str(out / "config.toml"), "--steps", "4", "--resume", "--progress", "none"]
        )
        == 0
    )
    rows = (out / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["2", "4"]


@pytest.mark.slow
def test_two_process_gloo_data_parallel(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "geosr.train",
            "--data",
            str(LANDSAT8),
            "--bands",
            "4",
            "--out",
            str(out),
            "--steps",
            "4",
            "--val-every",
            "2",
            "--width",
            "8",
            "--blocks",
            "1",
            "--patch",
            "32",
            "--batch-size",
            "2",
            "--max-val-samples",
            "4",
            "--progress",
            "none",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    meta = geosr.load_model(out / "best.safetensors").meta
    assert meta.trained_on["batch_size"] == 4  # two processes of two
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # written once, by rank 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "/no/such/folder"], "no scenes|does not exist|no GeoTIFF"),
        (
            ["--data", str(LANDSAT8), str(LANDSAT7_OLINDA), "--bands", "4"],
            "4-band model needs 4-band scenes",
        ),
        (["--data", str(LANDSAT7_OLINDA), "--patch", "800"], "smaller than the 800x800 patch"),
        (
            ["--data", str(LANDSAT8), "--out", "/proc/geosr-cannot-write"],
            "cannot write to output folder",
        ),
        (
            ["--data", str(LANDSAT8), "--stage", "gan", "--init", "/no/model.safetensors"],
            "does not exist",
        ),
        (["--data", str(LANDSAT8), "--scale", "3"], "scale 3 is not supported"),
        ([], "no training scenes"),
        (["--data", str(LANDSAT8), "--time-limit", "0"], "time_limit must be a positive"),
        (["--data", str(LANDSAT8), "--lr-min-ratio", "2"], r"lr_min_ratio must be in \[0, 1\]"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    args: list[str], message: str, tmp_path: Path, capsys
) -> None:
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "out")]
    code = main([*args, "--progress", "none", "--steps", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    import re

    assert err[-1].startswith("geosr-train: error: ") and re.search(message, err[-1]), err
    assert "Traceback" not in "\n".join(err)


def test_unknown_lr_schedule_in_a_config_file(tmp_path: Path, capsys) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'data = ["{LANDSAT8}"]\nlr_schedule = "linear"\n')
    code = main(["--config", str(config), "--out", str(tmp_path / "out"), "--progress", "none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1] == "geosr-train: error: unknown lr_schedule 'linear'; use 'step' or 'cosine'"
    assert not (tmp_path / "out").exists()


def test_corrupt_config_file(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "config.toml"
    bad.write_text("steps = = 3\n[[[")
    assert main(["--config", str(bad)]) == 1
    assert "not valid TOML" in capsys.readouterr().err
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('data = ["x.tif"]\nlearning_speed = 3\n')
    assert main(["--config", str(unknown)]) == 1
    assert "unknown training option(s): learning_speed" in capsys.readouterr().err


def test_resume_without_state(tmp_path: Path, capsys) -> None:
    assert (
        main(
            [
                "--data",
                str(LANDSAT8),
                "--out",
                str(tmp_path / "fresh"),
                "--resume",
                "--progress",
                "none",
            ]
        )
        == 1
    )
    assert "nothing to resume" in capsys.readouterr().err


def test_divergence_stops_with_a_usable_checkpoint(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    args = [
        "--data",
        str(LANDSAT8),
        "--out",
        str(out),
        "--width",
        "8",
        "--blocks",
        "1",
        "--patch",
        "32",
        "--batch-size",
        "4",
        "--val-every",
        "1000",
        "--progress",
        "none",
        "--grad-clip",
        "0",
    ]
    assert main([*args, "--steps", "2"]) == 0
    code = main([*args, "--steps", "40", "--resume", "--lr", "1e30"])
    err = capsys.readouterr().err
    assert code == 1 and "became NaN/inf" in err and "last good weights" in err
    model = geosr.load_model(out / "last.safetensors")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_help_documents_every_option_with_its_default() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "geosr.train", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    from dataclasses import fields

    for f in fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in result.stdout, f.name
    assert "(default: 2000)" in result.stdout and "(default: 0.999)" in result.stdout


def test_naip_multiband_band_names(tmp_path: Path) -> None:
    scenes = sorted(NAIP_DIR.glob("*.tif"))[:2]
    trainer = Trainer(
        TrainConfig(
            data=[str(s) for s in scenes], out=str(tmp_path / "n"), bands=4, steps=1, **TINY
        ),
        progress="none",
    )
    trainer.run()
    meta = json.loads(json.dumps(geosr.read_meta(tmp_path / "n" / "last.safetensors").to_dict()))
    assert meta["generator"]["bands"] == 4
