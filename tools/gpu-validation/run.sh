#!/usr/bin/env bash
# The GPU validation run, on the GPU machine (offline), from the repository root.
# Inputs arrive in carried batches (tools/gpu-validation/pack.sh makes them here):
#   run.sh take BATCH_DIR   copy a carried batch to /root/gpu/stage (kept while the machine is)
#   run.sh setup            lay out /srv from the base batch (mirror, staged CUDA sources,
#                           wheelhouse, checkpoints) and make the control venv /tmp/ctl
#   run.sh full-start       start site.yml with a FULL build in the background (setsid);
#                           /root/gpu/full/ gets its output and a memory sampler's
#   run.sh wheel            join the precompiled wheel's parts, check its sha256
#   run.sh precompiled      site.yml in precompiled mode with the smoke test, then again
#                           without it (must change nothing); output in $OUT
#   run.sh progress         the full build's progress so far
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

take() {
  mkdir -p "$WORK/stage" "$WORK/checkpoints"
  cp -r "$1"/. "$WORK/stage/"
  # The models travel once, in the first call (.cache/checkpoints carried).
  if [ -d "$ROOT/.cache/checkpoints/small-llama" ]; then
    cp -r "$ROOT"/.cache/checkpoints/small-llama* "$WORK/checkpoints/"
  fi
  ls -la "$WORK/stage" | tail -n +2
}

setup() {
  local stage="$WORK/stage"
  cat "$stage"/base.tar.part* | tar -C "$stage" -xf -
  (cd "$stage" && sha256sum -c base.sha256)
  mkdir -p /srv/mirror /srv/deps /srv/wheels /srv/checkpoints
  tar -C /srv/mirror -xf "$stage/mirror-v0.22.0.tar"
  tar -C /srv/deps -xJf "$stage/deps-v0.22.0.tar.xz"
  rm -rf /srv/wheelhouse && cp -r "$stage/wheelhouse" /srv/wheelhouse
  cp -r "$WORK"/checkpoints/small-llama* /srv/checkpoints/
  chmod -R a+rX /srv
  /usr/bin/python3 -m venv /tmp/ctl
  /tmp/ctl/bin/pip install -q --no-index --find-links "$stage/wheels-ansible" ansible-core==2.19.14
  /tmp/ctl/bin/ansible-playbook --version >/dev/null && echo "ansible-core ready"
  ls /srv/mirror /srv/deps/* /srv/checkpoints
  git --git-dir /srv/mirror/vllm.git rev-parse 'v0.22.0^{commit}'
}

wheel() {
  local stage="$WORK/stage" name
  name=$(cat "$stage/wheel.name")
  cat "$stage/$name".part* >"/srv/wheels/$name"
  (cd /srv/wheels && sha256sum -c "$stage/wheel.sha256")
  chmod a+r "/srv/wheels/$name"
}

progress() {
  tail -2 "$WORK/full/memory.txt" 2>/dev/null || true
  grep -E '^(TASK|fatal|PLAY RECAP)' "$WORK/full/run.log" | tail -3 || true
}

playbook() {
  # shellcheck disable=SC2086
  /tmp/ctl/bin/ansible-playbook -v -i "$INVENTORY" "$ROOT/site.yml" -l gpu_hosts "$@" ${GPU_EXTRA_ARGS:-}
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
  local args=(-e vllm_source_build_mode=full -e vllm_source_prefix=/opt/vllm-full
    -e vllm_source_profile_path=/etc/profile.d/vllm-source-full.sh -e "{\"vllm_source_smoke_test\": false}")
  local mem_gib cpus
  mem_gib=$(awk '/MemTotal/{print int($2/1048576)}' /proc/meminfo); cpus=$(nproc)
  if (( mem_gib < 4 * cpus )); then
    # Some of these machines report a small MemTotal that grows as memory is used; the role
    # would size MAX_JOBS from it. The machine's real memory is 8 GiB a core.
    args+=(-e "vllm_source_max_jobs=${cpus}")
  fi
  echo "ansible-playbook -v -i inventory/gpu-validation/hosts.yml site.yml -l gpu_hosts ${args[*]}" \
    "  # MemTotal at start: ${mem_gib} GiB, ${cpus} CPUs" >"$WORK/full/command.txt"
  setsid nohup bash -c "$(declare -f sample_memory); sample_memory" >"$WORK/full/memory.txt" 2>&1 < /dev/null &
  setsid nohup bash -c "$(declare -f playbook); INVENTORY='$INVENTORY' ROOT='$ROOT'; \
    time playbook $(printf '%q ' "${args[@]}")" >"$WORK/full/run.log" 2>&1 < /dev/null &
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
  { time playbook -e vllm_source_user=vllmpre -e vllm_source_group=vllmpre; } >"$OUT/precompiled-run.log" 2>&1 || { tail -60 "$OUT/precompiled-run.log"; return 1; }
  echo "ansible-playbook -v -i inventory/gpu-validation/hosts.yml site.yml -l gpu_hosts -e vllm_source_smoke_test=false" >"$OUT/rerun-command.txt"
  { time playbook -e vllm_source_user=vllmpre -e vllm_source_group=vllmpre -e '{"vllm_source_smoke_test": false}'; } >"$OUT/rerun.log" 2>&1 || { tail -40 "$OUT/rerun.log"; return 1; }
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

for step in "$@"; do
  case "$step" in
    take=*) take "${step#take=}" ;;
    setup) setup ;;
    full-start) full_start ;;
    wheel) wheel ;;
    precompiled) precompiled ;;
    progress) progress ;;
    collect) collect ;;
    *) sed -n 2,16p "$0"; exit 2 ;;
  esac
done
