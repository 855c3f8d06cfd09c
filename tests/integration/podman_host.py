"""A real, throwaway Debian host in podman, and the role run against it."""

from __future__ import annotations

import itertools
import json
import os
import random
import socket
import subprocess
import time
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


# The integration hosts' network (tools/make-host-image.sh makes it): its own subnet, so a
# host never takes an address the molecule scenarios pin on theirs while both run.
NETWORK = "vllm-fleet-it"
SSH_KEY = CACHE / "ssh" / "id_ed25519"
# Addresses 10.89.80.2 - 10.89.95.254, handed out in turn from a random start: a removed
# host's address is not reused within a session, where an SSH master to it may still live.
_ADDRESSES = itertools.count(random.randrange(4000))


def _next_address() -> str:
    n = 2 + next(_ADDRESSES) % 4090
    return f"10.89.{80 + n // 256}.{n % 256}"


def _mac(address: str) -> str:
    """A locally administered MAC address made of the IPv4 address."""
    return "02:42:" + ":".join(f"{int(octet):02x}" for octet in address.split("."))


class PodmanHost:
    """A Debian host in podman that the role reaches over SSH with pipelining, as it reaches
    real fleet hosts (and three times faster per task than the podman connection); the
    tests' own probes and faults go through `podman exec`."""

    def __init__(self, extra_args: tuple[str, ...] = ()) -> None:
        self.name = f"vllm-fleet-it-{uuid.uuid4().hex[:8]}"
        for _attempt in range(5):
            self.address = _next_address()
            started = podman(
                "run", "-d", "--name", self.name, "--hostname", self.name, "--stop-timeout=1",
                # A fixed MAC too: a restarted host keeps it, so the controller's ARP entry
                # for the address stays right (a new MAC left it unreachable for a while).
                "--network", NETWORK, "--ip", self.address, "--mac-address", _mac(self.address),
                "-v", f"{CACHE / 'ssh' / 'authorized_keys'}:/root/.ssh/authorized_keys:ro",
                "-v", f"{CACHE / 'mirror'}:/srv/mirror:ro",
                *extra_args, IMAGE, "/usr/local/sbin/run-sshd",
                check=False,
            )  # fmt: skip
            if started.returncode == 0:
                break
            podman("rm", "-f", "-t", "0", self.name, check=False)
            if "already allocated" not in started.stderr and "in use" not in started.stderr:
                raise AssertionError(f"podman run {self.name}: {started.stderr}")
        else:
            raise AssertionError(f"podman run {self.name}: no free address: {started.stderr}")
        # Ansible's SSH master for this host, named by the host: one host's faults cut its
        # own connections only, and a later host never reuses it.
        self.control_path = f"/tmp/vllm-it-ssh-{self.name}"

    def host_vars(self) -> dict:
        """How Ansible reaches this host: SSH as root with the tests' key, pipelining on."""
        return {
            "ansible_connection": "ssh",
            "ansible_host": self.address,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(SSH_KEY),
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no"
            " -o UserKnownHostsFile=/dev/null",
            "ansible_ssh_pipelining": True,
            "ansible_control_path": self.control_path,
        }

    def wait_for_ssh(self, timeout: float = 30) -> None:
        """Wait until sshd accepts connections (after the host started or restarted)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((self.address, 22), timeout=2):
                    return
            except OSError as error:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.name}: sshd not reachable: {error}") from error
                time.sleep(0.2)

    def drop_connections(self) -> None:
        """Kill the controller's SSH processes to this host (its master and every session):
        what a dropped network connection is to a run."""
        subprocess.run(["pkill", "-KILL", "-f", self.control_path], check=False)

    def write_inventory(self, tmp_path: Path) -> Path:
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(
            json.dumps({"gpu_hosts": {"hosts": {self.name: self.host_vars()}}}), encoding="utf-8"
        )
        return inventory

    def sh(self, script: str, check: bool = True) -> subprocess.CompletedProcess:
        return podman("exec", self.name, "bash", "-c", script, check=check)

    def install(self, *packages: str) -> None:
        """Install Debian packages on the host, as a user would have before the run."""
        self.sh(f"apt-get update -qq && apt-get install -y -qq {' '.join(packages)} >/dev/null")

    def snapshot(self) -> list[str]:
        return self.sh(SNAPSHOT_CMD).stdout.splitlines()

    def run_role(
        self, tmp_path: Path, *, verbosity: int = 0, **role_vars: object
    ) -> subprocess.CompletedProcess:
        """Run site.yml's playbook against this host with the given role variables (and
        `verbosity` times -v)."""
        inventory = self.write_inventory(tmp_path)
        self.wait_for_ssh()
        extra = tmp_path / "vars.json"
        extra.write_text(json.dumps(role_vars), encoding="utf-8")
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        return subprocess.run(
            ["ansible-playbook", "-i", str(inventory), "-e", f"@{extra}",
             *(["-" + "v" * verbosity] if verbosity else []),
             str(REPO_ROOT / "playbooks" / "vllm_source.yml")],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip

    def run_play(self, tmp_path: Path, play: str, role_vars: dict) -> subprocess.CompletedProcess:
        """Run a playbook text against this host (over SSH) with the given vars."""
        inventory = self.write_inventory(tmp_path)
        self.wait_for_ssh()
        (tmp_path / "play.yml").write_text(play, encoding="utf-8")
        (tmp_path / "vars.json").write_text(json.dumps(role_vars), encoding="utf-8")
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        return subprocess.run(
            ["ansible-playbook", "-i", str(inventory),
             "-e", f"@{tmp_path / 'vars.json'}", str(tmp_path / "play.yml")],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip

    def remove(self) -> None:
        podman("rm", "-f", "-t", "0", self.name, check=False)
