"""DataArrays in and out of the engine: a file's bands as a lazy, georeferenced DataArray,
an output's grid and attributes from its source's, row order, masks and alpha bands."""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable
from typing import Any

import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine

from geosr.errors import InputError
from geosr.raster import RasterInfo, lazy_array
from geosr.zarr_store import grid_transform


def dataarray_from_info(info: RasterInfo, chunk_size: int) -> xr.DataArray:
    """The selected bands of a raster file as a lazy, georeferenced DataArray."""
    array = lazy_array(info, chunk_size)
    transform = info.transform
    coords: dict[str, Any] = {"band": list(info.selected)}
    if transform.b == 0 and transform.d == 0:
        coords["x"] = (transform @ (np.arange(info.width) + 0.5, np.zeros(info.width)))[0]
        coords["y"] = (transform @ (np.zeros(info.height), np.arange(info.height) + 0.5))[1]
    data = xr.DataArray(array, dims=("band", "y", "x"), coords=coords, name=info.stem)
    if info.crs is not None:
        data = data.rio.write_crs(info.crs)
    data = data.rio.write_transform(transform)
    if info.nodata is not None:
        data = data.rio.write_nodata(info.nodata, encoded=False)
    return data


def _masked_source(
    source: xr.DataArray, valid: da.Array | None, nodata: float | None
) -> xr.DataArray:
    """The source bands with masked pixels set to nodata (0 for integers without one)."""
    if valid is None:
        return source
    fill = nodata if nodata is not None else (np.nan if source.dtype.kind == "f" else 0)
    data = da.where(valid[None] != 0, source.data, np.asarray(fill, source.dtype))
    return source.copy(data=data)


def _alpha_position(alpha: int | None, count: int) -> tuple[int, ...]:
    """The 0-based position of a 1-based alpha band number, checked."""
    if alpha is None:
        return ()
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, numbers.Integral)
        or not 1 <= alpha <= count
    ):
        raise InputError(
            f"alpha={alpha!r} is not a band of the DataArray; pass its 1-based position, 1 to {count}"
        )
    if count == 1:
        raise InputError("the DataArray's only band is its alpha band; pass the data bands too")
    return (int(alpha) - 1,)


def _mask_array(mask: Any, array: da.Array) -> da.Array | None:
    """``mask`` as a dask (y, x) array chunked like ``array``'s rows and columns."""
    if mask is None:
        return None
    values = mask.data if isinstance(mask, xr.DataArray) else mask
    values = values if isinstance(values, da.Array) else da.asarray(values)
    if values.ndim == 3 and values.shape[0] == 1:
        values = values[0]
    if values.shape != array.shape[1:]:
        raise InputError(
            f"the mask is {'x'.join(map(str, values.shape))} but the DataArray's rows and "
            f"columns are {'x'.join(map(str, array.shape[1:]))}; pass a (y, x) mask of the same size"
        )
    return values.rechunk(array.chunks[1:])


def _south_up(data: xr.DataArray) -> bool:
    """Whether ``data``'s rows run south to north (its y coordinate increases); rows of an
    array without a CRS are pixel rows, never flipped."""
    y = data.dims[-2]
    if y not in data.coords or data.sizes[y] < 2 or data.rio.crs is None:
        return False
    values = data.coords[y].values
    return bool(values[-1] > values[0]) and grid_transform(data).e > 0


def _flip_rows(mask: Any) -> Any:
    """A (y, x) or (1, y, x) mask with its rows reversed."""
    if isinstance(mask, xr.DataArray):
        return mask.isel({mask.dims[-2]: slice(None, None, -1)})
    return mask[..., ::-1, :]


def _rows_back(
    north_up: xr.DataArray, rows: dict[Hashable, slice], label: str | None
) -> xr.DataArray:
    out = north_up.isel(rows)
    if label is not None:
        out = out.assign_attrs(geosr_model=label)
    return out.rio.write_transform(grid_transform(out))


def _unchanged_coords(data: xr.DataArray) -> dict[Hashable, xr.Variable]:
    """The coordinates upscaling leaves as they are: all but those along y or x (their grid
    changes) and the grid mapping (written anew for the output)."""
    spatial = set(data.dims[-2:])
    return {
        name: coord.variable
        for name, coord in data.coords.items()
        if name != data.rio.grid_mapping and not spatial.intersection(coord.dims)
    }


def _wrap_result(
    source: xr.DataArray, result: da.Array, scale: int, nodata: float | None, label: str
) -> xr.DataArray:
    # from the coordinates as given: a y that increases keeps its order and its sign
    transform = grid_transform(source) @ Affine.scale(1 / scale)
    _, height, width = result.shape
    coords: dict[Hashable, Any] = _unchanged_coords(source)
    band_dim = source.dims[0]
    if transform.b == 0 and transform.d == 0:
        coords["x"] = (transform @ (np.arange(width) + 0.5, np.zeros(width)))[0]
        coords["y"] = (transform @ (np.zeros(height), np.arange(height) + 0.5))[1]
    attrs = dict(source.attrs)
    attrs.update({"geosr_model": label, "geosr_scale": scale})
    out = xr.DataArray(
        result, dims=(band_dim, "y", "x"), coords=coords, attrs=attrs, name=source.name
    )
    crs = source.rio.crs
    if crs is not None:
        out = out.rio.write_crs(crs)
    out = out.rio.write_transform(transform)
    if nodata is not None:
        if math.isnan(nodata) and source.rio.encoded_nodata is not None:
            out = out.rio.write_nodata(source.rio.encoded_nodata, encoded=True)
        else:
            out = out.rio.write_nodata(nodata, encoded=False)
    return out
