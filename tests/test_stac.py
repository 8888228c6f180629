"""STAC Items in and out.

Out: the Item ``stac=True`` / ``--stac`` writes is checked against the published STAC 1.1.0
Item schema and the projection v2.0.0, eo v1.1.0 and raster v1.1.0 extension schemas, vendored
in tests/data/stac-schemas (see PROVENANCE.md): no network at test time.

In: an Item built here with pystac over the real Sentinel-2 L2A test product's band files,
served with them by the tests' own HTTP server (tests/http_server.py), read by URL (with a
token that must reach no message or log), as a ``pystac.Item``, and by common name."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pystac
import pytest
import rasterio
import rasterio.warp
import referencing
import referencing.exceptions
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from referencing.jsonschema import DRAFT7

import geosr
from geosr.products import open_product
from tests import test_products
from tests.conftest import LANDSAT8, write_crop
from tests.datasets import TEST_DATA
from tests.http_server import SECRET, Server
from tests.test_products import L2A, L2A_IMG, RGBN, _geosr, _one_line

model = test_products.model  # the tiny x4 model fixture, reused

# --- the STAC schemas, offline ------------------------------------------------------------------

SCHEMAS = TEST_DATA / "stac-schemas"
ITEM_SCHEMA = "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json"


def _schema_file(uri: str) -> Path:
    """The vendored copy of a schema URL: tests/data/stac-schemas/<host>/<path>."""
    return SCHEMAS / uri.split("://", 1)[1].split("#", 1)[0]


def _retrieve(uri: str) -> referencing.Resource:
    path = _schema_file(uri)
    if not path.is_file():  # never the network: a schema not vendored is an error
        raise referencing.exceptions.NoSuchResource(ref=uri)
    return DRAFT7.create_resource(json.loads(path.read_text(encoding="utf-8")))


REGISTRY = referencing.Registry(retrieve=_retrieve)


def stac_errors(item: dict[str, Any]) -> list[str]:
    """What the Item breaks of the core Item schema and of each extension it declares."""
    errors = []
    for uri in [ITEM_SCHEMA, *item.get("stac_extensions", [])]:
        schema = json.loads(_schema_file(uri).read_text(encoding="utf-8"))
        validator = jsonschema.Draft7Validator(
            schema, registry=REGISTRY, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
        )
        errors += [f"{uri}: {error.message}" for error in validator.iter_errors(item)]
    return errors


def _strict_json(path: Path) -> dict[str, Any]:
    """JSON as the standard has it: NaN and Infinity are no numbers of it."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{path.name} holds {constant}, which is not JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


# --- out ----------------------------------------------------------------------------------------


