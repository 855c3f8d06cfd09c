#!/usr/bin/env bash
# The podman image our tests use as a fresh Debian 12 host, built without any registry.
#
# Usage: tools/make-host-image.sh        (FORCE=1 rebuilds even when the image exists)
#   1. apt-get installs podman, runc and debootstrap when missing;
#   2. sets default_ulimits and runtime=runc in /etc/containers/containers.conf (without them
#      crun fails here with "setrlimit RLIMIT_NOFILE" / "cgroups in hybrid mode");
#   3. debootstraps bookworm (minbase) into REPO/.cache/rootfs and imports it as BASE_IMAGE;
#   4. builds HOST_IMAGE from tools/host-image/Containerfile: python3, python3-apt, sudo,
#      openssh-server, ca-certificates and this machine's CA certificates;
#   5. makes the tests' SSH key in REPO/.cache/ssh (authorized_keys is mounted into hosts)
#      and their podman network vllm-fleet-test (10.89.77.0/24).
# Env: DEBIAN_MIRROR (default http://deb.debian.org/debian), FORCE=1.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BASE_IMAGE="localhost/vllm-fleet-base:bookworm"
HOST_IMAGE="localhost/vllm-fleet-host:bookworm"
SUITE="bookworm"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
FORCE="${FORCE:-0}"
CONTAINERS_CONF="/etc/containers/containers.conf"
ROOTFS="${CACHE_DIR}/rootfs"
CONTEXT="${CACHE_DIR}/host-image-context"
RECIPE_DIR="${REPO_ROOT}/tools/host-image"
LOCAL_CA_DIR="/usr/local/share/ca-certificates"

# conf_set SECTION KEY VALUE: copy a TOML file from stdin to stdout with KEY = VALUE in [SECTION].
conf_set() {
  local section="$1" key="$2" value="$3"
  awk -v sec="[${section}]" -v key="${key}" -v val="${value}" '
    function emit() { print key " = " val; done = 1 }
    /^[[:space:]]*\[[^]]*\][[:space:]]*$/ {
      header = $0; gsub(/[[:space:]]/, "", header)
      if (insec && !done) emit()
      insec = (header == sec); if (insec) seen = 1
      print; next
    }
    insec && $0 ~ "^[[:space:]]*" key "[[:space:]]*=" {
      if (!done) emit()
      skip = ($0 ~ /\[[^]]*$/)   # a multi-line array: drop its continuation lines
      next
    }
    skip { if ($0 ~ /\]/) skip = 0; next }
    { print }
    END {
      if (insec && !done) emit()
      else if (!seen) { if (NR > 0) print ""; print sec; emit() }
    }'
}

ensure_containers_conf() {
  local new
  mkdir -p "$(dirname "${CONTAINERS_CONF}")"
  new="$({ [[ -f "${CONTAINERS_CONF}" ]] && cat "${CONTAINERS_CONF}"; true; } |
    conf_set containers default_ulimits '["nofile=20000:20000", "nproc=32768:32768"]' |
    conf_set engine runtime '"runc"')"
  if [[ -f "${CONTAINERS_CONF}" ]] && [[ "$(cat "${CONTAINERS_CONF}")" == "${new}" ]]; then
    log "${CONTAINERS_CONF} already has default_ulimits and runtime = \"runc\""
    return 0
  fi
  printf '%s\n' "${new}" >"${CONTAINERS_CONF}.tmp"
  mv "${CONTAINERS_CONF}.tmp" "${CONTAINERS_CONF}"
  log "wrote default_ulimits and runtime = \"runc\" into ${CONTAINERS_CONF}"
}

image_exists() {
  podman image exists "$1"
}

# The recipe hash: the Containerfile and the CA certificates baked in. A change rebuilds.
recipe_hash() {
  {
    cat "${RECIPE_DIR}/Containerfile"
    if [[ -d "${LOCAL_CA_DIR}" ]]; then
      find "${LOCAL_CA_DIR}" -name '*.crt' -type f -print0 | sort -z | xargs -0 -r cat
    fi
  } | sha256sum | cut -d' ' -f1
}

image_id() {
  podman image inspect --format '{{.Id}}' "$1" 2>/dev/null || true
}

# drop_replaced OLD_ID NAME: remove the image a rebuild replaced, unless something still uses it.
drop_replaced() {
  if [[ -n "$1" && "$1" != "$(image_id "$2")" ]]; then
    podman rmi "$1" >/dev/null 2>&1 && log "removed the replaced image ${1:0:12} of $2" || true
  fi
}

image_recipe() {
  podman image inspect --format '{{index .Labels "vllm-fleet.recipe"}}' "$1" 2>/dev/null || true
}

