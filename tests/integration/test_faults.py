"""Faults a provisioning run must survive: the host keeps a working current release.

One host (module scope) gets a verified v0.30.0 release first; each fault then hits a run
that installs another release, and the test checks that current still points at a release
whose vLLM imports, that no partial release is left, and that the next run completes.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, Optional

from .podman_host import ROLE_PACKAGES, PodmanHost, podman
from .record import message_excerpt, record
from .served_host import (
    PREFIX,
    WHEELHOUSE,
    current,
    current_vllm,
    releases,
    role_vars,
)


def task_changed(output: str, name: str) -> bool:
    """Whether the task whose name starts with `name` reported changed on the host."""
    pattern = r"TASK \[vllm_source : " + re.escape(name) + r"[^\]]*\] \**\n(?:[^\n]*\n)?changed:"
    return re.search(pattern, output) is not None


# Keys earlier tests of this module left on the served host, for the later ones.
STATE: Dict[str, str] = {}
CONNECTION_ENV = {"VLLM_FLEET_FAULT": "connection"}


class Background:
    """host.run_role in a thread, so the test can hit the run while it works."""

    def __init__(self, host: PodmanHost, tmp_path: Path, **role_vars: object) -> None:
        self.result: Optional[subprocess.CompletedProcess] = None
        self.thread = threading.Thread(target=self._run, args=(host, tmp_path, role_vars))
        self.thread.start()

    def _run(self, host: PodmanHost, tmp_path: Path, role_vars: Dict[str, object]) -> None:
        self.result = host.run_role(tmp_path, **role_vars)

    def wait_for_process(self, host: PodmanHost, pattern: str, timeout: float = 600) -> None:
        """Wait until a process whose command line matches `pattern` runs on the host;
        fail with the run's output if the run ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.thread.is_alive():
            if host.sh(f"pgrep -f {pattern!r}", check=False).returncode == 0:
                return
            time.sleep(0.3)
        output = (self.result.stdout + self.result.stderr) if self.result else "(still running)"
        raise AssertionError(f"no process matched {pattern!r} during the run:\n{output[-4000:]}")

    def wait(self) -> subprocess.CompletedProcess:
        self.thread.join(timeout=1800)
        assert self.result is not None, "the run did not end"
        return self.result


def test_max_jobs_choice_is_logged_with_its_reason(served_host: PodmanHost) -> None:
    """MAX_JOBS comes from CPUs and RAM (or the cgroup's limit); the build log says which
    bound it is (a CUDA run also prints it before building), so an OOM-prone choice shows."""
    logged = served_host.sh(f"grep -h '== MAX_JOBS: ' {PREFIX}/logs/build-*.log").stdout
    reason = re.search(
        r"\d+ CPUs, [\d.]+ GiB RAM[^\n]* -> MAX_JOBS=(\d+) \((CPU|memory)-bound\)", logged
    )
    assert reason, logged
    cpus = int(served_host.sh("nproc").stdout)
    assert 1 <= int(reason.group(1)) <= cpus
    record(
        "fault",
        "memory: compile jobs the RAM cannot hold",
        "test_faults.py::test_max_jobs_choice_is_logged_with_its_reason",
        {
            "input": {"vllm_source_max_jobs": 0, "vllm_source_build_mem_per_job_gb": 4},
            "observed": f"MAX_JOBS = min(CPUs, RAM / 4 GiB), in the build log: “{reason.group(0)}” "
            "(unit tests: the cgroup limit when lower than MemTotal, and a warning when "
            "vllm_source_max_jobs exceeds what RAM holds)",
        },
    )