def test_cli_stac_item_is_valid_against_the_stac_schemas(model: Path, tmp_path: Path) -> None:
    done = _geosr(
        "upscale",
        str(L2A),
        "-o",
        "out.tif",
        "--bands",
        ",".join(RGBN),
        "--model",
        str(model),
        "--stac",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    item = _strict_json(tmp_path / "out.json")
    assert stac_errors(item) == []
    assert item["stac_version"] == "1.1.0"
    assert sorted(item["stac_extensions"]) == [
        "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
        "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
        "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    ]
    props, asset = item["properties"], item["assets"]["data"]
    with rasterio.open(tmp_path / "out.tif") as dst:
        assert props["proj:code"] == dst.crs.to_string() == "EPSG:32632"
        assert props["proj:shape"] == [dst.height, dst.width] == [768, 768]
        assert props["proj:transform"] == list(dst.transform)[:6]
        assert props["proj:bbox"] == list(dst.bounds)
    assert props["datetime"] == "2019-05-30T10:30:31.024000Z"  # the product's, not now
    assert asset["href"] == "./out.tif"
    assert asset["type"] == "image/tiff; application=geotiff"  # no --cog: no COG claimed
    assert [b["name"] for b in asset["eo:bands"]] == RGBN
    assert [b["common_name"] for b in asset["eo:bands"]] == ["red", "green", "blue", "nir08"]
    assert asset["raster:bands"][3] == {
        "nodata": 0.0,
        "data_type": "uint16",
        "spatial_resolution": 2.5,
        "scale": 0.0001,
        "offset": -0.1,
    }
    # the check can fail: one breach of each schema is caught, by that schema
    breaches = [
        ("projection", lambda d: d["properties"].update({"proj:shape": "768,768"})),
        ("eo", lambda d: d["assets"]["data"]["eo:bands"][0].update({"common_name": "reddish"})),
        ("raster", lambda d: d["assets"]["data"]["raster:bands"][0].update({"data_type": "u16"})),
        ("item-spec", lambda d: d["properties"].pop("datetime")),
        ("item-spec", lambda d: d["properties"].update({"created": "yesterday"})),  # a format
    ]
    for schema, breach in breaches:
        broken = copy.deepcopy(item)
        breach(broken)
        errors = stac_errors(broken)
        assert errors and all(f"/{schema}/" in e for e in errors), (schema, errors)


# rasterio's own warnings about the ungeoreferenced input and output, not geosr's
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
@pytest.mark.parametrize(
    ("case", "updates"),
    [
        ("nan nodata", {"dtype": "float32", "nodata": math.nan}),
        # Albers on a made-up false easting: a CRS no authority has a code for
        (
            "no EPSG code",
            {"crs": "+proj=aea +lat_1=31 +lat_2=37 +lat_0=33 +lon_0=-86.5 +x_0=12345 +datum=WGS84"},
        ),
        ("no CRS", {"crs": None, "transform": rasterio.Affine.identity()}),
        ("cog", {}),
    ],
)
def test_stac_item_of_other_rasters_is_valid(
    case: str, updates: dict[str, Any], model_factory, tmp_path: Path
) -> None:
    """NaN nodata is the string "nan" (JSON has no NaN); a CRS without an authority code goes
    as proj:wkt2 (proj:code null); a raster without CRS gets a null geometry and proj:code;
    a COG output is said to be one."""
    source = write_crop(
        LANDSAT8, tmp_path / "in.tif", rasterio.windows.Window(0, 0, 48, 48), **updates
    )
    with (
        pytest.warns(geosr.NotGeoreferencedWarning)
        if case == "no CRS"
        else contextlib.nullcontext()
    ):
        out = geosr.upscale(
            source,
            tmp_path / "out.tif",
            model=model_factory(bands=None),
            stac=True,
            cog=case == "cog",
        )
    item = _strict_json(tmp_path / "out.json")
    assert stac_errors(item) == []
    props, asset = item["properties"], item["assets"]["data"]
    with rasterio.open(out) as dst:
        assert props["proj:shape"] == [dst.height, dst.width] == [96, 96]
        crs = dst.crs
    if case == "nan nodata":
        assert [b["nodata"] for b in asset["raster:bands"]] == ["nan"] * 4
        assert [b["data_type"] for b in asset["raster:bands"]] == ["float32"] * 4
    if case == "no EPSG code":
        assert props["proj:code"] is None
        assert rasterio.crs.CRS.from_wkt(props["proj:wkt2"]) == crs
        assert props["proj:wkt2"].startswith("PROJCRS[")  # WKT2, not GDAL's WKT1
    if case == "no CRS":
        assert item["geometry"] is None and "bbox" not in item
        assert props["proj:code"] is None and "proj:transform" not in props
    else:
        assert item["geometry"]["type"] == "Polygon" and len(item["bbox"]) == 4
    cog = "image/tiff; application=geotiff; profile=cloud-optimized"
    assert (asset["type"] == cog) == (case == "cog")


# --- in -----------------------------------------------------------------------------------------

#: The Item's bands: asset key (as Earth Search names them), file, eo:bands name, common name.
BANDS = [
    ("red", "R10m/T32TMT_20190530T103031_B04_10m.jp2", "B04", "red"),
    ("green", "R10m/T32TMT_20190530T103031_B03_10m.jp2", "B03", "green"),
    ("blue", "R10m/T32TMT_20190530T103031_B02_10m.jp2", "B02", "blue"),
    ("nir08", "R20m/T32TMT_20190530T103031_B8A_20m.jp2", "B8A", "nir08"),
]
SCL = "R20m/T32TMT_20190530T103031_SCL_20m.jp2"
ITEM_ID = "S2A_32TMT_20190530_0_L2A"


def _serve_item(server: Server) -> pystac.Item:
    """The L2A test product's band files and SCL in the server's folder, and an Item of them
    with absolute URLs; its JSON, with asset hrefs relative to it, is served as item.json."""
    for file in [*(b[1] for b in BANDS), SCL]:
        shutil.copy(L2A_IMG / file, server.folder)
    with rasterio.open(L2A_IMG / BANDS[0][1]) as red:
        left, bottom, right, top = red.bounds
        ring = [[left, bottom], [right, bottom], [right, top], [left, top], [left, bottom]]
        geometry = rasterio.warp.transform_geom(
            red.crs, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]}
        )
    lons, lats = zip(*geometry["coordinates"][0], strict=True)
    item = pystac.Item(
        id=ITEM_ID,
        geometry=geometry,
        bbox=[min(lons), min(lats), max(lons), max(lats)],
        datetime=dt.datetime(2019, 5, 30, 10, 30, 31, tzinfo=dt.timezone.utc),
        properties={"platform": "sentinel-2a"},
    )
    for key, file, name, common in BANDS:
        asset = pystac.Asset(
            href=f"{server.url}/{Path(file).name}",
            media_type=pystac.MediaType.JPEG2000,
            roles=["data", "reflectance"],
        )
        item.add_asset(key, asset)
        EOExtension.ext(asset, add_if_missing=True).bands = [
            Band.create(name=name, common_name=common)
        ]
        RasterExtension.ext(asset, add_if_missing=True).bands = [
            RasterBand.create(nodata=0, data_type=DataType.UINT16, scale=0.0001, offset=-0.1)
        ]
    item.add_asset(
        "SCL",
        pystac.Asset(
            href=f"{server.url}/{Path(SCL).name}",
            media_type=pystac.MediaType.JPEG2000,
            roles=["data"],
        ),
    )
    # a preview that is no band: skipped by its role, never read (the server does not have it)
    item.add_asset(
        "thumbnail",
        pystac.Asset(
            href=f"{server.url}/preview.jpg", media_type="image/jpeg", roles=["thumbnail"]
        ),
    )
    served = item.clone()
    served.set_self_href(f"{server.url}/item.json")
    served.make_asset_hrefs_relative()
    assert served.assets["red"].href == "./T32TMT_20190530T103031_B04_10m.jp2"
    (server.folder / "item.json").write_text(
        json.dumps(served.to_dict(include_self_link=False)), encoding="utf-8"
    )
    return item


