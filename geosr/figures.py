"""Figures drawn off-screen, and the atomic writes of report files.

Figures are :class:`matplotlib.figure.Figure` objects with their own Agg canvas, never pyplot:
a library must not switch the caller's matplotlib backend (a notebook's inline one, say).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

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
