"""module_utils/vllm_fleet_gitcheckout.py (the vllm_git_checkout module): git clones and
updates a checkout of an http(s) repository that asks for user:token with the credentials in
its process environment only; none reaches .git/config or a credential store, an origin URL
with credentials an older run left is replaced, and failures mask them.

The real git of this machine talks to tests/git_http_server.py (git-http-backend behind
Basic authentication) on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible.module_utils.vllm_fleet_gitcheckout import (
    CheckoutError,
    checkout,
    credential_env,
    git_url,
)

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "ghp-t0ken%2Fwith%40at"  # as written in the URL: percent-encoded
DECODED = "ghp-t0ken/with@at"


@pytest.mark.parametrize(
    ("url", "want"),
    [
        ("https://fleet:tok@git.example/vllm.git", "https://git.example/vllm.git"),
        ("http://fleet@git.example:8080/v.git", "http://git.example:8080/v.git"),
        ("https://git.example/vllm.git", "https://git.example/vllm.git"),
        ("git@github.com:vllm-project/vllm.git", "git@github.com:vllm-project/vllm.git"),
        ("ssh://git@host/vllm.git", "ssh://git@host/vllm.git"),
        ("file:///srv/mirror/vllm.git", "file:///srv/mirror/vllm.git"),
    ],
)
def test_the_url_git_sees_has_no_credentials(url: str, want: str) -> None:
    assert git_url(url) == want


def test_the_environment_carries_the_decoded_credentials_and_clears_other_helpers() -> None:
    env = credential_env(f"https://fleet:{TOKEN}@git.example/vllm.git")
    assert env["VLLM_FLEET_GIT_USERNAME"] == "fleet"
    assert env["VLLM_FLEET_GIT_PASSWORD"] == DECODED
    assert env["GIT_CONFIG_COUNT"] == "2"
    assert (env["GIT_CONFIG_KEY_0"], env["GIT_CONFIG_VALUE_0"]) == ("credential.helper", "")
    assert env["GIT_CONFIG_VALUE_1"].startswith("!")
    assert DECODED not in env["GIT_CONFIG_VALUE_1"] and TOKEN not in env["GIT_CONFIG_VALUE_1"]
    assert env["GIT_TERMINAL_PROMPT"] == "0"


@pytest.mark.parametrize(
    "url", ["https://git.example/vllm.git", "git@host:v.git", "ssh://git@host/v.git", "/srv/v"]
)
def test_without_credentials_only_prompts_are_off(url: str) -> None:
    assert credential_env(url) == {"GIT_TERMINAL_PROMPT": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_repo(tmp_path: Path):
    """A bare repository with one tagged commit, served over http with Basic auth; the
    user's git configuration has a `store` helper, which must never see the token."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[credential]\n\thelper = store\n", encoding="utf-8")
    git_env = dict(os.environ, HOME=str(home), GIT_CONFIG_NOSYSTEM="1")
    work = tmp_path / "work"

    def git(*args: str, cwd: Path = tmp_path, env=None) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["git", *args], cwd=cwd, env=env or git_env, capture_output=True, text=True
        )

    git("init", "-q", str(work))
    (work / "README").write_text("hello\n", encoding="utf-8")
    ident = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    git(*ident, "add", "README", cwd=work)
    git(*ident, "commit", "-qm", "one", cwd=work)
    git("tag", "v0.1.0", cwd=work)
    git("clone", "-q", "--bare", str(work), str(tmp_path / "srv" / "vllm.git"))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "git_http_server.py"),
         str(tmp_path / "srv"), "fleet", str(port)],
        env=dict(os.environ, GIT_HTTP_TOKEN=DECODED),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the git server did not start"
                time.sleep(0.05)
        yield f"http://fleet:{TOKEN}@127.0.0.1:{port}/vllm.git", git, git_env, tmp_path
    finally:
        server.kill()
        server.wait()


def runner(git_env):
    """What the module's run_command does: git's environment plus the credential one."""

    def run(argv, cwd, extra):
        done = subprocess.run(
            argv, cwd=cwd, env={**git_env, **extra}, capture_output=True, text=True
        )
        return done.returncode, done.stdout, done.stderr

    return run


def assert_no_token_under(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert DECODED.encode() not in data and TOKEN.encode() not in data, path


def test_clone_and_update_take_the_credentials_from_the_environment_only(private_repo) -> None:
    url, git, git_env, tmp_path = private_repo
    run = runner(git_env)
    env = credential_env(url)
    dest = tmp_path / "checkout"
    first = checkout(lambda a, c: run(a, c, env), url, str(dest), "v0.1.0", depth=1)
    assert first["changed"] and first["before"] is None
    assert (dest / "README").read_text(encoding="utf-8") == "hello\n"
    assert git("remote", "get-url", "origin", cwd=dest).stdout.strip() == git_url(url)

    # A new tag upstream, and an origin URL with the token that an older run wrote.
    work = tmp_path / "work"
    (work / "README").write_text("two\n", encoding="utf-8")
    ident = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    git(*ident, "commit", "-qam", "two", cwd=work)
    git("tag", "v0.2.0", cwd=work)
    git("push", "-q", str(tmp_path / "srv" / "vllm.git"), "v0.2.0", cwd=work)
    git("remote", "set-url", "origin", url, cwd=dest)
    second = checkout(lambda a, c: run(a, c, env), url, str(dest), "v0.2.0", depth=1)
    assert second["changed"] and second["before"] == first["after"] != second["after"]
    assert (dest / "README").read_text(encoding="utf-8") == "two\n"
    assert git("remote", "get-url", "origin", cwd=dest).stdout.strip() == git_url(url)
    again = checkout(lambda a, c: run(a, c, env), url, str(dest), "v0.2.0", depth=1)
    assert not again["changed"]

    assert not (tmp_path / "home" / ".git-credentials").exists(), "a store helper kept it"
    assert_no_token_under(tmp_path)


def test_a_refused_clone_fails_with_the_credentials_masked(private_repo) -> None:
    url, _git, git_env, tmp_path = private_repo
    wrong = url.replace(TOKEN, "not-the-token")
    run = runner(git_env)
    with pytest.raises(CheckoutError) as failed:
        checkout(
            lambda a, c: run(a, c, credential_env(wrong)), wrong, str(tmp_path / "x"), "v0.1.0"
        )
    assert "not-the-token" not in failed.value.msg
    assert "git clone" in failed.value.msg and git_url(url) in failed.value.msg


def test_local_changes_to_tracked_files_are_refused(private_repo) -> None:
    url, _git, git_env, tmp_path = private_repo
    run = runner(git_env)
    env = credential_env(url)
    dest = tmp_path / "checkout"
    checkout(lambda a, c: run(a, c, env), url, str(dest), "v0.1.0")
    (dest / "README").write_text("edited\n", encoding="utf-8")
    with pytest.raises(CheckoutError, match="local changes to tracked files"):
        checkout(lambda a, c: run(a, c, env), url, str(dest), "v0.1.0")


def test_without_the_credentials_the_server_refuses(private_repo) -> None:
    url, git, git_env, tmp_path = private_repo
    done = git("clone", "-q", git_url(url), str(tmp_path / "refused"),
               env={**git_env, "GIT_TERMINAL_PROMPT": "0"})  # fmt: skip
    assert done.returncode != 0
    assert "Authentication failed" in done.stderr or "could not read Username" in done.stderr
