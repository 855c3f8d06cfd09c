"""Fleet decisions: who builds each build key, which releases to keep, the lock's holder,
and whether the controller's artifact cache holds a wheel that can be trusted.

The decisions are pure functions, so the unit tests call them with plain data; the modules
in library/ (vllm_builders, vllm_artifact, vllm_release, vllm_lock) do the I/O around them.
The cache lookup (cached_wheel) reads and hashes the cache itself and moves bad wheels aside.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import time
import zipfile
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple


def choose_builders(
    hosts: Sequence[Mapping[str, str]], builders_group: Iterable[str] = ()
) -> Dict[str, str]:
    """Return {build key: host that builds it}.

    `hosts` is the play's hosts in play order, each {"name": ..., "key": ...}. The builder of
    a key is the first host of the play with that key that is in `builders_group` (the
    inventory group vllm_builders), else the first host of the play with that key.
    """
    preferred = set(builders_group)
    chosen: Dict[str, str] = {}
    for host in hosts:
        key = host["key"]
        if key not in chosen:
            chosen[key] = host["name"]
    for key in list(chosen):
        for host in hosts:
            if host["key"] == key and host["name"] in preferred:
                chosen[key] = host["name"]
                break
    return chosen


# The controller's artifact cache: <cache_dir>/<key>/<wheel>, its <wheel>.sha256 ("<sha256>
# <name>", written after the wheel) and <wheel>.verified, the verdict of the last full check.
SHA256_SUFFIX = ".sha256"
VERIFIED_SUFFIX = ".verified"
CORRUPT_SUFFIX = ".corrupt-"  # + UTC time: a wheel and its .sha256 moved aside
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20

Discarded = Dict[str, Any]  # {"key", "wheel", "reason", "moved_to": [paths]}


def file_sha256(path: str) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_recorded_sha256(wheel: str) -> Tuple[str, str]:
    """(the sha256 <wheel>.sha256 records, "") or ("", why it records none usable)."""
    sums = wheel + SHA256_SUFFIX
    try:
        with open(sums, encoding="utf-8") as handle:
            fields = handle.read().split()
    except FileNotFoundError:
        return "", f"no {os.path.basename(sums)} records its sha256 (a copy that did not finish)"
    except (OSError, UnicodeDecodeError) as exc:
        return "", f"its {os.path.basename(sums)} is unreadable ({exc})"
    digest = fields[0].lower() if fields else ""
    if not _HEX64.fullmatch(digest):
        return "", f"its {os.path.basename(sums)} holds no sha256 ({' '.join(fields)[:80]!r})"
    named = os.path.basename(fields[1].lstrip("*")) if len(fields) > 1 else ""
    if named and named != os.path.basename(wheel):
        return "", f"its {os.path.basename(sums)} records the sha256 of another file, {named}"
    return digest, ""


def _fingerprint(digest: str, st: os.stat_result) -> Dict[str, Any]:
    """What must be unchanged for a verified wheel to need no new hash: its recorded sha256
    and the file's inode, size, mtime and ctime (which no utime call can set back)."""
    return {
        "sha256": digest,
        "ino": st.st_ino,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
    }


