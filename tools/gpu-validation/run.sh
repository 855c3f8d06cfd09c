#!/usr/bin/env bash
# The GPU validation run, on the GPU machine (offline), from the repository root.
# Inputs arrive in carried batches (tools/gpu-validation/stage.sh, then pack.sh, make them):
#   run.sh take=BATCH_DIR   copy a carried batch to /root/gpu/stage (kept while the machine is)
#   run.sh setup            join the parts, check the tar's sha256, lay out /srv (mirror,
#                           wheelhouse, checkpoints, PyPI's vLLM wheel, staged CUDA sources if
#                           any) and make the control venv /tmp/ctl from the control wheels
#   run.sh precompiled      site.yml exactly as a user runs it (inventory/gpu-validation), from
#                           a bare prefix, then the same command again (must change nothing);
#                           GPU memory and vLLM processes before and after each; files in $RES
#   run.sh vl               after precompiled: playbooks/serve_check.yml with the tiny Qwen2.5-VL
#                           (unquantized, then its ModelOpt FP8 export, then a shape whose
#                           vision tower this vLLM would quantize: must be refused), the
#                           user's script, and vllm-fleet-vl's facts for every config shape
#   run.sh start            precompiled then vl, in the background (setsid): output in
#                           /root/gpu/out, /root/gpu/precompiled.rc once it ended
#   run.sh wait=SECONDS     wait for that run to end (at most SECONDS), then show where it is
#   run.sh results          $RES (/root/gpu/out) packed into $OUT/results.tar.gz: one file back
#   run.sh full-start       start site.yml with a FULL build in the background (setsid), under
#                           its own prefix and user; /root/gpu/full/ gets its output and a
#                           sampler's memory / CPU-busy lines
#   run.sh progress         the full build's progress so far
#   run.sh collect          the full build's logs and samples into $RES
#   run.sh cleanup          list, then end by their ids, the processes these steps started
# docs/gpu-validation.md: render.py over the unpacked results.tar.gz.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK=/root/gpu
export ANSIBLE_CONFIG="$ROOT/ansible.cfg" ANSIBLE_FORCE_COLOR=0 NO_COLOR=1 PYTHONUNBUFFERED=1
# JSON results (render.py parses them), not the yaml this repo's ansible.cfg picks for people.
export ANSIBLE_CALLBACK_RESULT_FORMAT=json
# Every step writes its files to $RES; `results` packs them into the device tool's $OUT.
RES="$WORK/out"
OUT="${OUT:-$WORK/returned}"
mkdir -p "$WORK" "$RES" "$OUT"
# The command a user types, as it is recorded; playbook() runs exactly this.
USER_COMMAND=(ansible-playbook -v -i inventory/gpu-validation/hosts.yml site.yml -l gpu_hosts)

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
  } >"$RES/machine.txt" 2>&1
}

# gpu_state NAME: the GPU's memory and its compute processes, and every vLLM process on the
# machine, into $RES/gpu-NAME.txt.
gpu_state() {
  {
    echo "## nvidia-smi --query-gpu=index,memory.used,memory.total"
    nvidia-smi --query-gpu=index,memory.used,memory.total --format=csv
    echo "## nvidia-smi --query-compute-apps=pid,process_name,used_memory"
    nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv
    echo "## vLLM processes (ps -eo pid,ppid,user,etime,args)"
    ps -eo pid,ppid,user,etime,args | grep -E 'VLLM|vllm\.|EngineCore' | grep -v -E 'grep|ps -eo' || echo "none"
  } >"$RES/gpu-$1.txt" 2>&1
}

take() {
  mkdir -p "$WORK/stage"
  cp -r "$1"/. "$WORK/stage/"
  ls -la "$WORK/stage" | tail -n +2
}

