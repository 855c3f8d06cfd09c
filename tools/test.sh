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

# The fleet scenario and the integration tests share nothing (other hosts, network, artifact
# cache and record files) and each leaves the CPUs idle while Ansible waits on its hosts:
# they run side by side, the fleet's output kept in a file and shown once it ended.
step "molecule: fleet scenario (build once per key, tag bump, rollback, rolling batches, lock), in the background"
fleet_log="$(mktemp /tmp/molecule-fleet.XXXXXX.log)"
molecule test -s fleet >"$fleet_log" 2>&1 &
fleet_pid=$!

step "integration: bad inputs on fresh hosts, faults, staging of offline CUDA sources"
integration_rc=0
pytest -q -m integration tests/integration --durations=15 || integration_rc=$?

fleet_rc=0
wait "$fleet_pid" || fleet_rc=$?
step "molecule: fleet scenario ended (exit ${fleet_rc}); its output"
cat "$fleet_log"
rm -f "$fleet_log"
if [ "$integration_rc" -ne 0 ] || [ "$fleet_rc" -ne 0 ]; then
  echo "failed: integration exit ${integration_rc}, molecule fleet exit ${fleet_rc}" >&2
  exit 1
fi
step "all passed"
