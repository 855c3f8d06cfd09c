from __future__ import annotations

import shutil

import pytest

from .podman_host import CACHE, FAKE_NVCC, IMAGE, ROLE_PACKAGES, PodmanHost, podman
from .served_host import WHEELHOUSE, current_vllm, role_vars
from .test_stage_sources import upstream  # noqa: F401  (a local upstream, for other modules too)


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def podman_ready():
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed: run tools/prepare-test-env.sh (tools/test.sh does)")
    if podman("image", "exists", IMAGE, check=False).returncode != 0:
        pytest.skip(f"test image {IMAGE} missing: run tools/prepare-test-env.sh")
    if not (CACHE / "mirror" / "vllm.git").is_dir():
        pytest.skip("vLLM mirror missing: run tools/prepare-test-env.sh")


# A full disk and a read-only one, for the prefix checks.
BARE_DISKS = ("--tmpfs", "/mnt/full:size=1m", "-v", "/usr/share/doc:/mnt/ro:ro")


@pytest.fixture
def bare_host(podman_ready):
    """A fresh host as users hand it to us: no git, no venv, no GPU."""
    host = PodmanHost(extra_args=BARE_DISKS)
    yield host
    host.remove()


@pytest.fixture(scope="module")
def prepared_host(podman_ready):
    """A host that already has the packages the role installs (git, python3-venv, acl),
    a CUDA 13.0 nvcc (no GPU) and an incomplete staging directory of CUDA sources."""
    host = PodmanHost()
    host.install(*ROLE_PACKAGES)
    fake = "/usr/local/bin/python3.9"  # answers the role's probe like a Python too old for 0.30
    probe = '{"version": "3.9.18", "venv": false, "site": ["/usr/lib/python3.9/site-packages"]}'
    host.sh(f"cat > {fake} <<'X'\n#!/bin/sh\necho '{probe}'\nX\nchmod 755 {fake}")
    host.sh(FAKE_NVCC)
    host.sh("mkdir -p /srv/deps/partial/cutlass")  # a staging dir that lacks most projects
    host.sh("mkdir -p /srv/wheelhouse-empty")  # an offline wheelhouse without torch
    yield host
    host.remove()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    """The served host's artifact cache, of these tests' own: a wheel another test cached for
    the same key would spare the builds the fault tests need to hit."""
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def served_host(podman_ready, tmp_path_factory, artifacts):
    """A host whose current release is a verified vLLM v0.30.0 (shared by the checkpoint
    shape tests, which run first, and the fault tests, which then change it)."""
    host = PodmanHost(extra_args=WHEELHOUSE)
    host.install(*ROLE_PACKAGES)
    result = host.run_role(tmp_path_factory.mktemp("first"), **role_vars(artifacts))
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert current_vllm(host) == "0.30.0"
    yield host
    host.remove()
