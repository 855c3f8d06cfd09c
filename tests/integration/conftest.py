from __future__ import annotations

import shutil

import pytest

from .podman_host import (
    CACHE,
    FAKE_NVCC,
    IMAGE,
    NETWORK,
    ROLE_PACKAGES,
    SSH_KEY,
    PodmanHost,
    podman,
)
from .served_host import (
    GIT_TOKEN,
    PREFIX,
    WHEELHOUSE,
    current_vllm,
    files_holding,
    role_vars,
    serve_mirror_over_http,
)
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
    if podman("network", "exists", NETWORK, check=False).returncode != 0 or not SSH_KEY.is_file():
        pytest.skip(f"network {NETWORK} or key {SSH_KEY} missing: run tools/prepare-test-env.sh")


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
    # One with the tag's torch but no wheelhouse.json: its wheels cannot be hash-checked;
    # and only another arch's uv, which vllm_source_installer uv cannot install here.
    host.sh(
        "mkdir -p /srv/wheelhouse-unhashed && "
        ": > /srv/wheelhouse-unhashed/torch-2.13.0+cpu-cp311-cp311-linux_x86_64.whl && "
        ": > /srv/wheelhouse-unhashed/"
        "uv-0.13.9-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
    )
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
    # The first run clones a private repository over http with user:token in the URL; what
    # it left on the host is looked at once it ended (test_secrets.py), before later runs
    # change the checkout.
    url = serve_mirror_over_http(host)
    result = host.run_role(
        tmp_path_factory.mktemp("first"),
        verbosity=3,
        **role_vars(artifacts, vllm_source_repo_url=url),
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert current_vllm(host) == "0.30.0"
    host.first_run = result
    host.first_run_token_files = files_holding(host, GIT_TOKEN)
    host.first_run_origin = host.sh(
        f"git -c safe.directory='*' -C {PREFIX}/extern/vllm remote get-url origin", check=False
    ).stdout.strip()
    yield host
    host.remove()
