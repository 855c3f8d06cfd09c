"""bench/build_time's reading of a build log (the format build-vllm.sh.j2 writes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ansible.module_utils.vllm_fleet_buildlog import parse_line, read_log, summary

ROOT = Path(__file__).resolve().parents[2]

# The shape of a CUDA build's log: header lines, CMake configure output, then ninja steps.
RUNNING = """\
[+     0.0s] == vllm_source build 1f2e3d4c5b6a7980 started 2026-11-28T06:00:00Z on 32 CPUs
[+     0.0s] == build mode full: VLLM_TARGET_DEVICE=cuda MAX_JOBS=32 NVCC_THREADS=1 \
TORCH_CUDA_ARCH_LIST=9.0
[+     2.1s] Processing /opt/vllm/extern/vllm
[+    12.0s]   -- The CXX compiler identification is GNU 13.3.0
[+    31.0s]   [1/4] Building CXX object CMakeFiles/_C.dir/csrc/cache_kernels.cpp.o
[+    40.5s]   [2/4] Building CUDA object CMakeFiles/_C.dir/csrc/attention/a.cu.o
[+    61.0s]   [3/4] Building CUDA object CMakeFiles/_C.dir/csrc/quantization/b.cu.o
"""


def test_stamps_are_split_from_the_text() -> None:
    assert parse_line("[+   12.3s] hello\n") == (12.3, "hello")
    assert parse_line("plain line\n") == (None, "plain line")


def test_a_running_build() -> None:
    # pip -v indents the backend's output: the ninja lines above start with two spaces.
    lines = [line.replace("]   [", "] [") for line in RUNNING.splitlines(keepends=True)]
    figures = summary(read_log(lines))
    assert figures["status"] == "running"
    assert figures["mode"] == "full"
    assert figures["cpus"] == 32
    assert figures["max_jobs"] == "32"
    assert figures["arch_list"] == "9.0"
    assert figures["steps_done"] == 3
    assert figures["steps_total"] == 4
    assert figures["cuda_objects_compiled"] == 2
    assert figures["first_step_at_s"] == 31.0
    assert figures["elapsed_s"] == 61.0
    assert figures["steps_per_min"] == 6.0  # 3 steps in the 30 s since the first
    assert figures["quarter_times_s"] == {"25%": 31.0, "50%": 40.5, "75%": 61.0, "100%": None}


def test_indented_ninja_lines_are_counted_too() -> None:
    figures = summary(read_log(RUNNING.splitlines(keepends=True)))
    assert figures["steps_done"] == 3


def test_finished_and_failed_builds() -> None:
    done = RUNNING + "[+   70.0s] == vllm_source build 1f2e3d4c5b6a7980 finished in 71 s\n"
    assert summary(read_log(done.splitlines()))["status"] == "finished"
    assert summary(read_log(done.splitlines()))["elapsed_s"] == 71.0
    failed = RUNNING + "[+   70.0s] == vllm_source build 1f2e3d4c5b6a7980 FAILED after 70 s\n"
    assert summary(read_log(failed.splitlines()))["status"] == "failed"


def test_bench_build_time_prints_the_figures(tmp_path: Path) -> None:
    log = tmp_path / "build-1f2e3d4c5b6a7980.log"
    log.write_text(RUNNING)
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "build_time"), str(log)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "  steps_done: 3" in out
    assert "  steps_total: 4" in out
    assert '  status: "running"' in out
