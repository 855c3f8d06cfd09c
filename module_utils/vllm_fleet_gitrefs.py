"""The commit a tag points at, read without git: from a local repository or over HTTP(S).

Plain functions for library/vllm_git_refs.py and its unit tests. They run on the managed host
before any system package (git included) is installed, so they use the standard library only
and stay Python 3.6 compatible (no `from __future__ import annotations`).

A local repository is read the way git reads it: loose refs, then packed-refs (with its
peeled `^` lines); an object that must be peeled is read from loose objects or from packs
(idx version 2, deltas applied). Over HTTP(S) the ref advertisement of
`<url>/info/refs?service=git-upload-pack` is parsed, smart (pkt-line, protocol v0/v1) or dumb
(`git update-server-info`'s text). Every other URL form is reported unsupported, so the role
asks git once git is installed.
"""

import base64
import binascii
import errno
import os
import re
import socket
import ssl
import stat
import struct
import zlib
from http.client import HTTPException
from typing import BinaryIO, Dict, Iterator, List, NamedTuple, Optional, Set, Tuple, Union
from urllib import error as urlerror
from urllib import parse as urlparse
from urllib import request as urlrequest

VARIABLE = "vllm_source_repo_url"
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
ZERO_SHA = "0" * 40
MAX_PEEL = 32  # tags of tags followed before giving up
MAX_DELTA_CHAIN = 10000  # git's own default depth is 50
USER_AGENT = "git/vllm-fleet"
# The file names git's enter_repo() tries for a local path, in its order.
LOCAL_SUFFIXES = ("/.git", "", ".git/.git", ".git")
PACK_TYPES = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}
OFS_DELTA = 6
REF_DELTA = 7

Result = Dict[str, Union[str, bool]]


class GitRefsError(Exception):
    """A failure the module reports: `msg` names vllm_source_repo_url and the fix, holds no
    credential; `retryable` says whether trying again later can help (a network error)."""

    def __init__(self, msg: str, retryable: bool) -> None:
        super().__init__(msg)
        self.msg = msg
        self.retryable = retryable


class Unsupported(Exception):
    """Something this reader does not handle; git, once installed, decides instead."""


class Target(NamedTuple):
    """What a URL names: kind is local, http or unsupported; location is the path, or the URL
    without credentials; reason says why a URL is unsupported."""

    kind: str
    location: str
    username: Optional[str]
    password: Optional[str]
    reason: str


# --- URLs ----------------------------------------------------------------------------------


def _split_userinfo(netloc: str) -> Tuple[str, str]:
    """(userinfo, host[:port]) of a netloc; userinfo is '' when there is none."""
    userinfo, at, hostport = netloc.rpartition("@")
    return (userinfo, hostport) if at else ("", netloc)


def shown_url(url: str) -> str:
    """The URL with any user[:password] replaced by ***@, fit for messages."""
    parts = urlparse.urlsplit(url)
    if parts.scheme and parts.netloc:
        userinfo, hostport = _split_userinfo(parts.netloc)
        if userinfo:
            return urlparse.urlunsplit(parts._replace(netloc="***@" + hostport))
        return url
    # scp-like user@host:path: the user part is no secret (git@github.com), keep it.
    return url


def url_secrets(url: str) -> Set[str]:
    """The credential strings of an http(s) URL's user[:password] (raw, percent-decoded, and
    each part), to scrub from error text; empty when the URL has none."""
    parts = urlparse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        return set()
    userinfo = _split_userinfo(parts.netloc)[0]
    if not userinfo:
        return set()
    user, _, password = userinfo.partition(":")
    secrets = {userinfo, user, password}
    secrets |= {urlparse.unquote(s) for s in secrets}
    return {s for s in secrets if s}


