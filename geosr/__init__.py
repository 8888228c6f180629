"""geosr: super-resolution for multispectral GeoTIFFs on their exact footprint.

>>> import geosr
>>> geosr.upscale("scene.tif")  # doctest: +SKIP
PosixPath('scene_x4.tif')

Heavy modules (torch, dask, rasterio) load on first use of a name that needs them, so the
command line answers ``--help`` and usage errors at once.

Every user option (name, kind, default, allowed values, help) is declared once in
:mod:`geosr.options` (``geosr.OPTIONS``; ``geosr options`` prints them); the API checks values
against those declarations (``geosr.check_options``), the command line and the QGIS plugin
are built from them.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from geosr import accessor as _accessor  # noqa: F401  (registers da.geosr / ds.geosr)
from geosr.errors import (
    BandMismatchError,
    CheckpointError,
    ConfigError,
    GeosrError,
    GeosrWarning,
    InputError,
    InputNotFoundError,
    ModelError,
    ModelNotFoundError,
    NotARasterError,
    NotGeoreferencedWarning,
    OutputError,
    OutputExistsError,
)
from geosr.version import __version__

_LAZY = {
    "OPTIONS": "geosr.options",
    "check_options": "geosr.options",
    "ModelMeta": "geosr.checkpoint",
    "Normalization": "geosr.checkpoint",
    "build_model": "geosr.checkpoint",
    "bundled_models": "geosr.checkpoint",
    "load_model": "geosr.checkpoint",
    "load_guided": "geosr.checkpoint",
    "evaluate_guided": "geosr.evaluation",
    "read_meta": "geosr.checkpoint",
    "save_model": "geosr.checkpoint",
    "build_discriminator": "geosr.models",
    "BandStats": "geosr.engine",
    "write": "geosr.engine",
    "evaluate": "geosr.evaluation",
    "open_dataarray": "geosr.engine",
    "upscale": "geosr.engine",
    "upscale_dataarray": "geosr.engine",
    "uncertainty_path": "geosr.engine",
    "write_zarr": "geosr.zarr_store",
}

if TYPE_CHECKING:
    from geosr.checkpoint import (
        ModelMeta,
        Normalization,
        build_model,
        bundled_models,
        load_guided,
        load_model,
        read_meta,
        save_model,
    )
    from geosr.engine import (
        BandStats,
        open_dataarray,
        uncertainty_path,
        upscale,
        upscale_dataarray,
        write,
    )
    from geosr.evaluation import evaluate, evaluate_guided
    from geosr.models import build_discriminator
    from geosr.options import OPTIONS, check_options
    from geosr.zarr_store import write_zarr


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'geosr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "OPTIONS",
    "BandMismatchError",
    "BandStats",
    "CheckpointError",
    "ConfigError",
    "GeosrError",
    "GeosrWarning",
    "InputError",
    "InputNotFoundError",
    "ModelError",
    "ModelMeta",
    "ModelNotFoundError",
    "Normalization",
    "NotARasterError",
    "NotGeoreferencedWarning",
    "OutputError",
    "OutputExistsError",
    "__version__",
    "build_discriminator",
    "build_model",
    "bundled_models",
    "check_options",
    "evaluate",
    "evaluate_guided",
    "load_guided",
    "load_model",
    "open_dataarray",
    "read_meta",
    "save_model",
    "uncertainty_path",
    "upscale",
    "upscale_dataarray",
    "write",
    "write_zarr",
]
