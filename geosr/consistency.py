"""The radiometric consistency constraint shared by inference and training validation.

A super-resolved image is consistent with its input when every ``scale`` x ``scale`` block
averages to the input pixel it came from (a sensor integrating a pixel). The Euclidean
projection onto that constraint shifts each block by the difference of the two means.
"""

from __future__ import annotations

import torch


def project_block_means(sr: torch.Tensor, lr: torch.Tensor, scale: int) -> torch.Tensor:
    """Shift each block of ``sr`` (..., H*scale, W*scale) in place so that it averages to its
    pixel of ``lr`` (..., H, W); returns ``sr``. Per-band affine maps (normalisation)
    commute with it, so it may run on normalised or raster values alike."""
    *lead, h, w = lr.shape
    blocks = sr.view(*lead, h, scale, w, scale)
    # the contiguous axis first: twice as fast as mean() over both axes on a CPU
    mean = blocks.sum(dim=-1).sum(dim=-2).div_(scale * scale)
    blocks += (lr - mean)[..., :, None, :, None]
    return sr