setup() {
  local stage="$WORK/stage"
  cat "$stage"/base.tar.part* >"$stage/base.tar"
  (cd "$stage" && sha256sum -c base.sha256)
  tar -C "$stage" -xf "$stage/base.tar" && rm "$stage/base.tar" "$stage"/base.tar.part*
  mkdir -p /srv/mirror /srv/deps /srv/wheels /srv/checkpoints
  tar -C /srv/mirror -xf "$stage/mirror.tar"
  if [ -f "$stage/deps.tar.xz" ]; then tar -C /srv/deps -xJf "$stage/deps.tar.xz"; fi
  rm -rf /srv/wheelhouse && cp -r "$stage/wheelhouse" /srv/wheelhouse
  cp -r "$stage"/checkpoints/. /srv/checkpoints/
  cp "$stage"/vllm-wheel/*.whl /srv/wheels/
  chmod -R a+rX /srv
  /usr/bin/python3 -m venv /tmp/ctl
  /tmp/ctl/bin/pip install -q --no-index --find-links "$stage/wheels-control" -r "$stage/control-requirements.txt"
  /tmp/ctl/bin/ansible-playbook --version | head -1
  ls /srv/mirror /srv/deps /srv/checkpoints /srv/wheels
  git --git-dir /srv/mirror/vllm.git rev-parse 'v0.22.0^{commit}'
}

playbook() {
  (cd "$ROOT" && PATH="/tmp/ctl/bin:$PATH" "${USER_COMMAND[@]}" "$@")
}

precompiled() {
  machine
  gpu_state before
  local n
  for n in 1 2; do
    echo "${USER_COMMAND[*]}" >"$RES/run$n-command.txt"
    { time playbook; } >"$RES/run$n.log" 2>&1 || { gpu_state "after-run$n"; tail -60 "$RES/run$n.log"; return 1; }
    gpu_state "after-run$n"
  done
  cp /opt/vllm/logs/build-*.log "$RES/" 2>/dev/null || true
  grep -A1 'PLAY RECAP' "$RES"/run*.log
  cat "$RES/gpu-after-run2.txt"
}

# The vision-language serve check (issue 15): serve_check.yml exactly as a user runs it, three
# times, then the user's script with the release's Python, then the facts of every shape.
SERVE_COMMAND=(ansible-playbook -v -i inventory/gpu-validation/hosts.yml playbooks/serve_check.yml -l gpu_hosts)
vl() {
  local image=/srv/checkpoints/test-image.png rc name model
  local extra="{\"vllm_source_serve_check_images\": [\"$image\"], \"vllm_source_serve_check_prompt\": \"What is in the picture?\"}"
  for name in unquantized fp8 refused; do
    local -a args=(-e "$extra")
    case "$name" in
      unquantized) args+=(-e vllm_source_serve_check_model=/srv/checkpoints/tiny-qwen2_5-vl
                          -e '{"vllm_source_serve_check_unquantized": true}') ;;
      fp8) args+=(-e vllm_source_serve_check_model=/srv/checkpoints/tiny-qwen2_5-vl-modelopt-fp8) ;;
      refused) args+=(-e vllm_source_serve_check_model=/srv/checkpoints/vl-shapes/fp8-vision-quantized) ;;
    esac
    printf '%q ' "${SERVE_COMMAND[@]}" "${args[@]}" >"$RES/vl-$name-command.txt"
    rc=0
    { time (cd "$ROOT" && PATH="/tmp/ctl/bin:$PATH" "${SERVE_COMMAND[@]}" "${args[@]}"); } >"$RES/vl-$name.log" 2>&1 || rc=$?
    echo "$rc" >"$RES/vl-$name.rc"
    gpu_state "after-vl-$name"
    echo "== vl $name: rc $rc"; grep -E '"msg"|fatal:' "$RES/vl-$name.log" | tail -3 || true
  done
  local python=/opt/vllm/current/venv/bin/python
  model=/srv/checkpoints/tiny-qwen2_5-vl-modelopt-fp8
  local -a script=(env VLLM_USE_FLASHINFER_SAMPLER=0 HF_HUB_OFFLINE=1 "$python"
    scripts/qwen/run_qwen2_5_vl_vllm_modelopt.py --model "$model" --image "$image"
    --prompt "What is in the picture?")
  printf '%q ' "${script[@]}" >"$RES/vl-script-command.txt"
  rc=0
  (cd "$ROOT" && "${script[@]}") >"$RES/vl-script.log" 2>&1 || rc=$?
  echo "$rc" >"$RES/vl-script.rc"
  gpu_state after-vl-script
  echo "== script: rc $rc"; tail -4 "$RES/vl-script.log"
  (cd "$ROOT" && HF_HUB_OFFLINE=1 "$python" tests/fixtures/vl_facts.py "$ROOT" /srv/checkpoints/vl-shapes) \
    >"$RES/vl-facts.log" 2>&1 || true
  grep '^FACTS ' "$RES/vl-facts.log" | sed 's/^FACTS //' >"$RES/vl-facts.json" || true
  wc -c "$RES/vl-facts.json"
}

start() {
  rm -f "$WORK/precompiled.rc"
  setsid nohup bash -c "bash '$ROOT/tools/gpu-validation/run.sh' precompiled vl >'$WORK/precompiled.log' 2>&1; \
    echo \$? >'$WORK/precompiled.rc'" </dev/null >/dev/null 2>&1 &
  echo $! >"$WORK/precompiled.pid"
  echo "precompiled run started in session $(cat "$WORK/precompiled.pid")"
}

wait_for() {
  local deadline=$(( $(date +%s) + $1 ))
  while [ ! -f "$WORK/precompiled.rc" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 5; done
  if [ -f "$WORK/precompiled.rc" ]; then echo "precompiled run ended with $(cat "$WORK/precompiled.rc")"; fi
  tail -25 "$WORK/precompiled.log"
  grep -E '^TASK \[' "$RES"/run*.log 2>/dev/null | tail -2 || true
}

results() {
  tar -C "$RES" -czf "$OUT/results.tar.gz" .
  tar -tzf "$OUT/results.tar.gz"
}

progress() {
  tail -2 "$WORK/full/samples.txt" 2>/dev/null || true
  grep -E '^(TASK|fatal|PLAY RECAP)' "$WORK/full/run.log" | tail -3 || true
}

# Every 5 s: elapsed s, used GiB (MemTotal - MemAvailable), CPU busy % since the last sample,
# latest ninja step of the full build's log.
sample() {
  local start prev_total=0 prev_idle=0
  start=$(date +%s)
  while sleep 5; do
    local used busy log step total idle
    used=$(awk '/MemTotal/{t=$2} /MemAvailable/{a=$2} END{printf "%.1f", (t-a)/1048576}' /proc/meminfo)
    read -r total idle < <(awk '/^cpu /{t=0; for (i=2; i<=NF; i++) t+=$i; print t, $5+$6}' /proc/stat)
    busy=$(awk -v t="$total" -v i="$idle" -v pt="$prev_total" -v pi="$prev_idle" \
      'BEGIN{ if (t > pt) printf "%.0f", 100 * (1 - (i - pi) / (t - pt)); else print 0 }')
    prev_total=$total; prev_idle=$idle
    log=$(ls -t /opt/vllm-full/logs/build-*.log 2>/dev/null | head -1 || true)
    step=$( [ -n "$log" ] && grep -oE '\[[0-9]+/[0-9]+\]' "$log" | tail -1 || true)
    echo "$(( $(date +%s) - start )) ${used} ${busy} ${step:-}"
  done
}

full_start() {
  mkdir -p "$WORK/full"
  local args=(-e vllm_source_build_mode=full -e vllm_source_prefix=/opt/vllm-full
    -e vllm_source_user=vllmfull -e vllm_source_group=vllmfull
    -e vllm_source_profile_path=/etc/profile.d/vllm-source-full.sh
    -e '{"vllm_source_smoke_test": false}')
  local mem_gib cpus
  mem_gib=$(awk '/MemTotal/{print int($2/1048576)}' /proc/meminfo); cpus=$(nproc)
  if (( mem_gib < 4 * cpus )); then
    # Some of these machines report a small MemTotal that grows as memory is used; the role
    # would size MAX_JOBS from it. The machine's real memory is 8 GiB a core.
    args+=(-e "vllm_source_max_jobs=${cpus}")
  fi
  echo "${USER_COMMAND[*]} ${args[*]}  # MemTotal at start: ${mem_gib} GiB, ${cpus} CPUs" >"$WORK/full/command.txt"
  setsid nohup bash -c "$(declare -f sample); sample" >"$WORK/full/samples.txt" 2>&1 </dev/null &
  echo $! >"$WORK/full/sampler.pid"
  setsid nohup bash -c "$(declare -f playbook); USER_COMMAND=($(printf '%q ' "${USER_COMMAND[@]}")); \
    ROOT='$ROOT'; time playbook $(printf '%q ' "${args[@]}")" >"$WORK/full/run.log" 2>&1 </dev/null &
  echo $! >"$WORK/full/playbook.pid"
  for _ in $(seq 1 60); do
    ls /opt/vllm-full/logs/build-*.log >/dev/null 2>&1 && break
    grep -q 'PLAY RECAP' "$WORK/full/run.log" 2>/dev/null && break
    sleep 5
  done
  tail -5 "$WORK/full/run.log"
}

collect() {
  cp "$WORK/full/command.txt" "$RES/full-command.txt"
  cp "$WORK/full/samples.txt" "$RES/full-samples.txt"
  tail -c 3000000 "$WORK/full/run.log" >"$RES/full-run.log"
  local log; log=$(ls -t /opt/vllm-full/logs/build-*.log | head -1)
  xz -T4 -c "$log" >"$RES/full-build.log.xz"
  python3 "$ROOT/bench/build_time" "$log" | tee "$RES/full-build-time.txt"
  tail -3 "$RES/full-samples.txt"
}

# The processes of this validation: the full build's playbook and sampler sessions, every
# process of the role's service users (the async build: ninja, nvcc), any vLLM process.
# Listed, then ended by id.
cleanup() {
  local pids=() pid sid
  for f in "$WORK"/full/*.pid "$WORK"/precompiled.pid; do
    [ -f "$f" ] || continue
    sid=$(cat "$f")
    while read -r pid; do pids+=("$pid"); done < <(ps -eo pid=,sid= | awk -v s="$sid" '$2 == s {print $1}')
  done
  while read -r pid; do pids+=("$pid"); done < <(pgrep -f 'VLLM|EngineCore|vllm\.entrypoints' || true)
  # The build runs under Ansible's async wrapper, which starts a session of its own: its
  # processes (pip, cmake, ninja, nvcc) are found by the service users they run as.
  while read -r pid; do pids+=("$pid"); done < <(pgrep -u vllmfull,vllm || true)
  {
    echo "## processes of this validation before cleanup"
    if [ ${#pids[@]} -gt 0 ]; then ps -o pid,ppid,etime,args -p "$(IFS=,; echo "${pids[*]}")" || true; else echo none; fi
    [ ${#pids[@]} -eq 0 ] || kill -TERM "${pids[@]}" 2>/dev/null || true
    sleep 3
    [ ${#pids[@]} -eq 0 ] || kill -KILL "${pids[@]}" 2>/dev/null || true
    echo "## after"
    if [ ${#pids[@]} -gt 0 ]; then ps -o pid,args -p "$(IFS=,; echo "${pids[*]}")" || echo "none left"; else echo none; fi
  } | tee "$RES/cleanup.txt"
  gpu_state final
}

for step in "$@"; do
  case "$step" in
    take=*) take "${step#take=}" ;;
    setup) setup ;;
    precompiled) precompiled ;;
    vl) vl ;;
    start) start ;;
    wait=*) wait_for "${step#wait=}" ;;
    results) results ;;
    full-start) full_start ;;
    progress) progress ;;
    collect) collect ;;
    cleanup) cleanup ;;
    *) sed -n 2,20p "$0"; exit 2 ;;
  esac
done
