"""Which of vLLM's runtime requirements to install when some are excluded.

Pure functions over requirement strings (PEP 508), shared by library/vllm_runtime_requirements.py
and its unit tests. Marker evaluation is passed in, so the caller decides the environment.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, List, Optional, Tuple

EXCLUDE_VARIABLE = "vllm_source_runtime_deps_exclude"
_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical_name(name: str) -> str:
    """Return a distribution name in PEP 503 normal form (lowercase, runs of -_. as -)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """Return the canonical distribution name a requirement string names."""
    match = _NAME_RE.match(requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return canonical_name(match.group(1))


def split_marker(requirement: str) -> Tuple[str, Optional[str]]:
    """Split 'spec ; marker' into the spec and the marker (None without one)."""
    spec, sep, marker = requirement.partition(";")
    return spec.strip(), (marker.strip() or None) if sep else None


def select_requirements(
    requires: Iterable[str],
    exclude: Iterable[str],
    marker_applies: Callable[[str], bool],
) -> Tuple[List[str], List[str]]:
    """Return (to install, excluded) from a distribution's Requires-Dist.

    Requirements whose marker does not apply here (extras included) are dropped; those whose
    name is in `exclude` are reported as excluded; the rest are returned without their marker.
    """
    unwanted = {canonical_name(name) for name in exclude}
    install, excluded = [], []
    for requirement in requires:
        spec, marker = split_marker(requirement)
        if marker is not None and not marker_applies(marker):
            continue
        if requirement_name(spec) in unwanted:
            excluded.append(spec)
        else:
            install.append(spec)
    return install, excluded


def unknown_exclusions(requires: Iterable[str], exclude: Iterable[str]) -> List[str]:
    """Return the excluded names that are not requirements of the distribution at all."""
    names = {requirement_name(split_marker(r)[0]) for r in requires}
    return sorted(name for name in exclude if canonical_name(name) not in names)
