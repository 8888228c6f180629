"""Figures drawn off-screen, and the atomic writes of report files.

Figures are :class:`matplotlib.figure.Figure` objects with their own Agg canvas, never pyplot:
a library must not switch the caller's matplotlib backend (a notebook's inline one, say).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of ``width`` x ``height`` inches on its own Agg canvas."""
    # imported here: matplotlib costs a second to import and most callers never draw
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure: Figure, dpi: float) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_png(figure: Figure, path: Path, dpi: float) -> None:
    write_atomic(path, png_bytes(figure, dpi))


def side_by_side(figure: Figure, panels: Mapping[str, np.ndarray], stretch: np.ndarray) -> None:
    """Draw ``panels`` (title: (3, H, W) RGB) in one row of ``figure``, each stretched by the
    1st-99th percentiles of ``stretch`` (the input), so they compare on one scale."""
    low, high = np.percentile(stretch, [1, 99])
    axes = figure.subplots(1, len(panels))
    for ax, (title, image) in zip(axes, panels.items(), strict=True):
        ax.imshow(
            np.clip((image - low) / max(high - low, 1e-9), 0, 1).transpose(1, 2, 0),
            interpolation="nearest",
        )
        ax.set_title(title)
        ax.axis("off")
