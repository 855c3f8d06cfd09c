"""The build log's format (vllm_fleet_buildlog): written by build-vllm.sh.j2's functions, read
by bench/build_time. tests/unit/test_build_script.py runs the rendered script itself."""

from __future__ import annotations

import json
import lzma
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from ansible.module_utils.vllm_fleet_buildlog import (
    LINES,
    MODE_ENV,
    STARTED_FORMAT,
    cache_counts,
    cache_figures,
    cache_summary,
    format_line,
    parse_line,
    parse_text,
    read_log,
    shell_functions,
    stamped,
    summary,
)

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
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "  steps_done: 3" in out
    assert "  steps_total: 4" in out
    assert '  status: "running"' in out


# --- the format: one definition, written by the script, read here ------------------------

VALUES = {
    "started": {"key": "1f2e3d4c5b6a7980", "started": "2026-11-28T06:00:00Z", "cpus": 32},
    "mode": {
        "mode": "full",
        "VLLM_TARGET_DEVICE": "cuda",
        "MAX_JOBS": "32",
        "NVCC_THREADS": "2",
        "TORCH_CUDA_ARCH_LIST": "9.0 10.0+PTX",  # a list with spaces is still read whole
    },
    "max_jobs": {
        "max_jobs_reason": "32 CPUs, 251.5 GiB RAM at 6 GiB per compile job -> MAX_JOBS=32 "
        "(CPU-bound)"
    },
    "parallelism": {"ninja_jobs": 16, "threads_per_job": 2, "compile_threads": 32, "cpus": 32},
    "sample": {"busy_pct": 93, "cpus": 32, "used_mib": 40960},
    "cache": {"launcher": "sccache", "when": "before", "stats": '{"stats": {}}'},
    "cache_off": {"reason": "vllm_source_compiler_cache is none"},
    "finished": {"key": "1f2e3d4c5b6a7980", "duration_s": 4711},
    "failed": {"key": "1f2e3d4c5b6a7980", "duration_s": 0},
}


def test_every_line_kind_reads_back_what_was_written() -> None:
    assert set(VALUES) == set(LINES)
    for kind, values in VALUES.items():
        assert parse_text(format_line(kind, **values)) == (kind, values)
    assert parse_text("Successfully built vllm") is None
    assert parse_text("  [3/4] Building CUDA object x.cu.o") is None


def test_stamps_read_back_to_a_tenth_of_a_second() -> None:
    for elapsed, read in ((0.0, 0.0), (12.34, 12.3), (4711.06, 4711.1), (123456.7, 123456.7)):
        assert parse_line(stamped(elapsed, "text") + "\n") == (read, "text")
    assert stamped(12.3, "x") == "[+    12.3s] x"


def test_read_log_exposes_every_field_of_the_scripts_lines() -> None:
    log = [stamped(0.0, format_line(kind, **VALUES[kind])) for kind in LINES if kind != "failed"]
    facts = read_log(log)
    assert facts["key"] == "1f2e3d4c5b6a7980"
    assert (facts["started"], facts["cpus"]) == ("2026-11-28T06:00:00Z", 32)
    assert facts["mode"] == "full"
    assert facts["env"] == {name: VALUES["mode"][name] for name in MODE_ENV}
    assert facts["max_jobs_reason"] == VALUES["max_jobs"]["max_jobs_reason"]
    assert (facts["status"], facts["duration_s"]) == ("finished", 4711)
    assert summary(facts)["arch_list"] == "9.0 10.0+PTX"
    assert (facts["ninja_jobs"], facts["threads_per_job"], facts["compile_threads"]) == (16, 2, 32)
    assert (summary(facts)["ninja_jobs"], summary(facts)["compile_threads"]) == (16, 32)
    assert facts["samples"] == [(0.0, 93, 40960)]


