"""geosr benchmarks: pipeline overhead, memory, halo cost, baselines, scaling, training speed,
generator layouts.

Every number is a ratio against a baseline measured in the same run, on the same machine:

    python benchmarks/run.py                     # everything, table on stdout
    python benchmarks/run.py --only overhead memory --json out/bench.json

Sections:
    overhead  geosr.upscale on a real multi-band GeoTIFF (read, normalise, halo, model,
              de-normalise, write) / the bare generator forward over the same input pixels in
              one in-memory pass, in the same process.
    memory    peak RSS of upscaling scenes of 1x, 4x and 16x the pixels at one chunk size.
    halo      compute spent on halos at the default chunk size and overlap.
    baselines rasterio/GDAL bicubic writing the same output format (the I/O floor), and a
              Real-ESRGAN-style loop (whole image in memory, tiles pasted without halo).
    scaling   a dask.distributed LocalCluster with 1 and with 2 workers on the same scene.
    io-floor  geosr.upscale with a generator that costs nothing (nearest neighbour, no
              convolutions), consistency on and off, against GDAL resampling the same input
              (bilinear, gdal_translate -outsize 400% 400%) into the same tiled, compressed
              GeoTIFF: what the pipeline itself costs around a model, on a 2048^2 scene.
    zarr-scaling  the same, writing a Zarr store (geosr.zarr_store.write_zarr: each worker
              writes its own chunks, no lock): LocalCluster worker processes, one thread each.
    training  steps/s of the default training configurations.
    model     the generator layouts on the CPU: one forward pass of the 0.x layout
              (PRESETS["compact"]: conv + pixel shuffle x2 stages, 9x9 tail at HR resolution) vs
              the new one (PRESETS["fast"]: 3x3 tail at LR resolution + one pixel shuffle),
              band-shared x4 on 4 single-band 256x256 tiles of a real NAIP crop (one batch
              of 4, and 4 batches of 1 as the CPU pipeline runs them), per output pixel;
              then geosr.upscale of that 4-band crop with each (consistency on; the 0.x
              srgan file vs the bundled srresnet, or a saved fast-layout model with random
              weights while srresnet still has the old layout), and the x8 self-ensemble
              (tta=True) vs off with the new one, and srgan at strength 1 with
              preserve_spectra=True vs off (a second network pass). Old and new runs alternate:
              python benchmarks/run.py --only model
    products  a Sentinel-2 product's band files on their native 10/20/60 m grids (the real
              T33UUU set, JPEG 2000; the L2A test product without the shared folder): the
              aligner alone (geosr.upscale(files, resolution=10): a cubic VRT read window by
              window into the output GeoTIFF) vs the usual first step, rasterio.warp.reproject
              of each band (cubic) into one stacked GeoTIFF on the 10 m grid; then
              geosr.upscale of the files (aligning on the fly) vs of that stack, with a
              generator that costs nothing (the I/O and aligning cost alone). Interleaved.
    guided    a whole Sentinel-2 tile (the shared T55HFA .zip read x5 onto its native grids:
              10980 x 10980 at 10 m, 12 bands; the small test product without the shared
              folder) brought to 10 m by the guided model (--guided-model, default s2-guided):
              geosr.upscale(files, resolution=10) vs the same with cubic alignment, and vs
              the guided net's bare forward over the same blocks (random tensors in memory).
              python benchmarks/run.py --only guided
    gpu       CUDA only: the generator's forward throughput on the device (fp32, fp16, bf16),
              the whole pipeline's throughput and overhead ratio, and how far half precision
              moves the output (in DN) from fp32; on a mosaic of the whole scene.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.datasets import TEST_DATA, shared_data_folder  # noqa: E402  (one resolver for both)
from tests.generators import NearestGenerator  # noqa: E402

# the full scenes when present, else the crops committed with the tests
DATA = shared_data_folder() or TEST_DATA
SCENE = DATA / "landsat8_lc80200392015216" / "LC08_020039_20150804_B2B3B4B5_30m.tif"
FULL_SCENE = SCENE  # SCENE becomes the --crop of it
SECTIONS = (
    "overhead",
    "memory",
    "halo",
    "baselines",
    "io-floor",
    "scaling",
    "zarr-scaling",
    "training",
    "model",
    "products",
    "guided",
    "gpu",
)
#: a real 4-band scene (NAIP RGBN, uint8, 256 x 256): the crop committed with the tests
NAIP = TEST_DATA / "naip_nd_m4709963" / "m_4709963_se_14_1_20190904.tif"
#: the bundled model of geosr 0.x (compact layout), kept with the tests
OLD_MODEL = TEST_DATA / "models" / "srgan-0.x.safetensors"


def timed(fn, repeat: int = 1) -> float:
    """Best wall time of ``repeat`` runs (best-of filters out a busy neighbour)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def model_for(args: argparse.Namespace):
    import geosr

    return geosr.load_model(args.model)


