#!/usr/bin/env bash
# Proves the wheel stands on its own: a clean venv with no checkout on sys.path installs
# dist/geosr-*.whl (with the notebooks extra), then `geosr demo`, `geosr upscale` and the
# notebooks run from an empty folder outside the repository.
#   usage: scripts/check_wheel.sh [PYTHON]   (PYTHON defaults to python3; run `make dist` first)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${1:-python3}"
shopt -s nullglob
wheels=("$repo"/dist/geosr-*.whl)
if [ "${#wheels[@]}" -ne 1 ]; then
    echo "check_wheel: expected one dist/geosr-*.whl, found ${#wheels[@]}; run make dist" >&2
    exit 1
fi
wheel="${wheels[0]}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "check_wheel: $(basename "$wheel") ($(du -h "$wheel" | cut -f1))"

"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
"$work/venv/bin/python" -m pip install --quiet -c "$repo/constraints.txt" "${wheel}[notebooks]"
# nbclient comes with the Jupyter front end (nbconvert); used here to run the notebooks headless
"$work/venv/bin/python" -c "import nbclient, ipywidgets, rio_cogeo, bokeh, matplotlib"

mkdir "$work/elsewhere"
cd "$work/elsewhere"
bin="$work/venv/bin"
# the package must come from the venv, never from the checkout
"$bin/python" -c "import geosr, sys; assert '$repo' not in geosr.__file__, geosr.__file__; print('check_wheel: geosr', geosr.__version__, 'from', geosr.__file__)"
"$bin/geosr" demo --out demo
test -s demo/naip_sample_x4.tif && test -s demo/naip_sample_x4.png
sample="$("$bin/python" -c 'from geosr.demo import SAMPLE; print(SAMPLE)')"
cp "$sample" scene.tif
out="$("$bin/geosr" upscale scene.tif --progress none)"
"$bin/python" - "$out" <<'PY'
import sys

import rasterio

with rasterio.open("scene.tif") as src, rasterio.open(sys.argv[1]) as out:
    assert (out.width, out.height) == (src.width * 4, src.height * 4), out.shape
    assert out.crs == src.crs and out.bounds == src.bounds
    assert out.tags()["GEOSR_SCALE"] == "4"
print("check_wheel: geosr upscale wrote", sys.argv[1])
PY
"$bin/geosr" info srgan >/dev/null

# the notebooks, with the notebooks extra and without the dev tools
for notebook in "$repo"/notebooks/*.ipynb; do
    cp "$notebook" .
    GEOSR_SHARED_DATA="$repo/tests/data" "$bin/jupyter" execute --kernel_name=python3 "$(basename "$notebook")" >/dev/null 2>notebook.log \
        || { cat notebook.log >&2; echo "check_wheel: $(basename "$notebook") failed" >&2; exit 1; }
    echo "check_wheel: ran $(basename "$notebook")"
done
echo "check_wheel: passed"
