"""Bad input fails early, names the variable and the fix, and changes nothing on the host."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import BARE_DISKS
from .podman_host import FAKE_NVCC, REPO_ROOT, PodmanHost
from .record import message_excerpt, record

A100 = REPO_ROOT / "tests" / "data" / "nvidia" / "a100x1"
# An nvidia-smi that answers like a host with an A100 on driver 535 (CUDA 12.2).
FAKE_A100_DRIVER = f"""cat > /usr/local/bin/nvidia-smi <<'X'
#!/bin/sh
case "$*" in
  *-x*) cat <<'XML'
{(A100 / "nvidia-smi-q-x.xml").read_text().rstrip()}
XML
  ;;
  *) cat <<'CSV'
{(A100 / "query-gpu-noheader-nounits.csv").read_text().rstrip()}
CSV
  ;;
esac
X
chmod 755 /usr/local/bin/nvidia-smi"""

BASE = {
    "vllm_source_repo_url": "file:///srv/mirror/vllm.git",
    "vllm_source_version": "v0.30.0",
    "vllm_source_target_device": "empty",
    "vllm_source_require_gpu": False,
    "vllm_source_min_free_gb": 1,
}

BARE_CASES = {
    "gpu required without a driver": (
        {"vllm_source_require_gpu": True},
        ["vllm_source_require_gpu", "nvidia-smi"],
        "",
    ),
    "malformed arch list": (
        {"vllm_source_target_device": "cuda", "vllm_source_cuda_arch_list": "9.0;sm_90"},
        ["vllm_source_cuda_arch_list", "sm_90"],
        FAKE_NVCC,
    ),
    "prefix on a full disk": (
        {"vllm_source_prefix": "/mnt/full/vllm"},
        ["vllm_source_prefix", "vllm_source_min_free_gb", "GiB"],
        "",
    ),
    "prefix on a read-only disk": (
        {"vllm_source_prefix": "/mnt/ro/vllm"},
        ["vllm_source_prefix", "read-only"],
        "",
    ),
    "relative prefix": (
        {"vllm_source_prefix": "opt/vllm"},
        ["vllm_source_prefix", "absolute"],
        "",
    ),
    "wrong type": (
        {"vllm_source_max_jobs": "many"},
        ["vllm_source_max_jobs", "int"],
        "",
    ),
    "unknown target device": (
        {"vllm_source_target_device": "rocm"},
        ["vllm_source_target_device", "cuda, empty"],
        "",
    ),
    "tag that is not a release tag": (
        {"vllm_source_version": "latest"},
        ["vllm_source_version", "v0.30.0"],
        "",
    ),
    "unknown build mode": (
        {"vllm_source_build_mode": "fast"},
        ["vllm_source_build_mode", "full, precompiled"],
        "",
    ),
    "precompiled build without a wheel": (
        {"vllm_source_build_mode": "precompiled", "vllm_source_target_device": "cuda"},
        ["vllm_source_precompiled_wheel", "absolute path of a vLLM .whl"],
        "",
    ),
    "precompiled wheel missing on the host": (
        {
            "vllm_source_build_mode": "precompiled",
            "vllm_source_target_device": "cuda",
            "vllm_source_precompiled_wheel": "/srv/vllm-0.30.0-cp38-abi3-manylinux_2_28_x86_64.whl",
        },
        ["vllm_source_precompiled_wheel", "is not a file on"],
        "",
    ),
    "smoke test on a build without GPU kernels": (
        {"vllm_source_smoke_test": True, "vllm_source_smoke_models": [{"path": "/srv/m"}]},
        ["vllm_source_smoke_test", "vllm_source_target_device cuda"],
        "",
    ),
    "smoke model that is not a model directory": (
        {
            "vllm_source_target_device": "cuda",
            "vllm_source_smoke_test": True,
            "vllm_source_smoke_models": [{"path": "/etc", "quantization": "modelopt"}],
        },
        ["vllm_source_smoke_models", "/etc", "no config.json"],
        "",
    ),
    "checkpoint to verify that is not a directory": (
        {"vllm_source_verify_checkpoints": ["/etc/hostname"]},
        ["vllm_source_verify_checkpoints", "/etc/hostname", "not a directory"],
        "",
    ),
    "CUDA variant newer than the driver supports": (
        {
            "vllm_source_require_gpu": True,
            "vllm_source_target_device": "cuda",
            "vllm_source_torch_variant": "cu130",
        },
        ["vllm_source_torch_variant", "cu130", "12.2"],
        FAKE_A100_DRIVER + " && " + FAKE_NVCC,
    ),
    "prefix containing a space": (
        {"vllm_source_prefix": "/opt/my vllm"},
        ["vllm_source_prefix", "contains whitespace", "/opt/vllm"],
        "",
    ),
    "tag given without its v": (
        {"vllm_source_version": "0.30.0"},
        ["set vllm_source_version: v0.30.0"],
        "",
    ),
    "malformed arch list on a build without kernels": (
        {"vllm_source_target_device": "empty", "vllm_source_cuda_arch_list": "9.0;sm_90"},
        ["vllm_source_cuda_arch_list", "sm_90"],
        "",
    ),
    "credentials in a file:// repository URL": (
        {"vllm_source_repo_url": "file://fleet:s3cr3t-t0ken@/srv/mirror/vllm.git"},
        ["vllm_source_repo_url", "file:// URL with credentials", "file:///path/to/vllm.git"],
        "",
    ),
    "password in an ssh:// repository URL": (
        {"vllm_source_repo_url": "ssh://git:s3cr3t-t0ken@git.example/vllm.git"},
        ["vllm_source_repo_url", "with a password", "SSH key"],
        "",
    ),
    "local repository that does not exist": (
        {"vllm_source_repo_url": "file:///srv/nowhere/vllm.git"},
        ["/srv/nowhere/vllm.git", "no such path", "retrying will not help"],
        "",
    ),
    "local path that is not a git repository": (
        {"vllm_source_repo_url": "/srv"},
        ["vllm_source_repo_url", "not a git repository"],
        "",
    ),
    "local repository the service user cannot read": (
        {"vllm_source_repo_url": "file:///srv/private/vllm.git"},
        ["vllm_source_repo_url", "cannot read /srv/private", "chmod -R o+rX"],
        "mkdir -p /srv/private/vllm.git/objects /srv/private/vllm.git/refs && "
        "echo 'ref: refs/heads/main' > /srv/private/vllm.git/HEAD && chmod 700 /srv/private",
    ),
    # Resolved without git, before the system packages (git among them) go in.
    "tag that does not exist, on a host without git": (
        {"vllm_source_version": "v0.0.1"},
        ["Tag 'v0.0.1' does not exist", "vllm_source_version"],
        "",
    ),
    "smoke model given as a bare string": (
        {"vllm_source_smoke_models": ["/srv/models/qwen"]},
        ["vllm_source_smoke_models", "dict"],
        "",
    ),
}


# The message names only what is wrong: not the rules that the input passed.
NOT_NAMED = {
    "relative prefix": ["vllm_source_version must", "vllm_source_commit must"],
    "tag that is not a release tag": ["vllm_source_prefix must", "vllm_source_commit must"],
}


def assert_refused_and_unchanged(host, tmp_path, case, overrides, expected, test):
    """The role fails, says each expected text, and leaves every file on the host as it was."""
    # A host shared by several cases: the previous case's "after" is this one's "before".
    before = getattr(host, "last_snapshot", None) or host.snapshot()
    result = host.run_role(tmp_path, **{**BASE, **overrides})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for text in expected:
        assert text in output, f"{case}: {text!r} missing from:\n{output[-3000:]}"
    for text in NOT_NAMED.get(case, ()):
        assert text not in output, f"{case}: the message blames {text!r}, which is fine"
    assert "s3cr3t-t0ken" not in output, f"{case}: a credential reached the output"
    after = host.snapshot()
    host.last_snapshot = after
    assert after == before, f"{case}: the host changed"
    record(
        "bad input",
        case,
        test,
        {
            "input": overrides,
            "exit_code": result.returncode,
            "message": message_excerpt(output, expected[0]),
            "host_files_compared": len(before),
            "host_changed": False,
        },
    )


@pytest.fixture(scope="module")
def shared_bare_host(podman_ready):
    """One bare host for the cases that need no setup: each leaves it as it found it (that
    is what each asserts), so the next case starts from the same host."""
    host = PodmanHost(extra_args=BARE_DISKS)
    yield host
    host.remove()


@pytest.mark.parametrize("case", list(BARE_CASES))
def test_bad_input_on_a_bare_host(request, tmp_path, case):
    overrides, expected, setup = BARE_CASES[case]
    host = request.getfixturevalue("bare_host" if setup else "shared_bare_host")
    if setup:
        host.sh(setup)
    test = f"test_bad_inputs.py::test_bad_input_on_a_bare_host[{case}]"
    assert_refused_and_unchanged(host, tmp_path, case, overrides, expected, test)


PREPARED_CASES = {
    "tag that does not exist": (
        {"vllm_source_version": "v0.0.1"},
        ["Tag 'v0.0.1' does not exist", "vllm_source_version"],
    ),
    "python too old for the tag": (
        {"vllm_source_python": "python3.9"},
        ["3.9.18", "vllm_source_python", ">=3.10"],
    ),
    "tag moved away from the pinned commit": (
        {"vllm_source_commit": "0123456789abcdef0123456789abcdef01234567"},
        ["the tag moved", "vllm_source_commit"],
    ),
    "existing torch that is not there": (
        {"vllm_source_use_existing_torch": True, "vllm_source_venv_system_site_packages": True},
        ["vllm_source_use_existing_torch", "not importable", "2.13.0"],
    ),
    "existing torch without a way to see it": (
        {"vllm_source_use_existing_torch": True},
        ["vllm_source_venv_system_site_packages: true", "vllm_source_use_existing_torch: false"],
    ),
    "staged CUDA sources incomplete": (
        {
            "vllm_source_target_device": "cuda",
            "vllm_source_cuda_arch_list": "9.0",
            "vllm_source_deps_dir": "/srv/deps/partial",
        },
        ["vllm_source_deps_dir", "stage_sources.yml", "flash-attention", "VLLM_CUTLASS_SRC_DIR"],
    ),
    "relative *_SRC_DIR in the build environment": (
        {
            "vllm_source_target_device": "cuda",
            "vllm_source_cuda_arch_list": "9.0",
            "vllm_source_deps_dir": "/srv/deps/partial",
            "vllm_source_build_env": {"VLLM_CUTLASS_SRC_DIR": "cutlass"},
        },
        ["vllm_source_build_env", "VLLM_CUTLASS_SRC_DIR", "absolute"],
    ),
    "repository with credentials unreachable": (
        {
            "vllm_source_repo_url": "https://fleet:s3cr3t-t0ken@127.0.0.1:9/vllm.git",
            "vllm_source_network_retries": 1,
        },
        ["Could not read https://***@127.0.0.1:9/vllm.git after 2 tries", "vllm_source_repo_url"],
    ),
    "offline wheelhouse without the tag's torch": (
        {"vllm_source_pip_offline": True, "vllm_source_wheelhouse": "/srv/wheelhouse-empty"},
        ["vllm_source_wheelhouse", "torch 2.13.0", "cpu"],
    ),
    "offline wheelhouse without the hashes of its wheels": (
        {"vllm_source_pip_offline": True, "vllm_source_wheelhouse": "/srv/wheelhouse-unhashed"},
        ["/srv/wheelhouse-unhashed (vllm_source_wheelhouse) has no wheelhouse.json", "hash --dest"],
    ),
    "offline wheelhouse without a uv wheel for the host": (
        {
            "vllm_source_installer": "uv",
            "vllm_source_pip_offline": True,
            "vllm_source_wheelhouse": "/srv/wheelhouse-unhashed",
        },
        [
            "vllm_source_installer is uv",
            "/srv/wheelhouse-unhashed (vllm_source_wheelhouse) holds no uv==0.13.9 wheel",
            "(x86_64, glibc 2.36) can install: it has only uv-0.13.9-py3-none-",
            "manylinux_2_17_aarch64.manylinux2014_aarch64.whl. Add it on the controller",
            "python -m vllm_fleet.wheelhouse build --installer uv",
            "vllm_source_installer: pip",
        ],
    ),
    "repository unreachable": (
        {
            "vllm_source_repo_url": "http://127.0.0.1:9/vllm.git",
            "vllm_source_network_retries": 2,
            "vllm_source_network_retry_delay": 1,
        },
        [
            "Could not read http://127.0.0.1:9/vllm.git after 3 tries",
            # The one retry policy: Ansible's retries, vllm_source_network_retry_delay apart.
            "Read the tag's commit without git (local and http(s) repositories). (2 retries left)",
            "Read the tag's commit without git (local and http(s) repositories). (1 retries left)",
            "vllm_source_repo_url",
        ],
    ),
}


@pytest.mark.parametrize("case", list(PREPARED_CASES))
def test_bad_input_on_a_host_with_git(prepared_host, tmp_path, case):
    overrides, expected = PREPARED_CASES[case]
    test = f"test_bad_inputs.py::test_bad_input_on_a_host_with_git[{case}]"
    assert_refused_and_unchanged(prepared_host, tmp_path, case, overrides, expected, test)


def run_site(tmp_path: Path, inventory: str, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "hosts.yml").write_text(inventory)
    return subprocess.run(
        ["ansible-playbook", "-i", str(tmp_path / "hosts.yml"), "site.yml", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip


EMPTY_GROUP = "all:\n  children:\n    gpu_hosts:\n      hosts: {}\n"
OTHER_HOSTS = (
    "all:\n  hosts:\n    somehost: {}\n"
    "  children:\n    gpu_hosts:\n      hosts:\n        gpu1: {}\n"
)
NO_GROUP = "all:\n  hosts:\n    somehost: {}\n"
PROJECT_MESSAGE = "matched no host"
# case: (inventory text, its description, ansible-playbook arguments, exit status, texts)
NO_HOST_CASES = {
    "empty gpu_hosts inventory group": (
        EMPTY_GROUP, "gpu_hosts with no hosts", [], 2,
        [PROJECT_MESSAGE, "the inventory lists no host under gpu_hosts"],
    ),
    "empty gpu_hosts group limited to gpu_hosts": (
        EMPTY_GROUP, "gpu_hosts with no hosts", ["-l", "gpu_hosts"], 2,
        [PROJECT_MESSAGE, "the inventory lists no host under gpu_hosts"],
    ),
    "limit naming only a host outside gpu_hosts": (
        OTHER_HOSTS, "gpu1 in gpu_hosts, somehost outside it", ["-l", "somehost"], 2,
        [PROJECT_MESSAGE, "the limit -l 'somehost' leaves none of the gpu_hosts hosts"],
    ),
    # Ansible itself refuses a limit that names nothing, before any play (and so before
    # any plugin of ours) runs: ansible.cfg's [inventory] host_pattern_mismatch = error.
    "limit naming a group the inventory lacks": (
        NO_GROUP, "no gpu_hosts group", ["-l", "gpu_hosts"], 1,
        ["Could not match supplied host pattern, ignoring: gpu_hosts"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(NO_HOST_CASES))
def test_a_run_reaching_no_gpu_host_fails(tmp_path, case):
    inventory, described, args, status, expected = NO_HOST_CASES[case]
    result = run_site(tmp_path, inventory, *args)
    output = result.stdout + result.stderr
    assert result.returncode == status, output
    for text in expected:
        assert text in output, f"{case}: {text!r} missing from:\n{output}"
    assert "PLAY RECAP" not in output, "a play ran"
    record(
        "bad input",
        case,
        f"test_bad_inputs.py::test_a_run_reaching_no_gpu_host_fails[{case}]",
        {
            "input": {"inventory": described, **({"limit": args[1]} if args else {})},
            "exit_code": result.returncode,
            "message": message_excerpt(output, "ERROR"),
            "host_changed": False,
        },
    )