def classify_url(url: str) -> Target:
    """Which reader handles `url`: local (file:// or an absolute path), http (http/https),
    or unsupported (ssh, git://, scp-like host:path, relative paths, anything else)."""
    parts = urlparse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        userinfo, hostport = _split_userinfo(parts.netloc)
        if not hostport:
            return Target("unsupported", "", None, None, "the URL names no host")
        username = password = None
        if userinfo:
            user, _, pw = userinfo.partition(":")
            username, password = urlparse.unquote(user), urlparse.unquote(pw)
        location = urlparse.urlunsplit(parts._replace(netloc=hostport, fragment=""))
        return Target("http", location, username, password, "")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            return Target("unsupported", "", None, None, "file:// URL of another host")
        return Target("local", urlparse.unquote(parts.path) or "/", None, None, "")
    if url.startswith("/"):
        return Target("local", url, None, None, "")
    if "://" in url:
        reason = f"{scheme}:// URLs are read by git"
    elif re.match(r"^[^/]*:", url):
        reason = "scp-like host:path URLs (ssh) are read by git"
    else:
        reason = "a relative path depends on git's working directory"
    return Target("unsupported", "", None, None, reason)


def valid_tag_name(tag: str) -> bool:
    """Whether refs/tags/<tag> is a well-formed ref (git check-ref-format); a malformed one
    cannot exist, and must not be used to build a path."""
    if not tag or tag.endswith(("/", ".", ".lock")) or tag.startswith("/") or tag == "@":
        return False
    if ".." in tag or "@{" in tag or "//" in tag:
        return False
    if any(ord(c) < 0x20 or ord(c) == 0x7F or c in " ~^:?*[\\" for c in tag):
        return False
    return not any(part.startswith(".") or part.endswith(".lock") for part in tag.split("/"))


# --- Messages ------------------------------------------------------------------------------


def this_host() -> str:
    return socket.gethostname() or "this host"


def this_user() -> str:
    uid = os.geteuid()
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def missing_repo_message(shown: str, path: str, detail: str) -> str:
    return (
        f"{VARIABLE} {shown}: no git repository at {path} on {this_host()} ({detail}). This is "
        "not a network error, retrying will not help: set vllm_source_repo_url to the path of "
        "a clone on this host (a bare clone or a mirror works), or to a URL it can reach."
    )


def permission_message(shown: str, what: str, strerror: str) -> str:
    user = this_user()
    return (
        f"{VARIABLE} {shown}: user {user} on {this_host()} cannot read {what} ({strerror}). "
        f"This is not a network error: give {user} read access to the repository (and search "
        "access to the directories above it), or set vllm_source_repo_url to a copy it can read."
    )


def network_message(shown: str, cause: str) -> str:
    return (
        f"{VARIABLE} {shown} could not be read ({cause}): a network error. Check the host's "
        "network and proxy (https_proxy, no_proxy), or set vllm_source_repo_url to a mirror "
        "the host can reach."
    )


def http_status_message(shown: str, code: int, with_credentials: bool) -> str:
    if code == 401 and not with_credentials:
        return (
            f"{VARIABLE} {shown}: the server asks for credentials (HTTP 401) and the URL has "
            "none. Put a user and a token that can read the repository in "
            "vllm_source_repo_url (https://user:token@host/path), or use a public mirror."
        )
    if code in (401, 403):
        given = "refused the credentials in the URL" if with_credentials else "refused access"
        return (
            f"{VARIABLE} {shown}: the server {given} (HTTP {code}). Put a user and a token "
            "that can read the repository in vllm_source_repo_url "
            "(https://user:token@host/path), or use a mirror the host may read."
        )
    if code in (404, 410):
        return (
            f"{VARIABLE} {shown}: no repository at that URL (HTTP {code}). Check the URL in "
            "vllm_source_repo_url (some servers also answer 404 for a private repository "
            "read without credentials)."
        )
    return (
        f"{VARIABLE} {shown}: the server answered HTTP {code} to a git ref listing. Check "
        "vllm_source_repo_url, or set it to a mirror the host can reach."
    )


# --- Local repositories --------------------------------------------------------------------