def test_pip_killed_mid_build_keeps_current(served_host: PodmanHost, artifacts, tmp_path) -> None:
    before = current(served_host)
    run = Background(served_host, tmp_path, **role_vars(artifacts, vllm_source_version="v0.29.0"))
    # [p]: the pattern must not match the shell that runs pgrep/pkill.
    run.wait_for_process(served_host, "[p]ip wheel --no-deps")
    served_host.sh("pkill -KILL -f '[p]ip wheel --no-deps'")
    result = run.wait()
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "Build the vLLM wheel as the service user" in output
    assert task_changed(output, "Discard the partial release this failed run left")
    assert current(served_host) == before and current_vllm(served_host) == "0.30.0"
    assert releases(served_host) == [before], "the partial release was left behind"
    assert served_host.sh(f"test -e {PREFIX}/.vllm-source.lock", check=False).returncode == 1
    record(
        "fault",
        "build's pip SIGKILLed mid-build",
        "test_faults.py::test_pip_killed_mid_build_keeps_current",
        {
            "input": {"vllm_source_version": "v0.29.0 over a current v0.30.0", "kill": "pip wheel"},
            "exit_code": result.returncode,
            "observed": "current still the v0.30.0 release and imports vLLM 0.30.0; the partial "
            "v0.29.0 release deleted; lock released",
            "message": message_excerpt(output, ". failed on "),
        },
    )


def test_killed_run_is_restarted_by_the_next(served_host: PodmanHost, artifacts, tmp_path) -> None:
    """The controller dies (SIGKILL) while pip installs torch into the new release: the
    host keeps current, and the next run takes the dead run's lock over (its ansible-playbook
    is provably gone), discards the partial release, builds again and switches."""
    before = current(served_host)
    want = role_vars(artifacts, vllm_source_version="v0.29.0")
    for name in ("killed", "again"):
        (tmp_path / name).mkdir()
    run = Background(served_host, tmp_path / "killed", **want)
    run.wait_for_process(served_host, "[p]ip install.*torch==")
    time.sleep(2)
    killed = f"ansible-playbook -i {tmp_path / 'killed'}"
    subprocess.run(["pkill", "-KILL", "-f", killed], check=False)
    served_host.sh("pkill -KILL -f '[p]ip install.*torch==' || true")
    run.wait()
    partial = [key for key in releases(served_host) if key != before]
    assert len(partial) == 1, "the killed run left no partial release to test with"
    assert current(served_host) == before and current_vllm(served_host) == "0.30.0"
    assert served_host.sh(f"test -e {PREFIX}/.vllm-source.lock", check=False).returncode == 0

    output = assert_next_run_completes(served_host, tmp_path / "again", want)
    assert task_changed(output, "Discard a partial release of this key")
    assert current(served_host) == partial[0]
    record(
        "fault",
        "controller SIGKILLed while pip installs torch",
        "test_faults.py::test_killed_run_is_restarted_by_the_next",
        {
            "input": {
                "vllm_source_version": "v0.29.0 over a current v0.30.0",
                "kill": "ansible-playbook",
            },
            "exit_code": 0,
            "observed": "current kept v0.30.0 (imports 0.30.0) and the lock stayed; the next "
            "run took the lock over (the holder's ansible-playbook was no longer running on "
            "this controller), discarded the partial release, rebuilt and switched current to "
            "v0.29.0 (imports 0.29.0)",
            "message": message_excerpt(output, "took over"),
        },
    )


