"""vllm_git_refs: a tag resolved without git, checked against `git ls-remote` on real
repositories (loose, packed, gc'd, delta'd, bare, worktree) and on HTTP servers (dumb
http.server, smart advertisements git itself wrote, 401/404/5xx, closed port, timeout)."""

from __future__ import annotations

import base64
import http.server
import json
import os
import pickle
import pwd
import re
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import vllm_git_refs
from ansible.module_utils.common import warnings as _warnings
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.vllm_fleet_gitrefs import (
    GitRefsError,
    apply_delta,
    classify_url,
    parse_packed_refs,
    resolve_tag,
    shown_url,
    url_secrets,
    valid_tag_name,
)

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
}
PROXY_VARS = ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
# Tags every repository gets: lightweight, annotated, a tag of a tag, a tag of a tag of a
# tag, one in a subdirectory; "missing" is none of them.
TAGS = ["light", "v1.0", "v1.0-re", "v1.0-re-re", "release/v2.0", "missing"]
SECRET = "s3cr3t-Pa55word"


def git(*args: str, cwd: Optional[Path] = None, env: Optional[Dict[str, str]] = None) -> str:
    done = subprocess.run(
        ["git", "-c", "init.defaultBranch=main", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV, **(env or {})},
        capture_output=True,
        check=True,
    )
    return done.stdout.decode()


def ls_remote(url: str, tag: str) -> str:
    """The commit git ls-remote gives for the tag, as the role's ls_remote_commit filter
    picks it: the peeled ^{} line, else the tag's own line, else ''."""
    out = git("ls-remote", url, f"refs/tags/{tag}", f"refs/tags/{tag}^{{}}")
    rows = [line.split() for line in out.splitlines() if line.strip()]
    peeled = [row for row in rows if row[1].endswith("^{}")]
    return (peeled or rows or [[""]])[0][0]


def make_repo(path: Path, extra_tags: int = 0) -> Path:
    """A work tree with three commits and the TAGS (and extra_tags similar annotated ones)."""
    path.mkdir(parents=True)
    git("init", "-q", str(path))
    for n in range(3):
        (path / "f.txt").write_text(f"content {n}\n" * (n + 1))
        git("add", "f.txt", cwd=path)
        git("commit", "-q", "-m", f"commit {n}", cwd=path)
    git("tag", "light", "HEAD~2", cwd=path)
    git("tag", "-a", "v1.0", "-m", "release 1.0", "HEAD~1", cwd=path)
    git("tag", "-a", "v1.0-re", "-m", "a tag of a tag", "v1.0", cwd=path)
    git("tag", "-a", "v1.0-re-re", "-m", "a tag of a tag of a tag", "v1.0-re", cwd=path)
    git("tag", "-a", "release/v2.0", "-m", "release 2.0", "HEAD", cwd=path)
    message = "A long release note that every extra tag shares, so that packs delta them.\n" * 20
    for n in range(extra_tags):
        git("tag", "-a", f"x{n:03d}", "-m", f"{message}extra {n}", f"HEAD~{n % 3}", cwd=path)
    return path


def assert_like_ls_remote(url: str, tags: List[str] = TAGS) -> None:
    for tag in tags:
        expected = ls_remote(url, tag)
        result = resolve_tag(url, tag)
        assert result["supported"], (tag, result)
        assert result["commit"] == expected, (tag, result)
        assert result["found"] is bool(expected), (tag, result)
        if expected:
            path = Path(url.replace("file://", ""))
            where = path if path.exists() else Path(f"{path}.git")
            assert git("cat-file", "-t", expected, cwd=where) == "commit\n"


# --- local repositories --------------------------------------------------------------------


