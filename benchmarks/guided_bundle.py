"""Bundle a guided training run as a model of geosr/weights, with its model card.

    python benchmarks/guided_bundle.py RUN_FOLDER NAME "DESCRIPTION"

Takes RUN_FOLDER/best.safetensors, names it, replaces the absolute paths of the products it
saw by their place in the shared data folder, and writes geosr/weights/NAME.safetensors.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from geosr.checkpoint import WEIGHTS_DIR, load_guided, save_guided  # noqa: E402


def shared_name(path: str) -> str:
    """A product's path from the shared data folder (``s2_l1c_t33uuu_20170216/IMG_DATA``), or
    the name of a product that benchmarks/guided_data.py derived from it."""
    text = path.split("band files ", 1)[-1].split(" and ", 1)[0]
    parts = Path(text).parts
    if "data" not in parts:
        return Path(text).name
    rest = parts[len(parts) - parts[::-1].index("data") :]
    if rest and rest[0].startswith("t32tmt_"):
        return f"{rest[0]} (from s2_l2a_t32tmt_20190530 by benchmarks/guided_data.py)"
    return "/".join(rest[:2])


def main() -> None:
    run, name, description = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    model = load_guided(run / "best.safetensors")
    trained_on = dict(model.meta.trained_on)
    trained_on["products"] = sorted({shared_name(p) for p in trained_on["products"]})
    trained_on["hardware"] = f"{trained_on.get('hardware', '')}; geosr-train --stage guided"
    path = save_guided(
        model,
        WEIGHTS_DIR / f"{name}.safetensors",
        name=name,
        description=description,
        trained_on=trained_on,
    )
    print(path, path.stat().st_size // 1024, "kB")
    print(load_guided(path).meta.summary())


if __name__ == "__main__":
    main()
