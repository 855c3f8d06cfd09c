#!/usr/bin/env bash
# The project's test command (README): installs what it needs, then runs
# lint, unit tests, the molecule scenario on a real podman host, and the
# bad-input tests on fresh hosts.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
step() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

step "control node: venv and collections"
bash tools/bootstrap-control.sh
export PATH="$ROOT/.venv/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$ROOT/.cache/collections"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"

step "lint: ruff and ansible-lint (production profile)"
ruff check .
ruff format --check .
ansible-lint --profile production

step "unit tests"
pytest -q tests/unit

step "test inputs: host image, vLLM mirror, wheelhouse, checkpoints"
bash tools/prepare-test-env.sh

step "molecule: default scenario (converge, idempotence, verify)"
molecule test -s default

step "molecule: fleet scenario (build once per key, tag bump, rollback, rolling batches, lock)"
molecule test -s fleet

step "integration: bad inputs on fresh hosts, staging of offline CUDA sources"
pytest -q -m integration tests/integration --durations=15
