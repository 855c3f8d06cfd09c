#!/usr/bin/env bash
# Control node: the Python 3.11 venv from requirements-control.txt and the Ansible
# collections our playbooks and molecule need, without Galaxy.
#
# Usage: tools/bootstrap-control.sh
#   Creates or updates REPO/.venv when requirements-control.txt or pyproject.toml changed
#   (hash stamp in .venv/.requirements.sha256), with the vllm-fleet CLI installed editable, downloads the `ansible` wheel from PyPI once and unpacks
#   only the collections in COLLECTIONS below into REPO/.cache/collections/ansible_collections.
#   Then: export ANSIBLE_COLLECTIONS_PATH=REPO/.cache/collections (printed at the end).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ANSIBLE_DIST_VERSION="12.3.0" # the full `ansible` release that matches ansible-core 2.19
COLLECTIONS=(containers/podman ansible/posix)

VENV="${REPO_ROOT}/.venv"
REQS="${REPO_ROOT}/requirements-control.txt"
COLL_ROOT="${CACHE_DIR}/collections"

venv_python_ok() {
  [[ -x "${VENV}/bin/python" ]] &&
    "${VENV}/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null
}

ensure_venv() {
  local want stamp="${VENV}/.requirements.sha256"
  [[ -f "${REQS}" ]] || die "${REQS} is missing"
  want="$(sha256_of "${REQS}")-$(sha256_of "${REPO_ROOT}/pyproject.toml")"
  if venv_python_ok && stamp_matches "${stamp}" "${want}"; then
    log "venv ${VENV} is up to date with requirements-control.txt (${want:0:12})"
    return 0
  fi
  if ! venv_python_ok; then
    local py
    py="$(python311)"
    rm -rf "${VENV}"
    step "create ${VENV} with ${py}" "${py}" -m venv "${VENV}"
  fi
  # pip only changes what the requirements file asks to change, so a venv others are using
  # keeps working while this runs.
  step "pip install -r requirements-control.txt" \
    "${VENV}/bin/python" -m pip install -q -r "${REQS}"
  # The vllm-fleet CLI, editable: its code is the checkout's, its dependencies pinned above.
  step "pip install -e . (the vllm-fleet CLI)" \
    "${VENV}/bin/python" -m pip install -q --no-deps -e "${REPO_ROOT}"
  stamp_write "${stamp}" "${want}"
}

ensure_collections() {
  local wheel_dir="${CACHE_DIR}/ansible-dist" wheel stamp want
  local wheel_name="ansible-${ANSIBLE_DIST_VERSION}-py3-none-any.whl"
  wheel="${wheel_dir}/${wheel_name}"
  stamp="${COLL_ROOT}/.stamp"
  want="ansible==${ANSIBLE_DIST_VERSION} ${COLLECTIONS[*]}"
  if stamp_matches "${stamp}" "${want}"; then
    log "collections up to date in ${COLL_ROOT} (${want})"
    return 0
  fi
  if [[ ! -f "${wheel}" ]]; then
    mkdir -p "${wheel_dir}"
    step "pip download ansible==${ANSIBLE_DIST_VERSION} (no deps)" \
      "${VENV}/bin/python" -m pip download -q --no-deps --only-binary=:all: \
      --dest "${wheel_dir}" "ansible==${ANSIBLE_DIST_VERSION}"
  fi
  [[ -f "${wheel}" ]] || die "pip download did not produce ${wheel}"
  rm -rf "${COLL_ROOT}/ansible_collections"
  mkdir -p "${COLL_ROOT}"
  step "unpack ${COLLECTIONS[*]} from ${wheel_name}" \
    "${VENV}/bin/python" - "${wheel}" "${COLL_ROOT}" "${COLLECTIONS[@]}" <<'PY'
import sys
import zipfile

wheel, dest, *wanted = sys.argv[1:]
prefixes = tuple(f"ansible_collections/{name}/" for name in wanted)
with zipfile.ZipFile(wheel) as zf:
    members = [m for m in zf.namelist() if m.startswith(prefixes)]
    for name in wanted:
        if not any(m.startswith(f"ansible_collections/{name}/") for m in members):
            sys.exit(f"{name} is not in {wheel}")
    zf.extractall(dest, members)
print(f"unpacked {len(members)} files", file=sys.stderr)
PY
  stamp_write "${stamp}" "${want}"
}

show_collections() {
  local names="${COLLECTIONS[*]}"
  names="${names//\//.}"
  ANSIBLE_COLLECTIONS_PATH="${COLL_ROOT}" "${VENV}/bin/ansible-galaxy" collection list \
    -p "${COLL_ROOT}" 2>/dev/null | grep -E "^(${names// /|}) " >&2 || true
}

ensure_venv
ensure_collections
show_collections
log "use: export ANSIBLE_COLLECTIONS_PATH=${COLL_ROOT}"
echo "export ANSIBLE_COLLECTIONS_PATH=${COLL_ROOT}"
