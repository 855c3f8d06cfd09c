"""Where a release lives under a prefix, whether a release's stamp still fits its inputs,
whether its venv still holds the files pip installed (check_venv), and who owns its code
(seal_release, unseal_release).

One definition of the paths: <prefix>/releases/<key>/ holds a release, and its stamp
<prefix>/releases/<key>/venv/vllm-source-stamp.json marks it verified (the role writes it last).
Shared by library/vllm_build_key.py, library/vllm_release.py and their unit tests.
"""

from __future__ import annotations

import base64
import csv
import glob
import hashlib
import io
import json
import os
import re
import stat
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

RELEASES_DIR = "releases"
# The venv's and the stamp's paths inside a release directory.
VENV_IN_RELEASE = "venv"
STAMP_IN_RELEASE = VENV_IN_RELEASE + "/vllm-source-stamp.json"


def release_dir(prefix: str, key: str) -> str:
    """<prefix>/releases/<key>: the release a build key installs into."""
    return os.path.join(prefix, RELEASES_DIR, key)


def stamp_path(prefix: str, key: str) -> str:
    """<prefix>/releases/<key>/venv/vllm-source-stamp.json: the stamp of a verified release."""
    return os.path.join(release_dir(prefix, key), STAMP_IN_RELEASE)


def read_stamp(path: str) -> Tuple[Optional[Any], str]:
    """(the stamp's JSON, "") or (None, why it cannot be read: missing, unreadable, not JSON)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None, f"no stamp at {path}"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"the stamp {path} is unreadable ({exc})"
    try:
        return json.loads(text), ""
    except ValueError as exc:
        return None, f"the stamp {path} is not JSON ({exc})"


def differing_inputs(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> List[str]:
    """The input names whose recorded value differs from the wanted one (or is on one side only)."""
    return sorted(
        k
        for k in set(recorded) | set(wanted)
        if k not in recorded or k not in wanted or recorded[k] != wanted[k]
    )


def install_reason(stamp: Optional[Any], why_unread: str, inputs: Mapping[str, Any]) -> str:
    """Why the release still has to be installed, or "" when its stamp records these inputs.

    `stamp` and `why_unread` are what read_stamp returned. A stamp that is not a mapping, or
    has no `inputs` mapping, counts as recording none.
    """
    if why_unread:
        return why_unread
    recorded = stamp.get("inputs") if isinstance(stamp, dict) else None
    if not isinstance(recorded, dict):
        return "the stamp records no build inputs"
    differ = differing_inputs(recorded, inputs)
    if differ:
        return "the stamp records other build inputs: " + ", ".join(differ)
    return ""


# --- integrity of a release's venv ------------------------------------------------------
# pip records every file it installs in <site-packages>/<dist>-<version>.dist-info/RECORD as
# "path,sha256=<urlsafe base64, no padding>,size", paths relative to site-packages (scripts:
# ../../../bin/...). The RECORD itself and the .pyc files pip compiled have no hash or size.

INTEGRITY_MODES = ("none", "size", "hash")
# In size mode the files of these distributions are hashed as well: the wheel this role
# builds, whose damage a same-size change would otherwise hide.
HASHED_IN_SIZE_MODE = ("vllm",)
# Files of a venv that no RECORD lists but without which it is no venv.
VENV_FILES = ("pyvenv.cfg", "bin/python")
DAMAGED_SHOWN = 20

Entry = Tuple[str, str, str, Optional[int]]  # (distribution, hash algorithm, digest, size)


BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


def build_pid_path(prefix: str, key: str) -> str:
    """The build script's pid file of a key: "<pid> <boot id>" of the build holding its lock."""
    return os.path.join(prefix, "wheels", f"{key}.pid")