def _read_verified(wheel: str) -> Dict[str, Any]:
    try:
        with open(wheel + VERIFIED_SUFFIX, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_verified(wheel: str, fingerprint: Mapping[str, Any]) -> None:
    """Record the verdict; a cache that cannot take it is merely hashed again next time."""
    tmp = f"{wheel}{VERIFIED_SUFFIX}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(fingerprint, handle, sort_keys=True)
        os.replace(tmp, wheel + VERIFIED_SUFFIX)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def wheel_problem(wheel: str, record_verdict: bool = True) -> Tuple[str, str]:
    """(the recorded sha256, "") for a cached wheel that can be trusted, else ("", why not).

    A wheel is trusted when its .sha256 records a sha256, the file is a zip with a
    .dist-info/WHEEL, and its sha256 is the recorded one. The full check hashes the whole
    file; its verdict is kept in <wheel>.verified (with `record_verdict`) and reused while the
    recorded sha256 and the file's inode, size, mtime and ctime stay as they were.
    """
    digest, why = read_recorded_sha256(wheel)
    if why:
        return "", why
    try:
        st = os.stat(wheel)
    except FileNotFoundError:
        return "", f"the wheel is missing next to its {os.path.basename(wheel)}{SHA256_SUFFIX}"
    except OSError as exc:
        return "", f"the wheel cannot be read ({exc})"
    fingerprint = _fingerprint(digest, st)
    if _read_verified(wheel) == fingerprint:
        return digest, ""
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return "", f"it is not a valid zip ({exc}; {st.st_size} bytes)"
    if not any(n.count("/") == 1 and n.endswith(".dist-info/WHEEL") for n in names):
        return "", "it is a zip without a .dist-info/WHEEL, so no wheel"
    try:
        actual = file_sha256(wheel)
    except OSError as exc:
        return "", f"the wheel cannot be read ({exc})"
    if actual != digest:
        return "", f"its sha256 {actual} ({st.st_size} bytes) is not the recorded {digest}"
    if record_verdict:
        _write_verified(wheel, fingerprint)
    return digest, ""


def utc_stamp(now: Optional[float] = None) -> str:
    """The UTC time in a file name: 20261202T101500Z."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def move_aside(wheel: str, stamp: str) -> Tuple[List[str], str]:
    """Rename <wheel> and <wheel>.sha256 to <name>.corrupt-<stamp>, drop <wheel>.verified:
    ([the new paths], "") or (the paths moved so far, why the rest could not be)."""
    moved: List[str] = []
    with contextlib.suppress(FileNotFoundError):
        os.unlink(wheel + VERIFIED_SUFFIX)
    for path in (wheel, wheel + SHA256_SUFFIX):
        if not os.path.lexists(path):
            continue
        target = f"{path}{CORRUPT_SUFFIX}{stamp}"
        try:
            os.replace(path, target)
        except OSError as exc:
            return moved, f"could not move {path} aside ({exc}): delete it"
        moved.append(target)
    return moved, ""


def cached_wheel(
    cache_dir: str, key: str, dry_run: bool = False, now: Optional[float] = None
) -> Tuple[Optional[Tuple[str, str]], List[Discarded]]:
    """((wheel path, recorded sha256) or None, the wheels discarded) for a key's cache folder.

    The first trusted wheel of <cache_dir>/<key> (see wheel_problem) is the cache hit. Each
    wheel checked before it that cannot be trusted - and each .sha256 without its wheel - is
    moved aside to <name>.corrupt-<UTC time> and listed with the reason, so that the key is
    built again and its new wheel lands where the bad one was. `dry_run` (check mode) moves
    and records nothing and lists what it would move.
    """
    folder = os.path.join(glob.escape(os.path.join(cache_dir, key)), "")
    wheels = {p for p in glob.glob(folder + "*.whl") if os.path.isfile(p)}
    wheels |= {p[: -len(SHA256_SUFFIX)] for p in glob.glob(folder + "*.whl" + SHA256_SUFFIX)}
    discarded: List[Discarded] = []
    stamp = utc_stamp(now)
    for wheel in sorted(wheels):
        digest, why = wheel_problem(wheel, record_verdict=not dry_run)
        if not why:
            return (wheel, digest), discarded
        moved, failed = ([], "") if dry_run else move_aside(wheel, stamp)
        discarded.append(
            {
                "key": key,
                "wheel": wheel,
                "reason": why + (f"; {failed}" if failed else ""),
                "moved_to": moved,
            }
        )
    return None, discarded


def describe_discarded(item: Mapping[str, Any]) -> str:
    """One line for a warning: which cached wheel was discarded, why, and where it went."""
    where = ", ".join(item.get("moved_to") or []) or "left in place (check mode or an error)"
    return (
        f"The artifact cache's wheel {item['wheel']} for build key {item['key']} cannot be "
        f"trusted: {item['reason']}. It is not installed and the key is built again; moved "
        f"to {where} (delete once inspected)."
    )


def plan_builds(
    hosts: Sequence[Mapping[str, Any]],
    builders_group: Iterable[str],
    cached_keys: Iterable[str],
    build_once: bool,
) -> Tuple[Dict[str, str], List[str]]:
    """({key: builder} for the keys the cache lacks, the hosts that build).

    `hosts` is the batch in play order, each {"name", "key", "needs_install"}; hosts that need
    nothing (or have no key: they failed before naming it) neither build nor count. Without
    build once every host that needs its release builds its own wheel.
    """
    needing = [h for h in hosts if h.get("key") and h.get("needs_install")]
    if not build_once:
        return {}, [h["name"] for h in needing]
    cached = set(cached_keys)
    builders = choose_builders([h for h in needing if h["key"] not in cached], builders_group)
    return builders, [h["name"] for h in needing if builders.get(h["key"]) == h["name"]]


Release = Tuple[str, float, bool]  # (key, mtime of its stamp or dir, verified: has a stamp)


def releases_to_prune(releases: Sequence[Release], current: str, keep: int) -> List[str]:
    """Keys of the releases to delete: all but the `keep` newest verified ones and current.

    Releases without a stamp (a run that failed before verify) are never kept unless current.
    """
    verified = sorted((r for r in releases if r[2] and r[0] != current), key=lambda r: -r[1])
    kept = {current} | {r[0] for r in verified[: max(keep, 0)]}
    return sorted(r[0] for r in releases if r[0] not in kept)


def is_partial(releases: Sequence[Release], current: str, key: str) -> bool:
    """True when releases/<key> exists without a stamp and is not current: what a run that
    failed or was killed before verify leaves. Only such a release may be discarded."""
    return key != current and any(r[0] == key and not r[2] for r in releases)


def previous_release(releases: Sequence[Release], current: str) -> Optional[str]:
    """The newest verified release other than current, the target of a rollback."""
    candidates = sorted((r for r in releases if r[2] and r[0] != current), key=lambda r: -r[1])
    return candidates[0][0] if candidates else None


def lock_content(run_id: str, pid: int, host: str, started: str, owner: str) -> str:
    """What the lock file holds: who took it, so a waiting run can name the holder."""
    return json.dumps(
        {"run_id": run_id, "pid": pid, "host": host, "started": started, "owner": owner},
        sort_keys=True,
    )


def parse_lock(text: str) -> Dict[str, object]:
    """The holder recorded in a lock file; an unreadable one is reported as such."""
    try:
        data = json.loads(text)
    except ValueError:
        return {"run_id": "unknown", "unreadable": text[:200]}
    return data if isinstance(data, dict) else {"run_id": "unknown", "unreadable": text[:200]}


def describe_holder(holder: Mapping[str, object]) -> str:
    """One line naming the run that holds the lock."""
    if "unreadable" in holder:
        return "an unknown run (unreadable lock file: {!r})".format(holder["unreadable"])
    return "run {} of {} (pid {} on {}, since {})".format(
        holder.get("run_id", "?"),
        holder.get("owner", "?"),
        holder.get("pid", "?"),
        holder.get("host", "?"),
        holder.get("started", "?"),
    )
