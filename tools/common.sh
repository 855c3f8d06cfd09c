# shellcheck shell=bash
# Shared helpers for the tools/*.sh scripts. Source it; do not run it.
#
# Sets REPO_ROOT (the checkout this file lives in) and CACHE_DIR (REPO_ROOT/.cache, git-ignored),
# prints every step with its wall time, and prints the script's total wall time on exit.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${REPO_ROOT}/.cache"
TOOL_NAME="$(basename "${BASH_SOURCE[1]:-$0}" .sh)"
_TOOL_START="$(date +%s.%N)"
_APT_UPDATED=0
export REPO_ROOT CACHE_DIR

log() {
  printf '[%s] %s\n' "${TOOL_NAME}" "$*" >&2
}

die() {
  log "ERROR: $*"
  exit 1
}

_elapsed_since() {
  awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

_report_total() {
  local rc=$?
  log "done in $(_elapsed_since "${_TOOL_START}") s (exit ${rc})"
}
trap _report_total EXIT

# step DESCRIPTION CMD [ARGS...]: run CMD, print what it does and how long it took.
step() {
  local desc="$1" start rc=0
  shift
  log "${desc} ..."
  start="$(date +%s.%N)"
  "$@" || rc=$?
  if [[ ${rc} -ne 0 ]]; then
    log "${desc}: FAILED (exit ${rc}) after $(_elapsed_since "${start}") s"
    return "${rc}"
  fi
  log "${desc}: ok in $(_elapsed_since "${start}") s"
}

require_root() {
  [[ ${EUID} -eq 0 ]] || die "run me as root (I install packages and use rootful podman)"
}

# ensure_apt_pkgs PKG...: install the Debian packages that are not installed yet.
# APT_RECOMMENDS=1 keeps apt's default of installing Recommends (podman wants them).
ensure_apt_pkgs() {
  local pkg missing=()
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("${pkg}")
    fi
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    return 0
  fi
  require_root
  local recommends=(--no-install-recommends)
  [[ "${APT_RECOMMENDS:-0}" == 1 ]] && recommends=()
  if [[ ${_APT_UPDATED} -eq 0 ]]; then
    step "apt-get update" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    _APT_UPDATED=1
  fi
  step "apt-get install ${missing[*]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q "${recommends[@]}" "${missing[@]}" >&2
}

# python311: print the path of a Python 3.11 interpreter that can create venvs.
python311() {
  local py
  py="$(command -v python3.11 || true)"
  if [[ -z "${py}" ]]; then
    ensure_apt_pkgs python3.11 python3.11-venv
    py="$(command -v python3.11)" || die "python3.11 is still missing after apt-get install"
  fi
  if ! "${py}" -c 'import ensurepip, venv' 2>/dev/null; then
    ensure_apt_pkgs python3.11-venv
  fi
  printf '%s\n' "${py}"
}

# tool_python: a small venv (pip only) under .cache for pip download/wheel and sdist parsing,
# so the scripts never touch the control venv or the system Python.
tool_python() {
  local venv="${CACHE_DIR}/tool-venv"
  if [[ ! -x "${venv}/bin/python" ]]; then
    local py
    py="$(python311)"
    step "create ${venv}" "${py}" -m venv "${venv}" >&2
  fi
  printf '%s\n' "${venv}/bin/python"
}

sha256_of() {
  sha256sum "$1" | cut -d' ' -f1
}

# stamp_matches FILE VALUE: true when FILE holds exactly VALUE.
stamp_matches() {
  [[ -f "$1" ]] && [[ "$(cat "$1")" == "$2" ]]
}

stamp_write() {
  mkdir -p "$(dirname "$1")"
  printf '%s\n' "$2" >"$1.tmp"
  mv "$1.tmp" "$1"
}

# fetch_sdist NAME VERSION: download NAME-VERSION.tar.gz from PyPI's simple index into
# .cache/sdists (once), verify the index's sha256, and print the local path.
fetch_sdist() {
  local name="$1" version="$2" dir="${CACHE_DIR}/sdists"
  local file="${name}-${version}.tar.gz"
  local dest="${dir}/${file}" index href url want
  mkdir -p "${dir}"
  ensure_apt_pkgs curl ca-certificates
  index="${PYPI_SIMPLE_URL:-https://pypi.org/simple}/${name}/"
  if [[ -f "${dest}" && -f "${dest}.sha256" ]] && [[ "$(sha256_of "${dest}")" == "$(cat "${dest}.sha256")" ]]; then
    printf '%s\n' "${dest}"
    return 0
  fi
  href="$(curl -fsS --retry 3 "${index}" | grep -o "href=\"[^\"]*/${file}[^\"]*\"" | head -n1 || true)"
  [[ -n "${href}" ]] || die "${file} is not listed in ${index} (is ${version} a released version?)"
  href="${href#href=\"}"
  href="${href%\"}"
  href="${href//&amp;/&}"
  want="${href##*#sha256=}"
  url="${href%%#*}"
  [[ "${want}" =~ ^[0-9a-f]{64}$ ]] || die "no #sha256= fragment on ${file} in ${index}"
  case "${url}" in
    http*) ;;
    *) url="${index}${url}" ;;
  esac
  step "download ${file}" curl -fsS --retry 3 -o "${dest}.part" "${url}" >&2
  [[ "$(sha256_of "${dest}.part")" == "${want}" ]] || {
    rm -f "${dest}.part"
    die "sha256 mismatch for ${file} from ${url}"
  }
  mv "${dest}.part" "${dest}"
  printf '%s\n' "${want}" >"${dest}.sha256"
  printf '%s\n' "${dest}"
}