debootstrap_rootfs() {
  rm -rf "${ROOTFS}"
  step "debootstrap --variant=minbase ${SUITE} (${MIRROR})" \
    debootstrap --variant=minbase "${SUITE}" "${ROOTFS}" "${MIRROR}"
  # What a fresh Debian 12 machine has: the release, its updates and security.
  cat >"${ROOTFS}/etc/apt/sources.list" <<EOF
deb ${MIRROR} ${SUITE} main
deb ${MIRROR} ${SUITE}-updates main
deb ${MIRROR%/debian}/debian-security ${SUITE}-security main
EOF
  : >"${ROOTFS}/etc/hostname"
}

tar_to_image() {
  tar -C "${ROOTFS}" --numeric-owner --exclude='./var/cache/apt/archives/*.deb' \
    --exclude='./var/lib/apt/lists/*_*' -c . |
    podman import --change 'CMD ["/bin/bash"]' - "${BASE_IMAGE}" >/dev/null
}

import_base() {
  step "import ${ROOTFS} as ${BASE_IMAGE}" tar_to_image
}

build_host() {
  local recipe="$1"
  rm -rf "${CONTEXT}"
  mkdir -p "${CONTEXT}/local-ca"
  cp "${RECIPE_DIR}/Containerfile" "${CONTEXT}/Containerfile"
  if [[ -d "${LOCAL_CA_DIR}" ]]; then
    (cd "${LOCAL_CA_DIR}" && find . -name '*.crt' -type f -exec cp --parents {} "${CONTEXT}/local-ca/" \;)
  fi
  log "baking $(find "${CONTEXT}/local-ca" -name '*.crt' | wc -l) local CA certificate(s) from ${LOCAL_CA_DIR}"
  step "podman build ${HOST_IMAGE}" podman build --pull=never --no-cache \
    --label "vllm-fleet.recipe=${recipe}" -t "${HOST_IMAGE}" "${CONTEXT}"
}

# An SSH key for the tests to log in to their hosts as root (mounted as authorized_keys).
ensure_ssh_key() {
  local dir="${CACHE_DIR}/ssh"
  mkdir -p "${dir}"
  if [[ ! -f "${dir}/id_ed25519" ]]; then
    ssh-keygen -q -t ed25519 -N '' -C vllm-fleet-test -f "${dir}/id_ed25519"
  fi
  cp "${dir}/id_ed25519.pub" "${dir}/authorized_keys"
  chmod 644 "${dir}/authorized_keys"
}

# The test hosts' own podman networks, with fixed subnets so hosts can pin addresses: one
# for the molecule scenarios, one for the integration tests' hosts (which run beside the
# fleet scenario and must never take an address it pins).
ensure_test_network() {
  if ! podman network exists vllm-fleet-test; then
    podman network create --subnet 10.89.77.0/24 vllm-fleet-test >/dev/null
  fi
  if ! podman network exists vllm-fleet-it; then
    podman network create --subnet 10.89.80.0/20 vllm-fleet-it >/dev/null
  fi
}

main() {
  require_root
  ensure_ssh_key
  APT_RECOMMENDS=1 ensure_apt_pkgs podman runc
  ensure_apt_pkgs debootstrap tar
  ensure_containers_conf
  ensure_test_network

  local recipe
  recipe="$(recipe_hash)"
  if [[ "${FORCE}" != 1 ]] && image_exists "${HOST_IMAGE}" &&
    [[ "$(image_recipe "${HOST_IMAGE}")" == "${recipe}" ]]; then
    log "${HOST_IMAGE} exists and matches tools/host-image (FORCE=1 rebuilds)"
  else
    local old_base old_host
    old_base="$(image_id "${BASE_IMAGE}")"
    old_host="$(image_id "${HOST_IMAGE}")"
    if [[ "${FORCE}" == 1 ]] || [[ -z "${old_base}" ]]; then
      debootstrap_rootfs
      import_base
    else
      log "${BASE_IMAGE} exists"
    fi
    build_host "${recipe}"
    drop_replaced "${old_host}" "${HOST_IMAGE}"
    drop_replaced "${old_base}" "${BASE_IMAGE}"
  fi
  podman images --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}' |
    grep -F -e "${BASE_IMAGE}" -e "${HOST_IMAGE}" >&2 || true
  step "smoke test: python3 and HTTPS to PyPI inside ${HOST_IMAGE}" \
    podman run --rm --stop-timeout=1 "${HOST_IMAGE}" python3 -c \
    'import apt, urllib.request; urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=30); print("ok")'
}

main "$@"
