"""What a user relies on after the role converged on a bare host (VLLM_TARGET_DEVICE=empty)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HOST = "vllm-fleet-default"
testinfra_hosts = [f"podman://{HOST}"]

REPO_ROOT = Path(__file__).resolve().parents[3]
MIRROR = REPO_ROOT / ".cache" / "mirror" / "vllm.git"
PREFIX = "/opt/vllm"
VENV = f"{PREFIX}/current/venv"  # -> releases/<build key>/venv
TAG = "v0.30.0"
CHECKPOINTS = "/srv/checkpoints"


def mirror_tag_commit(tag: str = TAG) -> str:
    out = subprocess.run(
        ["git", "--git-dir", str(MIRROR), "rev-parse", f"{tag}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def venv_python(host, code: str) -> str:
    cmd = host.run("sudo -u vllm %s/bin/python -c %s", VENV, code)
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout.strip()


def test_service_user_is_unprivileged_system_user(host):
    user = host.user("vllm")
    assert user.exists
    assert user.uid < 1000
    assert user.shell == "/usr/sbin/nologin"
    assert user.group == "vllm"


# The release (current's venv among it) is root's: test_release_readonly.py.
@pytest.mark.parametrize("path", [PREFIX, f"{PREFIX}/extern/vllm", f"{PREFIX}/logs"])
def test_install_tree_owned_by_service_user_and_not_writable_by_others(host, path):
    f = host.file(path)
    assert f.is_directory
    assert f.user == "vllm"
    assert f.group == "vllm"
    assert f.mode & 0o022 == 0, oct(f.mode)


def test_the_build_ran_through_the_fixed_venv_path_of_the_release_it_built(host):
    """<prefix>/build/venv links to the venv of the release that was built (current's), so a
    later build of another release compiles against torch's headers at the same path."""
    assert host.file(f"{PREFIX}/build/venv").is_symlink
    built = host.check_output("readlink %s/build/venv", PREFIX)
    assert built == host.check_output("readlink -f %s", VENV)
    assert built.startswith(f"{PREFIX}/releases/")


def test_vllm_imports_at_the_requested_tag(host):
    code = 'import importlib.metadata as m, vllm; print(vllm.__version__, m.version("vllm"))'
    version, dist_version = venv_python(host, code).split()
    assert version == TAG.lstrip("v")
    assert dist_version == f"{version}+empty", "an empty build must say so in its metadata"


def test_torch_is_the_tags_pin_in_the_cpu_variant(host):
    out = venv_python(host, "import torch; print(torch.__version__, torch.version.cuda)")
    assert out == "2.13.0+cpu None"


def test_recorded_commit_is_the_mirrors_tag_commit(host):
    expected = mirror_tag_commit()
    stamp = json.loads(host.file(f"{VENV}/vllm-source-stamp.json").content_string)
    assert stamp["inputs"]["commit"] == expected
    assert stamp["inputs"]["version"] == TAG
    assert stamp["inputs"]["torch"] == "2.13.0+cpu"
    assert stamp["inputs"]["target_device"] == "empty"
    # vllm_source_build_env ({} here) is stamped as a hash: it may hold credentials.
    assert stamp["inputs"]["build_env"] == hashlib.sha256(b"{}").hexdigest()[:16]
    head = host.run("git -c safe.directory='*' -C %s/extern/vllm rev-parse HEAD", PREFIX)
    assert head.stdout.strip() == expected


def test_modelopt_methods_resolve_through_vllms_registry(host):
    code = (
        "import vllm.model_executor.layers.quantization as q; "
        "print(' '.join(m + '=' + q.get_quantization_config(m).__name__ "
        "for m in q.QUANTIZATION_METHODS if m.startswith('modelopt')))"
    )
    last_line = venv_python(host, code).splitlines()[-1]  # vLLM may log before it
    resolved = dict(item.split("=") for item in last_line.split())
    assert resolved["modelopt"] == "ModelOptFp8Config"
    assert resolved["modelopt_fp4"] == "ModelOptNvFp4Config"


def test_kernels_are_absent_in_an_empty_build(host):
    cmd = host.run("sudo -u vllm %s/bin/python -c 'import vllm._C'", VENV)
    # Refused for the right reason: the module is absent, not vLLM broken on import.
    assert cmd.rc != 0, "an empty build must not carry compiled kernels"
    assert "No module named 'vllm._C'" in cmd.stderr, cmd.stderr[-2000:]


def test_profile_file_exports_the_install(host):
    f = host.file("/etc/profile.d/vllm-source.sh")
    assert f.user == "root"
    assert f.mode == 0o644
    assert f'VLLM_SOURCE_VENV="{VENV}"' in f.content_string
    login = host.run("bash -lc 'echo $VLLM_SOURCE_VENV'")
    assert login.stdout.strip() == VENV


def test_build_log_is_kept_on_the_host(host):
    stamp = json.loads(host.file(f"{VENV}/vllm-source-stamp.json").content_string)
    log = host.file(f"{PREFIX}/logs/build-{stamp['key']}.log")
    assert log.exists
    assert f"build {stamp['key']} finished" in log.content_string
    assert stamp["wheel"].startswith(f"{PREFIX}/releases/{stamp['key']}/wheel/vllm-0.30.0")


def test_build_log_lines_carry_elapsed_time_that_bench_build_time_reads(host):
    stamp = json.loads(host.file(f"{VENV}/vllm-source-stamp.json").content_string)
    text = host.file(f"{PREFIX}/logs/build-{stamp['key']}.log").content_string
    assert all(line.startswith("[+") for line in text.splitlines() if line)
    local = REPO_ROOT / ".cache" / "build-log-from-host.log"
    local.write_text(text)
    bench = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "build_time"), str(local)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert '  status: "finished"' in bench.stdout
    assert '  mode: "full"' in bench.stdout
    assert f"  cpus: {host.run('nproc').stdout.strip()}" in bench.stdout


