"""A real, throwaway Debian host in podman, and the role run against it."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE = REPO_ROOT / ".cache"
IMAGE = os.environ.get("VLLM_FLEET_TEST_IMAGE", "localhost/vllm-fleet-host:bookworm")

# Every file's size, mtime, owner and mode; every directory's owner and mode (a
# directory's mtime only says an entry changed, and entries are listed themselves).
# Pruned: kernel/runtime trees, scratch space, Ansible's own temp files, bytecode caches.
SNAPSHOT_CMD = r"""find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run \
 -o -path /tmp -o -path /var/tmp -o -path /root/.ansible -o -name __pycache__ \) -prune \
 -o -type d -printf 'D %p %u %g %m\n' -o -printf 'F %p %s %T@ %u %g %m\n' | sort"""


# A CUDA 13.0 toolkit's nvcc, so the CUDA-build checks get past toolkit discovery.
FAKE_NVCC = r"""mkdir -p /usr/local/cuda-13.0/bin && ln -s cuda-13.0 /usr/local/cuda &&
cat > /usr/local/cuda-13.0/bin/nvcc <<'X'
#!/bin/sh
echo 'nvcc: NVIDIA (R) Cuda compiler driver'
echo 'Cuda compilation tools, release 13.0, V13.0.88'
echo 'Build cuda_13.0.r13.0/compiler.36424714_0'
X
chmod 755 /usr/local/cuda-13.0/bin/nvcc"""


# What the role installs on a bare host (its default vllm_source_system_packages): hosts
# that have them skip its apt step.
ROLE_PACKAGES = tuple(
    yaml.safe_load((REPO_ROOT / "roles/vllm_source/defaults/main.yml").read_text())[
        "vllm_source_system_packages"
    ]
)


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["podman", *args], capture_output=True, text=True)
    if check and done.returncode != 0:  # podman's own words, which CalledProcessError drops
        raise AssertionError(f"podman {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


class PodmanHost:
    def __init__(self, extra_args: tuple[str, ...] = ()) -> None:
        self.name = f"vllm-fleet-it-{uuid.uuid4().hex[:8]}"
        podman(
            "run", "-d", "--name", self.name, "--hostname", self.name, "--stop-timeout=1",
            "-v", f"{CACHE / 'mirror'}:/srv/mirror:ro",
            *extra_args, IMAGE, "sleep", "infinity",
        )  # fmt: skip

    def sh(self, script: str, check: bool = True) -> subprocess.CompletedProcess:
        return podman("exec", self.name, "bash", "-c", script, check=check)

    def install(self, *packages: str) -> None:
        """Install Debian packages on the host, as a user would have before the run."""
        self.sh(f"apt-get update -qq && apt-get install -y -qq {' '.join(packages)} >/dev/null")

    def snapshot(self) -> list[str]:
        return self.sh(SNAPSHOT_CMD).stdout.splitlines()

    def run_role(self, tmp_path: Path, **role_vars: object) -> subprocess.CompletedProcess:
        """Run site.yml's playbook against this host with the given role variables."""
        inventory = tmp_path / "hosts.yml"
        host_vars = {"ansible_connection": "containers.podman.podman"}
        inventory.write_text(
            json.dumps({"gpu_hosts": {"hosts": {self.name: host_vars}}}), encoding="utf-8"
        )
        extra = tmp_path / "vars.json"
        extra.write_text(json.dumps(role_vars), encoding="utf-8")
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        return subprocess.run(
            ["ansible-playbook", "-i", str(inventory), "-e", f"@{extra}",
             str(REPO_ROOT / "playbooks" / "vllm_source.yml")],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip

    def run_play(self, tmp_path: Path, play: str, role_vars: dict) -> subprocess.CompletedProcess:
        """Run a playbook text against this host (podman connection) with the given vars."""
        (tmp_path / "play.yml").write_text(play, encoding="utf-8")
        (tmp_path / "vars.json").write_text(json.dumps(role_vars), encoding="utf-8")
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        return subprocess.run(
            ["ansible-playbook", "-i", f"{self.name},", "-c", "containers.podman.podman",
             "-e", f"@{tmp_path / 'vars.json'}", str(tmp_path / "play.yml")],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip

    def remove(self) -> None:
        podman("rm", "-f", "-t", "0", self.name, check=False)