def bare_forward(model, lr: np.ndarray) -> np.ndarray:
    """The generator over the whole image in one pass, nothing else (band-shared models
    take the bands as a batch)."""
    x = torch.from_numpy(lr.astype(np.float32) / 10000)
    x = x[:, None] if model.meta.band_shared else x[None]
    with torch.inference_mode():
        return model(x).numpy()


def bench_overhead(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import geosr

    model = model_for(args)
    with rasterio.open(SCENE) as src:
        lr = src.read()
    forward = timed(lambda: bare_forward(model, lr), args.repeat)
    out = work / "overhead.tif"
    pipeline = timed(
        lambda: geosr.upscale(SCENE, out, model=model, overwrite=True, chunk_size=args.chunk_size),
        args.repeat,
    )
    return {
        "scene": f"{SCENE.name} ({lr.shape[0]} x {lr.shape[1]} x {lr.shape[2]})",
        "bare_forward_s": round(forward, 3),
        "geosr_upscale_s": round(pipeline, 3),
        "overhead_ratio": round(pipeline / forward, 3),
    }


def _mosaic(factor: int, path: Path, base: int | None = None, source: Path | None = None) -> Path:
    """A larger real raster: the scene (or its top-left ``base`` square) tiled factor x factor
    (flipped copies, so no seams)."""
    with rasterio.open(source or SCENE) as src:
        window = Window(0, 0, base or src.width, base or src.height)
        data = src.read(window=window)
        profile = src.profile | {
            "width": int(window.width) * factor,
            "height": int(window.height) * factor,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
        }
    rows = []
    for i in range(factor):
        row = [data[:, :: (-1) ** i, :: (-1) ** j] for j in range(factor)]
        rows.append(np.concatenate(row, axis=2))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.concatenate(rows, axis=1))
    return path


