"""The role's prefix phase (05_prefix.yml) on a real host: the controller's wheelhouse and
staged sources (made by playbooks/stage_sources.yml from a local upstream) are copied,
checked against their sha256, unpacked and checked where the build will read them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import pytest

from .podman_host import PodmanHost
from .test_stage_sources import pins, stage

PLAY = """
- name: Copy the offline inputs as the role does.
  hosts: all
  gather_facts: false
  tasks:
    - name: Run the role's prefix phase, which copies the offline inputs.
      block:
        - name: Create the prefix, take its lock and copy the offline inputs.
          ansible.builtin.include_role: {name: vllm_source, tasks_from: 05_prefix.yml}
      always:
        - name: Release the lock the prefix phase took, as main.yml's always does.
          vllm_lock:
            path: /opt/vllm/.vllm-source.lock
            run_id: "{{ __vllm_source_run_id }}"
            state: absent
          when: __vllm_source_run_id is defined
    - name: Show the source dirs the build would get.
      ansible.builtin.debug:
        msg: "SRC_DIRS {{ __vllm_source_reg_deps.vllm_deps.env | to_json }}"
"""


@pytest.fixture(scope="module")
def host(podman_ready):
    host = PodmanHost()
    host.install("xz-utils", "acl")
    yield host
    host.remove()


def changed(output: str) -> int:
    line = next(line for line in output.splitlines() if " : ok=" in line)
    return int(line.split("changed=")[1].split()[0])


@pytest.fixture
def stage_dir(upstream: Dict[str, Any], tmp_path: Path) -> Path:
    """The local upstream's v0.30.0 pins, staged and packed by playbooks/stage_sources.yml."""
    staged = tmp_path / "stage" / "v0.30.0"
    stage(upstream, staged)
    return staged


def test_wheelhouse_and_staged_sources_reach_the_host(
    host: PodmanHost, upstream: Dict[str, Any], stage_dir: Path, tmp_path: Path
) -> None:
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    (wheelhouse / "demo-1.0-py3-none-any.whl").write_bytes(b"PK\x05\x06" + bytes(18))
    role_vars = {
        "vllm_source_target_device": "cuda",
        "vllm_source_controller_wheelhouse": str(wheelhouse),
        "vllm_source_controller_deps_dir": str(stage_dir),
        "__vllm_source_pins": {"fetchcontent": pins(upstream)},
    }
    first = host.run_play(tmp_path, PLAY, role_vars)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr
    assert changed(first.stdout) > 0

    digest = Path(f"{stage_dir}.tar.xz.sha256").read_text().split()[0]
    deps = f"/opt/vllm/deps/{digest[:16]}/v0.30.0"
    assert host.sh("ls /opt/vllm/wheelhouse").stdout.split() == ["demo-1.0-py3-none-any.whl"]
    assert host.sh(f"cat {deps}/cutlass/include/cutlass/cutlass.h").stdout == "// cutlass\n"
    owners = host.sh(f"stat -c %U {deps}/cutlass /opt/vllm/wheelhouse").stdout.split()
    assert owners == ["vllm", "vllm"]
    # The host-side check ran on the unpacked tree and handed its paths to the build.
    line = next(line for line in first.stdout.splitlines() if "SRC_DIRS" in line)
    assert f'"VLLM_CUTLASS_SRC_DIR": "{deps}/cutlass"' in line, line

    again = host.run_play(tmp_path, PLAY, role_vars)
    assert again.returncode == 0, again.stdout[-3000:]
    assert changed(again.stdout) == 0


def test_an_archive_that_does_not_match_its_sha256_is_refused(
    host: PodmanHost, upstream: Dict[str, Any], stage_dir: Path, tmp_path: Path
) -> None:
    Path(f"{stage_dir}.tar.xz.sha256").write_text(f"{'0' * 64}  v0.30.0.tar.xz\n")
    result = host.run_play(
        tmp_path,
        PLAY,
        {
            "vllm_source_target_device": "cuda",
            "vllm_source_controller_deps_dir": str(stage_dir),
            "__vllm_source_pins": {"fetchcontent": pins(upstream)},
            "vllm_source_prefix": "/opt/vllm",
        },
    )
    assert result.returncode != 0
    assert "but its .sha256 file" in result.stdout
    assert "vllm_source_controller_deps_dir" in result.stdout
    listing = host.sh("ls /opt/vllm/deps").stdout.split()
    assert not any(name.startswith("0000") for name in listing)
