"""geosr benchmarks: pipeline overhead, memory, halo cost, baselines, scaling, training speed.

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
    training  steps/s of the default training configurations.
    gpu       CUDA only: the generator's forward throughput on the device (fp32, fp16, bf16),
              the whole pipeline's throughput and overhead ratio, and how far half precision
              moves the output (in DN) from fp32; on a mosaic of the whole scene.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GEOSR_SHARED_DATA", REPO.parent / "shared" / "data"))
SCENE = DATA / "landsat8_lc80200392015216" / "LC08_020039_20150804_B2B3B4B5_30m.tif"
FULL_SCENE = SCENE  # SCENE becomes the --crop of it
SECTIONS = ("overhead", "memory", "halo", "baselines", "scaling", "training", "gpu")


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


def bench_scaling(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from dask.distributed import Client, LocalCluster

    import geosr

    scene = _mosaic(1, work / "scaling.tif")
    times = {}
    for workers in (1, 2):
        with (
            LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster),
        ):
            geosr.upscale(
                scene,
                work / "warm.tif",
                model=args.model,
                overwrite=True,
                chunk_size=args.scaling_chunk_size,
            )  # ships the model, warms up
            times[workers] = timed(
                lambda workers=workers: geosr.upscale(
                    scene,
                    work / f"s{workers}.tif",
                    model=args.model,
                    overwrite=True,
                    chunk_size=args.scaling_chunk_size,
                ),
                args.repeat,
            )
    return {
        "one_worker_s": round(times[1], 2),
        "two_workers_s": round(times[2], 2),
        "speedup": round(times[1] / times[2], 3),
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
            results[section] = globals()[f"bench_{section}"](args, Path(tmp))
            print(f"== {section} ({time.perf_counter() - start:.0f} s)")
            print(json.dumps(results[section], indent=2))
            sys.stdout.flush()
    results["peak_rss_mb_this_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
