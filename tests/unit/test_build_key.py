"""vllm_build_key: the build inputs, the key, the release paths and whether to install.

The key must stay what the role's Jinja gave, or every release already on a host would be
rebuilt under a new name: the tests render that Jinja with ansible's own Templar and filters.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Dict, Tuple

import pytest
import vllm_build_key
import vllm_release
from ansible.module_utils import _internal as _target
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.vllm_fleet_key import (
    build_inputs,
    build_key,
    fingerprint,
    platform_tag,
    python_abi,
)
from ansible.module_utils.vllm_fleet_release import (
    STAMP_IN_RELEASE,
    differing_inputs,
    install_reason,
    read_stamp,
    release_dir,
    stamp_path,
)
from controller_side import controller_side

# The role's Jinja that vllm_build_key replaces (roles/vllm_source/tasks/key.yml, then
# 04_plan.yml, and vars/main.yml for the ABI), verbatim.
JINJA_INPUTS = {
    "version": "{{ vllm_source_version }}",
    "commit": "{{ vllm_source_resolved_commit }}",
    "target_device": "{{ vllm_source_target_device }}",
    "torch": "{{ vllm_source_pins.torch_pin }}+{{ vllm_source_plan.torch_variant }}",
    "torch_variant": "{{ vllm_source_plan.torch_variant }}",
    "cuda": "{{ vllm_source_toolkit.version | default('', true)"
    " if vllm_source_target_device == 'cuda' else '' }}",
    "arch_list": "{{ vllm_source_plan.arch_list if vllm_source_target_device == 'cuda' else '' }}",
    "python_abi": "{{ vllm_source_python_abi }}",
    "platform": "{{ ansible_facts['distribution'] | lower }}"
    "{{ ansible_facts['distribution_major_version'] }}-{{ ansible_facts['architecture'] }}",
    "build_mode": "{{ vllm_source_build_mode }}",
    "precompiled_wheel": "{{ vllm_source_reg_precompiled.stat.checksum | default('')"
    " if vllm_source_build_mode == 'precompiled' else '' }}",
    "build_env": "{{ (vllm_source_build_env | to_json(sort_keys=true) | hash('sha256'))[:16] }}",
}
JINJA_KEY = "{{ (vllm_source_build_inputs | to_json(sort_keys=true) | hash('sha256'))[:16] }}"
JINJA_ABI = "cp{{ vllm_source_python_version.split('.')[:2] | join('') }}"

SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
COMMIT = "0123456789abcdef0123456789abcdef01234567"

# Role variables of a few hosts, and the module arguments a task gives for the same host.
CUDA_FULL: Dict[str, Any] = {
    "vllm_source_version": "v0.30.0",
    "vllm_source_resolved_commit": COMMIT,
    "vllm_source_target_device": "cuda",
    "vllm_source_pins": {"torch_pin": "2.9.0"},
    "vllm_source_plan": {"torch_variant": "cu128", "arch_list": "9.0"},
    "vllm_source_toolkit": {"version": "12.8"},
    "vllm_source_python_version": "3.12.3",
    "ansible_facts": {
        "distribution": "Ubuntu",
        "distribution_major_version": "24",
        "architecture": "x86_64",
    },
    "vllm_source_build_mode": "full",
    "vllm_source_reg_precompiled": {"skipped": True},
    "vllm_source_build_env": {},
}
CUDA_PRECOMPILED = {
    **CUDA_FULL,
    "vllm_source_plan": {"torch_variant": "cu130", "arch_list": "8.0;9.0;10.0f+PTX"},
    "vllm_source_toolkit": {"version": "13.0"},
    "vllm_source_build_mode": "precompiled",
    "vllm_source_reg_precompiled": {"stat": {"checksum": SHA, "isreg": True}},
    # Ints, nesting, and a credential with non-ASCII characters (to_json escapes them).
    "vllm_source_build_env": {
        "PIP_INDEX_URL": "https://bob:p\u00e4ssw\u00f6rd@index.example/simple",
        "MAX_JOBS": 8,
        "CMAKE_ARGS": "-DVLLM_X=ON",
        "FLAGS": ["a", {"b": 1.5}],
    },
}
EMPTY_DEVICE = {
    **CUDA_FULL,
    "vllm_source_target_device": "empty",
    "vllm_source_plan": {"torch_variant": "cpu", "arch_list": ""},
    "vllm_source_toolkit": {},  # no toolkit found
    "vllm_source_python_version": "3.10.14",
    "ansible_facts": {
        "distribution": "Rocky",
        "distribution_major_version": "9",
        "architecture": "aarch64",
    },
}
CUDA_NO_TOOLKIT_VERSION = {**CUDA_FULL, "vllm_source_toolkit": {"version": None}}
HOSTS = {
    "cuda-full": CUDA_FULL,
    "cuda-precompiled": CUDA_PRECOMPILED,
    "empty-device": EMPTY_DEVICE,
    "cuda-no-toolkit-version": CUDA_NO_TOOLKIT_VERSION,
}


def trusted(value: Any) -> Any:
    from ansible.template import trust_as_template

    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: trusted(v) for k, v in value.items()}
    return value


def render_jinja(role_vars: Dict[str, Any]) -> Tuple[Dict[str, Any], str]:
    """(vllm_source_build_inputs, vllm_source_build_key) as the role's set_fact tasks made them."""
    with controller_side():
        from ansible.parsing.dataloader import DataLoader
        from ansible.template import Templar

        variables = {**copy.deepcopy(role_vars), "vllm_source_python_abi": trusted(JINJA_ABI)}
        templar = Templar(loader=DataLoader(), variables=variables)
        inputs = templar.template(trusted(JINJA_INPUTS))
        templar.available_variables = {**variables, "vllm_source_build_inputs": inputs}
        return inputs, templar.template(trusted(JINJA_KEY))