def bench_memory(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    base_rss = None
    for factor in (1, 2, 4):  # 1x, 4x, 16x the pixels
        scene = _mosaic(factor, work / f"mosaic{factor}.tif", base=args.memory_base)
        code = (
            "import sys, geosr; "
            "geosr.upscale(sys.argv[1], sys.argv[2], model=sys.argv[3], chunk_size=int(sys.argv[4]), overwrite=True); "
            # VmHWM: this process's own peak (ru_maxrss would inherit the parent's at fork)
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
        )
        start = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                code,
                str(scene),
                str(work / f"mosaic{factor}_x.tif"),
                args.model,
                str(args.memory_chunk_size),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        seconds = time.perf_counter() - start
        rss_mb = int(done.stdout.strip().splitlines()[-1]) / 1024
        base_rss = base_rss or rss_mb
        results[f"{factor * factor}x_pixels"] = {
            "peak_rss_mb": round(rss_mb, 1),
            "ratio_to_1x": round(rss_mb / base_rss, 3),
            "seconds": round(seconds, 1),
        }
    return results


def bench_halo(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import geosr
    from geosr.pipeline import default_halo

    model = model_for(args)
    halo = default_halo(model, may_have_nodata=False)
    chunk = args.chunk_size
    theoretical = ((chunk + 2 * halo) ** 2 - chunk**2) / chunk**2
    # 2 x 2 chunks of the full chunk size, so every chunk has halos on two sides
    scene = _mosaic(2, work / "halo.tif", base=chunk, source=FULL_SCENE)
    with_halo = timed(
        lambda: geosr.upscale(
            scene, work / "h1.tif", model=model, overwrite=True, chunk_size=chunk
        ),
        args.repeat,
    )
    without = timed(
        lambda: geosr.upscale(
            scene, work / "h0.tif", model=model, overwrite=True, chunk_size=chunk, overlap=0
        ),
        args.repeat,
    )
    two_sides = ((chunk + halo) ** 2 - chunk**2) / chunk**2
    return {
        "chunk_size": chunk,
        "halo": halo,
        "scene": f"{2 * chunk} x {2 * chunk} (2 x 2 chunks, halos on two sides of each)",
        "interior_chunk_extra_pixels": round(theoretical, 3),
        "this_scene_extra_pixels": round(two_sides, 3),
        "measured_time_with_over_without_halo": round(with_halo / without, 3),
    }


def bench_baselines(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import geosr

    model = model_for(args)
    scale = model.meta.scale

    def gdal_bicubic() -> None:
        with rasterio.open(SCENE) as src:
            data = src.read(
                out_shape=(src.count, src.height * scale, src.width * scale),
                resampling=Resampling.cubic,
            )
            profile = src.profile | {
                "width": src.width * scale,
                "height": src.height * scale,
                "transform": src.transform @ Affine.scale(1 / scale),
                "tiled": True,
                "blockxsize": 512,
                "blockysize": 512,
                "compress": "deflate",
                "predictor": 2,
            }
        with rasterio.open(work / "bicubic.tif", "w", **profile) as dst:
            dst.write(data)

    def realesrgan_style(tile: int = 512) -> None:
        with rasterio.open(SCENE) as src:
            lr = src.read()
            profile = src.profile | {
                "width": src.width * scale,
                "height": src.height * scale,
                "tiled": True,
                "blockxsize": 512,
                "blockysize": 512,
                "compress": "deflate",
                "predictor": 2,
            }
        out = np.zeros((lr.shape[0], lr.shape[1] * scale, lr.shape[2] * scale), np.float32)
        for y in range(0, lr.shape[1], tile):
            for x in range(0, lr.shape[2], tile):
                sr = bare_forward(model, lr[:, y : y + tile, x : x + tile])
                sr = sr[:, 0] if model.meta.band_shared else sr[0]
                out[:, y * scale : (y + tile) * scale, x * scale : (x + tile) * scale] = sr
        with rasterio.open(work / "tiles.tif", "w", **profile) as dst:
            dst.write(np.clip(out * 10000, 0, 65535).astype(profile["dtype"]))

    geosr_s = timed(
        lambda: geosr.upscale(
            SCENE, work / "g.tif", model=model, overwrite=True, chunk_size=args.chunk_size
        ),
        args.repeat,
    )
    bicubic_s = timed(gdal_bicubic, args.repeat)
    tiles_s = timed(realesrgan_style, args.repeat)
    return {
        "geosr_s": round(geosr_s, 3),
        "gdal_bicubic_s": round(bicubic_s, 3),
        "realesrgan_style_tiles_s": round(tiles_s, 3),
        "geosr_over_gdal_bicubic": round(geosr_s / bicubic_s, 2),
        "geosr_over_realesrgan_style": round(geosr_s / tiles_s, 3),
    }


def _square_scene(path: Path, side: int) -> Path:
    """The full scene mirrored into a ``side`` x ``side`` GeoTIFF (flipped copies, no seams)."""
    with rasterio.open(FULL_SCENE) as src:
        factor = -(-side // min(src.width, src.height))
    big = _mosaic(factor, path.with_name(path.stem + "_mosaic.tif"), source=FULL_SCENE)
    with rasterio.open(big) as src:
        data = src.read(window=Window(0, 0, side, side))
        profile = src.profile | {"width": side, "height": side}
        profile["transform"] = src.transform  # same origin: the top-left square
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    big.unlink()
    return path


def _gdal_outsize_vrt(src: Any, scale: int, resampling: str) -> str:
    """The VRT ``gdal_translate -outsize {scale*100}% -r {resampling}`` builds internally:
    every band a source window stretched onto the whole output grid, read pixel-interleaved."""
    transform = src.transform @ Affine.scale(1 / scale)
    width, height = src.width * scale, src.height * scale
    crs = src.crs.to_wkt().replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    gdal_dtype = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16"}[src.dtypes[0]]
    bands = "".join(
        f'<VRTRasterBand dataType="{gdal_dtype}" band="{b}">'
        f'<SimpleSource resampling="{resampling}">'
        f'<SourceFilename relativeToVRT="0">{src.name}</SourceFilename><SourceBand>{b}</SourceBand>'
        f'<SrcRect xOff="0" yOff="0" xSize="{src.width}" ySize="{src.height}"/>'
        f'<DstRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>'
        "</SimpleSource></VRTRasterBand>"
        for b in range(1, src.count + 1)
    )
    return (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}"><SRS>{crs}</SRS>'
        f"<GeoTransform>{', '.join(map(repr, transform.to_gdal()))}</GeoTransform>"
        '<Metadata domain="IMAGE_STRUCTURE"><MDI key="INTERLEAVE">PIXEL</MDI></Metadata>'
        f"{bands}</VRTDataset>"
    )


def bench_io_floor(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """geosr around a free generator vs GDAL resampling into the same GeoTIFF format."""
    import shutil

    from rasterio.shutil import copy as gdal_copy

    import geosr
    from geosr.raster import open_info, output_block_size, output_profile

    scene = _square_scene(work / "io_floor.tif", args.io_floor_size)
    with rasterio.open(scene) as src:
        bands, dtype = src.count, src.dtypes[0]
    model = NearestGenerator(bands, 4)
    scale = model.meta.scale
    chunk = args.chunk_size
    # geosr's own creation options for this output (tiling, deflate level, predictor, threads)
    profile = output_profile(open_info(scene), scale, output_block_size(chunk * scale))
    options = {
        k: v
        for k, v in profile.items()
        if k not in ("driver", "width", "height", "count", "dtype", "crs", "transform", "nodata")
    }

    def gdal_bilinear() -> None:
        with rasterio.open(scene) as src:
            vrt = _gdal_outsize_vrt(src, scale, "bilinear")
        with rasterio.open(vrt) as resampled:
            gdal_copy(resampled, work / "gdal_bilinear.tif", driver="GTiff", **options)

    def run_geosr(consistency: bool) -> None:
        geosr.upscale(
            scene,
            work / "io_floor_x4.tif",
            model=model,
            chunk_size=chunk,
            consistency=consistency,
            overwrite=True,
        )

    def gdal_translate_cli() -> None:
        flags = [
            arg
            for k, v in options.items()
            for arg in ("-co", f"{k.upper()}={str(v).upper() if isinstance(v, bool) else v}")
        ]
        size = f"{scale * 100}%"
        command = ["gdal_translate", "-q", "-r", "bilinear", "-outsize", size, size]
        subprocess.run([*command, *flags, str(scene), str(work / "gdal_cli.tif")], check=True)

    runs: dict[str, Callable[[], None]] = {
        "geosr_nearest_consistency": lambda: run_geosr(True),
        "geosr_nearest_no_consistency": lambda: run_geosr(False),
        "gdal_bilinear_rasterio": gdal_bilinear,
    }
    if shutil.which("gdal_translate"):  # the command itself (its GDAL may differ from rasterio's)
        runs["gdal_translate_cli"] = gdal_translate_cli
    run_geosr(True)  # warm-up: imports, first allocations
    best = _interleaved(runs, args.repeat)
    gdal = min(best[k][0] for k in runs if k.startswith("gdal"))
    gdal_cpu = min(best[k][1] for k in runs if k.startswith("gdal"))
    return {
        "scene": f"Landsat 8 B2-B5, mirrored mosaic {bands} x {args.io_floor_size}^2 {dtype}",
        "scale": scale,
        "creation_options": {k: str(v) for k, v in options.items()},
        "gdal": f"bilinear, -outsize {scale * 100}%: the VRT gdal_translate makes + CreateCopy "
        f"through rasterio's GDAL {rasterio.__gdal_version__} (the same bytes as the command), "
        "and the gdal_translate command where installed; the faster is the floor",
        **{f"{k}_s": round(v[0], 3) for k, v in best.items()},
        **{f"{k}_cpu_s": round(v[1], 3) for k, v in best.items()},
        "ratio_consistency": round(best["geosr_nearest_consistency"][0] / gdal, 3),
        "ratio_no_consistency": round(best["geosr_nearest_no_consistency"][0] / gdal, 3),
        "cpu_ratio_consistency": round(best["geosr_nearest_consistency"][1] / gdal_cpu, 3),
        "output_mb_geosr": round((work / "io_floor_x4.tif").stat().st_size / 1e6, 1),
        "output_mb_gdal": round((work / "gdal_bilinear.tif").stat().st_size / 1e6, 1),
    }


def _interleaved(
    runs: dict[str, Callable[[], None]], repeat: int
) -> dict[str, tuple[float, float]]:
    """Best wall time of each run over ``repeat`` rounds that take turns (a busy neighbour
    then slows each alike), with the CPU time (this process and its children) of that run."""

    def cpu() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    best: dict[str, tuple[float, float]] = {}
    for _ in range(repeat):
        for name, fn in runs.items():
            cpu0, start = cpu(), time.perf_counter()
            fn()
            wall, used = time.perf_counter() - start, cpu() - cpu0
            if name not in best or wall < best[name][0]:
                best[name] = (wall, used)
    return best


def _worker_scaling(run: Callable[[str], object], repeat: int) -> dict[str, Any]:
    """Seconds of ``run(name)`` on a LocalCluster of 1 and of 2 worker processes with one
    thread each (after a warm-up run that ships the model), and the speed-up."""
    from dask.distributed import Client, LocalCluster

    times = {}
    for workers in (1, 2):
        with (
            LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster),
        ):
            run("warm")
            times[workers] = timed(lambda workers=workers: run(f"s{workers}"), repeat)
    return {
        "one_worker_s": round(times[1], 2),
        "two_workers_s": round(times[2], 2),
        "speedup": round(times[1] / times[2], 3),
    }


def bench_scaling(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import geosr

    scene = _mosaic(1, work / "scaling.tif")
    return _worker_scaling(
        lambda name: geosr.upscale(
            scene,
            work / f"{name}.tif",
            model=args.model,
            overwrite=True,
            chunk_size=args.scaling_chunk_size,
        ),
        args.repeat,
    )


def bench_zarr_scaling(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import rioxarray

    import geosr
    from geosr.zarr_store import write_zarr

    scene = _mosaic(1, work / "zarr-scaling.tif")
    size = args.scaling_chunk_size

    def upscale_to_zarr(name: str) -> None:
        data = rioxarray.open_rasterio(scene, chunks={"x": size, "y": size})
        write_zarr(geosr.upscale_dataarray(data, args.model), work / f"{name}.zarr", overwrite=True)

    with rasterio.open(scene) as src:
        chunks = -(-src.width // size) * -(-src.height // size)
    return {
        "cluster": "LocalCluster, worker processes with 1 thread each",
        "input_chunks": f"{chunks} of {size} px",
        **_worker_scaling(upscale_to_zarr, args.repeat),
    }


def _product_bands() -> list[Path]:
    """Band files of one Sentinel-2 product on three grids (10, 20 and 60 m where present)."""
    shared = shared_data_folder()
    if shared is not None:
        folder = shared / "s2_l1c_t33uuu_20170216" / "IMG_DATA"
        return sorted(
            p
            for p in folder.glob("*.jp2")
            if p.stem.endswith(("B02", "B03", "B04", "B08", "B05", "B8A", "B11", "B01"))
        )
    img = next((TEST_DATA / "s2_l2a_t32tmt").glob("*.SAFE/GRANULE/*/IMG_DATA"))
    return sorted(img.glob("R10m/*.jp2")) + sorted(img.glob("R20m/*_B*_20m.jp2"))[1:]


def bench_products(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from rasterio.warp import reproject

    import geosr
    from geosr.raster import compression_options

    files = _product_bands()
    sizes = {}
    for file in files:
        with rasterio.open(file) as src:
            sizes[file] = src.res[0]
    with rasterio.open(min(files, key=sizes.get)) as first:
        grid = {
            "crs": first.crs,
            "transform": first.transform,
            "width": first.width,
            "height": first.height,
        }
    stacked = work / "prestacked.tif"

    def prestack() -> None:
        profile = {
            "driver": "GTiff",
            "count": len(files),
            "dtype": "uint16",
            "tiled": True,
            **grid,
            "blockxsize": 256,
            "blockysize": 256,
            **compression_options(False),
        }
        with rasterio.open(stacked, "w", **profile) as dst:
            for index, file in enumerate(files, start=1):
                with rasterio.open(file) as src:
                    band = np.zeros((grid["height"], grid["width"]), np.uint16)
                    reproject(
                        rasterio.band(src, 1),
                        band,
                        dst_transform=grid["transform"],
                        dst_crs=grid["crs"],
                        resampling=Resampling.cubic,
                    )
                dst.write(band, index)

    model = NearestGenerator(1, 4)
    model.meta = dataclasses.replace(model.meta, band_shared=True)  # any band count
    runs = {
        "prestack_rasterio": prestack,
        "aligner_only": lambda: geosr.upscale(
            files,
            work / "aligned.tif",
            resolution=grid["transform"].a,
            overwrite=True,
            chunk_size=args.chunk_size,
        ),
    }
    best = _interleaved(runs, args.repeat)
    upscales = {
        "upscale_prestacked": lambda: geosr.upscale(
            stacked, work / "a.tif", model=model, overwrite=True, chunk_size=args.chunk_size
        ),
        "upscale_product": lambda: geosr.upscale(
            files, work / "b.tif", model=model, overwrite=True, chunk_size=args.chunk_size
        ),
    }
    best |= _interleaved(upscales, args.repeat)
    with rasterio.open(stacked) as a, rasterio.open(work / "aligned.tif") as b:
        # the interior: cubic's reach is two pixels of the coarsest band (60 m: 12 at 10 m)
        margin = int(2 * max(sizes.values()) / grid["transform"].a)
        diff = np.abs(a.read().astype(int) - b.read().astype(int))[
            :, margin:-margin, margin:-margin
        ]
    return {
        "bands": f"{len(files)} files: " + ", ".join(p.stem.rsplit("_", 1)[-1] for p in files),
        "grid": f"{grid['width']} x {grid['height']} at {grid['transform'].a:g} m",
        **{f"{name}_s": round(wall, 2) for name, (wall, _) in best.items()},
        "aligner_vs_prestack": round(best["aligner_only"][0] / best["prestack_rasterio"][0], 3),
        "upscale_product_vs_prestacked": round(
            best["upscale_product"][0] / best["upscale_prestacked"][0], 3
        ),
        "upscale_product_vs_prestack_then_upscale": round(
            best["upscale_product"][0]
            / (best["prestack_rasterio"][0] + best["upscale_prestacked"][0]),
            3,
        ),
        "aligned_vs_prestacked_max_dn_interior": int(diff.max()),
    }


T55HFA_ZIP = (
    "s2_l1c_t55hfa_20201011/S2B_MSIL1C_20201011T000249_N0209_R030_T55HFA_20201011T011446.zip"
)


def _full_tile(work: Path) -> list[Path]:
    """The shared T55HFA product as a whole 10980 x 10980 tile at 10 m: each band file of the
    .zip (decimated 5x upstream) read x5 by nearest neighbour onto its native 10, 20 or 60 m
    grid, as GDAL's SENTINEL2 driver presents it. Without the shared data: the small test
    product as it is."""
    import zipfile

    shared = shared_data_folder()
    if shared is None:
        img = next((TEST_DATA / "s2_l1c_t55hfa").glob("*.SAFE/GRANULE/*/IMG_DATA"))
        return sorted(p for p in img.glob("*_B*.jp2"))
    archive = shared / T55HFA_ZIP
    with zipfile.ZipFile(archive) as z:
        members = sorted(m for m in z.namelist() if m.endswith(".jp2") and "_TCI" not in m)
    files = []
    for member in members:
        name = f"/vsizip/{archive}/{member}"
        with rasterio.open(name) as src:
            width, height = src.width * 5, src.height * 5
            transform = src.transform * rasterio.Affine.scale(0.2)
            vrt = f"""<VRTDataset rasterXSize="{width}" rasterYSize="{height}">
  <SRS>{src.crs.to_wkt()}</SRS>
  <GeoTransform>{", ".join(repr(v) for v in transform.to_gdal())}</GeoTransform>
  <VRTRasterBand dataType="UInt16" band="1">
    <SimpleSource resampling="nearest">
      <SourceFilename relativeToVRT="0">{name}</SourceFilename><SourceBand>1</SourceBand>
      <SrcRect xOff="0" yOff="0" xSize="{src.width}" ySize="{src.height}"/>
      <DstRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>
    </SimpleSource>
  </VRTRasterBand>
</VRTDataset>"""
        path = work / (Path(member).stem + ".vrt")
        path.write_text(vrt)
        files.append(path)
    return files


def bench_guided(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """All bands of a whole Sentinel-2 tile to 10 m through the guided model, and the guided
    model's bare forward over the same blocks of pixels (random inputs, in memory, no halo,
    no reading, normalisation, projection or writing)."""
    import geosr
    from geosr.aligner import guided_stages
    from geosr.checkpoint import load_guided
    from geosr.pipeline import GUIDED_BLOCK
    from geosr.products import open_product

    files = _full_tile(work)
    model = load_guided(args.guided_model)
    product = open_product([str(f) for f in files])
    stages = guided_stages(product, model)
    fine = stages[0].fine
    out = work / "guided_10m.tif"
    pipeline_s = timed(
        lambda: geosr.upscale(
            [str(f) for f in files], out, guided=model, resolution=fine.transform.a,
            overwrite=True, progress=False,
        )
    )  # fmt: skip
    with rasterio.open(out) as dst:
        shape = f"{dst.count} bands, {dst.width} x {dst.height} at {dst.res[0]:g} m"
        aligner = dst.tags()["GEOSR_ALIGNER"]
    cubic_s = timed(
        lambda: geosr.upscale(
            [str(f) for f in files], work / "cubic_10m.tif", guided=None,
            resolution=fine.transform.a, overwrite=True,
        )
    )  # fmt: skip
    block = GUIDED_BLOCK
    forward_s = 0.0
    generator = torch.Generator().manual_seed(0)
    for bands in stages:
        net = model.stages[bands.stage]
        r = bands.ratio
        targets = len(bands.config.targets)
        cb = block // r
        for y in range(0, bands.coarse.height, cb):
            for x in range(0, bands.coarse.width, cb):
                h, w = min(cb, bands.coarse.height - y), min(cb, bands.coarse.width - x)
                coarse = torch.rand(1, targets, h, w, generator=generator)
                guides = torch.rand(1, len(bands.guides), h * r, w * r, generator=generator)
                gains = torch.rand(1, targets, len(bands.guides), generator=generator)
                present = torch.tensor([bands.present], dtype=torch.float32)
                start = time.perf_counter()
                with torch.inference_mode():
                    net(coarse, guides, present, gains, project=False)
                forward_s += time.perf_counter() - start
    return {
        "tile": shape,
        "aligner": aligner,
        "pipeline_guided_s": round(pipeline_s, 1),
        "pipeline_cubic_s": round(cubic_s, 1),
        "bare_forward_s": round(forward_s, 1),
        "pipeline_vs_bare_forward": round(pipeline_s / forward_s, 3),
        "megapixels_per_s": round(fine.width * fine.height / 1e6 / pipeline_s, 2),
    }


def _cuda_forward_seconds(model, lr: np.ndarray, tile: int, precision: str, repeat: int) -> float:
    """The bare generator on the GPU over ``lr`` cut into ``tile`` squares (no halo), input
    already on the device, output left there: the device's own throughput."""
    device = torch.device("cuda")
    net = copy.deepcopy(model).to(device, memory_format=torch.channels_last).eval()
    x = torch.from_numpy(lr.astype(np.float32) / 10000).to(device)
    tiles = [
        x[:, y : y + tile, c : c + tile]
        for y in range(0, x.shape[1], tile)
        for c in range(0, x.shape[2], tile)
    ]
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)

    def run() -> None:
        with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            for t in tiles:
                batch = t[:, None] if model.meta.band_shared else t[None]
                net(batch.contiguous(memory_format=torch.channels_last))
        torch.cuda.synchronize()

    run()  # warm-up: cuDNN picks its kernels
    return timed(run, repeat)


def bench_gpu(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """CUDA: the generator's forward throughput, the whole pipeline's, and their ratio."""
    import geosr

    if not torch.cuda.is_available():
        return {"skipped": "torch sees no CUDA GPU"}
    model = model_for(args)
    scene = _mosaic(args.gpu_mosaic, work / "gpu_scene.tif")
    with rasterio.open(scene) as src:
        lr = src.read()
    megapixels = lr.shape[1] * lr.shape[2] * lr.shape[0] / 1e6
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0),
        "scene": f"Landsat 8 mosaic {lr.shape[0]} x {lr.shape[1]} x {lr.shape[2]} uint16",
    }
    for precision in ("fp32", "fp16", "bf16"):
        forward = _cuda_forward_seconds(model, lr, args.chunk_size, precision, args.repeat)
        geosr.upscale(scene, work / "gpu_warm.tif", model=model, device="cuda", overwrite=True)
        runs = {}
        for chunk in sorted({args.chunk_size, 1024}):
            runs[chunk] = timed(
                lambda chunk=chunk, precision=precision: geosr.upscale(
                    scene,
                    work / f"gpu_{precision}.tif",
                    model=model,
                    device="cuda",
                    precision=precision,
                    chunk_size=chunk,
                    overwrite=True,
                ),
                args.repeat,
            )
        results[precision] = {
            "bare_forward_s": round(forward, 3),
            "forward_input_mpx_per_s": round(megapixels / forward, 1),
            **{f"pipeline_chunk{c}_s": round(t, 3) for c, t in runs.items()},
            **{
                f"pipeline_chunk{c}_input_mpx_per_s": round(megapixels / t, 1)
                for c, t in runs.items()
            },
            **{f"overhead_ratio_chunk{c}": round(t / forward, 2) for c, t in runs.items()},
        }
        with (
            rasterio.open(work / "gpu_fp32.tif") as a,
            rasterio.open(work / f"gpu_{precision}.tif") as b,
        ):
            diff = np.abs(a.read().astype(np.int64) - b.read().astype(np.int64))
        results[precision]["max_abs_diff_to_fp32_dn"] = int(diff.max())
        results[precision]["share_of_pixels_off_by_more_than_1"] = float((diff > 1).mean())
    return results


def bench_training(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from geosr.train import TrainConfig, Trainer

    results = {}
    for stage in ("pretrain", "gan"):
        extra = (
            {"init": args.model, "discriminator": "srgan", "disc_width": 32}
            if stage == "gan"
            else {}
        )
        cfg = TrainConfig(
            data=[str(SCENE), str(DATA / "landsat7_olinda" / "L7_ETMs.tif")],
            out=str(work / f"train_{stage}"),
            stage=stage,
            steps=10**6,
            batch_size=16,
            patch=64,
            preset="compact",
            val_every=10**6,
            **extra,
        )
        trainer = Trainer(cfg, progress="none")
        batches = iter(trainer.stream)
        trainer.train_step(next(batches))  # warm-up
        steps = args.train_steps
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step(next(batches))
        results[stage] = {
            "steps_per_s": round(steps / (time.perf_counter() - start), 3),
            "batch": "16 x 64x64 HR patches",
            "generator": "compact (32 ch, 8 blocks)",
        }
    return results


def _fast_model(work: Path) -> tuple[Path, str]:
    """A saved model of the new layout: the bundled ``srresnet`` once it has it, else one with
    random weights (speed does not depend on the weights) and srresnet's metadata otherwise."""
    import geosr
    from geosr.checkpoint import resolve_model_path
    from geosr.models import PRESETS

    bundled = geosr.read_meta("srresnet")
    if bundled.generator.upsampler == PRESETS["fast"]["upsampler"]:
        return resolve_model_path("srresnet"), "bundled srresnet"
    torch.manual_seed(0)
    model = geosr.build_model(bands=None, scale=bundled.scale, preset="fast")
    path = work / "fast.safetensors"
    geosr.save_model(model, path, name="fast-random", normalization=bundled.normalization)
    return path, "fast layout, random weights (the bundled srresnet is still the old layout)"


def bench_model(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The old (compact) and new (fast) generator layouts, bare forward and whole pipeline."""
    import geosr

    # 1. one forward pass, band-shared x4, 4 single-band 256x256 tiles of a real scene
    with rasterio.open(NAIP) as src:
        lr = src.read(window=Window(0, 0, 256, 256))
    x = torch.from_numpy(lr.astype(np.float32) / 255)[:, None]  # (4, 1, 256, 256)
    nets = {}
    for name in ("compact", "fast"):
        torch.manual_seed(0)
        nets[name] = geosr.build_model(bands=None, scale=4, preset=name).eval()
    scale = nets["fast"].meta.scale
    output_pixels = x.shape[0] * (x.shape[2] * scale) * (x.shape[3] * scale)
    forward_runs: dict[str, Callable[[], None]] = {}
    for name, net in nets.items():

        def batch4(net=net) -> None:
            with torch.inference_mode():
                net(x)

        def batch1(net=net) -> None:  # as the CPU pipeline runs (batch_size 1: band by band)
            with torch.inference_mode():
                for band in x:
                    net(band[None])

        batch4()  # warm-up: first allocations, oneDNN kernel choice
        batch1()
        forward_runs[f"{name}_batch4"], forward_runs[f"{name}_batch1"] = batch4, batch1
    best = _interleaved(forward_runs, max(args.repeat, 3))
    forward_result: dict[str, Any] = {
        "input": f"NAIP RGBN crop as {x.shape[0]} single-band 256x256 tiles, x{scale}: one "
        "batch of 4, and 4 batches of 1 (the CPU pipeline's default batch_size)",
        **{
            f"{name}_params": sum(p.numel() for p in net.parameters()) for name, net in nets.items()
        },
    }
    for batch in ("batch4", "batch1"):
        old, new = best[f"compact_{batch}"][0], best[f"fast_{batch}"][0]
        forward_result[batch] = {
            "compact_s": round(old, 3),
            "fast_s": round(new, 3),
            "compact_ns_per_output_pixel": round(old / output_pixels * 1e9, 1),
            "fast_ns_per_output_pixel": round(new / output_pixels * 1e9, 1),
            "speedup_old_over_new": round(old / new, 2),
        }
    forward_result["target"] = "speedup >= 2x"

    # 2. the whole pipeline on the same real 4-band scene, consistency on
    fast_path, fast_source = _fast_model(work)

    def pipeline(model: Path, tta: bool = False) -> Callable[[], None]:
        return lambda: geosr.upscale(
            NAIP, work / "model_bench.tif", model=model, overwrite=True, consistency=True, tta=tta
        )

    pipeline_runs = {"old": pipeline(OLD_MODEL), "new": pipeline(fast_path)}
    for run in pipeline_runs.values():
        run()  # warm-up: loads and caches the model file
    best_pipeline = _interleaved(pipeline_runs, args.repeat)
    tta_runs = {"off": pipeline(fast_path), "tta": pipeline(fast_path, tta=True)}
    tta_runs["tta"]()  # warm-up
    best_tta = _interleaved(tta_runs, args.repeat)

    def srgan(preserve_spectra: bool) -> Callable[[], None]:
        return lambda: geosr.upscale(
            NAIP,
            work / "model_bench.tif",
            model="srgan",
            strength=1,
            overwrite=True,
            preserve_spectra=preserve_spectra,
        )

    spectra_runs = {"off": srgan(False), "kept": srgan(True)}
    spectra_runs["kept"]()  # warm-up: loads and interpolates both strengths
    best_spectra = _interleaved(spectra_runs, args.repeat)
    return {
        "forward": forward_result,
        "pipeline": {
            "scene": f"{NAIP.name} (NAIP RGBN, 4 x 256 x 256 uint8), consistency on",
            "old_model": OLD_MODEL.name,
            "new_model": fast_source,
            "old_s": round(best_pipeline["old"][0], 3),
            "new_s": round(best_pipeline["new"][0], 3),
            "speedup_old_over_new": round(best_pipeline["old"][0] / best_pipeline["new"][0], 2),
        },
        "tta_new_model": {
            "off_s": round(best_tta["off"][0], 3),
            "tta_x8_s": round(best_tta["tta"][0], 3),
            "ratio_tta_over_off": round(best_tta["tta"][0] / best_tta["off"][0], 2),
            "expected": "about 8x the network time",
        },
        "preserve_spectra_srgan": {
            "off_s": round(best_spectra["off"][0], 3),
            "kept_s": round(best_spectra["kept"][0], 3),
            "ratio_kept_over_off": round(best_spectra["kept"][0] / best_spectra["off"][0], 2),
            "expected": "about 2x the network time",
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--model", default="default", help="bundled name or .safetensors file")
    parser.add_argument("--chunk-size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=2, help="runs per timing (best is kept)")
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument(
        "--memory-base", type=int, default=256, help="side of the 1x scene of the memory test"
    )
    parser.add_argument("--scaling-chunk-size", type=int, default=128)
    parser.add_argument(
        "--io-floor-size", type=int, default=2048, help="io-floor: side of the square scene"
    )
    parser.add_argument(
        "--memory-chunk-size",
        type=int,
        default=128,
        help="chunk size of the memory test; scenes larger than one chunk show whether memory stays flat",
    )
    parser.add_argument(
        "--crop",
        type=int,
        default=256,
        help="benchmark on the top-left NxN crop of the scene (0: whole scene)",
    )
    parser.add_argument(
        "--gpu-mosaic", type=int, default=3, help="gpu section: scene tiled N x N (whole scene)"
    )
    parser.add_argument(
        "--guided-model", default="s2-guided", help="guided section: the guided model"
    )
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    machine = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    results: dict[str, Any] = {"machine": machine}
    global SCENE
    with tempfile.TemporaryDirectory(prefix="geosr-bench-") as tmp:
        if args.crop:
            SCENE = _mosaic(1, Path(tmp) / "scene.tif", base=args.crop)
        results["scene"] = f"{SCENE.name}: Landsat 8 B2-B5 uint16, {args.crop or 'whole'} px crop"
        for section in args.only:
            start = time.perf_counter()
            results[section] = globals()[f"bench_{section.replace('-', '_')}"](args, Path(tmp))
            print(f"== {section} ({time.perf_counter() - start:.0f} s)")
            print(json.dumps(results[section], indent=2))
            sys.stdout.flush()
    results["peak_rss_mb_this_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