def test_samples_give_the_busy_share_while_compiling_and_the_memory_per_job() -> None:
    lines = [
        (
            0.0,
            format_line("parallelism", ninja_jobs=4, threads_per_job=1, compile_threads=4, cpus=4),
        ),
        (5.0, format_line("sample", busy_pct=20, cpus=4, used_mib=2048)),  # configuring
        (10.0, "  [1/3] Building CUDA object a.cu.o"),
        (15.0, format_line("sample", busy_pct=96, cpus=4, used_mib=10240)),
        (20.0, format_line("sample", busy_pct=90, cpus=4, used_mib=14336)),
        (25.0, "  [3/3] Building CUDA object c.cu.o"),
        (30.0, format_line("sample", busy_pct=10, cpus=4, used_mib=4096)),  # linking the wheel
    ]
    figures = summary(read_log([stamped(at, text) for at, text in lines]))
    assert figures["cpu_busy_compiling_pct"] == 93.0  # only the samples between the steps
    assert figures["mem_used_peak_gib"] == 14.0
    assert figures["mem_per_job_gib"] == 3.0  # (14 GiB - 2 GiB at the first sample) / 4 jobs
    quiet = summary(read_log([stamped(at, text) for at, text in lines if "sample" not in text]))
    assert quiet["cpu_busy_compiling_pct"] is None and quiet["mem_per_job_gib"] is None


def run_function(kind: str, *args: str, **env: str) -> str:
    """What the build script's log_<kind> prints, run by bash."""
    done = subprocess.run(
        ["bash", "-c", f'{shell_functions()}\nset -euo pipefail\nlog_{kind} "$@"', "bash", *args],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_each_shell_function_writes_what_format_line_writes() -> None:
    mode = VALUES["mode"]
    assert run_function("mode", "full", **{n: mode[n] for n in MODE_ENV}) == (
        format_line("mode", **mode) + "\n"
    )
    reason = VALUES["max_jobs"]["max_jobs_reason"]
    assert (
        run_function("max_jobs", reason) == format_line("max_jobs", max_jobs_reason=reason) + "\n"
    )
    cpus = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout)
    assert run_function("sample", "93", "40960") == (
        format_line("sample", busy_pct=93, cpus=cpus, used_mib=40960) + "\n"
    )
    for kind in ("finished", "failed"):
        assert run_function(kind, "1f2e3d4c5b6a7980", "4711") == (
            format_line(kind, key="1f2e3d4c5b6a7980", duration_s=4711) + "\n"
        )
    # The parallelism vLLM's setup.py gives ninja: MAX_JOBS // NVCC_THREADS jobs.
    cpus = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout)
    for max_jobs, threads, jobs, total in (("32", "2", 16, 32), ("7", "2", 3, 6), ("8", "0", 8, 8)):
        line = run_function("parallelism", MAX_JOBS=max_jobs, NVCC_THREADS=threads)
        assert parse_text(line.rstrip("\n")) == (
            "parallelism",
            {
                "ninja_jobs": jobs,
                "threads_per_job": max(1, int(threads)),
                "compile_threads": total,
                "cpus": cpus,
            },
        )
    # The start line takes the time and the CPUs itself; an unset variable logs as empty.
    kind, values = parse_text(run_function("started", "k1").rstrip("\n"))
    assert kind == "started" and values["key"] == "k1"
    assert datetime.strptime(values["started"], STARTED_FORMAT)
    assert values["cpus"] == int(subprocess.run(["nproc"], capture_output=True, text=True).stdout)
    assert parse_text(run_function("mode", "precompiled").rstrip("\n")) == (
        "mode",
        {"mode": "precompiled", **{name: "" for name in MODE_ENV}},
    )


def test_shell_stamp_lines_writes_what_parse_line_reads() -> None:
    done = subprocess.run(
        ["bash", "-c", f"{shell_functions()}\nprintf 'one\\n  [1/2] two\\n' | stamp_lines"],
        capture_output=True,
        text=True,
        check=True,
    )
    read = [parse_line(line) for line in done.stdout.splitlines()]
    assert [text for _, text in read] == ["one", "  [1/2] two"]
    assert all(elapsed is not None and 0 <= elapsed < 5 for elapsed, _ in read)


