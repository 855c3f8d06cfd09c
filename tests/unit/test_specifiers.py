"""vllm_fleet_specifiers: requires-python checks with `packaging`, and with the PEP 440 subset
that hosts without packaging use; every case runs on both and must get the same answer."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import ansible.module_utils.vllm_fleet_specifiers as specifiers
import pytest
from ansible.module_utils.vllm_fleet_specifiers import (
    VersionError,
    parse_specifier,
    version_satisfies,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["packaging", "fallback"])
def decider(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the test with packaging deciding, then with it switched off (the subset)."""
    assert specifiers.SpecifierSet is not None, "the test venv has packaging"
    if request.param == "fallback":
        monkeypatch.setattr(specifiers, "SpecifierSet", None)


@pytest.mark.parametrize(
    ("version", "specifier", "expected"),
    [
        ("3.11.2", ">=3.10,<3.15", True),
        ("3.9.2", ">=3.10,<3.15", False),
        ("3.15.0", ">=3.10,<3.15", False),
        ("3.14.1", ">=3.10,<3.15", True),
        ("3.12.0", ">=3.9,<3.13", True),
        ("3.13.0", ">=3.9,<3.13", False),
        ("3.8.10", ">=3.8", True),
        ("3.10.0", "~=3.10", True),
        ("4.0", "~=3.10", False),
        ("3.11.9", "~=3.11.2", True),
        ("3.12.0", "~=3.11.2", False),
        ("3.11.7", "==3.11.*", True),
        ("3.12.1", "==3.11.*", False),
        ("3.12.1", "!=3.12.*", False),
        ("3.12.1", "!=3.12.0", True),
        ("3.13.0rc1", ">=3.13", True),  # only the release counts, as in pip
        ("3.12.3+local", "<=3.12.3", True),
        ("3.10", "==3.10.0", True),
        ("3.10.1", ">3.10", True),
        ("3.10.0", ">3.10", False),
        ("3.11.2", " >= 3.10 , < 3.15 ", True),
        ("3.11.2", "", True),
    ],
)
@pytest.mark.usefixtures("decider")
def test_version_satisfies(version: str, specifier: str, expected: bool) -> None:
    assert version_satisfies(version, specifier) is expected


@pytest.mark.parametrize("specifier", [">=three", "~=3", ">=3.10;<3.15", "3.10"])
@pytest.mark.usefixtures("decider")
def test_unreadable_specifiers_raise(specifier: str) -> None:
    with pytest.raises(VersionError) as exc:
        version_satisfies("3.11.2", specifier)
    assert str(exc.value) == f"Cannot read the version specifier {specifier!r}"


@pytest.mark.usefixtures("decider")
def test_unreadable_versions_raise() -> None:
    with pytest.raises(VersionError, match="Cannot read the version 'python'"):
        version_satisfies("python", ">=3.10")


def test_the_subset_splits_clauses() -> None:
    assert parse_specifier(">=3.10, <3.15") == [(">=", "3.10"), ("<", "3.15")]
    assert parse_specifier("==3.11.*") == [("==", "3.11.*")]


def test_the_module_loads_without_packaging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "packaging.specifiers", None)
    fresh = runpy.run_path(str(ROOT / "module_utils" / "vllm_fleet_specifiers.py"))
    assert fresh["SpecifierSet"] is None
    assert fresh["version_satisfies"]("3.11.2", ">=3.10,<3.15") is True
    assert fresh["version_satisfies"]("3.9.2", ">=3.10,<3.15") is False
