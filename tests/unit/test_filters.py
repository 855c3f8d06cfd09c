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


input_form_errors = plugin("input_form_errors").input_form_errors
GOOD = {
    "vllm_source_version": "v0.30.0",
    "vllm_source_commit": "",
    "vllm_source_prefix": "/opt/vllm",
    "vllm_source_repo_url": "https://github.com/vllm-project/vllm.git",
}


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/vllm-project/vllm.git",
        "https://fleet:token@git.example/vllm.git",  # git sends these; the role hides them
        "file:///srv/mirror/vllm.git",
        "file://localhost/srv/mirror/vllm.git",
        "/srv/mirror/vllm.git",
        "ssh://git@git.example/vllm.git",
        "git@github.com:vllm-project/vllm.git",
    ],
)
def test_well_formed_inputs_have_no_errors(url: str) -> None:
    assert input_form_errors({**GOOD, "vllm_source_repo_url": url}) == []


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("vllm_source_version", "0.30.0", "set vllm_source_version: v0.30.0"),
        ("vllm_source_version", "latest", "a release tag such as v0.30.0"),
        ("vllm_source_commit", "ABC", "7-40 lowercase hex"),
        ("vllm_source_prefix", "opt/vllm", "absolute path other than /"),
        ("vllm_source_prefix", "/", "absolute path other than /"),
        ("vllm_source_prefix", "/opt/my vllm", "contains whitespace"),
        ("vllm_source_prefix", "/opt/../vllm", "must not contain '..'"),
        ("vllm_source_prefix", "/opt/vllm$HOME", "contains $"),
        ("vllm_source_repo_url", "", "must not be empty"),
        ("vllm_source_repo_url", "file://fleet:s3cr3t@/srv/mirror/vllm.git", "with credentials"),
        ("vllm_source_repo_url", "file://fleet:s3cr3t@localhost/srv/m.git", "with credentials"),
        ("vllm_source_repo_url", "file://mirror.example/srv/vllm.git", "names a host"),
        ("vllm_source_repo_url", "ssh://git:s3cr3t@git.example/vllm.git", "with a password"),
        ("vllm_source_repo_url", "mirror/vllm.git", "absolute path"),
        ("vllm_source_repo_url", "ftp://mirror.example/vllm.git", "https://, ssh:// or file:///"),
        ("vllm_source_build_progress_interval", 2, "from 5 to 600"),
        ("vllm_source_build_progress_interval", "1m", "from 5 to 600"),
        ("vllm_source_build_progress_interval", 3600, "from 5 to 600"),
        ("vllm_source_build_sample_interval", -1, "from 0 (no samples) to 3600"),
        ("vllm_source_build_sample_interval", "30s", "from 0 (no samples) to 3600"),
    ],
)
def test_each_wrong_input_gets_its_own_message(name: str, value: str, expected: str) -> None:
    errors = input_form_errors({**GOOD, name: value})
    assert len(errors) == 1 and expected in errors[0] and name in errors[0], errors
    assert "s3cr3t" not in errors[0]


def test_a_progress_interval_in_range_is_well_formed() -> None:
    assert input_form_errors({**GOOD, "vllm_source_build_progress_interval": 60}) == []
    assert input_form_errors({**GOOD, "vllm_source_build_progress_interval": "5"}) == []


def test_only_the_wrong_inputs_are_named() -> None:
    errors = input_form_errors({**GOOD, "vllm_source_version": "x", "vllm_source_prefix": "p"})
    assert [e.split()[0] for e in errors] == ["vllm_source_version", "vllm_source_prefix"]


compiler_cache_env = plugin("compiler_cache_env").compiler_cache_env
CHECKOUT, VENV = "/opt/vllm/extern/vllm", "/opt/vllm/releases/1f2e3d4c5b6a7980/venv"


def test_sccache_keeps_its_cache_under_the_prefix_and_hits_across_releases() -> None:
    assert compiler_cache_env("sccache", "/opt/vllm/", CHECKOUT, VENV, "50G") == {
        "CCACHE_DISABLE": "1",
        "SCCACHE_BASEDIRS": f"{CHECKOUT}:{VENV}",
        "SCCACHE_CACHE_SIZE": "50G",
        "SCCACHE_DIR": "/opt/vllm/cache/sccache",
        "SCCACHE_SERVER_UDS": "/opt/vllm/cache/sccache/server.sock",
    }


