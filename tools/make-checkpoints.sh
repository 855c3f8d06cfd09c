#!/usr/bin/env bash
# Test checkpoints: for the vllm_verify module a tiny random Llama, its real nvidia-modelopt FP8
# export and the legacy hf_quant_config.json-without-producer trap; for the GPU smoke test
# small-llama, trained on the CPU to continue the smoke prompt with a known sentence, and its
# FP8 export. CPU only, no hub.
#
# Usage: tools/make-checkpoints.sh [OUT_DIR]     (default: REPO/.cache/checkpoints)
#   Creates REPO/.cache/venv-fixtures from tests/fixtures/requirements-fixtures.txt when it is
#   missing or that file changed (hash stamp), then runs tests/fixtures/make_checkpoints.py.
#   Idempotent: checkpoints that exist are kept; a second run only checks. Prints timings.
#   Then: VLLM_CHECKPOINTS=OUT_DIR for tests/unit/test_vllm_verify.py's integration test.
set -euo pipefail
# shellcheck source=tools/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

VENV="${CACHE_DIR}/venv-fixtures"
REQS="${REPO_ROOT}/tests/fixtures/requirements-fixtures.txt"
SCRIPT="${REPO_ROOT}/tests/fixtures/make_checkpoints.py"
OUT_DIR="${1:-${CACHE_DIR}/checkpoints}"
NAMES=(tiny-llama tiny-llama-modelopt-fp8 tiny-llama-legacy-noproducer small-llama small-llama-modelopt-fp8
  tiny-qwen2_5-vl tiny-qwen2_5-vl-modelopt-fp8)

# The trained smoke models carry smoke-expect.json (a random small-llama of an older run does
# not, and gets rebuilt); make_checkpoints.py also checks that its pair is the current one.
all_present() {
  local name
  for name in "${NAMES[@]}"; do
    [[ -f "${OUT_DIR}/${name}/config.json" ]] || return 1
    [[ "${name}" != small-llama* || -f "${OUT_DIR}/${name}/smoke-expect.json" ]] || return 1
  done
}

# The fixture venv must hold a CPU torch and none of the CUDA runtime wheels.
check_cpu_only() {
  "${VENV}/bin/python" -c 'import torch, sys; sys.exit(torch.version.cuda is not None)' ||
    die "${VENV} has a CUDA torch; remove ${VENV} and check the torch pin in ${REQS}"
  local cuda_wheels
  cuda_wheels="$("${VENV}/bin/python" -m pip list --format=freeze 2>/dev/null |
    grep -iE '^nvidia-' | grep -viE '^nvidia-(modelopt|ml-py)==' || true)"
  [[ -z "${cuda_wheels}" ]] || die "${VENV} pulled CUDA wheels: ${cuda_wheels//$'\n'/ }"
}

install_requirements() {
  "${VENV}/bin/python" -m pip install -q --upgrade pip &&
    "${VENV}/bin/python" -m pip install -q -r "${REQS}"
}

ensure_venv() {
  local want stamp="${VENV}/.requirements.sha256"
  [[ -f "${REQS}" ]] || die "${REQS} is missing"
  want="$(sha256_of "${REQS}")"
  if [[ -x "${VENV}/bin/python" ]] && stamp_matches "${stamp}" "${want}"; then
    log "venv ${VENV} is up to date with $(basename "${REQS}") (${want:0:12})"
    return 0
  fi
  if [[ ! -x "${VENV}/bin/python" ]]; then
    local py
    py="$(python311)"
    step "create ${VENV} with ${py}" "${py}" -m venv "${VENV}"
  fi
  if ! step "pip install -r $(basename "${REQS}")" install_requirements; then
    die "pip could not install ${REQS}; torch==2.13.0+cpu comes from the CPU wheel in pip's" \
      "find-links folder (pip config list), so that wheel must be on this machine"
  fi
  check_cpu_only
  stamp_write "${stamp}" "${want}"
}

main() {
  mkdir -p "${OUT_DIR}"
  OUT_DIR="$(cd "${OUT_DIR}" && pwd)"
  if all_present; then
    log "checkpoints already in ${OUT_DIR}: ${NAMES[*]}"
    return 0
  fi
  ensure_venv
  step "write checkpoints into ${OUT_DIR}" \
    env OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 TQDM_DISABLE=1 "${VENV}/bin/python" "${SCRIPT}" "${OUT_DIR}"
  log "VLLM_CHECKPOINTS=${OUT_DIR}"
}

main "$@"