def _oserror(shown: str, what: str, exc: OSError) -> GitRefsError:
    """The failure for an OSError met while reading `what`."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return GitRefsError(permission_message(shown, what, exc.strerror or str(exc)), False)
    return GitRefsError(
        f"{VARIABLE} {shown}: cannot read {what} on {this_host()} ({exc.strerror or exc}). "
        "Check the repository, or set vllm_source_repo_url to another clone.",
        False,
    )


def _read(shown: str, path: str, binary: bool = False) -> Optional[Union[str, bytes]]:
    """The content of `path`, None when it does not exist (or is a directory)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR):
            return None
        raise _oserror(shown, path, exc) from None
    return data if binary else data.decode("utf-8", "replace")


def _kind(shown: str, path: str) -> str:
    """'dir', 'file', 'other' or '' (missing) for `path`; a permission error fails."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return ""
        raise _oserror(shown, path, exc) from None
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "other"


def _is_git_dir(shown: str, path: str) -> bool:
    """Whether `path` holds HEAD, objects/ and refs/ (or a commondir that holds them)."""
    if _kind(shown, os.path.join(path, "HEAD")) != "file":
        return False
    common = _common_dir(shown, path)
    return all(_kind(shown, os.path.join(common, d)) == "dir" for d in ("objects", "refs"))


def _common_dir(shown: str, git_dir: str) -> str:
    """The directory with the refs and objects a linked worktree shares (its commondir)."""
    pointer = _read(shown, os.path.join(git_dir, "commondir"))
    if pointer and pointer.strip():
        return os.path.normpath(os.path.join(git_dir, pointer.strip()))
    return git_dir


def find_git_dir(shown: str, path: str) -> str:
    """The git directory (common dir for a worktree) of the repository at `path`, tried the
    way git's enter_repo() does: <path>/.git, <path>, <path>.git/.git, <path>.git."""
    base = path.rstrip("/")
    path = base or "/"
    kind = _kind(shown, path)
    if not kind and not _kind(shown, base + ".git"):
        raise GitRefsError(missing_repo_message(shown, path, "the path does not exist"), False)
    if kind == "dir" and not os.access(path, os.R_OK | os.X_OK):
        raise GitRefsError(permission_message(shown, path, "Permission denied"), False)
    for suffix in LOCAL_SUFFIXES:
        candidate = (base + suffix) or "/"
        kind = _kind(shown, candidate)
        if kind == "file" and candidate.endswith("/.git"):
            pointer = _read(shown, candidate) or ""
            match = re.match(r"gitdir:\s*(.+)", pointer.strip())
            if match:
                candidate = os.path.join(os.path.dirname(candidate), match.group(1).strip())
                kind = _kind(shown, candidate)
        if kind == "dir" and _is_git_dir(shown, candidate):
            return _common_dir(shown, candidate)
    detail = "it exists but holds no .git directory, nor HEAD, objects/ and refs/"
    raise GitRefsError(missing_repo_message(shown, path, detail), False)


def read_config(text: str) -> Dict[str, str]:
    """section.key -> value of a git config file (subsections kept, keys lowercased)."""
    values: Dict[str, str] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        header = re.match(r'^\[\s*([^\]\s"]+)(?:\s+"([^"]*)")?\s*\]', line)
        if header:
            section = header.group(1).lower()
            if header.group(2) is not None:
                section += "." + header.group(2)
            continue
        key, _, value = line.partition("=")
        values[f"{section}.{key.strip().lower()}"] = value.strip().strip('"')
    return values


def check_repository_format(config: Dict[str, str]) -> None:
    """Refuse what this reader cannot read: SHA-256 objects, reftable, unknown formats."""
    if config.get("extensions.objectformat", "sha1").lower() != "sha1":
        raise Unsupported("the repository uses SHA-256 object names")
    if config.get("extensions.refstorage", "files").lower() != "files":
        raise Unsupported("the repository stores its refs in a reftable")
    version = config.get("core.repositoryformatversion", "0")
    if version not in ("0", "1"):
        raise Unsupported(f"repository format version {version}")


