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

import pytest

from .podman_host import CACHE, ROLE_PACKAGES, PodmanHost
from .record import message_excerpt, record

PREFIX = "/opt/vllm"
ROLE_VARS = {
    "vllm_source_repo_url": "file:///srv/mirror/vllm.git",
    "vllm_source_version": "v0.30.0",
    "vllm_source_target_device": "empty",
    "vllm_source_require_gpu": False,
    "vllm_source_wheelhouse": "/srv/wheelhouse",
    "vllm_source_pip_offline": True,
    "vllm_source_min_free_gb": 1,
    "vllm_source_lock_timeout": 5,
}
WHEELHOUSE = ("-v", f"{CACHE / 'wheelhouse'}:/srv/wheelhouse:ro")


def role_vars(artifacts: Path, **overrides: object) -> Dict[str, object]:
    """The role's variables with an artifact cache of these tests' own: a wheel another test
    cached for the same key would spare the build these tests need to hit."""
    return {**ROLE_VARS, "vllm_source_artifact_cache": str(artifacts), **overrides}


def current(host: PodmanHost, prefix: str = PREFIX) -> str:
    """The key current points at ('' when none)."""
    return host.sh(f'basename "$(readlink {prefix}/current)"', check=False).stdout.strip()


def current_vllm(host: PodmanHost, prefix: str = PREFIX) -> str:
    """The version of vLLM that current's venv imports as the service user (or the error)."""
    result = host.sh(
        f"su -s /bin/sh vllm -c '{prefix}/current/venv/bin/python -c "
        '"import vllm; print(vllm.__version__)"\' 2>&1',
        check=False,
    )
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "no output"


def task_changed(output: str, name: str) -> bool:
    """Whether the task whose name starts with `name` reported changed on the host."""
    pattern = r"TASK \[vllm_source : " + re.escape(name) + r"[^\]]*\] \**\n(?:[^\n]*\n)?changed:"
    return re.search(pattern, output) is not None


def releases(host: PodmanHost, prefix: str = PREFIX) -> list:
    return sorted(host.sh(f"ls {prefix}/releases 2>/dev/null || true").stdout.split())


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


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="module")
def served_host(podman_ready, tmp_path_factory, artifacts):
    """A host whose current release is a verified vLLM v0.30.0."""
    host = PodmanHost(extra_args=WHEELHOUSE)
    host.install(*ROLE_PACKAGES)
    result = host.run_role(tmp_path_factory.mktemp("first"), **role_vars(artifacts))
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert current_vllm(host) == "0.30.0"
    yield host
    host.remove()


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
    host keeps current, and the next run, once the stale lock is removed as the message
    says, discards the partial release, builds again and switches."""
    before = current(served_host)
    want = role_vars(artifacts, vllm_source_version="v0.29.0")
    for name in ("killed", "blocked", "again"):
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

    blocked = served_host.run_role(tmp_path / "blocked", **want)
    blocked_out = blocked.stdout + blocked.stderr
    assert blocked.returncode != 0
    assert f"rm {PREFIX}/.vllm-source.lock" in blocked_out, blocked_out[-3000:]
    assert current(served_host) == before

    served_host.sh(f"rm {PREFIX}/.vllm-source.lock")
    result = served_host.run_role(tmp_path / "again", **want)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert task_changed(output, "Discard a partial release of this key")
    assert current(served_host) == partial[0] and current_vllm(served_host) == "0.29.0"
    assert served_host.sh(f"test -f {PREFIX}/current/venv/vllm-source-stamp.json").returncode == 0
    record(
        "fault",
        "controller SIGKILLed while pip installs torch",
        "test_faults.py::test_killed_run_is_restarted_by_the_next",
        {
            "input": {
                "vllm_source_version": "v0.29.0 over a current v0.30.0",
                "kill": "ansible-playbook",
            },
            "exit_code": result.returncode,
            "observed": "current kept v0.30.0 (imports 0.30.0); the next run stopped at the stale "
            "lock naming `rm` as the fix; after it, the run discarded the partial release, "
            "rebuilt and switched current to v0.29.0 (imports 0.29.0)",
            "message": message_excerpt(blocked_out, "is held by"),
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
