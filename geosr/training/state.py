"""Checkpoints of a run: the saved model's metadata, and the resume state.

``state.safetensors`` holds every weight, optimiser moment, random state and counter that a
resumed run needs to continue exactly as an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geosr.checkpoint import ModelMeta, load_tensors, save_tensors
from geosr.contract import TrainingDomain, domain_from_scenes
from geosr.data import BatchStream, TrainingData
from geosr.errors import CheckpointError, ConfigError
from geosr.training.config import CONFIG_FILE, TrainConfig
from geosr.training.networks import Networks

STATE_FILE = "state.safetensors"


def training_domain(data: TrainingData) -> TrainingDomain:
    """The domain of the training scenes (:mod:`geosr.contract`), for the card: one decimated
    read of each scene, made once when training starts."""
    nodata = getattr(data.config, "nodata", None)
    return domain_from_scenes([scene.path for scene in data.scenes], nodata=nodata)


def model_meta(
    cfg: TrainConfig,
    data: TrainingData,
    generator: nn.Module,
    provenance: Mapping[str, Any],
    domain: TrainingDomain | None = None,
) -> ModelMeta:
    """What a saved model says about itself; ``provenance`` adds to the data's, ``domain``
    is the training scenes' (:func:`training_domain`), which ``upscale`` checks inputs against."""
    names = None
    if cfg.bands is not None:
        first = data.scenes[0].band_names
        names = tuple(n or f"band {i + 1}" for i, n in enumerate(first)) if any(first) else None
    trained_on = {**data.provenance(), "stage": cfg.stage, **provenance}
    previous = getattr(generator, "meta", None)
    if cfg.init and previous is not None:
        init: dict[str, Any] = {"model": Path(cfg.init).name}
        if previous.default_strength is not None:  # the dial's network this run started from
            init["strength"] = (
                previous.default_strength if cfg.init_strength is None else cfg.init_strength
            )
        trained_on["init"] = {**init, **previous.trained_on}
    return ModelMeta(
        generator=generator.config,
        band_shared=cfg.bands is None,
        band_names=names,
        normalization=data.normalization,
        value_range=None,
        trained_on=trained_on,
        name=cfg.name or f"geosr-{cfg.stage}-x{cfg.scale}",
        domain=domain,
    )


def _modules(nets: Networks) -> dict[str, nn.Module | None]:
    return {"g": nets.generator, "ema": nets.ema.model, "d": nets.discriminator}


def save_state(
    path: Path,
    nets: Networks,
    stream: BatchStream,
    cfg: TrainConfig,
    counters: Mapping[str, Any],
    device: torch.device,
) -> None:
    """Write the resume state; ``counters`` are the run's step, best score and step, clock."""
    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in _modules(nets).items():
        if module is not None:
            for key, value in module.state_dict().items():
                tensors[f"{prefix}.{key}"] = value.detach().cpu().contiguous()
    g_tensors, g_groups = _flatten_optimizer("opt_g", nets.opt_g)
    tensors.update(g_tensors)
    d_groups = None
    if nets.opt_d is not None:
        d_tensors, d_groups = _flatten_optimizer("opt_d", nets.opt_d)
        tensors.update(d_tensors)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    tensors["scaler.scale"] = torch.tensor(nets.scaler.get_scale() if nets.amp else 1.0)
    state = {
        **counters,
        "stage": cfg.stage,
        "config": cfg.to_dict(),
        "data": stream.state_dict(),
        "opt_g_groups": g_groups,
        "opt_d_groups": d_groups,
    }
    save_tensors(path, tensors, {"training_state": state})


def load_state(
    path: Path, nets: Networks, stream: BatchStream, cfg: TrainConfig, device: torch.device
) -> dict[str, Any]:
    """Restore what :func:`save_state` wrote; returns its counters."""
    if not path.is_file():
        raise ConfigError(f"nothing to resume: {path} does not exist; start without --resume")
    tensors, meta = load_tensors(path)
    state = meta.get("training_state")
    if not state:
        raise CheckpointError(f"{path} is not a geosr training state; start without --resume")
    if state["stage"] != cfg.stage:
        raise ConfigError(f"{path} is from stage {state['stage']!r}, not {cfg.stage!r}")
    for prefix, module in _modules(nets).items():
        if module is not None:
            _restore_module(path, prefix, module, tensors)
    _restore_optimizer("opt_g", nets.opt_g, tensors, state["opt_g_groups"])
    if nets.opt_d is not None:
        _restore_optimizer("opt_d", nets.opt_d, tensors, state["opt_d_groups"])
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    if nets.amp:
        nets.scaler.update(float(tensors["scaler.scale"]))
    stream.load_state_dict(state["data"])
    return state


def _restore_module(
    path: Path, prefix: str, module: nn.Module, tensors: Mapping[str, torch.Tensor]
) -> None:
    part = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    try:
        module.load_state_dict(part)
    except RuntimeError:
        raise ConfigError(
            f"{path} was saved with another architecture; resume with the same config "
            f"({path.parent / CONFIG_FILE})"
        ) from None


def _flatten_optimizer(
    prefix: str, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], Any]:
    state = optimizer.state_dict()
    tensors = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            tensors[f"{prefix}.{index}.{key}"] = torch.as_tensor(value).clone().contiguous()
    return tensors, state["param_groups"]


def _restore_optimizer(
    prefix: str, optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor], groups: Any
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})
