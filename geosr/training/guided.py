"""``geosr-train --stage guided``: a guided model learnt from products by Wald's protocol
(:mod:`geosr.data.wald`).

A model has one network per stage (Sentinel-2: the 20 m bands at ratio 2 and the 60 m bands
at ratio 6); one run trains them all, a stage per step in turn, with one Adam optimiser, an
L1 loss on normalised values, the cosine or step schedule, EMA weights (what is saved), the
time limit, checkpoints and resume of the SRGAN stages. Validation scores each product's
held-out rows against bicubic upsampling of the same degraded inputs.
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from geosr.checkpoint import (
    GuidedMeta,
    Normalization,
    build_guided,
    load_tensors,
    save_guided,
    save_tensors,
)
from geosr.consistency import project_block_means
from geosr.data.wald import PERCENTILES, WaldSampler, held_out, load_scene
from geosr.errors import CheckpointError, ConfigError
from geosr.models.guided import GuidedConfig, guide_detail
from geosr.training.config import CONFIG_FILE, TrainConfig, to_toml
from geosr.training.distributed import Dist, hardware
from geosr.training.progress import StepProgress
from geosr.training.records import append_csv, plot_metrics
from geosr.training.schedule import Schedule
from geosr.training.state import _flatten_optimizer, _restore_optimizer

log = logging.getLogger(__name__)

#: Stages of the bundled guided models by sensor: (targets, guides, ratio).
SENSOR_STAGES: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...], int]]] = {
    "sentinel-2": {
        "20m": (("B05", "B06", "B07", "B8A", "B11", "B12"), ("B02", "B03", "B04", "B08"), 2),
        "60m": (("B01", "B09"), ("B02", "B03", "B04", "B08"), 6),
    },
    "landsat": {"pan": (("B1", "B2", "B3", "B4", "B5", "B6", "B7"), ("B8",), 2)},
}
STATE_FILE = "state.safetensors"


def stage_configs(cfg: TrainConfig) -> dict[str, GuidedConfig]:
    """The stages a run trains: a sensor's, or one stage from ``targets``/``guides``/``ratio``."""
    options = {k: v for k, v in {"width": cfg.width, "blocks": cfg.blocks}.items() if v}
    options["mtf"] = cfg.mtf
    if cfg.targets or cfg.guides:
        if not (cfg.targets and cfg.guides):
            raise ConfigError("give both --targets and --guides, or --sensor")
        return {"custom": GuidedConfig(tuple(cfg.targets), tuple(cfg.guides), cfg.ratio, **options)}
    if cfg.sensor not in SENSOR_STAGES:
        raise ConfigError(
            f"--stage guided needs --sensor ({' or '.join(SENSOR_STAGES)}) or --targets and "
            "--guides (band names) with --ratio"
        )
    return {
        name: GuidedConfig(targets, guides, ratio, **options)
        for name, (targets, guides, ratio) in SENSOR_STAGES[cfg.sensor].items()
    }