def _read(path: Path) -> tuple[np.ndarray, np.ndarray, rasterio.Affine, tuple]:
    with rasterio.open(path) as dst:
        return dst.read(), dst.dataset_mask() > 0, dst.transform, dst.descriptions


def test_item_over_http_by_url_and_as_object_by_common_name(
    http_server: Server, model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The served Item, read by URL (relative asset hrefs resolved against it; its token
    reaches no message or log) and as a ``pystac.Item`` with bands by common name, gives the
    output of the SAFE product itself: on the 10 m grid / 4, bands named by eo:bands, SCL's
    clouds masked."""
    item = _serve_item(http_server)
    caplog.set_level(logging.DEBUG)
    url = f"{http_server.url}/item.json?token={SECRET}"
    by_url = geosr.upscale(url, tmp_path / "url.tif", model=model, bands=RGBN)
    by_object = geosr.upscale(
        item, tmp_path / "object.tif", model=model, bands=["red", "green", "blue", "nir08"]
    )
    assert http_server.bytes_served > 0
    logs = [r.getMessage() for r in caplog.records if not r.name.startswith("tornado")]
    assert not [m for m in logs if SECRET in m]
    # the served Item lacks B08, a guide of s2-guided, so its B8A is aligned by cubic: so is
    # the reference's
    reference = geosr.upscale(L2A, tmp_path / "safe.tif", model=model, bands=RGBN, guided=None)
    data, valid, transform, names = _read(by_url)
    with rasterio.open(L2A_IMG / BANDS[0][1]) as red:
        assert transform == red.transform * rasterio.Affine.scale(1 / 4)
    assert data.shape == (4, 768, 768) and names == tuple(RGBN)
    with rasterio.open(L2A_IMG / SCL) as scl:
        masked_scl = np.isin(scl.read(1), (0, 1, 3, 8, 9, 10))
    assert 0.05 < masked_scl.mean() < 0.95
    assert np.array_equal(valid, np.repeat(np.repeat(~masked_scl, 8, 0), 8, 1))
    with rasterio.open(by_url) as dst:
        assert dst.scales == (1e-4,) * 4 and dst.offsets == (-0.1,) * 4
        assert dst.tags()["PRODUCT_ID"] == ITEM_ID and dst.tags()["GEOSR_MASK"] == "clouds"
        assert dst.tags(1)["COMMON_NAME"] == "red"
        assert SECRET not in json.dumps(dst.tags())
    for other in (by_object, reference):
        other_data, other_valid, other_transform, other_names = _read(other)
        assert other_names == names and other_transform == transform
        assert np.array_equal(other_valid, valid) and np.array_equal(other_data, data)


def test_missing_item_url_names_it_without_its_token(
    http_server: Server, model: Path, tmp_path: Path, monkeypatch, caplog
) -> None:
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    url = f"{http_server.url}/missing.json?token={SECRET}"
    with pytest.raises(geosr.InputNotFoundError) as exc:
        geosr.upscale(url, model=model)
    message = _one_line(exc)
    assert f"{http_server.url}/missing.json" in message and "HTTP 404" in message
    assert SECRET not in message
    logs = [r.getMessage() for r in caplog.records if not r.name.startswith("tornado")]
    assert not [m for m in logs if SECRET in m]
    done = _geosr("upscale", url, "--model", str(model), cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing.json" in lines[0] and SECRET not in done.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "www"]


def test_json_that_is_no_item_gets_one_line(
    http_server: Server, model: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    item = _serve_item(http_server)
    collection = pystac.Collection(
        id="s2",
        description="Sentinel-2 L2A",
        extent=pystac.Extent(
            pystac.SpatialExtent([item.bbox]), pystac.TemporalExtent([[item.datetime, None]])
        ),
    )
    files = {
        "collection.json": json.dumps(collection.to_dict(include_self_link=False)),
        "search.json": json.dumps(pystac.ItemCollection([item]).to_dict()),
        "page.json": "<html><body>sign in</body></html>",
    }
    for name, text in files.items():
        (http_server.folder / name).write_text(text, encoding="utf-8")
    expected = {
        "collection.json": "is a STAC Collection, not an Item; pass one Item's JSON",
        "search.json": "is not a STAC Item",
        "page.json": "is not JSON",
    }
    for name, words in expected.items():
        with pytest.raises(geosr.InputError) as exc:
            geosr.upscale(f"{http_server.url}/{name}?token={SECRET}", model=model)
        message = _one_line(exc)
        assert words in message and SECRET not in message, message
    assert list(tmp_path.iterdir()) == [tmp_path / "www"]


def test_nodata_strings_of_raster_bands(tmp_path: Path) -> None:
    """STAC writes NaN nodata as "nan": it is read as NaN, and a word that is no number gets
    one line naming the asset."""
    band = write_crop(
        LANDSAT8,
        tmp_path / "b.tif",
        rasterio.windows.Window(0, 0, 32, 32),
        count=1,
        dtype="float32",
    )
    item = pystac.Item("float", None, None, dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc), {})
    asset = pystac.Asset(href=band.name, media_type=pystac.MediaType.GEOTIFF, roles=["data"])
    item.add_asset("b1", asset)
    RasterExtension.ext(asset, add_if_missing=True).bands = [RasterBand.create(nodata="nan")]
    path = tmp_path / "item.json"
    item.set_self_href(str(path))
    item.save_object(include_self_link=False)
    assert math.isnan(open_product(path).band("b1").nodata)
    text = path.read_text().replace('"nan"', '"none"')
    path.write_text(text)
    with pytest.raises(
        geosr.InputError, match="asset b1 of STAC Item float has nodata 'none'"
    ) as exc:
        open_product(path)
    _one_line(exc)


def test_stac_output_never_replaces_the_input_item(model: Path, tmp_path: Path) -> None:
    """item.json in, item.tif out with --stac: its Item would be item.json, the input."""
    band = write_crop(LANDSAT8, tmp_path / "b.tif", rasterio.windows.Window(0, 0, 32, 32), count=1)
    item = pystac.Item("item", None, None, dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc), {})
    item.add_asset(
        "b1", pystac.Asset(href=band.name, media_type=pystac.MediaType.GEOTIFF, roles=["data"])
    )
    path = tmp_path / "item.json"
    item.set_self_href(str(path))
    item.save_object(include_self_link=False)
    before = path.read_bytes()
    for source in (path, pystac.Item.from_file(str(path))):
        with pytest.raises(geosr.OutputError, match="the input Item") as exc:
            geosr.upscale(source, tmp_path / "item.tif", model=model, stac=True, overwrite=True)
        _one_line(exc)
    assert path.read_bytes() == before and not (tmp_path / "item.tif").exists()
