"""vllm_source_python may itself be a venv (a GPU image's torch venv): with
vllm_source_venv_system_site_packages the role's venv sees that venv's packages, after
its own, through a .pth file (a venv made from a venv only sees the base interpreter's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .podman_host import PodmanHost

VENV = "/opt/vllm/releases/testkey/venv"

PLAY = """
- name: Run the role's preflight and venv steps.
  hosts: all
  gather_facts: false
  tasks:
    - name: Check the inputs and read the Python.
      ansible.builtin.include_role: {name: vllm_source, tasks_from: 01_preflight.yml}
    - name: Create the prefix and the release's venv under the prefix's lock.
      block:
        - name: Create the user and the prefix, and take the lock.
          ansible.builtin.include_role: {name: vllm_source, tasks_from: 05_prefix.yml}
        - name: Create the release's venv.
          ansible.builtin.include_role: {name: vllm_source, tasks_from: 06_venv.yml}
      always:
        - name: Release the lock, as main.yml's always does.
          vllm_lock:
            path: /opt/vllm/.vllm-source.lock
            run_id: "{{ __vllm_source_run_id }}"
            state: absent
          when: __vllm_source_run_id is defined
"""


@pytest.fixture(scope="module")
def host(podman_ready):
    host = PodmanHost()
    host.install("python3-venv", "acl")
    # The "image's" venv, with a package the role's venv must see and one it must shadow.
    host.sh(
        "python3 -m venv /opt/base && site=$(/opt/base/bin/python -c "
        "'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])') && "
        "echo 'VERSION = \"from-base\"' > $site/basepkg.py && chmod -R a+rX /opt/base"
    )
    yield host
    host.remove()


def test_venv_made_from_a_venv_python_sees_its_packages(host: PodmanHost, tmp_path: Path) -> None:
    role_vars = {
        "vllm_source_python": "/opt/base/bin/python3",
        "vllm_source_venv_system_site_packages": True,
        "vllm_source_min_free_gb": 1,
        "vllm_source_target_device": "empty",
        "__vllm_source_build_key": "testkey",  # what 04_plan.yml names
        "__vllm_source_release_dir": "/opt/vllm/releases/testkey",
        "__vllm_source_needs_install": False,  # no torch: only the venv is under test
    }
    result = host.run_play(tmp_path, PLAY, role_vars)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    code = (
        "import basepkg, sys; print(basepkg.VERSION); "
        "print(sys.path.index('/opt/base/lib/python3.11/site-packages') "
        f"> sys.path.index('{VENV}/lib/python3.11/site-packages'))"
    )
    probe = host.sh(f'runuser -u vllm -- /opt/vllm/releases/testkey/venv/bin/python -c "{code}"')
    assert probe.stdout.split() == ["from-base", "True"]


def test_without_system_site_packages_the_parent_stays_invisible(
    host: PodmanHost, tmp_path: Path
) -> None:
    host.sh("rm -rf /opt/vllm")
    role_vars = {
        "vllm_source_python": "/opt/base/bin/python3",
        "vllm_source_min_free_gb": 1,
        "vllm_source_target_device": "empty",
        "__vllm_source_build_key": "testkey",  # what 04_plan.yml names
        "__vllm_source_release_dir": "/opt/vllm/releases/testkey",
        "__vllm_source_needs_install": False,  # no torch: only the venv is under test
    }
    result = host.run_play(tmp_path, PLAY, role_vars)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    probe = host.sh("/opt/vllm/releases/testkey/venv/bin/python -c 'import basepkg'", check=False)
    assert probe.returncode != 0
    assert "No module named 'basepkg'" in probe.stderr