class GuidedTrainer:
    """One run of ``--stage guided``. ``run()`` trains up to ``config.steps``."""

    def __init__(self, config: TrainConfig, resume: bool = False, progress: str = "bar") -> None:
        self.config = config
        self.progress = progress
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.device = torch.device(
            "cuda" if config.device != "cpu" and torch.cuda.is_available() else "cpu"
        )
        torch.manual_seed(config.seed)
        configs = stage_configs(config)
        self.samplers: dict[str, WaldSampler] = {}
        self.validation: dict[str, list] = {}
        sources: list[str] = []
        for n, (name, stage) in enumerate(configs.items()):
            scenes = [
                s
                for source in config.data
                if (s := load_scene(source, name, stage, config.val_fraction, config.mtf))
                is not None
            ]
            if not scenes:
                raise ConfigError(f"no product in --data has a target band of stage {name}")
            self.samplers[name] = WaldSampler(scenes, config.patch, seed=config.seed + n)
            self.validation[name] = [held_out(s) for s in scenes]
            sources += [s.name for s in scenes]
            log.info(
                "stage %s: %d product(s), %s", name, len(scenes), ", ".join(s.name for s in scenes)
            )
        meta = GuidedMeta(
            stages=configs,
            normalization=Normalization(mode="scene", percentiles=PERCENTILES),
            holdout=config.val_fraction,
            mtf=config.mtf,
            name=config.name,
            trained_on={"products": sorted(set(sources))},
        )
        self.model = build_guided(meta).to(self.device).train()
        self.ema = copy.deepcopy(self.model).eval()
        self.ema.requires_grad_(False)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=config.lr, betas=(0.9, 0.99))
        self.schedule = Schedule(config, Dist(), self.device)
        self.step = 0
        self.best_score = -math.inf
        self.best_step = 0
        if resume:
            self._resume()

    def run(self) -> Path:
        cfg = self.config
        (self.out / CONFIG_FILE).write_text(to_toml(cfg.to_dict()))
        bar = StepProgress(self.progress, cfg.steps, self.step, enabled=True)
        self.schedule.start()
        stages = list(self.samplers)
        try:
            while self.step < cfg.steps:
                for group in self.opt.param_groups:
                    group["lr"] = cfg.lr * self.schedule.lr_factor(self.step)
                stage = stages[self.step % len(stages)]
                logs = self._train_step(stage)
                self.step += 1
                bar.update(self.step, logs)
                last = self.step == cfg.steps or self.schedule.out_of_time()
                if self.step % cfg.val_every == 0 or last:
                    self._validate(logs)
                    self._save_state()
                if last:
                    break
        finally:
            bar.close()
        log.info("trained to step %d; best step %d", self.step, self.best_step)
        return self.out / "best.safetensors"

    def _train_step(self, stage: str) -> dict[str, float]:
        batch = self.samplers[stage].batch(self.config.batch_size)
        lr, guides, hr, present, gains = (
            t.to(self.device)
            for t in (batch.lr, batch.guides, batch.hr, batch.present, batch.gains)
        )
        out = self.model(stage, lr, guides, present, gains, project=False)
        weight = present[:, :, None, None].expand_as(hr)
        loss = (weight * (out - hr).abs()).sum() / weight.sum().clamp(min=1)
        if not torch.isfinite(loss):
            raise ConfigError(f"the loss became NaN/inf at step {self.step + 1}; lower --lr")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.opt.step()
        with torch.no_grad():
            decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
            for e, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
                e.lerp_(p, 1 - decay)
        return {f"loss_{stage}": float(loss.detach())}

    @torch.no_grad()
    def validation_metrics(self) -> dict[str, float]:
        """Per stage, over the held-out rows: the RMSE of the model and of bicubic upsampling
        (normalised units), their ratio and the PSNR of each (range 1)."""
        metrics: dict[str, float] = {}
        for stage, batches in self.validation.items():
            err_model, err_projected, err_bicubic, err_injection, count = 0.0, 0.0, 0.0, 0.0, 0.0
            net = self.ema.stages[stage]
            for batch in batches:
                lr, guides, hr, present, gains = (
                    t.to(self.device)
                    for t in (batch.lr, batch.guides, batch.hr, batch.present, batch.gains)
                )
                out = self.ema(stage, lr, guides, present, gains, project=False)
                projected = project_block_means(
                    out.clone(), lr * present[:, :, None, None], net.ratio
                )
                cubic = F.interpolate(
                    lr, scale_factor=self.samplers[stage].ratio, mode="bicubic", align_corners=False
                )
                weight = present[:, :, None, None].expand_as(hr)
                err_model += float((weight * (out - hr) ** 2).sum())
                err_projected += float((weight * (projected - hr) ** 2).sum())
                err_bicubic += float((weight * (cubic - hr) ** 2).sum())
                detail = guide_detail(guides, net.ratio, net.sigma)
                injected = cubic + torch.einsum("ntg,nghw->nthw", gains, detail)
                err_injection += float((weight * (injected - hr) ** 2).sum())
                count += float(weight.sum())
            rmse, rmse_cubic = math.sqrt(err_model / count), math.sqrt(err_bicubic / count)
            metrics[f"{stage}_rmse_ratio"] = rmse / rmse_cubic
            metrics[f"{stage}_projected_ratio"] = math.sqrt(err_projected / count) / rmse_cubic
            metrics[f"{stage}_injection_ratio"] = math.sqrt(err_injection / count) / rmse_cubic
            metrics[f"{stage}_psnr_gain"] = 20 * math.log10(rmse_cubic / rmse)
        ratios = [v for k, v in metrics.items() if k.endswith("_rmse_ratio")]
        metrics["model_psnr"] = -20 * math.log10(float(np.mean(ratios)))  # gain over bicubic
        metrics["bicubic_psnr"] = 0.0
        return metrics

    def _validate(self, logs: dict[str, float]) -> None:
        metrics = self.validation_metrics()
        row = {
            "step": self.step,
            "seconds": round(self.schedule.elapsed(), 1),
            **{k: round(v, 6) for k, v in logs.items()},
            **{f"val_{k}": round(v, 5) for k, v in metrics.items()},
        }
        append_csv(self.out / "metrics.csv", row)
        plot_metrics(self.out / "metrics.csv", self.out / "metrics.png")
        log.info(
            "step %d: %s",
            self.step,
            ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if k.endswith("_ratio")),
        )
        score = metrics["model_psnr"]
        self._save_model("last.safetensors")
        if score > self.best_score:
            self.best_score, self.best_step = score, self.step
            self._save_model("best.safetensors")

    def _save_model(self, name: str) -> Path:
        meta = self.ema.meta
        trained_on = {
            **meta.trained_on,
            "protocol": f"Wald: Gaussian MTF {self.config.mtf:g} at Nyquist, decimation",
            "steps": self.step,
            "batch_size": self.config.batch_size,
            "patch": self.config.patch,
            "held_out": f"bottom {self.config.val_fraction:g} of each product's rows",
            "hardware": hardware(self.device),
        }
        return save_guided(self.ema, self.out / name, trained_on=trained_on)

    def _save_state(self) -> None:
        tensors = {
            f"model.{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()
        }
        tensors.update(
            {f"ema.{k}": v.detach().cpu().contiguous() for k, v in self.ema.state_dict().items()}
        )
        opt_tensors, groups = _flatten_optimizer("opt", self.opt)
        tensors.update(opt_tensors)
        tensors["rng.torch"] = torch.get_rng_state()
        state = {
            "stage": "guided",
            "step": self.step,
            "elapsed_s": self.schedule.elapsed(),
            "best_score": self.best_score if math.isfinite(self.best_score) else None,
            "best_step": self.best_step,
            "groups": groups,
            "samplers": {k: s.state_dict() for k, s in self.samplers.items()},
        }
        save_tensors(self.out / STATE_FILE, tensors, {"training_state": state})

    def _resume(self) -> None:
        path = self.out / STATE_FILE
        if not path.is_file():
            raise ConfigError(f"nothing to resume: {path} does not exist; start without --resume")
        tensors, meta = load_tensors(path)
        state = meta.get("training_state") or {}
        if state.get("stage") != "guided":
            raise CheckpointError(
                f"{path} is not the state of a guided run; start without --resume"
            )
        try:
            for prefix, module in (("model", self.model), ("ema", self.ema)):
                module.load_state_dict(
                    {
                        k[len(prefix) + 1 :]: v
                        for k, v in tensors.items()
                        if k.startswith(prefix + ".")
                    }
                )
        except RuntimeError:
            raise ConfigError(
                f"{path} was saved with other stages or sizes; resume with the same config "
                f"({self.out / CONFIG_FILE})"
            ) from None
        _restore_optimizer("opt", self.opt, tensors, state["groups"])
        torch.set_rng_state(tensors["rng.torch"])
        for name, sampler in self.samplers.items():
            sampler.load_state_dict(state["samplers"][name])
        self.step = int(state["step"])
        self.best_step = int(state["best_step"])
        self.best_score = -math.inf if state["best_score"] is None else float(state["best_score"])
        self.schedule.elapsed_before = float(state["elapsed_s"])
        log.info("resumed %s at step %d", path, self.step)