def test_loose_refs_and_loose_objects(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    assert not (repo / ".git" / "packed-refs").exists()
    assert not list((repo / ".git" / "objects" / "pack").glob("*.pack"))
    assert_like_ls_remote(str(repo))


def test_packed_refs_with_peeled_lines(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    git("pack-refs", "--all", cwd=repo)
    packed = (repo / ".git" / "packed-refs").read_text()
    assert "peeled" in packed.splitlines()[0] and "\n^" in packed
    assert not (repo / ".git" / "refs" / "tags" / "v1.0").exists()
    assert_like_ls_remote(str(repo))


def test_gc_packs_refs_and_tag_objects(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    git("gc", "-q", cwd=repo)
    assert not list((repo / ".git" / "objects").glob("??/*"))  # no loose objects left
    assert list((repo / ".git" / "objects" / "pack").glob("*.idx"))
    assert_like_ls_remote(str(repo))


def test_packed_refs_without_peeled_lines_read_tag_objects_from_packs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    git("gc", "-q", cwd=repo)
    packed = repo / ".git" / "packed-refs"
    # An old git's packed-refs: no traits, no ^ lines; the tags must be peeled from the pack.
    lines = [line for line in packed.read_text().splitlines() if line[:1] not in "#^"]
    packed.write_text("\n".join(lines) + "\n")
    assert_like_ls_remote(str(repo))


def pack_entries(repo: Path) -> Dict[str, List[str]]:
    """sha -> git verify-pack -v columns (type, size, size in pack, offset[, depth, base])."""
    entries: Dict[str, List[str]] = {}
    for idx in (repo / ".git" / "objects" / "pack").glob("*.idx"):
        for line in git("verify-pack", "-v", str(idx)).splitlines():
            cols = line.split()
            if len(cols) >= 5 and re.fullmatch(r"[0-9a-f]{40}", cols[0]):
                entries[cols[0]] = cols[1:]
    return entries


@pytest.mark.parametrize("ofs_delta", [True, False], ids=["ofs-delta", "ref-delta"])
def test_loose_refs_to_delta_tag_objects_in_a_pack(tmp_path: Path, ofs_delta: bool) -> None:
    repo = make_repo(tmp_path / "repo", extra_tags=24)
    git(
        "-c",
        f"repack.useDeltaBaseOffset={str(ofs_delta).lower()}",
        "repack",
        "-adfq",
        "--window=250",
        "--depth=50",
        cwd=repo,
    )
    assert not (repo / ".git" / "packed-refs").exists()  # refs stay loose
    entries = pack_entries(repo)
    extra = [f"x{n:03d}" for n in range(24)]
    tag_objects = [git("rev-parse", f"refs/tags/{t}", cwd=repo).strip() for t in extra]
    deltas = [sha for sha in tag_objects if len(entries[sha]) > 4]
    assert deltas, "the pack has no delta'd tag object to read"
    pack = next((repo / ".git" / "objects" / "pack").glob("*.pack")).read_bytes()
    offset = int(entries[deltas[0]][3])
    assert pack[offset] >> 4 & 7 == (6 if ofs_delta else 7)  # OFS_DELTA or REF_DELTA
    assert_like_ls_remote(str(repo), TAGS + extra)


def test_bare_clone_and_path_forms(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    bare = tmp_path / "vllm.git"
    git("clone", "-q", "--bare", str(repo), str(bare))
    for url in [
        str(repo),  # <path>/.git
        f"{repo}/",
        str(repo / ".git"),
        f"file://{repo}",
        str(bare),
        f"file://{bare}",
        str(tmp_path / "vllm"),  # git also tries <path>.git
    ]:
        assert_like_ls_remote(url)
        assert resolve_tag(url, "v1.0")["source"] == "local"


def test_mirror_clone_with_its_objects_in_alternates(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    shared = tmp_path / "shared.git"
    git("clone", "-q", "--mirror", "--shared", str(repo), str(shared))
    assert (shared / "objects" / "info" / "alternates").exists()
    # Loose refs in the mirror, so the tag objects come from the alternate's loose objects.
    for tag in ["v1.0", "v1.0-re", "v1.0-re-re"]:
        sha = git("rev-parse", f"refs/tags/{tag}", cwd=shared).strip()
        (shared / "refs" / "tags" / tag).write_text(sha + "\n")
    (shared / "packed-refs").write_text("")
    assert_like_ls_remote(str(shared), ["v1.0", "v1.0-re", "v1.0-re-re", "missing"])


def test_linked_worktree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    worktree = tmp_path / "wt"
    git("worktree", "add", "-q", str(worktree), "light", cwd=repo)
    assert (worktree / ".git").is_file()
    assert resolve_tag(str(worktree), "v1.0")["commit"] == ls_remote(str(repo), "v1.0")


def test_tag_of_a_tree_is_left_to_git(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    git("tag", "-a", "tree-tag", "-m", "a tree", "HEAD^{tree}", cwd=repo)
    result = resolve_tag(str(repo), "tree-tag")
    assert result["supported"] is False and result["commit"] == ""
    assert "points at a tree" in result["reason"]


def test_sha256_repository_is_left_to_git(tmp_path: Path) -> None:
    repo = tmp_path / "sha256"
    git("init", "-q", "--object-format=sha256", str(repo))
    result = resolve_tag(str(repo), "v1.0")
    assert result == {**result, "supported": False, "found": False, "commit": ""}
    assert "SHA-256" in result["reason"]


def test_a_malformed_tag_reads_no_file(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (tmp_path / "refs" / "tags").mkdir(parents=True)
    (tmp_path / "refs" / "tags" / "evil").write_text(git("rev-parse", "HEAD", cwd=repo))
    for tag in ["../../../refs/tags/evil", "a..b", "-x y", "v1.0^{}", ".hidden", "x.lock", ""]:
        assert resolve_tag(str(repo), tag)["found"] is False, tag


@pytest.mark.parametrize("form", ["missing", "empty-dir", "file"])
def test_no_repository_is_no_network_error(tmp_path: Path, form: str) -> None:
    path = tmp_path / "nowhere"
    if form == "empty-dir":
        path.mkdir()
    elif form == "file":
        path.write_text("not a repository\n")
    for url in [str(path), f"file://{path}"]:
        with pytest.raises(GitRefsError) as exc:
            resolve_tag(url, "v1.0")
        assert exc.value.retryable is False
        msg = exc.value.msg
        assert f"no git repository at {path} on {socket.gethostname()}" in msg
        assert "not a network error" in msg and "vllm_source_repo_url" in msg


def as_other_user(fn: Callable[[], Any]) -> Tuple[str, Any]:
    """('ok', value) or ('error', (msg, retryable)) of fn run as nobody (this process when it
    is not root: then the files it chmods are unreadable to it already)."""

    def call() -> Tuple[str, Any]:
        try:
            return "ok", fn()
        except GitRefsError as exc:
            return "error", (exc.msg, exc.retryable)

    if os.geteuid() != 0:
        return call()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, report through the pipe
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(write_end, pickle.dumps(call()))
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)


@pytest.fixture
def world_readable_tmp(tmp_path: Path) -> Iterator[Path]:
    """A directory every user can search (pytest's tmp_path is private to its user)."""
    base = Path("/tmp") / f"gitrefs-{os.getpid()}-{time.monotonic_ns()}"
    base.mkdir(mode=0o755)
    base.chmod(0o755)
    yield base
    subprocess.run(["chmod", "-R", "u+rwX", str(base)], check=False)
    subprocess.run(["rm", "-rf", "--", str(base)], check=False)


def test_unreadable_repository_names_the_user(world_readable_tmp: Path) -> None:
    repo = make_repo(world_readable_tmp / "repo")
    subprocess.run(["chmod", "-R", "a+rX", str(repo)], check=True)
    repo.chmod(0o700)
    kind, (msg, retryable) = as_other_user(lambda: resolve_tag(str(repo), "v1.0"))
    assert kind == "error" and retryable is False
    user = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    assert f"user {user}" in msg and f"cannot read {repo}" in msg
    assert "not a network error" in msg and "vllm_source_repo_url" in msg


def test_unreadable_packed_refs_names_the_file(world_readable_tmp: Path) -> None:
    repo = make_repo(world_readable_tmp / "repo")
    git("pack-refs", "--all", cwd=repo)
    subprocess.run(["chmod", "-R", "a+rX", str(repo)], check=True)
    (repo / ".git" / "packed-refs").chmod(0o600)
    kind, (msg, retryable) = as_other_user(lambda: resolve_tag(str(repo), "v1.0"))
    assert kind == "error" and retryable is False
    assert f"cannot read {repo}/.git/packed-refs (Permission denied)" in msg


# --- URL forms -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ssh://git@github.com/vllm-project/vllm.git",
        "git@github.com:vllm-project/vllm.git",
        "github.com:vllm-project/vllm",
        "git://github.com/vllm-project/vllm.git",
        "git+ssh://git@github.com/vllm-project/vllm.git",
        "relative/vllm",
        "file://otherhost/srv/vllm",
    ],
)
def test_url_forms_left_to_git(url: str) -> None:
    result = resolve_tag(url, "v0.30.0")
    assert result["supported"] is False and result["found"] is False
    assert result["commit"] == "" and result["source"] == "" and result["reason"]
    # As the role's __vllm_source_repo_url_shown shows it: a //user@ is masked.
    assert result["url_shown"] == re.sub(r"//[^/@\s]+@", "//***@", url)


def test_shown_url_and_secrets() -> None:
    url = f"https://me:{SECRET}@git.example:8443/vllm.git"
    assert shown_url(url) == "https://***@git.example:8443/vllm.git"
    assert shown_url("https://tok@git.example/v") == "https://***@git.example/v"
    assert shown_url("https://git.example/v") == "https://git.example/v"
    assert shown_url("/srv/vllm") == "/srv/vllm"
    assert SECRET in url_secrets(url) and not url_secrets("https://git.example/v")
    target = classify_url("https://me:p%40ss@git.example/vllm.git")
    assert (target.kind, target.location) == ("http", "https://git.example/vllm.git")
    assert (target.username, target.password) == ("me", "p@ss")
    assert classify_url("file:///srv/my%20repo").location == "/srv/my repo"


def test_valid_tag_names() -> None:
    assert all(map(valid_tag_name, ["v0.30.0", "release/v2.0", "v1.0rc1", "a-b_c"]))
    assert not any(map(valid_tag_name, ["a..b", "/a", "a/", "a.lock", "a b", "a@{1}", "a~1"]))


def test_packed_refs_parse() -> None:
    a, b, c = "a" * 40, "b" * 40, "c" * 40
    text = f"# pack-refs with: peeled fully-peeled sorted \n{a} refs/tags/x\n^{b}\n{c} refs/y\n"
    traits, refs = parse_packed_refs(text)
    assert traits == {"peeled", "fully-peeled", "sorted"}
    assert refs == {"refs/tags/x": (a, b), "refs/y": (c, None)}


def test_apply_delta_copy_and_insert() -> None:
    base = b"0123456789"
    # sizes 10 -> 7; copy offset 2 size 3 ("234"), insert "abcd".
    delta = bytes([10, 7, 0x80 | 0x01 | 0x10, 2, 3, 4]) + b"abcd"
    assert apply_delta(base, delta) == b"234abcd"


# --- HTTP ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)


class Server:
    """An HTTP server in a thread; `requests` records (path, headers) of each request."""

    def __init__(self, handler: type) -> None:
        self.requests: List[Tuple[str, Dict[str, str]]] = []
        outer = self

        class Recording(handler):  # type: ignore[misc, valid-type]
            def parse_request(self) -> bool:
                ok = super().parse_request()
                if ok:
                    outer.requests.append((self.path, dict(self.headers.items())))
                return ok

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recording)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, userinfo: str = "", host: str = "127.0.0.1") -> str:
        return f"http://{userinfo}{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[type], Server]]:
    servers: List[Server] = []

    def start(handler: type) -> Server:
        servers.append(Server(handler))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo")
    bare = tmp_path / "www" / "vllm.git"
    git("clone", "-q", "--bare", str(repo), str(bare))
    git("update-server-info", cwd=bare)
    return bare


def test_dumb_http_info_refs(bare: Path, serve: Callable[[type], Server]) -> None:
    root = str(bare.parent)

    class Files(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=root, **kwargs)

    server = serve(Files)
    url = server.url("/vllm.git")
    for tag in TAGS:
        result = resolve_tag(url, tag)
        assert result["source"] == "http" and result["supported"]
        assert result["commit"] == ls_remote(url, tag) == ls_remote(str(bare), tag), tag
    path, headers = ours(server)[-1]
    assert path == "/vllm.git/info/refs?service=git-upload-pack"
    assert "Git-Protocol" not in headers and "Authorization" not in headers


def ours(server: Server) -> List[Tuple[str, Dict[str, str]]]:
    """The requests this module sent (not those of git ls-remote)."""
    return [r for r in server.requests if r[1].get("User-Agent") == "git/vllm-fleet"]


def smart_handler(advertisement: bytes, seen: Optional[List[str]] = None) -> type:
    class Smart(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not self.path.endswith("/info/refs?service=git-upload-pack"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-git-upload-pack-advertisement")
            self.send_header("Content-Length", str(len(advertisement)))
            self.end_headers()
            self.wfile.write(advertisement)

    return Smart


def advertisement(bare: Path, protocol: str = "") -> bytes:
    """What git-http-backend sends: the service line, a flush, then git upload-pack's own
    ref advertisement (protocol v0, or v1 with its version line)."""
    env = {"GIT_PROTOCOL": protocol} if protocol else {}
    refs = subprocess.run(
        ["git", "upload-pack", "--stateless-rpc", "--advertise-refs", str(bare)],
        env={**os.environ, **GIT_ENV, **env},
        capture_output=True,
        check=True,
    ).stdout
    return b"001e# service=git-upload-pack\n0000" + refs


@pytest.mark.parametrize("protocol", ["", "version=1"], ids=["v0", "v1"])
def test_smart_http_advertisement(
    bare: Path, serve: Callable[[type], Server], protocol: str
) -> None:
    body = advertisement(bare, protocol)
    assert b"\0" in body and b"^{}" in body  # capabilities after NUL, peeled lines
    assert (b"version 1" in body) is bool(protocol)
    server = serve(smart_handler(body))
    url = server.url("/vllm-project/vllm.git/")
    for tag in TAGS:
        result = resolve_tag(url, tag)
        assert result["commit"] == ls_remote(url, tag) == ls_remote(str(bare), tag), tag
    path, headers = ours(server)[-1]
    assert path == "/vllm-project/vllm.git/info/refs?service=git-upload-pack"
    assert "Git-Protocol" not in headers


def test_credentials_go_as_basic_auth_and_are_never_shown(
    bare: Path, serve: Callable[[type], Server]
) -> None:
    server = serve(smart_handler(advertisement(bare)))
    url = server.url("/vllm.git", userinfo=f"me:{SECRET}@")
    result = resolve_tag(url, "v1.0")
    assert result["commit"] == ls_remote(str(bare), "v1.0")
    assert result["url_shown"] == server.url("/vllm.git", userinfo="***@")
    assert SECRET not in json.dumps(result)
    path, headers = server.requests[-1]
    assert headers["Authorization"] == "Basic " + base64.b64encode(f"me:{SECRET}".encode()).decode()
    assert SECRET not in path


def status_handler(code: int) -> type:
    class Status(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(code)
            if code == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Status


@pytest.mark.parametrize(
    ("code", "userinfo", "words", "retryable"),
    [
        (401, "", "asks for credentials (HTTP 401)", False),
        (401, f"me:{SECRET}@", "refused the credentials in the URL (HTTP 401)", False),
        (403, f"me:{SECRET}@", "refused the credentials in the URL (HTTP 403)", False),
        (403, "", "refused access (HTTP 403)", False),
        (404, "", "no repository at that URL (HTTP 404)", False),
        (503, f"me:{SECRET}@", "HTTP 503", True),
    ],
)
def test_http_failures(
    serve: Callable[[type], Server], code: int, userinfo: str, words: str, retryable: bool
) -> None:
    server = serve(status_handler(code))
    url = server.url("/vllm.git", userinfo=userinfo)
    with pytest.raises(GitRefsError) as exc:
        resolve_tag(url, "v1.0")
    assert words in exc.value.msg and exc.value.retryable is retryable
    assert "vllm_source_repo_url" in exc.value.msg and SECRET not in exc.value.msg
    assert shown_url(url) in exc.value.msg
    assert ("network error" in exc.value.msg) is retryable


def test_closed_port_is_a_network_error() -> None:
    with pytest.raises(GitRefsError) as exc:
        resolve_tag(f"http://me:{SECRET}@127.0.0.1:{closed_port()}/vllm.git", "v1.0")
    assert exc.value.retryable is True and "a network error" in exc.value.msg
    assert SECRET not in exc.value.msg and "refused" in exc.value.msg.lower()


def test_timeout_is_a_network_error(serve: Callable[[type], Server]) -> None:
    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(3)

    server = serve(Slow)
    started = time.monotonic()
    with pytest.raises(GitRefsError) as exc:
        resolve_tag(server.url("/vllm.git"), "v1.0", timeout=1)
    assert time.monotonic() - started < 2.5
    assert exc.value.retryable is True and "timed out" in exc.value.msg


def test_a_web_page_is_no_repository(serve: Callable[[type], Server]) -> None:
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html><body>Sign in</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with pytest.raises(GitRefsError) as exc:
        resolve_tag(serve(Page).url("/vllm"), "v1.0")
    assert exc.value.retryable is False and "no git repository" in exc.value.msg


def test_redirects_resend_credentials_only_to_the_same_host(
    bare: Path, serve: Callable[[type], Server]
) -> None:
    body = advertisement(bare)
    target = {"host": ""}

    class Moved(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/old/"):
                self.send_response(301)
                self.send_header(
                    "Location",
                    f"{target['host']}/new/vllm.git/{self.path[len('/old/vllm.git/') :]}",
                )
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-git-upload-pack-advertisement")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = serve(Moved)
    url = server.url("/old/vllm.git", userinfo=f"me:{SECRET}@")
    for host, sent in [(server.url(""), True), (server.url("", host="localhost"), False)]:
        target["host"] = host
        assert resolve_tag(url, "v1.0")["commit"] == ls_remote(str(bare), "v1.0")
        assert server.requests[-1][0] == "/new/vllm.git/info/refs?service=git-upload-pack"
        assert ("Authorization" in server.requests[-1][1]) is sent


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_proxy_from_the_environment_and_no_proxy(
    bare: Path, serve: Callable[[type], Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(smart_handler(advertisement(bare)))
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("no_proxy", "example.invalid")
    with pytest.raises(GitRefsError) as exc:  # through the (dead) proxy
        resolve_tag(server.url("/vllm.git"), "v1.0")
    assert exc.value.retryable is True
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    assert resolve_tag(server.url("/vllm.git"), "v1.0")["found"] is True


def test_https_certificates_are_verified(tmp_path: Path, serve: Callable[[type], Server]) -> None:
    import ssl

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        capture_output=True,
        check=True,
    )  # fmt: skip
    server = serve(status_handler(404))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    with pytest.raises(GitRefsError) as exc:
        resolve_tag(f"https://me:{SECRET}@127.0.0.1:{server.port}/vllm.git", "v1.0")
    assert exc.value.retryable is False and "certificate could not be verified" in exc.value.msg
    assert SECRET not in exc.value.msg and "https://***@127.0.0.1" in exc.value.msg


# --- the module ----------------------------------------------------------------------------


def run_main(args: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> Tuple[int, Dict]:
    # A module runs in a fresh process: start without the warnings earlier runs left.
    _warnings._global_warnings.clear()
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        vllm_git_refs.main()
    out = capsys.readouterr().out
    assert SECRET not in out
    return int(exc.value.code or 0), json.loads(out)


def test_main_resolves_a_local_path_and_shows_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "repo")
    rc, result = run_main({"url": str(repo), "tag": "v1.0-re", "_ansible_check_mode": True}, capsys)
    assert rc == 0 and result["changed"] is False
    assert result["commit"] == ls_remote(str(repo), "v1.0-re")
    assert (result["found"], result["supported"], result["source"]) == (True, True, "local")
    assert result["url_shown"] == str(repo)  # no credentials: not masked as ********
    rc, result = run_main({"url": str(repo), "tag": "v9.9.9"}, capsys)
    assert rc == 0 and result["found"] is False and result["commit"] == ""


def test_main_fails_for_a_missing_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "absent"
    rc, result = run_main({"url": f"file://{path}", "tag": "v1.0"}, capsys)
    assert rc == 1 and result["failed"] is True and result["retryable"] is False
    assert f"no git repository at {path} on {socket.gethostname()}" in result["msg"]


def test_main_hides_credentials(
    bare: Path, serve: Callable[[type], Server], capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve(smart_handler(advertisement(bare)))
    url = server.url("/vllm.git", userinfo=f"me:{SECRET}@")
    rc, result = run_main({"url": url, "tag": "v1.0", "timeout": 5}, capsys)
    assert rc == 0 and result["commit"] == ls_remote(str(bare), "v1.0")
    assert result["url_shown"] == server.url("/vllm.git", userinfo="***@")
    denied = serve(status_handler(401))
    url = denied.url("/vllm.git", userinfo=f"me:{SECRET}@")
    rc, result = run_main({"url": url, "tag": "v1.0"}, capsys)
    assert rc == 1 and result["retryable"] is False
    assert "refused the credentials" in result["msg"]
    assert result["url_shown"] == denied.url("/vllm.git", userinfo="***@")


def test_main_leaves_ssh_to_git(capsys: pytest.CaptureFixture[str]) -> None:
    url = "git@github.com:vllm-project/vllm.git"
    rc, result = run_main({"url": url, "tag": "v0.30.0"}, capsys)
    assert rc == 0 and result["supported"] is False and result["changed"] is False
    assert result["url_shown"] == url and result["reason"]
