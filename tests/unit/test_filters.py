"""The role's filter plugins (roles/vllm_source/filter_plugins/, which Ansible loads with the
role wherever it runs): the decisions that were Jinja in its tasks."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

PLUGINS = Path(__file__).resolve().parents[2] / "roles" / "vllm_source" / "filter_plugins"


def plugin(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, PLUGINS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert name in module.FilterModule().filters()
    return module


pip_source_args = plugin("pip_source_args").pip_source_args
ls_remote_commit = plugin("ls_remote_commit").ls_remote_commit
dpkg_missing = plugin("dpkg_missing").dpkg_missing
recorded_pins = plugin("recorded_pins").recorded_pins

TORCH = "https://download.pytorch.org/whl/cu128"
IDX = "https://pypi.example/simple"


@pytest.mark.parametrize(
    ("offline", "index", "wheelhouse", "torch", "expected"),
    [
        (True, IDX, "/srv/w", "", ["--no-index", "--find-links", "/srv/w"]),
        (True, "", "", TORCH, ["--no-index"]),  # offline, torch too comes from the wheelhouse
        (False, "", "", "", []),  # pip's own default index
        (False, IDX, "", "", ["--index-url", IDX]),
        (False, IDX, "/srv/w", TORCH, ["--index-url", TORCH, "--find-links", "/srv/w"]),
        (False, "", "/srv/w", "", ["--find-links", "/srv/w"]),
    ],
)  # fmt: skip
def test_pip_takes_packages_from_the_wheelhouse_offline_else_the_index(
    offline, index, wheelhouse, torch, expected
):
    assert pip_source_args(offline, index, wheelhouse, torch) == expected


ANNOTATED = [
    "1111111111111111111111111111111111111111\trefs/tags/v0.30.0",
    "2222222222222222222222222222222222222222\trefs/tags/v0.30.0^{}",
]


def test_an_annotated_tag_resolves_to_the_commit_it_points_at():
    assert ls_remote_commit(ANNOTATED) == "2" * 40
    assert ls_remote_commit(list(reversed(ANNOTATED))) == "2" * 40


def test_a_lightweight_tag_is_its_commit_and_no_tag_is_empty():
    assert ls_remote_commit(ANNOTATED[:1]) == "1" * 40
    assert ls_remote_commit([]) == ""
    assert ls_remote_commit(["", "  "]) == ""


def test_dpkg_missing_lists_what_is_not_installed_in_the_required_order():
    lines = [
        "git installed",
        "acl not-installed",
        "xz-utils config-files",
        "python3-venv installed",
    ]
    required = ["acl", "git", "xz-utils", "python3-venv", "build-essential"]
    assert dpkg_missing(required, lines) == ["acl", "xz-utils", "build-essential"]
    assert dpkg_missing(["git"], []) == ["git"]  # dpkg-query knows nothing of it


STAMP = {"inputs": {"commit": "c" * 40, "python_abi": "cp312"}, "pins": {"torch_pin": "2.13.0"}}


def test_recorded_pins_only_for_the_same_commit_and_abi():
    assert recorded_pins(STAMP, "c" * 40, "cp312") == {"torch_pin": "2.13.0"}
    assert recorded_pins(STAMP, "d" * 40, "cp312") == {}
    assert recorded_pins(STAMP, "c" * 40, "cp311") == {}
    assert recorded_pins({}, "c" * 40, "cp312") == {}  # no current release
    assert recorded_pins({"inputs": STAMP["inputs"]}, "c" * 40, "cp312") == {}  # an old stamp
