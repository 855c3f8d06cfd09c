"""The served host the fault and checkpoint tests share: a real host whose current release
is a verified vLLM v0.30.0 `empty` build, and the helpers that read its state."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

from .podman_host import CACHE, REPO_ROOT, PodmanHost, podman

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


def releases(host: PodmanHost, prefix: str = PREFIX) -> list:
    return sorted(host.sh(f"ls {prefix}/releases 2>/dev/null || true").stdout.split())


# The served host's first run clones over http from a server that asks for this token
# (tests/git_http_server.py on the host, git-http-backend over /srv/mirror).
GIT_USER, GIT_TOKEN, GIT_PORT = "fleet", "ghp-it-s3cr3t-t0ken", 8417


def serve_mirror_over_http(host: PodmanHost) -> str:
    """Serve the host's mirror at http://127.0.0.1:8417/vllm.git to clients that send
    fleet:<GIT_TOKEN>; returns the URL with the credentials, as a user would set it."""
    podman("cp", str(REPO_ROOT / "tests" / "git_http_server.py"),
           f"{host.name}:/usr/local/bin/git-http-server")  # fmt: skip
    server = ["python3", "/usr/local/bin/git-http-server", "/srv/mirror", GIT_USER, str(GIT_PORT)]
    podman("exec", "-d", "-e", f"GIT_HTTP_TOKEN={GIT_TOKEN}", host.name, *server)
    host.sh(
        f"for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/{GIT_PORT}) 2>/dev/null && exit 0;"
        " sleep 0.1; done; exit 1"
    )
    return f"http://{GIT_USER}:{GIT_TOKEN}@127.0.0.1:{GIT_PORT}/vllm.git"


# Where the tests look for a token on the host: everything a run writes, /proc and /sys aside.
SECRET_DIRS = "/opt /etc /root /tmp /home /var/log /var/tmp /srv"


def files_holding(host: PodmanHost, secret: str) -> list:
    return host.sh(
        f"grep -rIl --exclude-dir=proc --exclude-dir=sys -e {secret} {SECRET_DIRS} "
        "2>/dev/null || true"
    ).stdout.split()
