"""Fleet decisions: who builds each build key, which releases to keep, the lock's holder.

Pure functions, so the unit tests call them with plain data; the modules in library/
(vllm_builders, vllm_release, vllm_lock) do the I/O around them.
"""

from __future__ import annotations

import glob
import json
import os
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


def cached_wheel(cache_dir: str, key: str) -> Optional[Tuple[str, str]]:
    """(wheel path, sha256) of a key's wheel in the controller's artifact cache, or None.

    The cache holds <cache_dir>/<key>/<wheel> and <wheel>.sha256 ("<sha256>  <name>"), the
    .sha256 written after the wheel: a wheel without one is a copy that did not finish.
    """
    folder = os.path.join(cache_dir, key)
    sums = sorted(glob.glob(os.path.join(glob.escape(folder), "*.whl.sha256")))
    if not sums:
        return None
    with open(sums[0], encoding="utf-8") as handle:
        digest = (handle.read().split() or [""])[0]
    return sums[0][: -len(".sha256")], digest


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