def parse_packed_refs(text: str) -> Tuple[Set[str], Dict[str, Tuple[str, Optional[str]]]]:
    """(traits of the header, name -> (sha, peeled sha or None)) of a packed-refs file."""
    traits: Set[str] = set()
    refs: Dict[str, Tuple[str, Optional[str]]] = {}
    last = ""
    for line in text.splitlines():
        if line.startswith("# pack-refs with:"):
            traits = set(line.split(":", 1)[1].split())
        elif line.startswith("^") and last:
            refs[last] = (refs[last][0], line[1:].strip())
        elif len(line) > 41 and SHA_RE.match(line[:40]) and line[40] == " ":
            last = line[41:].strip()
            refs[last] = (line[:40], None)
    return traits, refs


class ObjectStore:
    """Reads objects of a git directory: loose (zlib) and packed (idx v2 + pack, deltas
    applied), and those of its alternates."""

    def __init__(self, shown: str, git_dir: str) -> None:
        self.shown = shown
        self.dirs = self._object_dirs(os.path.join(git_dir, "objects"))
        self._packs: Optional[List[Tuple[str, str]]] = None

    def _object_dirs(self, first: str) -> List[str]:
        dirs: List[str] = []
        todo = [first]
        while todo and len(dirs) < 16:
            current = os.path.normpath(todo.pop(0))
            if current in dirs:
                continue
            dirs.append(current)
            listed = _read(self.shown, os.path.join(current, "info", "alternates")) or ""
            for line in listed.splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    todo.append(os.path.join(current, line))
        return dirs

    def packs(self) -> List[Tuple[str, str]]:
        """(idx, pack) paths of every pack, in the order found."""
        if self._packs is None:
            self._packs = []
            for objects in self.dirs:
                pack_dir = os.path.join(objects, "pack")
                try:
                    names = sorted(os.listdir(pack_dir))
                except OSError as exc:
                    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                        continue
                    raise _oserror(self.shown, pack_dir, exc) from None
                for name in names:
                    if name.endswith(".idx"):
                        base = os.path.join(pack_dir, name[:-4])
                        self._packs.append((base + ".idx", base + ".pack"))
        return self._packs

    def read(self, sha: str, depth: int = 0) -> Tuple[str, bytes]:
        """(type, content) of object `sha`."""
        if depth > MAX_DELTA_CHAIN:
            raise Unsupported(f"delta chain too long at object {sha}")
        for objects in self.dirs:
            raw = _read(self.shown, os.path.join(objects, sha[:2], sha[2:]), binary=True)
            if raw is not None:
                return parse_loose_object(sha, raw)
        binsha = binascii.unhexlify(sha)
        for idx, pack in self.packs():
            offset = idx_lookup(self.shown, idx, binsha)
            if offset is not None:
                return self._read_packed(pack, offset, depth)
        raise Unsupported(f"object {sha} is in none of the repository's object stores")

    def _read_packed(self, pack: str, offset: int, depth: int) -> Tuple[str, bytes]:
        """(type, content) of the pack entry at `offset`, its delta chain applied."""
        chain: List[bytes] = []
        try:
            with open(pack, "rb") as fh:
                while True:
                    kind, base_offset, base_sha, data = read_pack_entry(fh, offset, pack)
                    if kind in PACK_TYPES:
                        name = PACK_TYPES[kind]
                        break
                    chain.append(data)
                    if depth + len(chain) > MAX_DELTA_CHAIN:
                        raise Unsupported(f"delta chain too long in {pack}")
                    if base_sha is not None:  # REF_DELTA: the base is found by its name
                        name, data = self.read(base_sha, depth + len(chain))
                        break
                    offset = base_offset  # OFS_DELTA: the base is earlier in this pack
        except OSError as exc:
            raise _oserror(self.shown, pack, exc) from None
        for delta in reversed(chain):
            data = apply_delta(data, delta)
        return name, data


