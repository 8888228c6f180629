"""geosr-train: real training steps on real scenes, resume, data parallel, and bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

import geosr
from geosr.train import TrainConfig, Trainer, main, read_toml
from tests.backends import foreign_backend
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


def tiny_flags(out: Path, *data: Path | str, **overrides: object) -> list[str]:
    """geosr-train's flags for a run of :data:`TINY` options on ``data`` (default: the
    Landsat 8 crop), ``overrides`` after them, with no progress display."""
    options = {**TINY, "progress": "none", **overrides}
    flags = ["--data", *map(str, data or (LANDSAT8,)), "--out", str(out)]
    for name, value in options.items():
        flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags


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
    code = main(tiny_flags(out, LANDSAT8, LANDSAT7_OLINDA, steps=6, val_every=3, max_val_samples=6))
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
    batch = next(iter(trainer.stream))
    expected = _relativistic_generator_loss(trainer, batch)
    logs = trainer.train_step(batch)
    assert np.isfinite(logs["d_loss"])
    assert logs["g_adversarial"] == pytest.approx(expected, rel=1e-5)


def test_gan_stage_without_spectral_norm_trains_the_papers_batch_norm_discriminator(
    tmp_path: Path,
) -> None:
    trainer = Trainer(
        config(tmp_path, bands=4, steps=1, stage="gan", disc_width=8, disc_spectral_norm=False),
        progress="none",
    )
    layers = list(trainer.nets.discriminator.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in layers)
    assert not any(hasattr(m, "parametrizations") for m in layers)
    before = [p.detach().clone() for p in trainer.nets.discriminator.parameters()]
    logs = trainer.train_step(next(iter(trainer.stream)))
    assert np.isfinite(logs["d_loss"])
    after = list(trainer.nets.discriminator.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def _relativistic_generator_loss(trainer: Trainer, batch) -> float:
    """ESRGAN's generator loss (eq. 2) on the per-pixel logits of the networks before the
    step, at the weight of the ramp's first step: BCE(x, 0) = softplus(x), BCE(x, 1) =
    softplus(-x), and the patches are all valid."""
    assert bool(batch.valid.all())
    discriminator = trainer.nets.discriminator.eval()
    with torch.no_grad():
        fake = discriminator(trainer.generator(batch.lr.to(trainer.device)))
        real = discriminator(batch.hr.to(trainer.device))
    softplus = torch.nn.functional.softplus
    loss = softplus(real - fake.mean()).mean() + softplus(-(fake - real.mean())).mean()
    weight = 5e-3 / trainer.config.adversarial_ramp  # ESRGAN's 5e-3, ramped from 0
    return float(weight * loss)


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
        trainer.apply_lr()
        factors.append(trainer.nets.opt_g.param_groups[0]["lr"] / 1e-3)
    assert factors == pytest.approx([1.0, 0.55, 0.1])


def test_resume_from_the_saved_config(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = tiny_flags(out, val_every=2, max_val_samples=4)
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
    result = _torchrun(
        tiny_flags(
            out, bands=4, steps=4, val_every=2, batch_size=2, max_val_samples=4, device="cpu"
        )
    )
    assert result.returncode == 0, result.stderr[-3000:]
    meta = geosr.load_model(out / "best.safetensors").meta
    assert meta.trained_on["batch_size"] == 4  # two processes of two
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # written once, by rank 0


def _torchrun(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """geosr-train in two CPU processes (gloo), as torchrun starts them."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(
        [
            *(sys.executable, "-m", "torch.distributed.run", "--standalone"),
            *("--nproc-per-node", "2", "-m", "geosr.train", *args),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def _first_overflowing_ranks(config: TrainConfig, world: int) -> list[int]:
    """The ranks whose batch first holds a patch that a squared error overflows in float32,
    found by drawing the very samples each rank of a ``world``-process run takes (batch b of
    rank r is sample b*world+r with one-patch batches)."""
    from geosr.data import prepare_data

    samples = prepare_data(config.data, config.data_config(), generator=config.seed).train
    for step in range(config.steps):
        ranks = [r for r in range(world) if samples[step * world + r].hr.abs().max() > 1e20]
        if ranks:
            return ranks
    return []


@pytest.mark.slow
def test_a_divergent_process_stops_every_process(tmp_path: Path) -> None:
    """Under torchrun, a non-finite loss on one process stops all of them at the same step
    with the same one-line error, instead of leaving the others waiting in the gradient
    all-reduce.

    The overflow is real: one scene has hot pixels at 1e30 (finite, so valid data) on 0.5%
    of its pixels, too few to move its robust (percentile) normalisation, so they stay near
    1e27 in a patch and the squared error of --pixel-loss mse overflows float32. The other
    scene is clean; the seed decides which process draws a hot patch first.
    """
    hot = tmp_path / "hot_pixels.tif"
    with rasterio.open(LANDSAT8) as src:
        data = src.read().astype("float32")
        profile = src.profile | {"dtype": "float32", "predictor": 1}
    data[:, np.random.default_rng(0).random(data.shape[1:]) < 0.005] = 1e30
    with rasterio.open(hot, "w", **profile) as dst:
        dst.write(data)
    data = [str(LANDSAT8), str(hot)]
    options = {"batch_size": 1, "max_val_samples": 2}
    seed = next(
        (
            s
            for s in range(50)
            if len(
                _first_overflowing_ranks(
                    config(tmp_path, data=data, **options, steps=20, seed=s), 2
                )
            )
            == 1
        ),
        None,
    )
    assert seed is not None, "no seed lets exactly one process draw a hot patch first"
    result = _torchrun(
        tiny_flags(
            tmp_path / "ddp",
            *data,
            **options,
            seed=seed,
            pixel_loss="mse",
            steps=20,
            device="cpu",
        ),
        timeout=300,
    )
    # each process reports before any exits (torchrun then ends the rest, so the final
    # "error:" line of the slower process may or may not make it out)
    # (found anywhere in stderr: two processes writing at once may share a line)
    stops = re.findall(
        r"process (\d) stops: the (pixel )?loss of process (\d) became NaN/inf at step (\d+)",
        result.stderr,
    )
    assert result.returncode != 0 and len(stops) == 2, result.stderr[-3000:]
    assert sorted(rank for rank, *_ in stops) == ["0", "1"]
    # the process that diverged names its pixel loss; the other names that process
    (own,) = [s for s in stops if s[1]]
    (other,) = [s for s in stops if not s[1]]
    assert own[0] == own[2] == other[2] != other[0]
    assert own[3] == other[3]  # the same step


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
        (
            ["--data", str(LANDSAT8), "--init", "srresnet", "--init-strength", "1"],
            "--init-strength needs an --init model with a strength dial",
        ),
        (["--data", str(LANDSAT8), "--init-strength", "1"], "give --init"),
        (
            ["--data", str(LANDSAT8), "--init", "srgan", "--init-strength", "2"],
            "init_strength: strength must be a number from 0",
        ),
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


def test_usage_error_is_one_line_and_exit_2(capsys) -> None:
    assert main(["--data", str(LANDSAT8), "--steps", "many"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("geosr-train: error: argument --steps")


def test_sigterm_stops_training_with_a_resume_hint(tmp_path: Path) -> None:
    """geosr-train shares geosr's stop on SIGTERM: one error event, exit 130."""
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "geosr.train"),
            *tiny_flags(tmp_path / "run", steps=100000, batch_size=2, progress="jsonl"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        events = (json.loads(line) for line in proc.stdout)
        assert any(e["event"] == "progress" for e in events), proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 130
    last = json.loads(proc.stdout.read().strip().splitlines()[-1])
    assert last == {"event": "error", "message": "interrupted; resume with --resume"}


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
    args = tiny_flags(out, grad_clip=0)
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


@pytest.mark.parametrize("sensor", ["naip", "landsat8"])
def test_naip_multiband_band_names(sensor: str, tmp_path: Path) -> None:
    """A multiband model names its bands after the scenes' band descriptions, and invents
    none for scenes without (NAIP's files have none)."""
    scenes = sorted(NAIP_DIR.glob("*.tif"))[:2] if sensor == "naip" else [LANDSAT8]
    with rasterio.open(scenes[0]) as src:
        descriptions = list(src.descriptions)
    expected = None if sensor == "naip" else descriptions
    assert all(descriptions) == (sensor == "landsat8")  # premise: which scenes have names
    trainer = Trainer(
        TrainConfig(
            data=[str(s) for s in scenes], out=str(tmp_path / "n"), bands=4, steps=1, **TINY
        ),
        progress="none",
    )
    trainer.run()
    meta = json.loads(json.dumps(geosr.read_meta(tmp_path / "n" / "last.safetensors").to_dict()))
    assert meta["generator"]["bands"] == 4
    assert meta["band_names"] == expected


@pytest.mark.parametrize("bands", [4, None])
def test_gan_stage_takes_bands_and_scale_from_init(bands: int | None, tmp_path: Path) -> None:
    """--stage gan --init M without --bands or --scale fine-tunes M as it is."""
    init = Trainer(config(tmp_path / "pre", bands=bands, scale=2, steps=1), progress="none").run()
    out = tmp_path / "gan"
    code = main(
        [
            "--data",
            str(LANDSAT8),
            "--stage",
            "gan",
            "--init",
            str(init),
            "--out",
            str(out),
            "--steps",
            "1",
            "--disc-width",
            "8",
            "--patch",
            "32",
            "--batch-size",
            "2",
            "--max-val-samples",
            "2",
            "--progress",
            "none",
        ]
    )
    assert code == 0
    meta = geosr.read_meta(out / "best.safetensors")
    assert (meta.bands, meta.scale, meta.trained_on["stage"]) == (bands, 2, "gan")
    assert TrainConfig.from_dict(read_toml(out / "config.toml")).bands == bands  # resumable


@pytest.mark.parametrize(("init", "strength"), [("default", None), ("srgan", 1.0)])
def test_training_from_a_strength_dial_saves_the_trained_network(
    init: str, strength: float | None, tmp_path: Path, crop
) -> None:
    """--init srgan (or default) starts from the dial's network at its default strength, or at
    --init-strength, and saves what was trained as one loadable network (it saved srgan's
    untouched endpoints, in a file load_model refused)."""
    start = geosr.load_model(init, strength=strength)
    options = {"init": init, **({} if strength is None else {"init_strength": strength})}
    first = Trainer(config(tmp_path / "first", **options), progress="none").generator
    assert first.endpoints is None
    for key, value in first.state_dict().items():
        assert torch.equal(value, start.state_dict()[key]), key

    out = tmp_path / "run"
    assert main(tiny_flags(out, steps=2, ema_decay=0, **options)) == 0
    state = _weights(out / "state.safetensors")
    for name in ("best.safetensors", "last.safetensors"):
        model = geosr.load_model(out / name)
        assert model.meta.default_strength is None and model.endpoints is None
        assert model.meta.trained_on["init"]["model"] == init
        started_at = geosr.read_meta(init).default_strength if strength is None else strength
        assert model.meta.trained_on["init"]["strength"] == started_at
        for key, value in model.state_dict().items():  # the run's generator, as trained
            assert torch.equal(value, state[f"ema.{key}"]), key
        moved = [
            float((v - start.state_dict()[k]).abs().max()) for k, v in model.state_dict().items()
        ]
        assert max(moved) > 1e-5
    scene = crop(LANDSAT8, Window(100, 100, 48, 40))
    upscaled = geosr.upscale(scene, tmp_path / "sr.tif", model=out / "best.safetensors")
    with rasterio.open(upscaled) as dst:
        assert (dst.count, dst.width, dst.height) == (4, 192, 160)
        assert np.isfinite(dst.read()).all() and dst.read().std() > 0


def test_metrics_plot_keeps_the_callers_matplotlib_backend(tmp_path: Path) -> None:
    with foreign_backend():
        Trainer(config(tmp_path, bands=4, steps=1), progress="none").run()
    assert (tmp_path / "run" / "metrics.png").read_bytes()[:4] == b"\x89PNG"


def test_validation_scores_the_projected_output_as_users_get_it(tmp_path: Path) -> None:
    """A generator off by a constant everywhere is exactly bicubic after the projection onto
    the LR block means (what geosr upscale applies by default), so validation, which picks
    the best checkpoint, sees no error from it."""
    from geosr.training.records import validate

    trainer = Trainer(config(tmp_path, bands=4, steps=1, max_val_samples=8), progress="none")
    scale = trainer.config.scale

    class OffBicubic(torch.nn.Module):
        def forward(self, lr: torch.Tensor) -> torch.Tensor:
            up = torch.nn.functional.interpolate(lr, scale_factor=scale, mode="bicubic")
            return up + 0.3

    metrics = validate(OffBicubic(), trainer.data.val, scale, torch.device("cpu"))
    # unprojected, the offset (30 % of each band's p1-p99 span) would cost some 20 dB; the
    # projection removes it and moves bicubic onto the LR block means, which only helps
    assert metrics["model_psnr"] >= metrics["bicubic_psnr"] - 0.01
