#!/usr/bin/env bash
# The GPU validation run, on the GPU machine (offline), from the repository root.
#   run.sh setup STAGE      join the carried batches in STAGE, lay out /srv, make /tmp/ctl
#   run.sh full-start       start site.yml with a FULL build in the background (setsid);
#                           /root/gpu/full/ gets its output and a memory sampler's
#   run.sh precompiled      site.yml in precompiled mode with the smoke test, then again
#                           without it (must change nothing); output in $OUT
#   run.sh collect          copy the full build's logs and samples into $OUT
# docs/gpu-validation.md is rendered from $OUT by tools/gpu-validation/render.py.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK=/root/gpu
INVENTORY="$ROOT/inventory/gpu-validation/hosts.yml"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg" ANSIBLE_FORCE_COLOR=0 NO_COLOR=1 PYTHONUNBUFFERED=1
# JSON results (render.py parses them), not the yaml this repo's ansible.cfg picks for people.
export ANSIBLE_CALLBACK_RESULT_FORMAT=json
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT="${OUT:-$WORK/out}"
mkdir -p "$WORK" "$OUT"

machine() {
  {
    echo "## date"; date -u +%Y-%m-%dT%H:%M:%SZ
    echo "## nvidia-smi -L"; nvidia-smi -L
    echo "## driver"; nvidia-smi --query-gpu=driver_version,compute_cap,memory.total --format=csv
    echo "## nvcc"; /usr/local/cuda/bin/nvcc --version | tail -2
    echo "## cpus"; nproc
    echo "## memory"; free -g | head -2
    echo "## os"; . /etc/os-release; echo "$PRETTY_NAME"
    echo "## python"; /opt/torch/.venv/bin/python3 -c 'import sys, torch; print(sys.version.split()[0], torch.__version__)'
  } >"$OUT/machine.txt" 2>&1
}

setup() {
  local stage="$1"
  bash "$stage/join.sh" "$stage" "$WORK/staged"
  mkdir -p /srv/mirror /srv/deps /srv/wheels /srv/checkpoints
  tar -C /srv/mirror -xf "$WORK/staged/mirror-v0.22.0.tar"
  tar -C /srv/deps -xJf "$WORK/staged/deps-v0.22.0.tar.xz"
  rm -rf /srv/wheelhouse && cp -r "$WORK/staged/wheelhouse" /srv/wheelhouse
  cp "$WORK"/staged/vllm-wheel/*.whl /srv/wheels/
  cp -r "$ROOT"/.cache/checkpoints/small-llama* /srv/checkpoints/
  chmod -R a+rX /srv
  /usr/bin/python3 -m venv /tmp/ctl
  /tmp/ctl/bin/pip install -q --no-index --find-links "$WORK/staged/wheels-ansible" ansible-core==2.19.14
  /tmp/ctl/bin/ansible --version | head -1
  ls /srv/mirror /srv/deps /srv/deps/* /srv/wheels | head -30
  git --git-dir "$(ls -d /srv/mirror/*)" rev-parse v0.22.0^{commit}
}

playbook() {
  /tmp/ctl/bin/ansible-playbook -v -i "$INVENTORY" "$ROOT/site.yml" -l gpu_hosts "$@"
}

sample_memory() {  # every 5 s: elapsed, used GiB (MemTotal - MemAvailable), latest ninja step
  local start; start=$(date +%s)
  while sleep 5; do
    local used log step
    used=$(awk '/MemTotal/{t=$2} /MemAvailable/{a=$2} END{printf "%.1f", (t-a)/1048576}' /proc/meminfo)
    log=$(ls -t /opt/vllm-full/logs/build-*.log 2>/dev/null | head -1 || true)
    step=$( [ -n "$log" ] && grep -oE '\[[0-9]+/[0-9]+\]' "$log" | tail -1 || true)
    echo "$(( $(date +%s) - start )) ${used} ${step:-}"
  done
}

full_start() {
  mkdir -p "$WORK/full"
  echo "ansible-playbook -v -i inventory/gpu-validation/hosts.yml site.yml -l gpu_hosts" \
    "-e vllm_source_build_mode=full -e vllm_source_prefix=/opt/vllm-full" \
    "-e vllm_source_profile_path=/etc/profile.d/vllm-source-full.sh -e vllm_source_smoke_test=false" \
    >"$WORK/full/command.txt"
  setsid nohup bash -c "$(declare -f sample_memory); sample_memory" >"$WORK/full/memory.txt" 2>&1 < /dev/null &
  setsid nohup bash -c "$(declare -f playbook); INVENTORY='$INVENTORY' ROOT='$ROOT'; \
    time playbook -e vllm_source_build_mode=full -e vllm_source_prefix=/opt/vllm-full \
    -e vllm_source_profile_path=/etc/profile.d/vllm-source-full.sh -e vllm_source_smoke_test=false" \
    >"$WORK/full/run.log" 2>&1 < /dev/null &
  # Wait until the build itself runs, so the precompiled run does not race it for the user.
  for _ in $(seq 1 60); do
    ls /opt/vllm-full/logs/build-*.log >/dev/null 2>&1 && break
    grep -q 'PLAY RECAP' "$WORK/full/run.log" 2>/dev/null && break
    sleep 5
  done
  tail -5 "$WORK/full/run.log"
}

precompiled() {
  machine
  echo "ansible-playbook -v -i inventory/gpu-validation/hosts.yml site.yml -l gpu_hosts" >"$OUT/precompiled-command.txt"
  { time playbook; } >"$OUT/precompiled-run.log" 2>&1 || { tail -60 "$OUT/precompiled-run.log"; return 1; }
  echo "ansible-playbook -v -i inventory/gpu-validation/hosts.yml site.yml -l gpu_hosts -e vllm_source_smoke_test=false" >"$OUT/rerun-command.txt"
  { time playbook -e vllm_source_smoke_test=false; } >"$OUT/rerun.log" 2>&1 || { tail -40 "$OUT/rerun.log"; return 1; }
  cp /opt/vllm/logs/build-*.log "$OUT/" 2>/dev/null || true
  grep -A1 'PLAY RECAP' "$OUT/precompiled-run.log" "$OUT/rerun.log"
}

collect() {
  cp "$WORK/full/command.txt" "$OUT/full-command.txt"
  cp "$WORK/full/memory.txt" "$OUT/full-memory.txt"
  tail -c 3000000 "$WORK/full/run.log" >"$OUT/full-run.log"
  local log; log=$(ls -t /opt/vllm-full/logs/build-*.log | head -1)
  xz -T4 -c "$log" >"$OUT/full-build.log.xz"
  python3 "$ROOT/bench/build_time" "$log" | tee "$OUT/full-build-time.txt"
  tail -3 "$OUT/full-memory.txt"
}

case "${1:-}" in
  setup) setup "${2:?STAGE dir}" ;;
  full-start) full_start ;;
  precompiled) precompiled ;;
  collect) collect ;;
  *) sed -n 2,9p "$0"; exit 2 ;;
esac