def test_unreachable_index_keeps_current(served_host: PodmanHost, artifacts, tmp_path) -> None:
    before = current(served_host)
    result = served_host.run_role(
        tmp_path,
        **role_vars(
            artifacts,
            vllm_source_pip_offline=False,
            vllm_source_wheelhouse="",
            vllm_source_network_retries=1,
            vllm_source_torch_index_base="http://127.0.0.1:9/whl",
            vllm_source_pip_index_url="http://127.0.0.1:9/simple",
            # Another build environment is another key: this run must install a release.
            vllm_source_build_env={"VLLM_FLEET_FAULT": "index"},
        ),
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "Retrying (Retry(total=" in output  # pip backs off between tries
    assert "after 2 tries (package sources: --index-url http://127.0.0.1:9/whl/cpu" in output
    assert task_changed(output, "Discard the partial release this failed run left")
    assert current(served_host) == before and current_vllm(served_host) in ("0.30.0", "0.29.0")
    assert all(
        served_host.sh(
            f"test -f {PREFIX}/releases/{key}/venv/vllm-source-stamp.json", check=False
        ).returncode
        == 0
        for key in releases(served_host)
    ), "a release without a stamp (partial) was left behind"
    record(
        "fault",
        "package index unreachable",
        "test_faults.py::test_unreachable_index_keeps_current",
        {
            "input": {
                "vllm_source_torch_index_base": "http://127.0.0.1:9/whl",
                "vllm_source_network_retries": 1,
            },
            "exit_code": result.returncode,
            "observed": "pip retried with backoff, the step ran twice, then failed naming the "
            "index; current unchanged and importable; no partial release left",
            "message": message_excerpt(output, "after 2 tries"),
        },
    )


def test_disk_full_mid_build_cleans_the_partial_release(podman_ready, tmp_path) -> None:
    # 1.5 GiB: past the preflight's 1 GiB, too small for torch and vLLM's requirements.
    host = PodmanHost(extra_args=(*WHEELHOUSE, "--tmpfs", "/srv/small:size=1536m,mode=755"))
    try:
        host.install(*ROLE_PACKAGES)
        prefix = "/srv/small/vllm"
        free_before = host.sh("df --output=avail -B1M /srv/small | tail -1").stdout.strip()
        result = host.run_role(
            tmp_path, **role_vars(tmp_path / "artifacts", vllm_source_prefix=prefix)
        )
        output = result.stdout + result.stderr
        assert result.returncode != 0, output[-3000:]
        assert "No space left on device" in output, output[-3000:]
        assert task_changed(output, "Discard the partial release this failed run left")
        assert releases(host, prefix) == [] and current(host, prefix) == ""
        free_after = host.sh("df --output=avail -B1M /srv/small | tail -1").stdout.strip()
        # The partial release filled the disk; once discarded, the preflight's 1 GiB is free
        # again. What stays is the build's workspace: the checkout and its build tree, the
        # wheel and the log, reused by the next run.
        assert int(free_after) > 1024, (free_before, free_after)
        kept = host.sh(
            f"du -sm {prefix}/extern {prefix}/wheels {prefix}/logs 2>/dev/null || true"
        ).stdout
        assert host.sh(f"test -e {prefix}/.vllm-source.lock", check=False).returncode == 1
    finally:
        host.remove()
    record(
        "fault",
        "disk fills during the install",
        "test_faults.py::test_disk_full_mid_build_cleans_the_partial_release",
        {
            "input": {"vllm_source_prefix": "a 1.5 GiB filesystem", "vllm_source_min_free_gb": 1},
            "exit_code": result.returncode,
            "observed": f"failed with No space left on device; the partial release deleted, "
            f"{free_after} of {free_before} MiB free again (kept: "
            + ", ".join(
                " ".join(line.split()[::-1]).replace(prefix + "/", "") + " MiB"
                for line in kept.splitlines()
            )
            + "); lock released",
            "message": message_excerpt(output, ". failed on "),
        },
    )


def assert_next_run_completes(host: PodmanHost, tmp_path: Path, want: Dict[str, object]) -> str:
    """The run after the fault takes the stale lock over, discards what the broken run left,
    completes and switches current to the release it asked for; returns its output."""
    tmp_path.mkdir(exist_ok=True)
    result = host.run_role(tmp_path, **want)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert f"took over {PREFIX}/.vllm-source.lock from run" in output, output[-4000:]
    assert current_vllm(host) == "0.29.0"
    assert host.sh(f"test -f {PREFIX}/current/venv/vllm-source-stamp.json").returncode == 0
    return output


def interrupt_the_build(host: PodmanHost, tmp_path: Path, want, cut: str, heal: str):
    """Run the role in the background; once its pip wheel runs, `podman <cut>` the host; once
    the run has ended, `podman <heal>` it. Returns the failed run and its output."""
    tmp_path.mkdir()
    run = Background(host, tmp_path, **want)
    run.wait_for_process(host, "[p]ip wheel --no-deps")
    for _attempt in range(3):  # freezing a busy container's cgroup can fail once
        done = podman(cut, *(["-t", "0"] if cut == "stop" else []), host.name, check=False)
        if done.returncode == 0:
            break
        time.sleep(1)
    assert done.returncode == 0, f"podman {cut} {host.name}: {done.stderr}"
    # The controller's end of the connection dies too: its SSH master and sessions (the one
    # waiting for the build among them); new ones time out while the host is cut off.
    host.drop_connections()
    try:
        result = run.wait()
    finally:
        podman(heal, host.name)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    return result, output


def test_host_restart_mid_build_keeps_current(served_host: PodmanHost, artifacts, tmp_path) -> None:
    """The host restarts while the wheel builds: the run fails, the host serves its current
    release once it is back, and the next run takes the dead run's lock over and completes."""
    before, serving = current(served_host), current_vllm(served_host)
    # Another build environment is another key: this run must build.
    want = role_vars(artifacts, vllm_source_version="v0.29.0",
                     vllm_source_build_env={"VLLM_FLEET_FAULT": "restart"})  # fmt: skip
    # A reboot: the host goes down (the run loses it), then comes back with nothing running.
    broken, _ = interrupt_the_build(served_host, tmp_path / "restarted", want, "stop", "start")
    assert current(served_host) == before and current_vllm(served_host) == serving
    assert served_host.sh(f"test -e {PREFIX}/.vllm-source.lock", check=False).returncode == 0

    output = assert_next_run_completes(served_host, tmp_path / "next", want)
    record(
        "fault",
        "host restarted mid-build",
        "test_faults.py::test_host_restart_mid_build_keeps_current",
        {
            "input": {
                "vllm_source_version": "v0.29.0 (a new key)",
                "fault": "podman stop, then start",
            },
            "exit_code": broken.returncode,
            "observed": f"the run failed (exit {broken.returncode}); current still {serving} "
            "while the host was back up; the lock was left behind; the next run took it over "
            "(its holder's controller process had ended), discarded the partial release, "
            "rebuilt and switched current to 0.29.0",
            "message": message_excerpt(output, "took over"),
        },
    )


def test_connection_drop_mid_build_never_builds_twice(
    served_host: PodmanHost, artifacts, tmp_path
) -> None:
    """The connection is lost during the long build (the host is frozen and the controller's
    sessions to it killed, then it is thawed): the run fails, the build it started goes on as
    its async job, and the next run never runs a second build of that key beside it."""
    before, serving = current(served_host), current_vllm(served_host)
    want = role_vars(artifacts, vllm_source_version="v0.29.0", vllm_source_build_env=CONNECTION_ENV)
    # The host frozen, the controller's sessions to it killed: what a dropped SSH connection
    # is to the run, while the build (an async job) goes on once the host is thawed.
    dropped, dropped_out = interrupt_the_build(
        served_host, tmp_path / "dropped", want, "pause", "unpause"
    )
    assert current(served_host) == before and current_vllm(served_host) == serving

    builds_seen = []
    stop = threading.Event()

    def count_builds() -> None:
        while not stop.is_set():
            found = served_host.sh("pgrep -c -f '[p]ip wheel --no-deps'", check=False)
            builds_seen.append(int(found.stdout.strip() or 0))
            time.sleep(0.5)

    watcher = threading.Thread(target=count_builds)
    watcher.start()
    try:
        output = assert_next_run_completes(served_host, tmp_path / "next", want)
    finally:
        stop.set()
        watcher.join()
    assert max(builds_seen) <= 1, f"two builds of one key ran at once: {builds_seen}"
    # Resumed when the dropped run's build still ran as the next run reached it (the partial
    # release kept, the wheel taken from that build); else discarded and built again.
    resumed = not task_changed(output, "Discard a partial release of this key")
    STATE["connection"] = current(served_host)
    record(
        "fault",
        "connection lost during the build",
        "test_faults.py::test_connection_drop_mid_build_never_builds_twice",
        {
            "input": {"vllm_source_version": "v0.29.0 (a new key)", "fault": "podman pause"},
            "exit_code": dropped.returncode,
            "observed": f"the run failed (exit {dropped.returncode}); "
            f"current still {serving}; the next run took the lock over, "
            + (
                "kept the partial release whose build still ran and took that build's wheel"
                if resumed
                else "found that build ended and built the key again"
            )
            + f"; at most {max(builds_seen)} build of the key ran at any time (sampled every "
            "0.5 s); it completed and switched current to 0.29.0",
            "message": message_excerpt(dropped_out, "fatal:"),
        },
    )


def flip_a_byte(path: Path) -> None:
    """Corrupt a file in place: one byte in its middle inverted, size unchanged."""
    with path.open("r+b") as f:
        f.seek(path.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_damaged_release_and_corrupt_cached_wheel(
    served_host: PodmanHost, artifacts, tmp_path
) -> None:
    """Two faults one run meets: a file of current's venv is removed and another truncated,
    and the controller's cached wheel of that key has a byte flipped. The run with the same
    inputs does not report 0 changed: it finds the damage, refuses the corrupt wheel (moved
    aside, the key built again on the host), reinstalls the release in place and verifies."""
    want = role_vars(artifacts, vllm_source_version="v0.29.0", vllm_source_build_env=CONNECTION_ENV)
    if current(served_host) != STATE.get("connection"):  # run alone: make that release current
        (tmp_path / "setup").mkdir()
        setup = served_host.run_role(tmp_path / "setup", **want)
        assert setup.returncode == 0, (setup.stdout + setup.stderr)[-4000:]
    key = current(served_host)
    # The release's own path (the run names files there, not under the current symlink).
    site = served_host.sh(
        f"readlink -f {PREFIX}/current/venv/lib/python3*/site-packages"
    ).stdout.strip()
    removed, truncated = f"{site}/vllm/envs.py", f"{site}/packaging/version.py"
    served_host.sh(f"rm {removed} && : > {truncated}")
    assert current_vllm(served_host) != "0.29.0", "the damage did not break the release"
    wheels = sorted((artifacts / key).glob("vllm-*.whl"))
    assert len(wheels) == 1, list((artifacts / key).iterdir())
    flip_a_byte(wheels[0])

    (tmp_path / "run").mkdir()
    result = served_host.run_role(tmp_path / "run", **want)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "files of release" in output, output[-4000:]
    folded = " ".join(output.split())  # the YAML callback wraps long messages
    assert removed in folded and truncated in folded, output[-4000:]
    assert task_changed(output, "Reinstall the damaged distributions of a verified release")
    assert "cannot be trusted" in output and key in output, output[-4000:]
    assert task_changed(output, "Build the vLLM wheel as the service user")
    moved = sorted(p.name for p in (artifacts / key).iterdir() if ".corrupt-" in p.name)
    assert moved, "the corrupt wheel was not moved aside"
    assert current(served_host) == key and current_vllm(served_host) == "0.29.0"
    recap = re.search(r"changed=(\d+)", output.split("PLAY RECAP")[-1])
    assert recap and int(recap.group(1)) > 0
    test = "test_faults.py::test_damaged_release_and_corrupt_cached_wheel"
    record(
        "fault",
        "a file of the current release removed, another truncated",
        test,
        {
            "input": {"rm": removed.replace(site, "site-packages"),
                      "truncate": truncated.replace(site, "site-packages")},
            "exit_code": result.returncode,
            "observed": f"the run with unchanged inputs found both files against pip's RECORD, "
            f"reinstalled vllm and packaging in place (changed={recap.group(1)}, not 0), "
            "verified, and current (the same release) imports vLLM 0.29.0 again",
            "message": message_excerpt(output, "files of release"),
        },
    )  # fmt: skip
    record(
        "fault",
        "the controller's cached wheel corrupted (one byte)",
        test,
        {
            "input": {"artifact cache": f"{key}/{wheels[0].name} with one byte flipped"},
            "exit_code": result.returncode,
            "observed": f"the sha256 check on the controller refused the wheel and moved it "
            f"aside ({', '.join(moved)}); the key was built again on the host and that wheel "
            "installed; current imports vLLM 0.29.0",
            "message": message_excerpt(output, "cannot be trusted"),
        },
    )