def parse_loose_object(sha: str, raw: bytes) -> Tuple[str, bytes]:
    """(type, content) of a loose object file's bytes."""
    try:
        data = zlib.decompress(raw)
    except zlib.error as exc:
        raise Unsupported(f"loose object {sha} is corrupt ({exc})") from None
    header, nul, body = data.partition(b"\0")
    kind, _, size = header.decode("ascii", "replace").partition(" ")
    if not nul or not size.isdigit() or int(size) != len(body):
        raise Unsupported(f"loose object {sha} is corrupt (bad header)")
    return kind, body


def idx_lookup(shown: str, idx: str, binsha: bytes) -> Optional[int]:
    """The pack offset of `binsha` in a version 2 pack index, None when it is not there."""
    try:
        with open(idx, "rb") as fh:
            head = fh.read(8 + 256 * 4)
            if head[:4] != b"\377tOc" or struct.unpack(">I", head[4:8])[0] != 2:
                raise Unsupported(f"pack index {idx} is not version 2")
            fanout = struct.unpack(">256I", head[8:])
            total = fanout[255]
            lo = fanout[binsha[0] - 1] if binsha[0] else 0
            hi = fanout[binsha[0]]
            names = 8 + 256 * 4
            while lo < hi:
                mid = (lo + hi) // 2
                fh.seek(names + 20 * mid)
                found = fh.read(20)
                if found == binsha:
                    break
                if found < binsha:
                    lo = mid + 1
                else:
                    hi = mid
            else:
                return None
            offsets = names + 24 * total  # after the names and the CRC32s
            fh.seek(offsets + 4 * mid)
            (offset,) = struct.unpack(">I", fh.read(4))
            if offset & 0x80000000:
                fh.seek(offsets + 4 * total + 8 * (offset & 0x7FFFFFFF))
                (offset,) = struct.unpack(">Q", fh.read(8))
            return offset
    except OSError as exc:
        raise _oserror(shown, idx, exc) from None
    except struct.error:
        raise Unsupported(f"pack index {idx} is truncated") from None


def read_pack_entry(fh: BinaryIO, offset: int, pack: str) -> Tuple[int, int, Optional[str], bytes]:
    """(type number, OFS_DELTA base offset, REF_DELTA base sha, inflated data) of the entry
    at `offset`."""
    fh.seek(offset)
    head = fh.read(32)
    if not head:
        raise Unsupported(f"pack {pack} is truncated")
    byte = head[0]
    kind = (byte >> 4) & 7
    size = byte & 15
    shift, pos = 4, 1
    while byte & 0x80:
        byte = head[pos]
        size |= (byte & 0x7F) << shift
        shift += 7
        pos += 1
    base_offset, base_sha = 0, None
    if kind == OFS_DELTA:
        byte = head[pos]
        pos += 1
        distance = byte & 0x7F
        while byte & 0x80:
            byte = head[pos]
            pos += 1
            distance = ((distance + 1) << 7) | (byte & 0x7F)
        base_offset = offset - distance
    elif kind == REF_DELTA:
        base_sha = binascii.hexlify(head[pos : pos + 20]).decode("ascii")
        pos += 20
    elif kind not in PACK_TYPES:
        raise Unsupported(f"pack {pack} has an entry of unknown type {kind} at {offset}")
    fh.seek(offset + pos)
    inflater = zlib.decompressobj()
    parts: List[bytes] = []
    try:
        while not inflater.eof:
            chunk = fh.read(65536)
            if not chunk:
                raise Unsupported(f"pack {pack} is truncated at {offset}")
            parts.append(inflater.decompress(chunk))
    except zlib.error as exc:
        raise Unsupported(f"pack {pack} is corrupt at {offset} ({exc})") from None
    data = b"".join(parts)
    if len(data) != size:
        raise Unsupported(f"pack {pack} is corrupt at {offset} (size)")
    return kind, base_offset, base_sha, data


