#!/usr/bin/env bash
# Pack the staged GPU-run inputs (.gpu/, made by tools/gpu-validation/stage.sh) into
# batches the device tool can carry (each call takes at most 64 MiB with the checkout):
#   .gpu/carry/bNN/   base.tar.partNN of one tar (mirror, wheelhouse, control wheels,
#                     checkpoints, PyPI's vLLM wheel, staged CUDA sources), each batch with
#                     the tar's sha256, which run.sh checks after joining the parts.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
G="$ROOT/.gpu"
PART=$((54 * 1024 * 1024))
rm -rf "$G/carry" "$G/pack"
mkdir -p "$G/carry" "$G/pack"

members=(wheels-control control-requirements.txt wheelhouse mirror.tar checkpoints vllm-wheel)
[ -f "$G/deps.tar.xz" ] && members+=(deps.tar.xz)
tar -C "$G" -cf "$G/pack/base.tar" "${members[@]}"
(cd "$G/pack" && sha256sum base.tar) >"$G/pack/base.sha256"
split -b "$PART" -d -a 2 "$G/pack/base.tar" "$G/pack/base.tar.part"
rm "$G/pack/base.tar"
n=0
for part in "$G"/pack/base.tar.part*; do
  n=$((n + 1))
  b=$(printf '%s/carry/b%02d' "$G" "$n")
  mkdir -p "$b"
  mv "$part" "$b/"
  cp "$G/pack/base.sha256" "$b/"
done
rm -rf "$G/pack"
du -sh "$G"/carry/* | sed "s|$G/||"
echo "parts: $(ls "$G"/carry/*/base.tar.part* | wc -l)"
