#!/bin/bash
# The GPU session of docs/texture.md ("A GPU session"): a PSNR pretrain, then three GAN
# variants from it side by side on one GPU; results as tarballs in $OUT.
#
# Run from the repository root on the GPU machine, with a git-ignored .device-data/ carried:
#   .device-data/data/  the eleven training scenes (the paths in the TOMLs here), recompressed
#                       losslessly (deflate, predictor 2) so scenes and wheels fit the transfer
#   .device-data/whl/   cp312 wheels the image lacks: rasterio 1.3.11, affine, cligj,
#                       click-plugins, tomli_w, dask, partd, locket
# T1 / T2: minutes of the PSNR and GAN stages; EXTRA: more geosr-train options (a CPU smoke
# test: T1=0.15 T2=0.5 EXTRA="--device cpu --workers 1").
set -u
PY=${PY:-python3}; T1=${T1:-4.4}; T2=${T2:-3.2}; EXTRA=${EXTRA:-}
OUT=${OUT:-/tmp/devout}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -z "${SKIP_INSTALL:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .device-data/whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$PWD
fi
# rioxarray (and its pyproj) would not fit the carry limit; training never uses the .rio accessor
$PY -c "import rioxarray" 2>/dev/null || { mkdir -p /tmp/stub/rioxarray && echo > /tmp/stub/rioxarray/__init__.py && export PYTHONPATH=/tmp/stub:${PYTHONPATH:-}; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
$PY -c "import torch, rasterio, geosr.train; print('torch', torch.__version__, torch.cuda.is_available(), 'rasterio', rasterio.__version__)" || exit 4
rm -rf /tmp/psnr /tmp/gan_a /tmp/gan_b /tmp/gan_c
$PY -m geosr.train --config scripts/device/psnr.toml --time-limit "$T1" --progress none $EXTRA > "$OUT/psnr.log" 2>&1
echo "psnr rc=$?"; tail -4 "$OUT/psnr.log"; cut -d, -f1-4,6 /tmp/psnr/metrics.csv
[ -f /tmp/psnr/best.safetensors ] || exit 5
# (a) the bundled recipe, (b) adversarial weight 1e-2, (c) bicubic degradation only
declare -A VARIANT=([a]="" [b]="--adversarial-weight 1e-2" [c]="--mix bicubic")
for v in a b c; do
  OMP_NUM_THREADS=2 $PY -m geosr.train --config scripts/device/gan.toml --out /tmp/gan_$v ${VARIANT[$v]} \
    --time-limit "$T2" --progress none $EXTRA > /tmp/gan_$v.log 2>&1 &
done
( while sleep 45; do for v in a b c; do [ -f /tmp/gan_$v/last.safetensors ] && cp /tmp/gan_$v/last.safetensors /tmp/gan_$v/snap_$(date +%s).safetensors; done; done ) &
snapper=$!
wait %1 %2 %3; kill $snapper
for v in a b c; do echo "gan_$v"; tail -2 /tmp/gan_$v.log; cut -d, -f1-3 /tmp/gan_$v/metrics.csv | tail -2; done
for r in psnr gan_a gan_b gan_c; do tar czf "$OUT/$r.tar.gz" --exclude=state.safetensors -C /tmp $r $(cd /tmp && ls $r.log 2>/dev/null); done
ls -la "$OUT"