def _varint(data: bytes, pos: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def apply_delta(base: bytes, delta: bytes) -> bytes:
    """The object that git delta `delta` makes of `base`."""
    try:
        src_size, pos = _varint(delta, 0)
        dst_size, pos = _varint(delta, pos)
        if src_size != len(base):
            raise Unsupported("delta does not fit its base")
        out = bytearray()
        while pos < len(delta):
            op = delta[pos]
            pos += 1
            if op & 0x80:
                start = size = 0
                for bit in range(4):
                    if op & (1 << bit):
                        start |= delta[pos] << (8 * bit)
                        pos += 1
                for bit in range(3):
                    if op & (0x10 << bit):
                        size |= delta[pos] << (8 * bit)
                        pos += 1
                size = size or 0x10000
                if start + size > len(base):
                    raise Unsupported("delta copies past its base")
                out += base[start : start + size]
            elif op:
                out += delta[pos : pos + op]
                pos += op
            else:
                raise Unsupported("delta has a reserved opcode")
    except IndexError:
        raise Unsupported("delta is truncated") from None
    if len(out) != dst_size:
        raise Unsupported("delta gives the wrong size")
    return bytes(out)


def tag_target(data: bytes) -> Tuple[str, str]:
    """(object sha, its type) that a tag object's content points at."""
    fields: Dict[str, str] = {}
    for line in data.split(b"\n"):
        if not line:
            break
        key, _, value = line.decode("utf-8", "replace").partition(" ")
        fields.setdefault(key, value)
    sha, kind = fields.get("object", ""), fields.get("type", "")
    if not SHA_RE.match(sha) or not kind:
        raise Unsupported("a tag object has no object/type header")
    return sha, kind


def peel(store: ObjectStore, sha: str, kind: str = "") -> Tuple[str, str]:
    """(sha, type) of what `sha` leads to once every tag object is followed."""
    for _ in range(MAX_PEEL):
        if kind not in ("commit", "tree", "blob"):
            kind, data = store.read(sha)
            if kind == "tag":
                sha, kind = tag_target(data)
                kind = "" if kind == "tag" else kind
                continue
        return sha, kind
    raise Unsupported(f"more than {MAX_PEEL} tags of tags")


def _loose_ref(shown: str, common: str, name: str) -> Optional[str]:
    """The content of a loose ref file, None when there is none."""
    text = _read(shown, os.path.join(common, *name.split("/")))
    return text.strip() if text is not None else None


def local_tag(shown: str, path: str, tag: str) -> Result:
    """commit and found of refs/tags/<tag> in the repository at `path`."""
    common = find_git_dir(shown, path)
    check_repository_format(read_config(_read(shown, os.path.join(common, "config")) or ""))
    packed_text = _read(shown, os.path.join(common, "packed-refs")) or ""
    traits, packed = parse_packed_refs(packed_text)
    name = "refs/tags/" + tag
    sha, peeled, trusted = "", None, False
    for _ in range(5):  # symbolic refs (ref: ...) followed
        loose = _loose_ref(shown, common, name)
        if loose is not None and loose.startswith("ref:"):
            name = loose[4:].strip()
            continue
        if loose is not None:
            if not SHA_RE.match(loose):
                raise Unsupported(f"the ref file {name} is broken")
            sha = loose
        elif name in packed:
            sha, peeled = packed[name]
            # With the peeled trait a tag without a ^ line is no tag object.
            trusted = "fully-peeled" in traits or (
                "peeled" in traits and name.startswith("refs/tags/")
            )
        break
    if not sha:
        return {"commit": "", "found": False}
    if peeled:  # packed-refs records the fully peeled object, as git ls-remote shows it
        return {"commit": peeled, "found": True}
    if trusted:
        return {"commit": sha, "found": True}
    sha, kind = peel(ObjectStore(shown, common), sha)
    if kind != "commit":
        raise Unsupported(f"tag {tag} points at a {kind}, not a commit")
    return {"commit": sha, "found": True}


# --- HTTP(S) -------------------------------------------------------------------------------


class _SameOriginAuthRedirect(urlrequest.HTTPRedirectHandler):
    """Follows redirects, sending the credentials again only to the same scheme and host."""

    def __init__(self, origin: Tuple[str, str], authorization: Optional[str]) -> None:
        super().__init__()
        self.origin = origin
        self.authorization = authorization

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        parts = urlparse.urlsplit(newurl)
        if new is not None and self.authorization and (parts.scheme, parts.netloc) == self.origin:
            new.add_unredirected_header("Authorization", self.authorization)
        return new


def refs_url(url: str) -> str:
    """<url>/info/refs?service=git-upload-pack, as git builds it."""
    parts = urlparse.urlsplit(url)
    path = parts.path.rstrip("/") + "/info/refs"
    query = "service=git-upload-pack"
    return urlparse.urlunsplit(parts._replace(path=path, query=query, fragment=""))


def _pkt_lines(stream: BinaryIO) -> Iterator[Optional[bytes]]:
    """The payloads of a pkt-line stream; None for a flush (0000)."""
    while True:
        head = stream.read(4)
        if not head:
            return
        try:
            length = int(head, 16)
        except ValueError:
            raise Unsupported("the smart ref advertisement is malformed") from None
        if length < 4:
            yield None
            continue
        payload = stream.read(length - 4)
        if len(payload) != length - 4:
            raise Unsupported("the smart ref advertisement is truncated")
        yield payload


def smart_refs(stream: BinaryIO) -> Iterator[Tuple[str, str]]:
    """(sha, name) of the refs of a smart (v0/v1) git-upload-pack advertisement, without
    the service line; an ERR line from the server raises."""
    for payload in _pkt_lines(stream):
        if payload is None:
            continue
        line = payload.split(b"\0", 1)[0].rstrip(b"\n").decode("utf-8", "replace")
        if line.startswith("# service=") or line == "version 1":
            continue
        if line.startswith("ERR "):
            raise Unsupported(f"the server says: {line[4:].strip()}")
        if line.startswith("version "):
            raise Unsupported(f"the server answered protocol {line}")
        sha, _, name = line.partition(" ")
        if SHA_RE.match(sha):
            yield sha, name.strip()


def dumb_refs(stream: BinaryIO) -> Iterator[Tuple[str, str]]:
    """(sha, name) of a dumb server's info/refs text (sha TAB name lines)."""
    for raw in stream:
        sha, _, name = raw.decode("utf-8", "replace").rstrip("\r\n").partition("\t")
        if SHA_RE.match(sha):
            yield sha, name.strip()


def advertised_tag(refs: Iterator[Tuple[str, str]], tag: str) -> Result:
    """commit and found of refs/tags/<tag> among advertised refs: its peeled ^{} line wins
    (an annotated tag), else its own line (a lightweight tag)."""
    name = "refs/tags/" + tag
    own = ""
    for sha, ref in refs:
        if ref == name + "^{}" and sha != ZERO_SHA:
            return {"commit": sha, "found": True}
        if own:  # the peeled line, when there is one, follows the tag's line
            break
        if ref == name:
            own = sha
    return {"commit": own, "found": bool(own)}


class _Peek:
    """A stream whose first bytes were read to sniff the format, put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head = head
        self.rest = rest

    def read(self, size: int) -> bytes:
        if self.head:
            out, self.head = self.head[:size], self.head[size:]
            if len(out) < size:
                out += self.rest.read(size - len(out))
            return out
        return self.rest.read(size)

    def __iter__(self) -> Iterator[bytes]:
        buffered = b""
        while True:
            chunk = self.read(65536)
            if not chunk:
                break
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            yield from (line + b"\n" for line in lines)
        if buffered:
            yield buffered


def parse_advertisement(stream: BinaryIO, content_type: str, tag: str) -> Result:
    """commit and found of the tag in an info/refs response, smart or dumb."""
    head = stream.read(64)
    body = _Peek(head, stream)
    smart = content_type.startswith("application/x-git-upload-pack-advertisement") or bool(
        re.match(rb"^[0-9a-f]{4}(# service=|[0-9a-f]{40} )", head)
    )
    if smart:
        return advertised_tag(smart_refs(body), tag)
    if not head or re.match(rb"^[0-9a-f]{40}\t", head):
        return advertised_tag(dumb_refs(body), tag)
    raise Unsupported("not a git ref listing")


def _network_cause(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, socket.timeout) or "timed out" in str(reason):
        return "timed out"
    return str(reason) or type(reason).__name__


def _scrub(text: str, secrets: Set[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def http_tag(
    target: Target, shown: str, tag: str, timeout: int, secrets: Optional[Set[str]] = None
) -> Result:
    """commit and found of the tag at an http(s) URL; failures raise GitRefsError."""
    secrets = set(secrets or ()) | {s for s in (target.username, target.password) if s}
    url = refs_url(target.location)
    req = urlrequest.Request(url)
    req.add_header("User-Agent", USER_AGENT)
    req.add_header("Accept", "*/*")
    req.add_header("Pragma", "no-cache")
    authorization = None
    if target.username is not None:
        token = f"{target.username}:{target.password or ''}".encode()
        authorization = "Basic " + base64.b64encode(token).decode("ascii")
        req.add_unredirected_header("Authorization", authorization)
    parts = urlparse.urlsplit(url)
    opener = urlrequest.build_opener(
        urlrequest.ProxyHandler(),
        urlrequest.HTTPSHandler(context=ssl.create_default_context()),
        _SameOriginAuthRedirect((parts.scheme, parts.netloc), authorization),
    )
    with_credentials = target.username is not None
    try:
        with opener.open(req, timeout=timeout) as resp:
            content_type = resp.headers.get("Content-Type", "") or ""
            try:
                return parse_advertisement(resp, content_type, tag)
            except Unsupported as exc:
                raise GitRefsError(
                    f"{VARIABLE} {shown}: the server's answer is no git repository "
                    f"({_scrub(str(exc), secrets)}, content type {content_type or 'none'}). "
                    "Check the URL in vllm_source_repo_url (it names the repository, as for "
                    "git clone).",
                    False,
                ) from None
    except urlerror.HTTPError as exc:
        code = exc.code
        if code >= 500 or code in (408, 429):
            cause = _scrub(f"HTTP {code} {exc.reason}", secrets)
            raise GitRefsError(network_message(shown, cause), True) from None
        raise GitRefsError(http_status_message(shown, code, with_credentials), False) from None
    except urlerror.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.CertificateError) or "CERTIFICATE_VERIFY_FAILED" in str(reason):
            raise GitRefsError(
                f"{VARIABLE} {shown}: the server's TLS certificate could not be verified "
                f"({_scrub(str(reason), secrets)}). Add its CA to the host's trust store, or "
                "set vllm_source_repo_url to a mirror with a trusted certificate.",
                False,
            ) from None
        raise GitRefsError(
            network_message(shown, _scrub(_network_cause(exc), secrets)), True
        ) from None
    except (OSError, HTTPException) as exc:
        raise GitRefsError(
            network_message(shown, _scrub(_network_cause(exc), secrets)), True
        ) from None


# --- Entry point ---------------------------------------------------------------------------


def resolve_tag(url: str, tag: str, timeout: int = 30) -> Result:
    """commit, found, supported, source, url_shown and reason for tag `tag` of `url`.

    A URL form this reader cannot read, or a repository feature it does not handle, gives
    supported false (the role asks git then); failures raise GitRefsError."""
    shown = shown_url(url)
    target = classify_url(url)
    result: Result = {
        "commit": "",
        "found": False,
        "supported": target.kind != "unsupported",
        "source": target.kind if target.kind != "unsupported" else "",
        "url_shown": shown,
        "reason": target.reason,
    }
    if target.kind == "unsupported":
        return result
    if not valid_tag_name(tag):
        return result  # no such ref can exist
    try:
        if target.kind == "local":
            result.update(local_tag(shown, target.location, tag))
        else:
            result.update(http_tag(target, shown, tag, timeout, url_secrets(url)))
    except Unsupported as exc:
        result.update(commit="", found=False, supported=False, reason=str(exc))
    return result
