"""Whether the installed vLLM is the build that was asked for: its version and its commit.

From the probe's raw facts (vllm_fleet_probe): vllm.__version__, the distribution's version
and the commit setuptools-scm recorded, against vllm_source_version and vllm_source_commit.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Optional, Tuple

from ansible.module_utils.vllm_fleet_versions import is_commit, split_version

# The node of a setuptools-scm version: 0.30.1.dev1+g1a2b3c4d, 0.1.dev5+g1234567.d20250101.
SCM_NODE_RE = re.compile(r"(?:^|[.+])g([0-9a-f]{7,40})(?:$|[.+])")


def normalize_expected_version(version: str) -> str:
    """Turn a tag such as v0.30.0 into the version 0.30.0."""
    version = version.strip()
    if version[:1] in ("v", "V") and version[1:2].isdigit():
        return version[1:]
    return version


def version_problem(expected: Optional[str], public_version: str) -> Optional[str]:
    """Return why the installed public version is not the expected one, or None."""
    if not expected:
        return None
    wanted = normalize_expected_version(expected)
    if split_version(wanted)[0] == public_version:
        return None
    return (
        f"installed vLLM is {public_version}, expected {wanted}: the venv holds another build. "
        "Set vllm_source_version to the tag you mean, or rebuild so the venv gets it."
    )


def normalize_commit(commit: str) -> str:
    """Lower-case a commit and drop setuptools-scm's g prefix (gced6857af -> ced6857af)."""
    commit = commit.strip().lower()
    if commit.startswith("g") and is_commit(commit[1:]):
        return commit[1:]
    return commit


def recorded_commit(commit_id: Optional[str], version: str) -> Optional[str]:
    """Return the commit vLLM recorded: _version.commit_id, else a +g<sha> in the version."""
    if commit_id:
        commit = normalize_commit(str(commit_id))
        if is_commit(commit):
            return commit
    match = SCM_NODE_RE.search(version.lower())
    return match.group(1) if match else None


def commit_check(expected: Optional[str], recorded: Optional[str]) -> Tuple[str, Optional[str]]:
    """Compare commits by prefix; return (state, problem).

    state is matched, mismatched, unknown (nothing recorded), invalid or not requested.
    """
    if not expected:
        return "not requested", None
    wanted = normalize_commit(expected)
    if not is_commit(wanted):
        return "invalid", (
            f"vllm_source_commit {expected!r} is not a commit SHA: give 7 to 40 hex digits."
        )
    if recorded is None:
        return "unknown", None
    if wanted.startswith(recorded) or recorded.startswith(wanted):
        return "matched", None
    return "mismatched", (
        f"installed vLLM was built from commit {recorded}, expected {wanted}: the source was "
        "checked out at another commit (a moved tag?). Set vllm_source_commit to the commit of "
        "vllm_source_version, or rebuild from that commit."
    )


def identity_from_probe(report: Dict[str, Any]) -> Dict[str, Any]:
    """Turn the probe's raw version facts into the module's return values."""
    version = str(report.get("version", "unknown"))
    dist_version = report.get("dist_version")
    public, local = split_version(version)
    if local is None and dist_version:
        local = split_version(str(dist_version))[1]
    commit = recorded_commit(report.get("commit_id"), version)
    if commit is None and dist_version:
        commit = recorded_commit(None, str(dist_version))
    return {
        "vllm_version": version,
        "vllm_public_version": public,
        "vllm_local_version": local,
        "vllm_dist_version": dist_version,
        "vllm_location": report.get("location"),
        "vllm_commit": commit,
        "torch_version": report.get("torch_version"),
        "torch_cuda_version": report.get("torch_cuda_version"),
    }
