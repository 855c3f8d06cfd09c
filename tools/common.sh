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

# fetch_sdist NAME VERSION: download the sdist NAME-VERSION.tar.gz into .cache/sdists (once),
# check it against the sha256 the index lists for it, and print the local path (the hash goes
# to PATH.sha256). The file's URL and hash come from the index's JSON form (PEP 691, the one
# pip reads), parsed with json; PYPI_SIMPLE_URL names another index that serves it (default
# https://pypi.org/simple). Not `pip download --no-deps --no-binary`: pip builds an sdist's
# metadata after downloading it (pypa/pip#1884), which for vLLM installs torch, cmake and
# ninja into a build env and then rejects the file, as setup.py reports 0.30.0+cpu.
fetch_sdist() {
  local name="$1" version="$2" dir="${CACHE_DIR}/sdists"
  local file="${name}-${version}.tar.gz"
  local dest="${dir}/${file}" index py found url want
  if [[ -f "${dest}" && -f "${dest}.sha256" ]] && [[ "$(sha256_of "${dest}")" == "$(cat "${dest}.sha256")" ]]; then
    printf '%s\n' "${dest}"
    return 0
  fi
  mkdir -p "${dir}"
  ensure_apt_pkgs curl ca-certificates
  py="$(tool_python)"
  index="${PYPI_SIMPLE_URL:-https://pypi.org/simple}/${name}/"
  curl -fsS --retry 3 -H 'Accept: application/vnd.pypi.simple.v1+json' -o "${dest}.index.json" \
    "${index}" || die "could not read ${index} (is ${name} on that index? PYPI_SIMPLE_URL names another)"
  found="$("${py}" - "${index}" "${file}" "${dest}.index.json" <<'PY'
import json
import sys
from urllib.parse import urljoin

index, file, page = sys.argv[1:]
try:
    with open(page, encoding="utf-8") as f:
        files = json.load(f)["files"]
except (ValueError, KeyError):
    sys.exit(f"{index} did not answer in PEP 691 JSON: point PYPI_SIMPLE_URL at an index that does")
entry = next((e for e in files if e["filename"] == file), None)
if entry is None:
    sys.exit(f"{file} is not listed in {index} (is the version a released one?)")
sha256 = entry.get("hashes", {}).get("sha256", "")
if not sha256:
    sys.exit(f"{index} lists no sha256 for {file}")
if entry.get("yanked"):
    print(f"warning: {file} is yanked on {index}: {entry['yanked']}", file=sys.stderr)
print(urljoin(index, entry["url"]), sha256)
PY
)" || {
    rm -f "${dest}.index.json"
    die "no verified download of ${file} (see above)"
  }
  rm -f "${dest}.index.json"
  read -r url want <<<"${found}"
  step "download ${file}" curl -fsS --retry 3 -o "${dest}.part" "${url}" >&2
  [[ "$(sha256_of "${dest}.part")" == "${want}" ]] || {
    rm -f "${dest}.part"
    die "sha256 mismatch for ${file} from ${url} (the index lists ${want})"
  }
  mv "${dest}.part" "${dest}"
  printf '%s\n' "${want}" >"${dest}.sha256"
  printf '%s\n' "${dest}"
}
