#!/usr/bin/env bash
# A local stand-in for github.com/vllm-project/vllm, made from PyPI's sdists (no GitHub here).
#
# Usage: tools/make-vllm-mirror.sh [VERSION ...]      (default: 0.30.0)
#   Makes the bare repository REPO/.cache/mirror/vllm.git (clone it as
#   file://REPO/.cache/mirror/vllm.git) with one commit per VERSION, in the order given,
#   on branch main. Each commit holds the unpacked sdist vllm-VERSION.tar.gz minus
#   *.egg-info and PKG-INFO (the files sdist creation adds; an upstream checkout has neither)
#   and minus the build output the sdist's .gitignore names (see TRACKED_DESPITE_IGNORE),
#   and carries the annotated tag vVERSION. Authors and dates are fixed, so the same versions
#   in the same order give the same commit SHAs on every machine. A version that is already
#   tagged is skipped: adding versions later appends commits and keeps existing tags.
#   Sdists are downloaded from PyPI's simple index into REPO/.cache/sdists and sha256-checked.
#   VLLM_MIRROR_DIR=DIR makes DIR/vllm.git instead (default REPO/.cache/mirror).
#   VERSION arguments may also be given as one space- or comma-separated string.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

MIRROR_DIR="${VLLM_MIRROR_DIR:-${CACHE_DIR}/mirror}"
REPO="${MIRROR_DIR}/vllm.git"
BRANCH="main"

# Identity and clock of every commit and tag: part of what makes the SHAs reproducible.
export GIT_AUTHOR_NAME="vllm-fleet mirror" GIT_AUTHOR_EMAIL="mirror@vllm-fleet.invalid"
export GIT_COMMITTER_NAME="${GIT_AUTHOR_NAME}" GIT_COMMITTER_EMAIL="${GIT_AUTHOR_EMAIL}"
export GIT_AUTHOR_DATE="2000-01-01T00:00:00+0000" GIT_COMMITTER_DATE="2000-01-01T00:00:00+0000"
# No user or system git config may change what gets committed (autocrlf, hooks, ...).
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null

git_repo() {
  git --git-dir="${REPO}" "$@"
}

parse_versions() {
  local arg v
  for arg in "$@"; do
    for v in ${arg//,/ }; do
      [[ "${v}" =~ ^[0-9]+(\.[0-9]+)+([a-z0-9.+]*)$ ]] || die "not a vLLM version: '${v}' (e.g. 0.30.0)"
      printf '%s\n' "${v}"
    done
  done
}

ensure_repo() {
  if [[ ! -f "${REPO}/HEAD" ]]; then
    mkdir -p "${REPO}"
    git init -q --bare --initial-branch="${BRANCH}" "${REPO}"
    log "created ${REPO}"
  fi
}

# Paths the sdist's .gitignore matches that upstream tracks all the same (test data, the
# benchmarks' lib/ package, .gitkeep). Other ignored files are build output that the sdist
# carries (vllm/_version.py, generated kernels, copied flash-attn modules): a checkout has
# none, and a build that rewrote them would make the tree dirty and change the version.
TRACKED_DESPITE_IGNORE='^(tests|benchmarks|vllm/benchmarks)/|(^|/)\.gitkeep$'

# add_tree DIR: stage DIR into $GIT_INDEX_FILE the way upstream's repository tracks it.
add_tree() {
  local src="$1" list="$1.force-add"
  git_repo --work-tree="${src}" -C "${src}" add -A .
  git_repo --work-tree="${src}" -C "${src}" ls-files -z --others --ignored --exclude-standard |
    { grep -zE "${TRACKED_DESPITE_IGNORE}" || true; } |
    { grep -zvE '(^|/)__pycache__/|\.pyc$' || true; } >"${list}"
  if [[ -s "${list}" ]]; then
    git_repo --work-tree="${src}" -C "${src}" add -f --pathspec-from-file="${list}" --pathspec-file-nul
  fi
}

# commit_version VERSION: append one commit with the sdist tree of VERSION and tag it.
commit_version() {
  local version="$1" sdist sha work src tree parent commit
  local parent_args=()
  sdist="$(fetch_sdist vllm "${version}")"
  sha="$(cat "${sdist}.sha256")"
  work="$(mktemp -d "${MIRROR_DIR}/work.XXXXXX")"
  step "unpack $(basename "${sdist}")" tar --no-same-owner -xzf "${sdist}" -C "${work}"
  src="${work}/vllm-${version}"
  [[ -d "${src}" ]] || die "$(basename "${sdist}") has no top-level vllm-${version}/ directory"
  find "${src}" -depth -name '*.egg-info' -exec rm -rf {} +
  rm -f "${src}/PKG-INFO"
  GIT_INDEX_FILE="${work}/index" step "git add vllm-${version}" add_tree "${src}"
  tree="$(GIT_INDEX_FILE="${work}/index" git_repo write-tree)"
  parent="$(git_repo rev-parse -q --verify "refs/heads/${BRANCH}" || true)"
  [[ -n "${parent}" ]] && parent_args=(-p "${parent}")
  commit="$(git_repo commit-tree "${tree}" "${parent_args[@]}" \
    -m "vLLM ${version}" -m "The PyPI sdist vllm-${version}.tar.gz (sha256 ${sha}), minus *.egg-info and PKG-INFO.")"
  git_repo update-ref "refs/heads/${BRANCH}" "${commit}" ${parent:+"${parent}"}
  git_repo tag -a "v${version}" -m "vLLM ${version}" "${commit}"
  rm -rf "${work}"
  log "committed v${version} as ${commit} ($(git_repo ls-tree -r --name-only "${commit}" | wc -l) files)"
}

main() {
  local versions=() version changed=0
  mapfile -t versions < <(parse_versions "${@:-0.30.0}")
  ensure_apt_pkgs git curl ca-certificates
  ensure_repo
  rm -rf "${MIRROR_DIR}"/work.* # what an interrupted run left
  for version in "${versions[@]}"; do
    if git_repo rev-parse -q --verify "refs/tags/v${version}" >/dev/null; then
      log "v${version} is already in the mirror"
      continue
    fi
    commit_version "${version}"
    changed=1
  done
  if [[ ${changed} -eq 1 ]]; then
    step "git gc" git_repo gc -q
  fi
  log "mirror: file://${REPO}"
  for version in "${versions[@]}"; do
    printf 'v%s %s\n' "${version}" "$(git_repo rev-parse "v${version}^{commit}")"
  done
}

main "$@"