def module_args(role_vars: Dict[str, Any], prefix: str) -> Dict[str, Any]:
    """What the replacement task passes (see the report), for these role variables."""
    facts = role_vars["ansible_facts"]
    return {
        "prefix": prefix,
        "version": role_vars["vllm_source_version"],
        "commit": role_vars["vllm_source_resolved_commit"],
        "target_device": role_vars["vllm_source_target_device"],
        "torch_pin": role_vars["vllm_source_pins"]["torch_pin"],
        "torch_variant": role_vars["vllm_source_plan"]["torch_variant"],
        "cuda_version": role_vars["vllm_source_toolkit"].get("version") or "",
        "arch_list": role_vars["vllm_source_plan"]["arch_list"],
        "python_version": role_vars["vllm_source_python_version"],
        "distribution": facts["distribution"],
        "distribution_major_version": facts["distribution_major_version"],
        "architecture": facts["architecture"],
        "build_mode": role_vars["vllm_source_build_mode"],
        "precompiled_wheel_sha256": role_vars["vllm_source_reg_precompiled"]
        .get("stat", {})
        .get("checksum", ""),
        "build_env": role_vars["vllm_source_build_env"],
    }


def inputs_of(role_vars: Dict[str, Any]) -> Dict[str, str]:
    args = module_args(role_vars, "/opt/vllm")
    del args["prefix"]
    return build_inputs(**args)