def host_boot_id(path: str = BOOT_ID_PATH) -> str:
    """This host's boot id, "" where there is none to read."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def live_build(pid_file: str, boot_id: str) -> str:
    """The pid of the build a pid file names when it runs now, in this boot (`boot_id`);
    else "". A pid file without a boot id is judged by its pid alone."""
    try:
        with open(pid_file, encoding="utf-8") as f:
            fields = f.read().split()
    except OSError:
        return ""
    if not fields or not fields[0].isdigit():
        return ""
    if len(fields) > 1 and fields[1] != boot_id:
        return ""
    return fields[0] if os.path.exists(f"/proc/{fields[0]}") else ""


def venv_dir(prefix: str, key: str) -> str:
    """<prefix>/releases/<key>/venv: the release's venv."""
    return os.path.join(release_dir(prefix, key), VENV_IN_RELEASE)


def normalize_name(name: str) -> str:
    """A distribution's name as PEP 503 compares them: vLLM, v_llm -> vllm, v-llm."""
    return re.sub(r"[-_.]+", "-", name).lower()


def site_packages_dirs(venv: str) -> List[str]:
    """The venv's site-packages directories (lib64 is often a link to lib: counted once)."""
    found: Dict[str, str] = {}
    for lib in ("lib", "lib64"):
        for path in sorted(glob.glob(os.path.join(glob.escape(venv), lib, "python*", ""))):
            site = os.path.join(path, "site-packages")
            if os.path.isdir(site):
                found.setdefault(os.path.realpath(site), site)
    return list(found.values())


def dist_infos(site: str) -> List[Tuple[str, str, str]]:
    """(dist-info directory, normalized name, version) of each distribution in site-packages."""
    found = []
    for path in sorted(glob.glob(os.path.join(glob.escape(site), "*.dist-info"))):
        stem = os.path.basename(path)[: -len(".dist-info")]
        name, _, version = stem.partition("-")
        found.append((path, normalize_name(name), version))
    return found


def parse_record(text: str) -> List[Tuple[str, str, str, Optional[int]]]:
    """(path, hash algorithm, digest, size) of each RECORD row that has a hash.

    Rows without one (the RECORD itself, the .pyc files pip compiled) are skipped, as pip
    does; so are rows too short to name a path and a hash.
    """
    rows = []
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 2 or not row[0] or "=" not in row[1]:
            continue
        algorithm, _, digest = row[1].partition("=")
        size = row[2] if len(row) > 2 else ""
        rows.append((row[0], algorithm, digest, int(size) if size.isdigit() else None))
    return rows


def record_digest(path: str, algorithm: str) -> str:
    """A file's digest as RECORD spells it: urlsafe base64 without padding."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode("ascii")


def collect_records(
    venv: str,
) -> Tuple[Dict[str, List[Entry]], List[Dict[str, str]], Dict[str, str]]:
    """({file: [its RECORD entries]}, RECORDs that are missing or unreadable, {name: version}).

    A file that several distributions install (a shared namespace __init__.py) has an entry
    from each; the file is sound when it matches any of them, since the last install wins.
    """
    files: Dict[str, List[Entry]] = {}
    broken: List[Dict[str, str]] = []
    versions: Dict[str, str] = {}
    for site in site_packages_dirs(venv):
        for info_dir, name, version in dist_infos(site):
            versions[name] = version
            record = os.path.join(info_dir, "RECORD")
            try:
                with open(record, encoding="utf-8") as handle:
                    rows = parse_record(handle.read())
            except FileNotFoundError:
                broken.append({"path": record, "problem": "missing", "distribution": name})
                continue
            except (OSError, UnicodeDecodeError, ValueError, csv.Error):
                broken.append({"path": record, "problem": "unreadable", "distribution": name})
                continue
            for rel, algorithm, digest, size in rows:
                path = rel if os.path.isabs(rel) else os.path.normpath(os.path.join(site, rel))
                files.setdefault(path, []).append((name, algorithm, digest, size))
    return files, broken, versions


def file_problem(path: str, entries: List[Entry], hash_it: bool) -> str:
    """ "" when the file matches one of its RECORD entries, else missing, size, hash or
    unreadable. Sizes are compared always, digests only with `hash_it`."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "unreadable"
    if not stat.S_ISREG(st.st_mode):
        return "missing"
    sized = [e for e in entries if e[3] is None or e[3] == st.st_size]
    if not sized:
        return "size"
    if not hash_it:
        return ""
    digests: Dict[str, str] = {}
    for _, algorithm, digest, _ in sized:
        try:
            if algorithm not in digests:
                digests[algorithm] = record_digest(path, algorithm)
        except ValueError:  # an algorithm hashlib does not know: cannot be checked
            return ""
        except OSError:
            return "unreadable"
        if digests[algorithm] == digest:
            return ""
    return "hash"


