"""geosr's exception and warning hierarchy.

Every error a user can cause is a :class:`GeosrError`; its message is one line that names the
problem and the fix. Subclasses also derive from the matching builtin, so ``except ValueError``
or ``except FileNotFoundError`` keep working for callers who do not know geosr.
"""

from __future__ import annotations


class GeosrError(Exception):
    """Root of every error geosr raises on purpose."""


class InputError(GeosrError, ValueError):
    """The input raster cannot be used as given."""


class InputNotFoundError(GeosrError, FileNotFoundError):
    """The input file does not exist."""


class NotARasterError(InputError):
    """The input file is not a raster GDAL can read, or it is corrupt or truncated."""


class BandMismatchError(InputError):
    """The raster's band count does not match what the model was trained on."""


class OutputError(GeosrError, OSError):
    """The output cannot be written where it was asked for."""


class OutputExistsError(OutputError, FileExistsError):
    """The output exists and overwriting was not asked for."""


class ModelError(GeosrError, ValueError):
    """A model or its configuration is invalid."""


class CheckpointError(ModelError):
    """A checkpoint file is missing, corrupt, unsafe or does not match its metadata."""


class ModelNotFoundError(CheckpointError, FileNotFoundError):
    """No model file or bundled model of that name exists."""


class ConfigError(GeosrError, ValueError):
    """A configuration (training or inference) is invalid."""


class DeviceMemoryError(GeosrError, MemoryError):
    """The accelerator ran out of memory for the chosen tile and batch sizes."""


class GeosrWarning(UserWarning):
    """Root of geosr's warnings."""


class NotGeoreferencedWarning(GeosrWarning):
    """The input has no CRS or no geotransform; the output will not be georeferenced either."""


class DomainError(InputError):
    """The input lies outside the model's training domain and ``strict`` refuses it."""


class DomainWarning(GeosrWarning):
    """The input lies outside the model's training domain (its card's ``training domain``)."""
