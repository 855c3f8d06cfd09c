"""vllm_fleet_toml: tomllib where Python has it, the subset parser where it does not (3.8-3.10),
with the same answers on the pyproject.toml files of real vLLM sdists."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import ansible.module_utils.vllm_fleet_toml as toml
import pytest
import tomllib
from ansible.module_utils.vllm_fleet_toml import parse_pyproject, parse_toml_subset

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "vllm-src"
VERSIONS = ("0.10.1", "0.22.0", "0.30.0")


@pytest.mark.parametrize("version", VERSIONS)
def test_fallback_toml_parser_matches_tomllib(version: str) -> None:
    text = (DATA / version / "pyproject.toml").read_text()
    full = tomllib.loads(text)
    subset = parse_toml_subset(text)
    assert subset["build-system"]["requires"] == full["build-system"]["requires"]
    assert subset["build-system"]["build-backend"] == "setuptools.build_meta"
    assert subset["project"]["requires-python"] == full["project"]["requires-python"]
    assert subset["project"]["name"] == "vllm"


@pytest.mark.parametrize("version", VERSIONS)
def test_parse_pyproject_uses_tomllib_where_python_has_it(
    version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (DATA / version / "pyproject.toml").read_text()
    assert toml.tomllib is tomllib
    assert parse_pyproject(text) == tomllib.loads(text)
    monkeypatch.setattr(toml, "tomllib", None)
    fallback = parse_pyproject(text)
    assert fallback == parse_toml_subset(text)
    assert fallback["build-system"]["requires"] == tomllib.loads(text)["build-system"]["requires"]


def test_the_module_loads_without_tomllib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tomllib", None)
    fresh = runpy.run_path(str(ROOT / "module_utils" / "vllm_fleet_toml.py"))
    assert fresh["tomllib"] is None
    text = (DATA / "0.30.0" / "pyproject.toml").read_text()
    assert fresh["parse_pyproject"](text)["project"]["requires-python"] == ">=3.10,<3.15"


def test_fallback_toml_parser_comments_quotes_and_inline_arrays() -> None:
    text = (
        "# top comment\n"
        "[build-system]\n"
        "requires = ['setuptools', \"torch == 2.7.1\"]  # inline comment\n"
        "[project]\n"
        'requires-python = ">=3.9" # why\n'
        'description = "a # inside quotes"\n'
        "[tool.x]\n"
        "requires = [\n"
        '  "not-this",\n'
        "]\n"
    )
    data = parse_toml_subset(text)
    assert data == tomllib.loads(text)
    assert data["build-system"]["requires"] == ["setuptools", "torch == 2.7.1"]
    assert data["project"] == {"requires-python": ">=3.9", "description": "a # inside quotes"}
    assert data["tool"]["x"]["requires"] == ["not-this"]
