#!/usr/bin/env bash
# Every wheel a Debian bookworm host (Python 3.11, x86_64) needs to build and install vLLM
# with VLLM_TARGET_DEVICE=empty against a CPU torch, fully offline.
#
# Usage: tools/make-wheelhouse.sh [VERSION ...]    (default: 0.30.0; several add to one wheelhouse)
#   Fills REPO/.cache/wheelhouse with `pip wheel` (sdist-only dependencies are built into
#   wheels) for: the CPU torch wheel of vLLM's torch pin (pyproject.toml
#   `torch == X`), found in pip's configured find-links (`pip config list`, here /opt/wheels)
#   and never fetched from an index; vLLM's build requirements (pyproject [build-system]
#   minus torch, plus regex); and vLLM's runtime requirements for the `empty` target
#   (requirements/common.txt). Inputs come from the sdist in REPO/.cache/sdists. Also the
#   wheels of vllm_source_installer uv: uv at the role's pin, and pip (a venv uv makes has
#   none, and the build runs pip wheel).
#   Also writes REPO/.cache/wheelhouse/vllm-VERSION-build.txt: torch and the build
#   requirements, to install before `pip install --no-build-isolation`; and, last,
#   REPO/.cache/wheelhouse/wheelhouse.json (`python -m vllm_fleet.wheelhouse hash`, with the
#   control venv REPO/.venv): the sha256 of every wheel, which the role's offline installs
#   check each wheel against (a wheelhouse without it is refused).
# On the host:
#   pip install --no-index --find-links /srv/wheelhouse -r /srv/wheelhouse/vllm-VERSION-build.txt
#   VLLM_TARGET_DEVICE=empty pip install --no-index --find-links /srv/wheelhouse \
#     --no-build-isolation ./vllm
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [[ $# -gt 1 ]]; then
  for v in "$@"; do bash "${BASH_SOURCE[0]}" "${v}"; done
  exit 0
fi
VERSION="${1:-0.30.0}"
WHEELHOUSE="${CACHE_DIR}/wheelhouse"
[[ "${VERSION}" =~ ^[0-9]+(\.[0-9]+)+([a-z0-9.+]*)$ ]] || die "not a vLLM version: '${VERSION}'"

# extract_inputs SDIST DIR: pyproject.toml and requirements/ of the sdist into DIR.
extract_inputs() {
  local top="vllm-${VERSION}"
  tar --no-same-owner -xzf "$1" -C "$2" --wildcards "${top}/pyproject.toml" "${top}/requirements/*"
  [[ -f "$2/${top}/requirements/common.txt" ]] ||
    die "$(basename "$1") has no requirements/common.txt (vLLM < 0.5?)"
}

# build_requirements PYPROJECT: print torch's pin, then each build requirement but torch.
build_requirements() {
  "${PY}" - "$1" <<'PY'
import re
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    requires = tomllib.load(f)["build-system"]["requires"]
torch = [r for r in requires if re.match(r"\s*torch\b", r)]
pin = re.fullmatch(r"\s*torch\s*==\s*([0-9][0-9.]*)\s*", torch[0]) if len(torch) == 1 else None
if pin is None:
    sys.exit(f"expected one exact `torch == X` in [build-system].requires, got {torch}")
print(pin.group(1))
rest = [r for r in requires if r not in torch]
if not any(re.match(r"\s*regex\b", r) for r in rest):
    rest.append("regex")  # setup.py's helpers use it; vLLM's requirements/build lists it
print("\n".join(rest))
PY
}

# find_cpu_torch VERSION: print the path of a local torch-VERSION+cpu wheel for cp311 x86_64
# from pip's configured find-links directories.
find_cpu_torch() {
  local dirs dir
  dirs="$("${PY}" -m pip config list 2>/dev/null | sed -n "s/^[^=]*find-links='\(.*\)'$/\1/p")"
  dirs="${dirs} ${PIP_FIND_LINKS:-}"
  for dir in ${dirs}; do
    dir="${dir#file://}"
    [[ -d "${dir}" ]] || continue
    compgen -G "${dir}/torch-$1+cpu-cp311-cp311-*x86_64.whl" | head -n1 && return 0
  done
  die "no torch-$1+cpu cp311 x86_64 wheel in pip's find-links (${dirs// /, }); put one there"
}

main() {
  local sdist inputs torch_version torch_wheel build_reqs stamp want
  PY="$(tool_python)"
  sdist="$(fetch_sdist vllm "${VERSION}")"
  WORK="$(mktemp -d)"
  local work="${WORK}"
  trap 'rm -rf "${WORK}"; _report_total' EXIT
  extract_inputs "${sdist}" "${work}"
  inputs="${work}/vllm-${VERSION}"
  mapfile -t build_reqs < <(build_requirements "${inputs}/pyproject.toml")
  torch_version="${build_reqs[0]}"
  build_reqs=("${build_reqs[@]:1}")
  torch_wheel="$(find_cpu_torch "${torch_version}")"
  log "vLLM ${VERSION}: torch ${torch_version} from ${torch_wheel}"
  log "build requirements: ${build_reqs[*]}"

  {
    printf 'torch==%s\n' "${torch_version}"
    printf '%s\n' "${build_reqs[@]}"
  } >"${work}/build.txt"
  printf 'torch==%s\n' "${torch_version}" >"${work}/constraints.txt"

  stamp="${WHEELHOUSE}/.stamp-vllm-${VERSION}"
  want="$({
    cat "${work}/build.txt" "${inputs}/requirements/common.txt"
    basename "${torch_wheel}"
  } | sha256sum | cut -d' ' -f1)"
  if stamp_matches "${stamp}" "${want}" && [[ -f "${WHEELHOUSE}/vllm-${VERSION}-build.txt" ]]; then
    log "wheelhouse already holds vLLM ${VERSION}'s wheels (stamp ${stamp})"
  else
    mkdir -p "${WHEELHOUSE}"
    # The explicit wheel path makes torch the CPU build; the constraint pins every
    # dependency that asks for torch to the same version.
    step "pip wheel: torch, build and runtime requirements of vLLM ${VERSION}" \
      "${PY}" -m pip wheel --wheel-dir "${WHEELHOUSE}" --constraint "${work}/constraints.txt" \
      --progress-bar off "${torch_wheel}" -r "${work}/build.txt" \
      -r "${inputs}/requirements/common.txt"
    cp "${work}/build.txt" "${WHEELHOUSE}/vllm-${VERSION}-build.txt"
    stamp_write "${stamp}" "${want}"
  fi
  installer_wheels
  check_wheelhouse "${torch_version}"
  record_hashes
  log "wheelhouse: ${WHEELHOUSE} ($(find "${WHEELHOUSE}" -name '*.whl' | wc -l) wheels, $(du -sh "${WHEELHOUSE}" | cut -f1))"
}

