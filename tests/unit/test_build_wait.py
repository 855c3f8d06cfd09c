"""vllm_build_wait: a finished job's result, a live build, and a build that died; each return
with the build's progress read from its log."""

from __future__ import annotations

import json
import lzma
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
import vllm_build_wait
from ansible.module_utils.common import warnings as _warnings
from ansible.module_utils.testing import patch_module_args
from vllm_build_wait import build_alive, job_result

BOOT = "b0b0b0b0-0000-4000-8000-000000000002"
GPU_RUNS = Path(__file__).resolve().parents[2] / "docs" / "gpu-validation"


@pytest.fixture(autouse=True)
def _no_warnings(monkeypatch) -> None:
    monkeypatch.setattr(_warnings, "_global_warnings", {})


def run(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        vllm_build_wait.main()
    return json.loads(capsys.readouterr().out)


def test_a_started_record_is_no_result_and_a_module_result_is(tmp_path: Path) -> None:
    results = tmp_path / "job"
    results.write_text('{"started": 1, "finished": 0, "ansible_job_id": "j1"}')
    assert job_result(str(results)) is None
    results.write_text('{"rc": 0, "stdout": "/w/vllm.whl", "changed": true}')
    assert job_result(str(results))["stdout"] == "/w/vllm.whl"
    results.write_text('{"rc": 0, "std')  # being written
    assert job_result(str(results)) is None


def test_a_live_build_of_this_boot_is_alive_whoever_started_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "k.pid"
    pid_file.write_text(f"{os.getpid()} {BOOT}\n")
    old = time.time() - 3600
    os.utime(pid_file, (old, old))  # an earlier run's build that this job's script waits for
    assert build_alive(str(pid_file), time.time(), 120, time.time(), BOOT) == ""


def test_a_build_that_died_or_ran_before_a_reboot_is_dead(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    pid_file = tmp_path / "k.pid"
    since = time.time() - 5
    pid_file.write_text(f"{gone.pid} {BOOT}\n")
    assert "is gone: it was killed" in build_alive(str(pid_file), since, 120, time.time(), BOOT)
    pid_file.write_text(f"{os.getpid()} {BOOT}\n")
    other = "c1c1c1c1-0000-4000-8000-000000000003"
    assert "earlier boot" in build_alive(str(pid_file), since, 120, time.time(), other)


def test_no_build_within_the_grace_is_dead_but_a_starting_one_is_not(tmp_path: Path) -> None:
    missing = str(tmp_path / "none.pid")
    now = time.time()
    assert build_alive(missing, now - 10, 120, now, BOOT) == ""
    assert "within 120 s" in build_alive(missing, now - 200, 120, now, BOOT)


def test_the_module_returns_the_finished_result_and_fails_a_failed_one(tmp_path, capsys) -> None:
    results, pid_file = tmp_path / "job", tmp_path / "k.pid"
    args = {"results_file": str(results), "pid_file": str(pid_file), "log": "/l", "wait": 1,
            "poll": 1}  # fmt: skip
    results.write_text(json.dumps({"rc": 0, "stdout": "a\n/w/vllm.whl", "stderr": ""}))
    out = run(args, capsys)
    assert out["finished"] and out["stdout_lines"][-1] == "/w/vllm.whl" and out["changed"]
    assert out["progress"] is None  # no log at /l
    results.write_text(json.dumps({"rc": 1, "stdout": "", "stderr": "build failed"}))
    out = run(args, capsys)
    assert out["failed"] and out["finished"] and out["stderr"] == "build failed"
    assert "progress" in out and out["progress"] is None


def test_the_module_fails_at_once_for_a_dead_build_and_waits_for_a_live_one(
    tmp_path, capsys
) -> None:
    results, pid_file = tmp_path / "job", tmp_path / "k.pid"
    results.write_text('{"started": 1, "finished": 0}')
    args = {"results_file": str(results), "pid_file": str(pid_file), "log": "/opt/vllm/logs/b.log",
            "wait": 1, "poll": 1, "settle": 1}  # fmt: skip
    pid_file.write_text(f"{os.getpid()}\n")  # this process: a live build
    out = run(args, capsys)
    assert (out["changed"], out["finished"], out.get("failed", False)) == (False, False, False)
    gone = subprocess.Popen(["true"])
    gone.wait()
    pid_file.write_text(f"{gone.pid}\n")
    out = run(args, capsys)
    assert out["failed"] and "stopped without finishing" in out["msg"], out
    assert "/opt/vllm/logs/b.log" in out["msg"]


def test_a_build_whose_result_comes_just_after_its_pid_went_is_not_dead(tmp_path, capsys) -> None:
    """The script has ended and its pid is gone, but the command module and async_wrapper
    write its result a moment later (on a busy 2-CPU host, seconds): that is a finished build,
    which the wait takes once the result is there, not a killed one."""
    results, pid_file = tmp_path / "job", tmp_path / "k.pid"
    results.write_text('{"started": 1, "finished": 0}')
    gone = subprocess.Popen(["true"])
    gone.wait()
    pid_file.write_text(f"{gone.pid}\n")
    late = threading.Timer(
        1.5, results.write_text, [json.dumps({"rc": 0, "stdout": "/w/vllm.whl", "stderr": ""})]
    )
    late.start()
    args = {"results_file": str(results), "pid_file": str(pid_file), "log": "/opt/vllm/logs/b.log",
            "wait": 1, "poll": 1, "settle": 10}  # fmt: skip
    out = run(args, capsys)
    late.join()
    assert out["finished"] and not out.get("failed"), out
    assert out["stdout_lines"] == ["/w/vllm.whl"]


# --- the progress every return carries, read from logs the role wrote on GPU hosts ----------


def a_log(tmp_path: Path, run: str, name: str) -> str:
    """A copy of a recorded build log, as the build writes it (written just now)."""
    src = GPU_RUNS / run / name
    data = src.read_bytes()
    log = tmp_path / "build.log"
    log.write_bytes(lzma.decompress(data) if src.suffix == ".xz" else data)
    return str(log)


def test_a_running_builds_return_carries_its_progress(tmp_path, capsys) -> None:
    results, pid_file = tmp_path / "job", tmp_path / "k.pid"
    results.write_text('{"started": 1, "finished": 0}')
    pid_file.write_text(f"{os.getpid()}\n")  # this process: a live build
    log = a_log(tmp_path, "h200x1-2026-12-01", "full-build.log.xz")  # stopped at 109/393
    out = run({"results_file": str(results), "pid_file": str(pid_file), "log": log,
               "wait": 1, "poll": 1}, capsys)  # fmt: skip
    assert (out["finished"], out.get("failed", False)) == (False, False)
    progress = out["progress"]
    assert (progress["key"], progress["mode"], progress["stage"]) == (
        "c67aee6a3d23ae2d",
        "full",
        "compiling",
    )
    assert (progress["step"], progress["total"], progress["percent"]) == (109, 393, 27.7)
    assert progress["steps_per_min"] == 8.8 and progress["eta_s"] > 0
    assert progress["elapsed_s"] >= 855.0  # the last stamp, and on since the log's last write
    assert progress["summary"].startswith(
        "build c67aee6a3d23ae2d (full): compiling 109/393 (27.7%), 8.8 steps/min, about "
    )


def test_a_finished_failed_or_dead_builds_return_carries_its_progress(tmp_path, capsys) -> None:
    results, pid_file = tmp_path / "job", tmp_path / "k.pid"
    log = a_log(tmp_path, "h200x1-2026-12-02c", "build-83d179e78c2342c6.log")
    args = {"results_file": str(results), "pid_file": str(pid_file), "log": log, "wait": 1,
            "poll": 1, "settle": 1}  # fmt: skip
    finished = "build 83d179e78c2342c6 (precompiled): finished in 44 s"
    results.write_text(json.dumps({"rc": 0, "stdout": "/w/vllm.whl", "stderr": ""}))
    out = run(args, capsys)
    assert out["finished"] and not out.get("failed")
    assert out["progress"]["stage"] == "finished" and out["progress"]["summary"] == finished
    results.write_text(json.dumps({"rc": 1, "stdout": "", "stderr": "build failed"}))
    out = run(args, capsys)
    assert out["failed"] and out["progress"]["summary"] == finished
    # A build that died: the log says how far it got.
    log = a_log(tmp_path, "h200x2-2026-11-28", "full-build.log.xz")
    results.write_text('{"started": 1, "finished": 0}')
    gone = subprocess.Popen(["true"])
    gone.wait()
    pid_file.write_text(f"{gone.pid}\n")
    out = run({**args, "log": log}, capsys)
    assert out["failed"] and "stopped without finishing" in out["msg"]
    assert out["progress"]["summary"] == (
        "build 0ddf074ce686cbc9 (full): compiling 167/393 (42.5%), 15.9 steps/min, "
        "about 14 min left, 11 min 36 s in"
    )
    results.unlink()
    out = run({**args, "log": log}, capsys)
    assert out["failed"] and "results file" in out["msg"]
    assert out["progress"]["step"] == 167


def test_a_build_that_ran_without_its_compiler_cache_warns(tmp_path, capsys) -> None:
    """The build went on uncached (the cache failed its health check): the wait says so, and
    says nothing when no cache was wanted (vllm_source_compiler_cache none)."""
    results, log = tmp_path / "job", tmp_path / "build.log"
    log.write_text(
        "[+     0.0s] == vllm_source build 0ddf074ce686cbc9 started 2026-12-02T10:00:00Z "
        "on 16 CPUs\n"
        "[+     0.1s] == compiler cache off: sccache failed its health check (sccache: error: "
        "Server startup failed): building without a compiler cache\n"
        "[+    60.0s] == vllm_source build 0ddf074ce686cbc9 finished in 60 s\n"
    )
    results.write_text(json.dumps({"rc": 0, "stdout": "/w/vllm.whl", "stderr": ""}))
    args = {"results_file": str(results), "pid_file": str(tmp_path / "k.pid"), "log": str(log),
            "wait": 1, "poll": 1}  # fmt: skip
    out = run({**args, "compiler_cache": "sccache"}, capsys)
    assert out["finished"] and not out.get("failed")
    assert out["progress"]["compiler_cache"]["off_reason"].startswith("sccache failed its health")
    assert len(out["warnings"]) == 1
    warning = str(out["warnings"][0])
    assert "without the compiler cache sccache: sccache failed its health check" in warning
    _warnings._global_warnings.clear()
    out = run({**args, "compiler_cache": "none"}, capsys)
    assert not out.get("warnings")