def run_main(args: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> Dict[str, Any]:
    assert not _target.is_controller, "the module runs as on a host, not as the controller"
    with patch_module_args(args), pytest.raises(SystemExit):
        vllm_build_key.main()
    return json.loads(capsys.readouterr().out)


def write_stamp(path: str, inputs: Any) -> None:
    """A stamp as 10_release.yml writes it (to_nice_json of key, inputs, pins, ...)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    stamp = {"key": "k", "inputs": inputs, "pins": {"torch_pin": "2.9.0"}, "built_here": True}
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(stamp, indent=4, sort_keys=True) + "\n")


# --- the key equals the Jinja's ------------------------------------------------------------


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_inputs_and_key_equal_the_role_jinja(host: str) -> None:
    jinja_inputs, jinja_key = render_jinja(HOSTS[host])
    inputs = inputs_of(HOSTS[host])
    assert inputs == jinja_inputs
    assert all(isinstance(v, str) for v in jinja_inputs.values())
    assert build_key(inputs) == jinja_key
    assert len(jinja_key) == 16 and int(jinja_key, 16) >= 0


def test_the_key_of_known_inputs_is_unchanged() -> None:
    # Recorded from the role's Jinja: a key that changes renames every release on every host.
    inputs, key = render_jinja(CUDA_FULL)
    assert inputs["build_env"] == "44136fa355b3678a"  # the fingerprint of {}
    assert inputs["python_abi"] == "cp312" and inputs["platform"] == "ubuntu24-x86_64"
    assert inputs["torch"] == "2.9.0+cu128" and inputs["cuda"] == "12.8"
    assert build_key(inputs_of(CUDA_FULL)) == key


def test_only_the_inputs_of_the_target_and_mode_count() -> None:
    empty = inputs_of(EMPTY_DEVICE)
    assert empty["cuda"] == "" and empty["arch_list"] == ""
    assert empty["python_abi"] == "cp310" and empty["platform"] == "rocky9-aarch64"
    full = inputs_of({**CUDA_FULL, "vllm_source_reg_precompiled": {"stat": {"checksum": SHA}}})
    assert full["precompiled_wheel"] == ""
    assert inputs_of(CUDA_PRECOMPILED)["precompiled_wheel"] == SHA


def test_the_build_env_counts_only_as_its_fingerprint() -> None:
    inputs = inputs_of(CUDA_PRECOMPILED)
    assert inputs["build_env"] == fingerprint(CUDA_PRECOMPILED["vllm_source_build_env"])
    assert "bob" not in json.dumps(inputs)
    other = {**CUDA_PRECOMPILED, "vllm_source_build_env": {"MAX_JOBS": 9}}
    assert build_key(inputs_of(other)) != build_key(inputs)


def test_python_abi_and_platform() -> None:
    assert python_abi("3.12.3") == "cp312"
    assert python_abi("3.9") == "cp39"
    assert platform_tag("Ubuntu", "22", "x86_64") == "ubuntu22-x86_64"


# --- the release, its stamp and whether to install ----------------------------------------


def test_the_release_paths_have_one_definition() -> None:
    assert release_dir("/opt/vllm", "abc") == "/opt/vllm/releases/abc"
    assert stamp_path("/opt/vllm", "abc") == "/opt/vllm/releases/abc/venv/vllm-source-stamp.json"
    assert stamp_path("/p", "k") == os.path.join(release_dir("/p", "k"), STAMP_IN_RELEASE)


def test_vllm_release_counts_a_release_verified_by_the_same_stamp(tmp_path: Path) -> None:
    write_stamp(stamp_path(str(tmp_path), "done"), {})
    os.makedirs(release_dir(str(tmp_path), "half"))
    verified = {key: ok for key, _, ok in vllm_release.list_releases(str(tmp_path))}
    assert verified == {"done": True, "half": False}


def test_a_new_release_needs_install(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_main(module_args(CUDA_FULL, str(tmp_path)), capsys)
    key = render_jinja(CUDA_FULL)[1]
    assert out["changed"] is False
    assert out["build_key"] == key
    assert out["build_inputs"] == render_jinja(CUDA_FULL)[0]
    assert out["release_dir"] == f"{tmp_path}/releases/{key}"
    assert out["stamp_path"] == f"{tmp_path}/releases/{key}/venv/vllm-source-stamp.json"
    assert out["needs_install"] is True
    assert out["install_reason"] == f"no stamp at {out['stamp_path']}"


def test_a_stamp_of_these_inputs_means_installed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs, key = render_jinja(CUDA_PRECOMPILED)
    write_stamp(stamp_path(str(tmp_path), key), inputs)
    out = run_main(module_args(CUDA_PRECOMPILED, str(tmp_path)), capsys)
    assert out["build_key"] == key
    assert out["needs_install"] is False and out["install_reason"] == ""


def test_a_stamp_with_other_inputs_needs_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs, key = render_jinja(CUDA_FULL)
    write_stamp(stamp_path(str(tmp_path), key), {**inputs, "commit": "f" * 40, "old": "x"})
    out = run_main(module_args(CUDA_FULL, str(tmp_path)), capsys)
    assert out["needs_install"] is True
    assert out["install_reason"] == "the stamp records other build inputs: commit, old"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "is not JSON"),
        ('["a list"]', "records no build inputs"),
        ('{"key": "k"}', "records no build inputs"),
        ('{"inputs": "text"}', "records no build inputs"),
    ],
)
def test_an_unusable_stamp_needs_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, reason: str
) -> None:
    key = render_jinja(CUDA_FULL)[1]
    path = Path(stamp_path(str(tmp_path), key))
    path.parent.mkdir(parents=True)
    path.write_text(content, encoding="utf-8")
    out = run_main(module_args(CUDA_FULL, str(tmp_path)), capsys)
    assert out["needs_install"] is True and reason in out["install_reason"]


def test_an_unreadable_stamp_needs_install(tmp_path: Path) -> None:
    path = tmp_path / "venv" / "vllm-source-stamp.json"
    path.mkdir(parents=True)  # a directory where the stamp should be
    stamp, why = read_stamp(str(path))
    assert stamp is None and why.startswith(f"the stamp {path} is unreadable")
    assert install_reason(stamp, why, {"a": "b"}) == why


def test_inputs_that_differ_by_a_missing_key_differ() -> None:
    assert differing_inputs({"a": None}, {}) == ["a"]
    assert differing_inputs({"a": "1"}, {"a": "1"}) == []
    assert install_reason({"inputs": {"a": "1"}}, "", {"a": "1"}) == ""


def test_the_build_env_stays_out_of_the_result_without_masking_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # no_log masks every occurrence of a no_log value in the result: an env value "8" would
    # turn each 8 of the key, the CUDA version and the paths into ********.
    env = {"MAX_JOBS": "8", "PIP_INDEX_URL": "https://bob:hunter2@index.example/simple"}
    role_vars = {**CUDA_FULL, "vllm_source_build_env": env}
    with patch_module_args(module_args(role_vars, str(tmp_path))), pytest.raises(SystemExit):
        vllm_build_key.main()
    raw = capsys.readouterr().out
    out = json.loads(raw)
    inputs, key = render_jinja(role_vars)
    assert "8" in key and out["build_key"] == key
    assert out["build_inputs"] == inputs
    assert "*" not in raw and "hunter2" not in raw
    assert out["invocation"]["module_args"]["build_env"] == fingerprint(env)
