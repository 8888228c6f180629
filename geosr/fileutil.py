"""Small file-system helpers shared by the raster and checkpoint writers."""

from __future__ import annotations

import os


def default_file_mode() -> int:
    """Permissions a new file gets from ``open()`` under the current umask (``mkstemp``,
    used for atomic writes, would leave 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask
