"""geosr: super-resolution for multispectral GeoTIFFs on their exact footprint.

>>> import geosr
>>> geosr.upscale("scene.tif")  # doctest: +SKIP
PosixPath('scene_x4.tif')
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

from geosr.checkpoint import (
    ModelMeta,
    Normalization,
    build_model,
    bundled_models,
    load_model,
    read_meta,
    save_model,
)
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
from geosr.models import build_discriminator
from geosr.pipeline import BandStats, upscale, upscale_dataarray

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
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
    "load_model",
    "read_meta",
    "save_model",
    "upscale",
    "upscale_dataarray",
]
