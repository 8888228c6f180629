"""``.geosr`` accessors for xarray: ``da.geosr.upscale(...)``, ``ds.geosr.upscale(...)``.

Registered when ``geosr`` is imported. They hold no logic: each is a call into
:mod:`geosr.engine`, lazily, so nothing is computed until asked. Their keyword options are
the engine's, declared in :mod:`geosr.options` and checked against those declarations before
anything is built.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from geosr.options import check_options
from geosr.options import get as _option

#: The model used when none is given, as declared for the whole API.
DEFAULT_MODEL = _option("model").default


@xr.register_dataarray_accessor("geosr")
class GeosrDataArrayAccessor:
    """Super-resolution of a georeferenced DataArray (``band, y, x`` or ``y, x``), or a cube
    with leading dimensions such as ``time`` (each slice upscaled lazily as a scene).

    Example:
        >>> import rioxarray, geosr  # doctest: +SKIP
        >>> da = rioxarray.open_rasterio("scene.tif", chunks={"x": 1024, "y": 1024})
        >>> sr = da.geosr.upscale(model="default")          # lazy
        >>> sr.geosr.to_raster("scene_x4.tif")               # streams chunk by chunk
    """

    def __init__(self, obj: xr.DataArray) -> None:
        self._obj = obj

    def upscale(self, model: Any = DEFAULT_MODEL, **options: Any) -> xr.DataArray:
        """:func:`geosr.upscale_dataarray` on this array; see it for the options
        (``geosr options`` lists them)."""
        check_options("upscale_dataarray", options)
        from geosr.engine import upscale_dataarray

        return upscale_dataarray(self._obj, model, **options)

    def to_raster(self, path: str | os.PathLike[str], **options: Any) -> Path:
        """:func:`geosr.write` this array to a GeoTIFF, or to a Zarr store for a ``.zarr``
        path (threads or a dask.distributed cluster)."""
        from geosr.engine import write

        return write(self._obj, path, **options)

    def to_zarr(self, path: str | os.PathLike[str], **options: Any) -> Path:
        """:func:`geosr.zarr_store.write_zarr`: this array into a Zarr store, chunk by chunk,
        each chunk written where it was computed (no lock), renamed into place when complete."""
        from geosr.zarr_store import write_zarr

        return write_zarr(self._obj, path, **options)


@xr.register_dataset_accessor("geosr")
class GeosrDatasetAccessor:
    """Super-resolution of a Dataset whose data variables are bands on one ``y, x`` grid,
    over leading dimensions such as ``time`` too (odc-stac's layout)."""

    def __init__(self, obj: xr.Dataset) -> None:
        self._obj = obj

    def band_variables(self) -> list[str]:
        """Data variables that are single bands on the Dataset's ``y, x`` grid (with leading
        dimensions such as ``time`` for a cube)."""
        return [
            str(name)
            for name, var in self._obj.data_vars.items()
            if var.dims[-2:] == ("y", "x") and var.squeeze(drop=True).ndim >= 2
        ]

    def upscale(
        self, model: Any = DEFAULT_MODEL, variables: Sequence[str] | None = None, **options: Any
    ) -> xr.Dataset:
        """Upscale the band variables together (as one multiband raster, in order), returning
        a Dataset of the same variables on the finer grid; other variables are dropped. The
        options are :func:`geosr.upscale_dataarray`'s."""
        check_options("upscale_dataarray", options)
        from geosr.engine import upscale_dataarray
        from geosr.errors import InputError
        from geosr.zarr_store import grid_transform

        names = list(variables) if variables is not None else self.band_variables()
        if not names:
            raise InputError("the Dataset has no (y, x) band variables to upscale")
        missing = [n for n in names if n not in self._obj.data_vars]
        if missing:
            raise InputError(f"no variable(s) {', '.join(missing)} in the Dataset")
        # only a length-1 band dimension goes: the bands are stacked along a new one, and a
        # length-1 time is a date the output keeps
        bands = [_without_band(self._obj[n]) for n in names]
        stacked = xr.concat(bands, dim="band", coords="minimal", compat="override")
        stacked = stacked.assign_coords(band=names)
        first = bands[0]
        if first.rio.crs is not None:
            stacked = stacked.rio.write_crs(first.rio.crs)
        stacked = stacked.rio.write_transform(grid_transform(first))
        if first.rio.nodata is not None:
            stacked = stacked.rio.write_nodata(first.rio.nodata)
        result = upscale_dataarray(stacked, model, **options)
        out = xr.Dataset(
            {n: result.sel(band=n, drop=True).assign_attrs(self._obj[n].attrs) for n in names},
            attrs=dict(self._obj.attrs),
        )
        for name in names:
            out[name].attrs.update(
                {k: v for k, v in result.attrs.items() if k.startswith("geosr_")}
            )
        return out.rio.write_crs(result.rio.crs) if result.rio.crs is not None else out


def _without_band(variable: xr.DataArray) -> xr.DataArray:
    """A band variable without its length-1 ``band`` dimension, if it has one."""
    return variable.squeeze("band", drop=True) if variable.sizes.get("band") == 1 else variable
