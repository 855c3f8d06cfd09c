#!/usr/bin/env bash
# Stage every input of the GPU validation run on a connected controller, into .gpu/ (git-
# ignored), and prove the wheelhouses complete for the GPU machine BEFORE anything leaves:
#   .gpu/mirror.tar            a git mirror of vLLM with the tag (made from PyPI's sdist)
#   .gpu/vllm-wheel/           PyPI's vLLM wheel of the tag (the precompiled build's kernels)
#   .gpu/wheelhouse/           every wheel the role installs there that the image lacks,
#                              resolved for its Python, platform, CUDA toolkit and pip freeze,
#                              checked offline (python -m vllm_fleet.wheelhouse)
#   .gpu/wheels-control/       ansible-core and its needs for the machine's /usr/bin/python3
#   .gpu/checkpoints/          the trained tiny Llama and its ModelOpt FP8 export
#   .gpu/deps.tar.xz           (optional) the tag's staged CUDA FetchContent sources, for the
#                              full build: give STAGED_DEPS=<dir>.tar.xz made by
#                              playbooks/stage_sources.yml (it needs the pinned repositories,
#                              or mirrors of them named in vllm_source_stage_url_map)
#   .gpu/wheelhouse-check.txt  what the offline completeness check printed (rendered)
# Then tools/gpu-validation/pack.sh splits it into carries.
#
# The target's facts (from ../shared/testdata/gpu-h200x1/machine.txt): Ubuntu 24.04 (glibc
# 2.39), Python 3.12, CUDA 13.0, the image's packages in image-pip-freeze.txt.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
G="$ROOT/.gpu"
VERSION="${VERSION:-0.22.0}"
FREEZE="${IMAGE_FREEZE:-$ROOT/../shared/testdata/gpu-h200x1/image-pip-freeze.txt}"
INVENTORY="$ROOT/inventory/gpu-validation/hosts.yml"
TARGET=(--python-version 3.12 --platform manylinux_2_39_x86_64)
PY="$ROOT/.venv/bin/python"
step() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

mkdir -p "$G"
bash "$ROOT/tools/bootstrap-control.sh" >/dev/null

step "vLLM mirror with v$VERSION"
VLLM_MIRROR_DIR="$G/mirror" bash "$ROOT/tools/make-vllm-mirror.sh" "$VERSION"
tar -C "$G/mirror" -cf "$G/mirror.tar" vllm.git
sdist="$ROOT/.cache/sdists/vllm-$VERSION.tar.gz"
mkdir -p "$G/sdist"
tar -C "$G/sdist" -xzf "$sdist" "vllm-$VERSION/pyproject.toml"

step "PyPI's vLLM $VERSION wheel (the precompiled build's compiled files)"
mkdir -p "$G/vllm-wheel"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux_2_28_x86_64 -d "$G/vllm-wheel" "vllm==$VERSION"
wheel=$(ls "$G"/vllm-wheel/vllm-"$VERSION"-*.whl | head -1)

# The inventory's exclusions, read from it so the wheelhouse follows what the role installs.
mapfile -t excludes < <("$PY" - "$INVENTORY" <<'PY'
import sys, yaml
inv = yaml.safe_load(open(sys.argv[1]))
for name in inv["all"]["children"]["gpu_hosts"]["vars"].get("vllm_source_runtime_deps_exclude", []):
    print(name)
PY
)
exclude_args=()
for name in "${excludes[@]}"; do exclude_args+=(--exclude "$name"); done

step "wheelhouse for the GPU machine: resolve, download, prove complete offline"
(cd "$ROOT" && "$PY" -m vllm_fleet.wheelhouse build --dest "$G/wheelhouse" "${TARGET[@]}" \
  --cuda 13.0 --image-freeze "$FREEZE" --vllm-wheel "$wheel" \
  --build-requires "$G/sdist/vllm-$VERSION/pyproject.toml" --compiler-cache ccache "${exclude_args[@]}")
(cd "$ROOT" && "$PY" -m vllm_fleet.wheelhouse check --dest "$G/wheelhouse" "${TARGET[@]}" \
  --cuda 13.0 --image-freeze "$FREEZE" --vllm-wheel "$wheel" \
  --build-requires "$G/sdist/vllm-$VERSION/pyproject.toml" --compiler-cache ccache "${exclude_args[@]}") 2>&1 |
  tee "$G/wheelhouse-check.txt"

step "control wheels for the machine's /usr/bin/python3 (a bare Python 3.12)"
echo "ansible-core==2.19.14" >"$G/control-requirements.txt"
(cd "$ROOT" && "$PY" -m vllm_fleet.wheelhouse build --dest "$G/wheels-control" "${TARGET[@]}" \
  --requirement ansible-core==2.19.14)

step "trained smoke checkpoints"
bash "$ROOT/tools/make-checkpoints.sh" >/dev/null
rm -rf "$G/checkpoints" && mkdir -p "$G/checkpoints"
cp -r "$ROOT"/.cache/checkpoints/small-llama "$ROOT"/.cache/checkpoints/small-llama-modelopt-fp8 "$G/checkpoints/"

step "tiny Qwen2.5-VL, its ModelOpt FP8 export, their config shapes and a test image"
cp -r "$ROOT"/.cache/checkpoints/tiny-qwen2_5-vl "$ROOT"/.cache/checkpoints/tiny-qwen2_5-vl-modelopt-fp8 "$G/checkpoints/"
"$PY" - "$ROOT" "$G/checkpoints" <<'PY'
import struct, sys, zlib
from pathlib import Path
sys.path.insert(0, f"{sys.argv[1]}/tests")
from vl_shapes import write_vl_shapes
out = Path(sys.argv[2])
print(sorted(write_vl_shapes(out / "tiny-qwen2_5-vl-modelopt-fp8", out / "vl-shapes")))
# A 160x120 PNG (stdlib only): a red square on a blue sky above green grass.
w, h = 160, 120
rows = b"".join(
    b"\0" + b"".join(
        bytes((220, 30, 30)) if 50 <= x < 90 and 30 <= y < 70
        else bytes((40, 160, 60)) if y >= 80 else bytes((70, 120, 230))
        for x in range(w))
    for y in range(h))
chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(
    ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
(out / "test-image.png").write_bytes(png)
PY

if [ -n "${STAGED_DEPS:-}" ]; then
  step "staged CUDA sources for the full build"
  cp "$STAGED_DEPS" "$G/deps.tar.xz"
fi
du -sh "$G"/mirror.tar "$G"/vllm-wheel "$G"/wheelhouse "$G"/wheels-control "$G"/checkpoints "$G"/deps.tar.xz 2>/dev/null || true
