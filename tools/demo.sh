#!/usr/bin/env bash
# The main job on its embedded default: `vllm-fleet build` (site.yml through ansible-runner,
# live per host, then the fleet's table) against a local throwaway host (podman, Debian
# bookworm, no GPU) that builds vLLM 0.30.0 from source (VLLM_TARGET_DEVICE=empty) and proves
# its ModelOpt support. KEEP=1 keeps the host; arguments go to vllm-fleet build.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
HOST=vllm-fleet-demo
bash tools/bootstrap-control.sh
bash tools/prepare-test-env.sh
export PATH="$ROOT/.venv/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="$ROOT/.cache/collections"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"

podman rm -f -t 0 "$HOST" >/dev/null 2>&1 || true
podman run -d --name "$HOST" --hostname "$HOST" --stop-timeout=1 \
  -v "$ROOT/.cache/mirror:/srv/mirror:ro" \
  -v "$ROOT/.cache/wheelhouse:/srv/wheelhouse:ro" \
  -v "$ROOT/.cache/checkpoints:/srv/checkpoints:ro" \
  localhost/vllm-fleet-host:bookworm sleep infinity >/dev/null
[ -n "${KEEP:-}" ] || trap 'podman rm -f -t 0 "$HOST" >/dev/null 2>&1 || true' EXIT

vllm-fleet build -i inventory/demo/hosts.yml -l gpu_hosts "$@"
echo
echo "Demo host $HOST: $([ -n "${KEEP:-}" ] && echo "kept (podman exec -it $HOST bash)" || echo removed)."
