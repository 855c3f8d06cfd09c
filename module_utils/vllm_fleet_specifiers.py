"""Whether a version satisfies a PEP 440 specifier, such as requires-python's `>=3.10,<3.15`.

`packaging` decides where the interpreter has it; a small subset of PEP 440 (release numbers,
the operators ~= == != <= >= < >, `.*` wildcards; === as ==) decides where it does not. Only the
release numbers of the version count, as pip checks requires-python against
sys.version_info[:3]: Python 3.13.0rc1 satisfies `>=3.13`.
"""

from __future__ import annotations

import re
from typing import List, Tuple

from ansible.module_utils.vllm_fleet_versions import version_tuple

try:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
except ImportError:  # managed hosts run the OS's python3 (3.8+), often without packaging
    InvalidSpecifier = SpecifierSet = None  # type: ignore[assignment,misc]

_SPECIFIER = re.compile(r"^\s*(~=|===|==|!=|<=|>=|<|>)\s*([0-9][0-9A-Za-z.*+!_-]*)\s*$")

Release = Tuple[int, ...]


class VersionError(ValueError):
    """A version or specifier that cannot be read; the message quotes it."""


def version_satisfies(version: str, specifier: str) -> bool:
    """Whether a release such as `3.11.2` satisfies every clause of `specifier`.

    VersionError when the version has no release numbers or the specifier is not PEP 440.
    """
    release = version_tuple(version)
    if not release:
        raise VersionError(f"Cannot read the version {version!r}")
    if SpecifierSet is None:
        return all(_matches(release, op, target) for op, target in parse_specifier(specifier))
    try:
        clauses = SpecifierSet(specifier)
    except InvalidSpecifier as exc:
        raise VersionError(f"Cannot read the version specifier {specifier!r}") from exc
    return clauses.contains(".".join(str(part) for part in release), prereleases=True)


# --- the subset, for interpreters without packaging --------------------------------------


def parse_specifier(specifier: str) -> List[Tuple[str, str]]:
    """`>=3.10,<3.15` -> [(">=", "3.10"), ("<", "3.15")]; VersionError on anything else."""
    clauses = []
    for clause in specifier.split(","):
        if not clause.strip():
            continue
        match = _SPECIFIER.match(clause)
        if not match or (match.group(1) == "~=" and len(version_tuple(match.group(2))) < 2):
            raise VersionError(f"Cannot read the version specifier {specifier!r}")
        clauses.append((match.group(1), match.group(2)))
    return clauses


def _padded(left: Release, right: Release) -> Tuple[Release, Release]:
    width = max(len(left), len(right))
    return left + (0,) * (width - len(left)), right + (0,) * (width - len(right))


def _starts_with(version: Release, prefix: Release) -> bool:
    return version[: len(prefix)] + (0,) * (len(prefix) - len(version)) == prefix


def _matches(version: Release, operator: str, target: str) -> bool:
    if operator in ("==", "!=") and target.endswith(".*"):
        equal = _starts_with(version, version_tuple(target[:-2]))
        return equal if operator == "==" else not equal
    wanted = version_tuple(target)
    have, want = _padded(version, wanted)
    if operator in ("==", "==="):
        return have == want
    if operator == "!=":
        return have != want
    if operator == ">=":
        return have >= want
    if operator == "<=":
        return have <= want
    if operator == ">":
        return have > want
    if operator == "<":
        return have < want
    # ~=X.Y[.Z]: >= X.Y[.Z] and the same release up to the last component given.
    return have >= want and _starts_with(version, wanted[:-1])
