#!/usr/bin/env bash
# Pack the staged GPU-run inputs (.gpu/, made by tools/gpu-validation/stage.sh) into
# batches the device tool can carry (at most ~55 MiB a call, beside the checkout):
#   .gpu/carry/bNN/   base.tar.partNN (mirror, staged CUDA sources, wheelhouse, control
#                     wheels) first, then the precompiled wheel's parts; each batch also
#                     holds the checksums and names run.sh checks after joining.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
G="$ROOT/.gpu"
PART=$((50 * 1024 * 1024))
rm -rf "$G/carry" "$G/pack"
mkdir -p "$G/carry" "$G/pack"

(cd "$G" && sha256sum mirror-v0.22.0.tar deps-v0.22.0.tar.xz) >"$G/pack/base.sha256"
tar -C "$G" -cf "$G/pack/base.tar" wheels-ansible wheelhouse mirror-v0.22.0.tar deps-v0.22.0.tar.xz
split -b "$PART" -d -a 2 "$G/pack/base.tar" "$G/pack/base.tar.part"
whl=$(cd "$G/vllm-wheel" && ls vllm-*.whl | head -1)
echo "$whl" >"$G/pack/wheel.name"
(cd "$G/vllm-wheel" && sha256sum "$whl") >"$G/pack/wheel.sha256"
split -b "$PART" -d -a 2 "$G/vllm-wheel/$whl" "$G/pack/$whl.part"

n=0
for part in "$G"/pack/base.tar.part* "$G"/pack/"$whl".part*; do
  n=$((n + 1))
  b=$(printf '%s/carry/b%02d' "$G" "$n")
  mkdir -p "$b"
  mv "$part" "$b/"
  cp "$G/pack/base.sha256" "$G/pack/wheel.name" "$G/pack/wheel.sha256" "$b/"
done
rm -rf "$G/pack"
du -sh "$G"/carry/* | sed "s|$G/||"
echo "base parts: $(ls "$G"/carry/*/base.tar.part* | wc -l), wheel parts: $(ls "$G"/carry/*/"$whl".part* | wc -l)"