# check_wheelhouse TORCH_VERSION: the CPU torch is there and no CUDA torch or CUDA library is.
check_wheelhouse() {
  local bad
  compgen -G "${WHEELHOUSE}/torch-$1+cpu-*.whl" >/dev/null ||
    die "the wheelhouse has no torch-$1+cpu wheel"
  bad="$(find "${WHEELHOUSE}" -name '*.whl' \( -name 'nvidia_*' -o \( -name 'torch-*' ! -name 'torch-*+cpu-*' \) \) -printf '%f ')"
  [[ -z "${bad}" ]] || die "CUDA wheels got into ${WHEELHOUSE}: ${bad}(remove them and rerun)"
}

# installer_wheels: uv at the role's pin (roles/vllm_source/vars/main.yml) and pip, the
# wheels the hosts of vllm_source_installer uv install besides the others.
installer_wheels() {
  local uv
  uv="$(sed -n 's/^__vllm_source_uv_package: *//p' "${REPO_ROOT}/roles/vllm_source/vars/main.yml")"
  [[ "${uv}" =~ ^uv==[0-9.]+$ ]] || die "no uv pin (__vllm_source_uv_package) in the role's vars"
  step "pip download: ${uv} and pip, for vllm_source_installer uv" \
    "${PY}" -m pip download --no-deps --only-binary :all: --dest "${WHEELHOUSE}" \
    --progress-bar off "${uv}" pip
}

# record_hashes: write or update WHEELHOUSE/wheelhouse.json, every wheel with its sha256, as
# the files are now (this machine made them; the hosts mount them read-only).
record_hashes() {
  local control="${REPO_ROOT}/.venv/bin/python"
  [[ -x "${control}" ]] || die "no control venv at ${REPO_ROOT}/.venv: run tools/bootstrap-control.sh"
  step "record the sha256 of every wheel in ${WHEELHOUSE}/wheelhouse.json" \
    env PYTHONPATH="${REPO_ROOT}" "${control}" -m vllm_fleet.wheelhouse hash --dest "${WHEELHOUSE}"
}

main "$@"