def run_verify_module(args: dict) -> tuple[bool, dict]:
    """Run the vllm_verify module on the host with the venv's Python; return (ok, result)."""
    env = {k: v for k, v in os.environ.items() if "COLOR" not in k}
    env.update(
        ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
    )
    proc = subprocess.run(
        [
            "ansible", HOST, "-i", f"{HOST},", "-c", "containers.podman.podman",
            "-m", "vllm_verify", "-a", json.dumps(args),
            "-e", f"ansible_python_interpreter={VENV}/bin/python",
            "--become", "--become-user", "vllm",
        ],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    report = json.loads(proc.stdout)
    result = report["plays"][0]["tasks"][0]["hosts"][HOST]
    return not result.get("failed", False), result


def test_verify_module_resolves_modelopt_fp8_checkpoint():
    ok, out = run_verify_module(
        {"checkpoints": [f"{CHECKPOINTS}/tiny-llama-modelopt-fp8"], "expect_version": TAG}
    )
    assert ok, out
    assert out["checkpoints"][0]["quantization"] == "modelopt"
    assert out["checkpoints"][0]["hf_quant_config_producer"] == "modelopt"
    assert out["modelopt_methods"]["modelopt"] == "ModelOptFp8Config"
    assert out["modelopt_methods"]["modelopt_fp4"] == "ModelOptNvFp4Config"
    assert out["vllm_location"].startswith(f"{VENV}/lib/")
    assert out["kernels"]["vllm_C"] is False


def test_verify_module_refuses_fp8_on_a_gpu_older_than_vllm_supports():
    fp8 = f"{CHECKPOINTS}/tiny-llama-modelopt-fp8"
    ok, out = run_verify_module({"checkpoints": [fp8], "compute_capabilities": ["9.0"]})
    assert ok, out
    minimum = out["min_capabilities"]["modelopt"]
    assert minimum == "8.0", "vLLM 0.30.0's ModelOptFp8Config.get_min_capability() is 80"
    ok, out = run_verify_module({"checkpoints": [fp8], "compute_capabilities": ["7.5", "9.0"]})
    assert not ok
    assert f"compute capability {minimum} or newer" in out["msg"]
    assert "GPUs have 7.5" in out["msg"]


def test_verify_module_refuses_legacy_checkpoint_without_producer():
    legacy = f"{CHECKPOINTS}/tiny-llama-legacy-noproducer"
    ok, out = run_verify_module({"checkpoints": [legacy]})
    assert not ok
    assert "hf_quant_config.json has no producer" in out["msg"]
    assert "UNQUANTIZED" in out["msg"]
    assert "export_hf_checkpoint" in out["msg"]
    assert out["checkpoints"][0]["is_modelopt"] is False


def test_verify_module_refuses_a_kernel_less_build_as_a_gpu_build():
    ok, out = run_verify_module({"require_kernels": True})
    assert not ok
    assert "vllm._C" in out["msg"]