def check_venv(venv: str, mode: str = "size", require: Iterable[str] = ()) -> Dict[str, Any]:
    """Whether a venv still holds every file pip installed into it, as its RECORDs say.

    `mode` size checks that every file exists with its recorded size and hashes the files of
    HASHED_IN_SIZE_MODE (vllm); hash hashes every file; none checks nothing. `require` names
    distributions that must be installed (a verified release's vllm). Returns `damaged`
    (the first DAMAGED_SHOWN of {path, problem, distribution}), `damaged_count`, and
    `damaged_distributions` (name==version of each distribution with a damaged file).
    """
    damaged: List[Dict[str, str]] = []
    versions: Dict[str, str] = {}
    if mode != "none":
        for rel in VENV_FILES:
            if not os.path.exists(os.path.join(venv, rel)):
                damaged.append({"path": os.path.join(venv, rel), "problem": "missing"})
        files, broken, versions = collect_records(venv)
        damaged += broken
        for name in sorted({normalize_name(n) for n in require} - set(versions)):
            pattern = os.path.join(venv, "lib", "python*", "site-packages", f"{name}-*.dist-info")
            damaged.append({"path": pattern, "problem": "missing", "distribution": name})
        hashed = {normalize_name(n) for n in HASHED_IN_SIZE_MODE}
        for path in sorted(files):
            entries = files[path]
            hash_it = mode == "hash" or any(e[0] in hashed for e in entries)
            problem = file_problem(path, entries, hash_it)
            if problem:
                owner = entries[-1][0]
                damaged.append({"path": path, "problem": problem, "distribution": owner})
    dists = sorted({d["distribution"] for d in damaged if d.get("distribution")})
    return {
        "damaged": damaged[:DAMAGED_SHOWN],
        "damaged_count": len(damaged),
        "damaged_distributions": [f"{d}=={versions[d]}" if versions.get(d) else d for d in dists],
    }


# --- who owns a release's code ----------------------------------------------------------
# A verified release is sealed: every entry of releases/<key>/ (the venv, the wheel, anything
# else) is root's, with no write bit for group or other and no setuid or setgid bit, so the
# service user that runs vLLM cannot change the code it runs. The service user gets it back
# (unseal_release) only for a run that installs into it again, under the prefix's lock.

SEALED_UID = 0
SEALED_GID = 0
# The mode bits a sealed entry keeps: the owner's, read and execute for group and other, the
# sticky bit. Group and other write go, and setuid and setgid (a file the service user made
# setuid must not become root's setuid file).
SEALED_MODE_BITS = 0o1755

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = (
    os.O_RDONLY
    | os.O_NOFOLLOW
    | os.O_NONBLOCK
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
)

ModeOf = Callable[[int], int]


def sealed_mode(mode: int) -> int:
    """The permission bits of an entry once sealed: `mode` without group/other write,
    setuid or setgid; every read and execute bit stays (an executable stays one)."""
    return stat.S_IMODE(mode) & SEALED_MODE_BITS


def kept_mode(mode: int) -> int:
    """The permission bits unchanged: giving a release back changes its owner only."""
    return stat.S_IMODE(mode)


