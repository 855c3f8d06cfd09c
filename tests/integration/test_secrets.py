"""A private package index's password never reaches the run's output or the host's disk."""

from __future__ import annotations

import pytest

from .podman_host import ROLE_PACKAGES, PodmanHost
from .record import record
from .served_host import GIT_TOKEN, PREFIX

TOKEN = "idx-s3cr3t-t0ken"


@pytest.fixture
def host(podman_ready):
    host = PodmanHost()
    host.install(*ROLE_PACKAGES)
    yield host
    host.remove()


def test_index_password_stays_out_of_output_and_host(host: PodmanHost, tmp_path) -> None:
    result = host.run_role(
        tmp_path,
        vllm_source_repo_url="file:///srv/mirror/vllm.git",
        vllm_source_version="v0.30.0",
        vllm_source_target_device="empty",
        vllm_source_require_gpu=False,
        vllm_source_min_free_gb=1,
        vllm_source_network_retries=0,
        vllm_source_torch_index_base=f"https://fleet:{TOKEN}@127.0.0.1:9/whl",
        vllm_source_pip_index_url=f"https://fleet:{TOKEN}@127.0.0.1:9/simple",
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    # It failed where pip needed the index, and said so with the URL masked.
    assert "Install the PyTorch version the tag pins, in the planned variant. failed" in output
    assert "https://***@127.0.0.1:9" in output
    assert TOKEN not in output
    found = host.sh(
        f"grep -rIl --exclude-dir=proc --exclude-dir=sys -e {TOKEN} /opt /etc /root /tmp /home "
        "/var/log /srv 2>/dev/null || true"
    ).stdout.split()
    assert found == []
    record(
        "security",
        "private index password in vllm_source_pip_index_url",
        "test_secrets.py::test_index_password_stays_out_of_output_and_host",
        {
            "input": {"vllm_source_pip_index_url": "https://fleet:<token>@127.0.0.1:9/simple"},
            "exit_code": result.returncode,
            "observed": "token absent from the run output and from /opt /etc /root /tmp /home "
            "/var/log /srv on the host; the failure names the URL as https://***@127.0.0.1:9",
        },
    )


def test_repository_token_stays_out_of_output_git_and_host(served_host: PodmanHost) -> None:
    """The served host's first run cloned vLLM over http from a server that wants
    fleet:<token> in vllm_source_repo_url, at -vvv: the token reached neither the output nor
    any file (the checkout's origin has the URL without it), and the run completed."""
    output = served_host.first_run.stdout + served_host.first_run.stderr
    assert served_host.first_run.returncode == 0
    assert GIT_TOKEN not in output
    assert served_host.first_run_token_files == []
    assert served_host.first_run_origin == "http://127.0.0.1:8417/vllm.git"
    record(
        "security",
        "repository token in an http(s) vllm_source_repo_url",
        "test_secrets.py::test_repository_token_stays_out_of_output_git_and_host",
        {
            "input": {"vllm_source_repo_url": "http://fleet:<token>@127.0.0.1:8417/vllm.git"},
            "exit_code": served_host.first_run.returncode,
            "observed": "the run (at -vvv) cloned through the server's Basic auth and "
            f"completed; the token absent from its output and from every file under "
            f"/opt /etc /root /tmp /home /var/log /var/tmp /srv; {PREFIX}/extern/vllm's origin is "
            f"{served_host.first_run_origin}",
        },
    )
