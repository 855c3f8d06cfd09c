"""Where a release lives under a prefix, and whether a release's stamp still fits its inputs.

One definition of the paths: <prefix>/releases/<key>/ holds a release, and its stamp
<prefix>/releases/<key>/venv/vllm-source-stamp.json marks it verified (the role writes it last).
Shared by library/vllm_build_key.py, library/vllm_release.py and their unit tests.
"""

from __future__ import annotations

import json
import os
from typing import Any, List, Mapping, Optional, Tuple

RELEASES_DIR = "releases"
# The stamp's path inside a release directory.
STAMP_IN_RELEASE = "venv/vllm-source-stamp.json"


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