def _differs(st: os.stat_result, uid: int, gid: int, mode_of: ModeOf) -> bool:
    if (st.st_uid, st.st_gid) != (uid, gid):
        return True
    # A symlink's own mode means nothing on Linux (and cannot be changed): its owner only.
    return not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) != mode_of(st.st_mode)


def _own_open(fd: int, uid: int, gid: int, mode_of: ModeOf, dry_run: bool) -> bool:
    """Give the open file or directory `fd` its owner and mode; True when it had others."""
    st = os.fstat(fd)
    if not _differs(st, uid, gid, mode_of):
        return False
    if not dry_run:
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.fchown(fd, uid, gid)  # the kernel drops setuid/setgid here: chmod after it
        os.fchmod(fd, mode_of(st.st_mode))
    return True


def _open_entry(name: str, flags: int, dir_fd: int) -> Optional[int]:
    """A descriptor of the entry `name` of `dir_fd`, or None when it is gone (a temporary file
    of a build that still runs in a partial release)."""
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        return None


def _own_dir(
    dir_fd: int, uid: int, gid: int, mode_of: ModeOf, dry_run: bool, skip_linked: bool
) -> int:
    changed = int(_own_open(dir_fd, uid, gid, mode_of, dry_run))
    for name in sorted(os.listdir(dir_fd)):
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            # Entered through a descriptor opened without following a link: a directory
            # swapped for a symlink while the walk runs fails the walk, it is never followed.
            sub = _open_entry(name, _DIR_FLAGS, dir_fd)
            if sub is None:
                continue
            try:
                changed += _own_dir(sub, uid, gid, mode_of, dry_run, skip_linked)
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            if (skip_linked and st.st_nlink > 1) or not _differs(st, uid, gid, mode_of):
                continue
            fd = _open_entry(name, _FILE_FLAGS, dir_fd)
            if fd is None:
                continue
            try:
                changed += int(_own_open(fd, uid, gid, mode_of, dry_run))
            finally:
                os.close(fd)
        elif (st.st_uid, st.st_gid) != (uid, gid):
            # A symlink (bin/python -> the system's, lib64 -> lib) gets the owner itself and
            # is never followed; so does a fifo or socket, whose mode holds no code.
            changed += 1
            if not dry_run:
                os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
    return changed


def own_tree(
    top: str,
    uid: int,
    gid: int,
    mode_of: ModeOf = kept_mode,
    dry_run: bool = False,
    skip_linked: bool = False,
) -> int:
    """Give the directory `top` and every entry below it the owner uid:gid and the mode
    mode_of(its mode); return how many entries had another (with `dry_run`, would have).

    No symlink is followed, `top` included: links get the owner themselves (lchown) and
    directories are entered through descriptors opened with O_NOFOLLOW, so nothing outside
    `top` changes. With `skip_linked`, regular files with more than one hard link are left
    as they are: another link may name a file outside the tree. Raises OSError (ELOOP when
    `top` is a symlink, FileNotFoundError when it is missing).
    """
    fd = os.open(top, _DIR_FLAGS)
    try:
        return _own_dir(fd, uid, gid, mode_of, dry_run, skip_linked)
    finally:
        os.close(fd)


def seal_release(path: str, dry_run: bool = False) -> int:
    """Hand a release's code to root: every entry of the release directory `path` owned by
    root:root with its sealed_mode; how many entries were not sealed yet (0: unchanged)."""
    return own_tree(path, SEALED_UID, SEALED_GID, sealed_mode, dry_run)


def unseal_release(path: str, uid: int, gid: int, dry_run: bool = False) -> int:
    """Give a release back to the service user (uid:gid) so that pip can change it: owners
    only, modes as they are; how many entries changed owner. A missing release has none.
    Files with several hard links stay root's: another link may be a file outside it."""
    if not os.path.lexists(path):
        return 0
    return own_tree(path, uid, gid, kept_mode, dry_run, skip_linked=True)
