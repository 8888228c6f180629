"""Data-parallel training under ``torchrun``: the process group, devices and agreement."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    """This process's place in the run (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    """Join the process group torchrun describes in the environment (gloo on CPU, NCCL on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return Dist(
        rank=dist.get_rank(),
        world=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.world > 1:
        dist.barrier()


def flagged_ranks(flag: bool, d: Dist, device: torch.device) -> list[int]:
    """The ranks whose ``flag`` is set, the same list on every rank.

    Every rank must call it at the same point: decisions to stop taken from it are taken by
    all ranks together, so none is left waiting in a collective the others never reach.
    """
    if d.world <= 1:
        return [d.rank] if flag else []
    flags = torch.zeros(d.world, device=device)
    flags[d.rank] = 1.0 if flag else 0.0
    dist.all_reduce(flags)
    return [rank for rank, value in enumerate(flags.tolist()) if value > 0]


def pick_device(name: str, d: Dist) -> torch.device:
    """``auto``, ``cpu`` or ``cuda``; under torchrun each process takes GPU ``LOCAL_RANK``."""
    from geosr.engine.devices import resolve_device

    device = resolve_device(name)
    if device.type == "cuda" and d.world > 1:
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    return device


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"