def test_a_shared_sccache_backend_replaces_the_local_folder() -> None:
    env = compiler_cache_env("sccache", "/opt/vllm", CHECKOUT, VENV, "50G", True)
    assert "SCCACHE_DIR" not in env and env["SCCACHE_BASEDIRS"] == f"{CHECKOUT}:{VENV}"


def test_a_prefix_too_long_for_a_socket_gets_a_port_of_its_own() -> None:
    long_prefix = "/srv/" + "fleet/" * 16 + "vllm"
    env = compiler_cache_env("sccache", long_prefix, CHECKOUT, VENV, "50G")
    other = compiler_cache_env("sccache", long_prefix + "2", CHECKOUT, VENV, "50G")
    assert "SCCACHE_SERVER_UDS" not in env
    assert 42260 <= int(env["SCCACHE_SERVER_PORT"]) < 44260
    assert env == compiler_cache_env("sccache", long_prefix, CHECKOUT, VENV, "50G")  # stable
    assert other["SCCACHE_SERVER_PORT"] != env["SCCACHE_SERVER_PORT"]


def test_ccache_and_no_cache_turn_the_other_launcher_off() -> None:
    assert compiler_cache_env("ccache", "/opt/vllm", CHECKOUT, VENV, "20G") == {
        "VLLM_DISABLE_SCCACHE": "1",
        "CCACHE_DIR": "/opt/vllm/cache/ccache",
        "CCACHE_BASEDIR": "/opt/vllm",
        "CCACHE_NOHASHDIR": "true",
        "CCACHE_MAXSIZE": "20G",
    }
    assert compiler_cache_env("none", "/opt/vllm", CHECKOUT, VENV, "20G") == {
        "VLLM_DISABLE_SCCACHE": "1",
        "CCACHE_DISABLE": "1",
    }
    with pytest.raises(ValueError, match="vllm_source_compiler_cache must be one of"):
        compiler_cache_env("distcc", "/opt/vllm", CHECKOUT, VENV, "20G")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("vllm_source_compiler_cache_size", "50", "a size such as 50G"),
        ("vllm_source_compiler_cache_size", "50 GB", "a size such as 50G"),
        ("vllm_source_compiler_cache_size", "0G", "a size such as 50G"),
        ("vllm_source_compiler_cache_env", ["SCCACHE-BUCKET"], "cannot be an environment"),
        ("vllm_source_compiler_cache_env", ["SCCACHE_BASEDIRS"], "which the role sets"),
    ],
)
def test_a_wrong_compiler_cache_setting_gets_its_message(name, value, expected) -> None:
    errors = input_form_errors({**GOOD, name: value})
    assert len(errors) == 1 and expected in errors[0] and name in errors[0], errors


def test_good_compiler_cache_settings_pass() -> None:
    inputs = {
        **GOOD,
        "vllm_source_compiler_cache": "sccache",
        "vllm_source_compiler_cache_size": "1.5T",
        "vllm_source_compiler_cache_env": {"SCCACHE_BUCKET": "b", "AWS_SECRET_ACCESS_KEY": "s"},
    }
    assert input_form_errors(inputs) == []
    ccache = {"CCACHE_REMOTE_STORAGE": "redis://cache:6379"}
    inputs.update(vllm_source_compiler_cache="ccache", vllm_source_compiler_cache_env=ccache)
    assert input_form_errors(inputs) == []


@pytest.mark.parametrize(
    ("tool", "backend", "other"),
    [
        (
            "ccache",
            {"SCCACHE_BUCKET": "s3cret-bucket", "AWS_SECRET_ACCESS_KEY": "s3cret"},
            "sccache",
        ),
        ("sccache", {"CCACHE_REMOTE_STORAGE": "redis://u:s3cret@cache"}, "ccache"),
        ("none", {"SCCACHE_REDIS_ENDPOINT": "redis://u:s3cret@cache"}, "sccache"),
    ],
)
def test_a_backend_of_the_other_tool_is_refused_by_name(tool, backend, other) -> None:
    """The default is ccache: sccache's S3 settings given without choosing sccache would
    silently build against the local cache. The message names the variables, never a value."""
    errors = input_form_errors(
        {**GOOD, "vllm_source_compiler_cache": tool, "vllm_source_compiler_cache_env": backend}
    )
    assert len(errors) == 1, errors
    assert f"set vllm_source_compiler_cache: {other}" in errors[0]
    assert next(n for n in backend if n.startswith(other.upper())) in errors[0]
    assert "s3cret" not in errors[0]