def test_a_format_with_a_percent_sign_stays_literal_in_printf(monkeypatch) -> None:
    monkeypatch.setitem(LINES, "max_jobs", "== MAX_JOBS (100%): {max_jobs_reason}")
    assert run_function("max_jobs", "2 %s") == "== MAX_JOBS (100%): 2 %s\n"


def test_a_format_the_shell_cannot_quote_is_refused(monkeypatch) -> None:
    monkeypatch.setitem(LINES, "max_jobs", "== MAX_JOBS's reason: {max_jobs_reason}")
    with pytest.raises(ValueError, match="single-quoted printf format"):
        shell_functions()


# --- logs the role wrote on real GPU hosts -----------------------------------------------

GPU_RUNS = ROOT / "docs" / "gpu-validation"


def recorded_figures(path: Path) -> dict:
    """bench/build_time's output kept next to a log: '  name: <json>' lines."""
    lines = path.read_text().splitlines()[1:]
    return {k.strip(): json.loads(v) for k, v in (line.split(": ", 1) for line in lines)}


# The figures that grew between the copy of the log and bench/build_time's reading of it on
# the host (the build was still running).
GREW = {"elapsed_s", "steps_done", "cuda_objects_compiled"}


@pytest.mark.parametrize("run, grew", [("h200x1-2026-12-01", GREW), ("h200x2-2026-11-28", set())])
def test_recorded_full_builds_read_as_bench_build_time_printed_them(run: str, grew: set) -> None:
    text = lzma.decompress((GPU_RUNS / run / "full-build.log.xz").read_bytes()).decode()
    figures = summary(read_log(text.splitlines()))
    printed = recorded_figures(GPU_RUNS / run / "full-build-time.txt")
    assert {k: v for k, v in figures.items() if k in printed and k not in grew} == {
        k: v for k, v in printed.items() if k not in grew
    }
    # Logs from before the parallelism line: its figures are unknown, not guessed.
    new = {
        "ninja_jobs",
        "compile_threads",
        "cpu_busy_compiling_pct",
        "mem_used_peak_gib",
        "mem_per_job_gib",
    }
    assert set(figures) - set(printed) == new | {"compiler_cache"}
    assert all(figures[name] is None for name in new)
    # ... and from before the compiler cache's lines: no cache, no reason, no rate.
    assert set(figures["compiler_cache"].values()) == {None}
    assert all(figures[k] <= printed[k] for k in grew)


def test_a_recorded_precompiled_build_reads_whole() -> None:
    log = GPU_RUNS / "h200x1-2026-12-01" / "build-83d179e78c2342c6.log.xz"
    facts = read_log(lzma.decompress(log.read_bytes()).decode().splitlines())
    assert facts["key"] == "83d179e78c2342c6"
    assert (facts["mode"], facts["status"], facts["duration_s"]) == ("precompiled", "finished", 50)
    assert facts["cpus"] == 16
    assert facts["env"] == {
        "VLLM_TARGET_DEVICE": "cuda",
        "MAX_JOBS": "16",
        "NVCC_THREADS": "1",
        "TORCH_CUDA_ARCH_LIST": "9.0",
    }
    assert facts["max_jobs_reason"] == (
        "16 CPUs, 125.8 GiB RAM at 4 GiB per compile job -> MAX_JOBS=16 (CPU-bound)"
    )


