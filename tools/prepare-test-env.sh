#!/usr/bin/env bash
# Everything the integration tests and the demo need, made locally and offline-ready:
# the podman host image, a git mirror of vLLM made from PyPI's sdists, a wheelhouse
# for the host, and ModelOpt checkpoints made from a tiny random model.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
bash "$ROOT/tools/make-host-image.sh"
bash "$ROOT/tools/make-vllm-mirror.sh" "${VLLM_FLEET_TEST_VERSIONS:-0.30.0 0.29.0}"
# molecule/fleet bumps the tag from v0.29.0 to v0.30.0 (both pin torch 2.13.0).
bash "$ROOT/tools/make-wheelhouse.sh" 0.30.0 0.29.0
bash "$ROOT/tools/make-checkpoints.sh"
