"""Write the training domain into the cards of the bundled models, weights untouched.

    .venv/bin/python benchmarks/model_domain.py [--data ../shared/data] [--check]

The super-resolution models (``srgan``, ``srresnet``): from the scenes their card lists
(``geosr info srgan``: trained on / scenes), each found by name in the shared data folder
(``$GEOSR_SHARED_DATA``, else ``../shared/data``). The guided models: ``landsat-pan`` from the
band files of the Landsat 8 product it was trained on, ``s2-guided`` from the band files of
its three Sentinel-2 products. Each file's metadata is rewritten (via a temporary file and a
rename) and the script checks that every tensor reads back bit for bit. ``--check`` prints
the domains without writing.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from geosr.checkpoint import (  # noqa: E402
    METADATA_KEY,
    WEIGHTS_DIR,
    load_tensors,
    read_header,
    save_tensors,
)
from geosr.contract import TrainingDomain, domain_from_scenes, sensor_of  # noqa: E402

#: Sensors of the scenes whose file names do not tell (PROVENANCE.md).
SENSORS = {"RGB.byte.tif": "Landsat 7 ETM+", "L7_ETMs.tif": "Landsat 7 ETM+"}
S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")


def shared_data(option: str | None) -> Path:
    folder = Path(option or os.environ.get("GEOSR_SHARED_DATA") or REPO.parent / "shared" / "data")
    if not folder.is_dir():
        raise SystemExit(f"no shared data folder at {folder}; pass --data")
    return folder


def find(data: Path, name: str) -> Path:
    found = sorted(p for p in data.rglob(name) if p.is_file())
    if not found:
        raise SystemExit(f"training scene {name} is not in {data}")
    return found[0]


def sr_domain(data: Path) -> TrainingDomain:
    scenes = read_header(WEIGHTS_DIR / "srgan.safetensors")[METADATA_KEY]["trained_on"]["scenes"]
    paths = [find(data, name) for name in scenes]
    sensors = []
    for path in paths:
        sensor = SENSORS.get(path.name) or sensor_of(path.name)
        if sensor and sensor not in sensors:
            sensors.append(sensor)
    return domain_from_scenes(paths, sensors=sorted(sensors))


def landsat_pan_domain(data: Path) -> TrainingDomain:
    folder = data / "landsat8_lc80200392015216" / "original"
    paths = [folder / f"l8_B{n}.tif" for n in range(1, 9)]
    return domain_from_scenes(paths, sensors=["Landsat 8 OLI"])


def s2_guided_domain(data: Path) -> TrainingDomain:
    t33 = sorted((data / "s2_l1c_t33uuu_20170216" / "IMG_DATA").glob("*.jp2"))
    paths: list[str | Path] = [p for p in t33 if p.stem.rsplit("_", 1)[-1] in S2_BANDS]
    (archive,) = (data / "s2_l1c_t55hfa_20201011").glob("*.zip")
    safe = archive.stem + ".SAFE"
    granule = "GRANULE/L1C_T55HFA_A018789_20201011T000244/IMG_DATA"
    paths += [
        f"/vsizip/{archive}/{safe}/{granule}/T55HFA_20201011T000249_{band}.jp2"
        for band in S2_BANDS
        if band != "B8A"  # the archive lacks it
    ]
    paths += sorted((data / "s2_l2a_t32tmt_20190530").glob("*.tiff"))
    domain = domain_from_scenes(paths, sensors=["Sentinel-2 MSI"])
    # the stored values are reflectance x 10000 (L1C: TOA; L2A: BOA)
    return replace(domain, values="TOA reflectance, BOA reflectance", value_scale=1e-4)


def rewrite(name: str, domain: TrainingDomain) -> None:
    path = WEIGHTS_DIR / f"{name}.safetensors"
    tensors, metadata = load_tensors(path)
    card = dict(metadata[METADATA_KEY])
    card["domain"] = domain.to_dict()
    save_tensors(path, tensors, {**metadata, METADATA_KEY: card})
    again, metadata = load_tensors(path)
    assert again.keys() == tensors.keys()
    assert all(torch.equal(again[k], tensors[k]) for k in tensors), f"{name}: weights changed"
    assert TrainingDomain.from_dict(metadata[METADATA_KEY]["domain"]) == domain
    print(f"wrote the training domain into {path} (weights unchanged)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="the shared data folder")
    parser.add_argument("--check", action="store_true", help="print the domains, write nothing")
    args = parser.parse_args()
    data = shared_data(args.data)
    sr = sr_domain(data)
    domains = {
        "srgan": sr,
        "srresnet": sr,
        "landsat-pan": landsat_pan_domain(data),
        "s2-guided": s2_guided_domain(data),
    }
    for name, domain in domains.items():
        print(f"{name}:")
        for line in domain.summary_lines():
            print(f"  {line}")
        if not args.check:
            rewrite(name, domain)


if __name__ == "__main__":
    main()