# What the tools printed (sccache 0.16.0 --show-stats --stats-format json; ccache 4.14.2
# --print-stats, joined as the build script joins it), trimmed to the counters read.
SCCACHE_AFTER = (
    '{"stats": {"compile_requests": 400, "cache_errors": {"counts": {"CUDA": 1}, '
    '"adv_counts": {}}, "cache_hits": {"counts": {"C/C++": 120, "CUDA": 252}, "adv_counts": '
    '{}}, "cache_misses": {"counts": {"CUDA": 25}, "adv_counts": {}}, "cache_timeouts": 0, '
    '"cache_read_errors": 0, "cache_write_errors": 2}, "cache_location": "Local disk", '
    '"version": "0.16.0"}'
)
SCCACHE_BEFORE = (
    '{"stats": {"compile_requests": 0, "cache_errors": {"counts": {}, "adv_counts": {}}, '
    '"cache_hits": {"counts": {}, "adv_counts": {}}, "cache_misses": {"counts": {}, '
    '"adv_counts": {}}, "cache_timeouts": 0, "cache_read_errors": 0, "cache_write_errors": 0}}'
)
CCACHE_STATS = (
    "autoconf_test=0 cache_miss=1 direct_cache_hit=3 direct_cache_miss=2 internal_error=0 "
    "local_storage_hit=4 preprocessed_cache_hit=1 preprocessed_cache_miss=1 "
    "remote_storage_error=0 remote_storage_timeout=0 "
)


def test_cache_counts_read_each_tools_statistics() -> None:
    assert cache_counts("sccache", SCCACHE_AFTER) == {"hits": 372, "misses": 25, "errors": 3}
    assert cache_counts("sccache", SCCACHE_BEFORE) == {"hits": 0, "misses": 0, "errors": 0}
    assert cache_counts("ccache", CCACHE_STATS) == {"hits": 4, "misses": 1, "errors": 0}
    # A server that was gone prints an error, not statistics.
    assert cache_counts("sccache", "sccache: error: Connection refused") is None
    assert cache_counts("ccache", "") is None and cache_counts("sccache", None) is None


def cache_log(*lines: str) -> list:
    return [stamped(float(at), text) for at, text in enumerate(lines)]


def test_the_hit_rate_is_this_builds_after_less_before() -> None:
    facts = read_log(cache_log(
        format_line("cache", launcher="sccache", when="before", stats=SCCACHE_BEFORE),
        format_line("cache", launcher="sccache", when="after", stats=SCCACHE_AFTER),
        format_line("finished", key="k", duration_s=10),
    ))  # fmt: skip
    figures = summary(facts)["compiler_cache"]
    assert figures == {"launcher": "sccache", "hits": 372, "misses": 25, "errors": 3,
                       "hit_rate_pct": 93.7, "off_reason": None}  # fmt: skip
    assert (
        cache_summary(figures) == "compiler cache sccache: 93.7% hits (372 of 397), 3 cache errors"
    )
    # A server shared with an earlier build: only this build's requests count.
    shared = read_log(cache_log(
        format_line("cache", launcher="ccache", when="before", stats=CCACHE_STATS),
        format_line("cache", launcher="ccache", when="after", stats=CCACHE_STATS.replace(
            "cache_miss=1 ", "cache_miss=3 ")),
    ))  # fmt: skip
    assert cache_figures(shared)["hits"] == 0 and cache_figures(shared)["misses"] == 2
    assert cache_figures(shared)["hit_rate_pct"] == 0.0


def test_a_build_without_a_cache_says_why_and_one_without_stats_has_no_rate() -> None:
    off = cache_figures(
        read_log(cache_log(format_line("cache_off", reason="ccache is not on PATH")))
    )
    assert off["launcher"] is None and off["off_reason"] == "ccache is not on PATH"
    assert cache_summary(off) == "compiler cache off: ccache is not on PATH"
    gone = cache_figures(read_log(cache_log(
        format_line("cache", launcher="sccache", when="before", stats=SCCACHE_BEFORE),
        format_line("cache", launcher="sccache", when="after", stats="sccache: error: gone"),
    )))  # fmt: skip
    assert (
        gone["hit_rate_pct"] is None
        and cache_summary(gone) == "compiler cache sccache: no statistics"
    )
    assert cache_summary(cache_figures(read_log([]))) is None  # nothing compiled: nothing said
