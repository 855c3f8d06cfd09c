"""vllm_wheelhouse_check: an offline wheelhouse must hold the torch wheel the tag pins.

The message is the one the role's assert gave: the tests render that Jinja with ansible's
Templar and compare.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict

import pytest
import vllm_wheelhouse_check
import yaml
from ansible.module_utils import _internal as _target
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.vllm_fleet_torch import (
    missing_torch_wheel_message,
    torch_wheel_patterns,
    torch_wheels,
)
from controller_side import controller_side

# roles/vllm_source/tasks/wheelhouse_check.yml (then 04_plan.yml), which the module replaces.
JINJA_TASK = r"""
patterns:
  - "torch-{{ vllm_source_pins.torch_pin }}+{{ vllm_source_plan.torch_variant }}-*.whl"
  - "torch-{{ vllm_source_pins.torch_pin }}-*.whl"
fail_msg: >-
  vllm_source_pip_offline is true but the wheelhouse
  ({{ vllm_source_controller_wheelhouse or vllm_source_wheelhouse or 'none set' }}) has no
  torch {{ vllm_source_pins.torch_pin }} wheel for the {{ vllm_source_plan.torch_variant }}
  variant, which vLLM {{ vllm_source_version }} pins: add
  torch-{{ vllm_source_pins.torch_pin }}+{{ vllm_source_plan.torch_variant }}-*.whl to
  vllm_source_wheelhouse (or vllm_source_controller_wheelhouse), or set
  vllm_source_use_existing_torch with a matching torch.
"""
TAG = "cp312-cp312-manylinux_2_28_x86_64"


def render_jinja(host_wheelhouse: str, controller_wheelhouse: str) -> Dict[str, Any]:
    variables = {
        "vllm_source_pins": {"torch_pin": "2.9.0"},
        "vllm_source_plan": {"torch_variant": "cu128"},
        "vllm_source_version": "v0.30.0",
        "vllm_source_wheelhouse": host_wheelhouse,
        "vllm_source_controller_wheelhouse": controller_wheelhouse,
    }
    task = yaml.safe_load(JINJA_TASK)
    with controller_side():
        from ansible.parsing.dataloader import DataLoader
        from ansible.template import Templar, trust_as_template

        templar = Templar(loader=DataLoader(), variables=variables)
        return {
            "patterns": [templar.template(trust_as_template(p)) for p in task["patterns"]],
            "fail_msg": templar.template(trust_as_template(task["fail_msg"])),
        }


def wheelhouse(tmp_path: Path, *names: str, manifest: bool = True) -> str:
    """A wheelhouse of empty files, with a wheelhouse.json that lists them (or none)."""
    path = tmp_path / "wheelhouse"
    path.mkdir()
    for name in names:
        (path / name).write_bytes(b"")
    if manifest:
        empty = hashlib.sha256(b"").hexdigest()
        packages = [{"file": name, "sha256": empty} for name in names]
        (path / "wheelhouse.json").write_text(json.dumps({"packages": packages}), "utf-8")
    return str(path)


def run_main(args: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> Dict[str, Any]:
    base = {"torch_pin": "2.9.0", "torch_variant": "cu128", "vllm_version": "v0.30.0"}
    assert not _target.is_controller, "the module runs as on a host, not as the controller"
    with patch_module_args({**base, **args}), pytest.raises(SystemExit):
        vllm_wheelhouse_check.main()
    return json.loads(capsys.readouterr().out)


def test_the_patterns_are_the_roles() -> None:
    assert torch_wheel_patterns("2.9.0", "cu128") == render_jinja("", "")["patterns"]


def test_the_pins_wheel_in_the_variant_or_plain_is_found() -> None:
    names = [
        f"torch-2.9.0+cu128-{TAG}.whl",
        f"torch-2.9.0-{TAG}.whl",
        f"torch-2.9.0+cu126-{TAG}.whl",  # another variant
        f"torch-2.9.1+cu128-{TAG}.whl",  # another version
        f"torch-2.9.0.post1-{TAG}.whl",
        f"torchvision-0.24.0+cu128-{TAG}.whl",
        "torch-2.9.0+cu128.tar.gz",
    ]
    assert torch_wheels(names, "2.9.0", "cu128") == [
        f"torch-2.9.0+cu128-{TAG}.whl",
        f"torch-2.9.0-{TAG}.whl",
    ]
    assert torch_wheels(names, "2.9", "cu128") == []


@pytest.mark.parametrize(("host", "controller"), [("/srv/wh", ""), ("", "/c/wh"), ("", "")])
def test_the_message_is_the_roles(host: str, controller: str) -> None:
    message = missing_torch_wheel_message(
        controller or host,
        "2.9.0",
        "cu128",
        "v0.30.0",
        "vllm_source_wheelhouse",
        "vllm_source_controller_wheelhouse",
    )
    assert message == render_jinja(host, controller)["fail_msg"]


def test_module_passes_with_the_pins_wheel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = wheelhouse(tmp_path, f"torch-2.9.0+cu128-{TAG}.whl", f"numpy-2.3.5-{TAG}.whl")
    out = run_main({"path": path, "_ansible_check_mode": True}, capsys)
    assert "failed" not in out and out["changed"] is False
    assert out["wheels"] == [os.path.join(path, f"torch-2.9.0+cu128-{TAG}.whl")]
    assert out["patterns"] == ["torch-2.9.0+cu128-*.whl", "torch-2.9.0-*.whl"]


def test_module_takes_a_plain_wheel_and_a_link_to_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = wheelhouse(tmp_path, f"torch-2.9.0-{TAG}.whl")
    (tmp_path / "elsewhere.whl").write_bytes(b"")
    os.symlink(tmp_path / "elsewhere.whl", Path(path) / f"torch-2.9.0+cu128-{TAG}.whl")
    out = run_main({"path": path}, capsys)
    assert [os.path.basename(w) for w in out["wheels"]] == [
        f"torch-2.9.0+cu128-{TAG}.whl",
        f"torch-2.9.0-{TAG}.whl",
    ]


def test_module_refuses_a_wheelhouse_without_the_pins_wheel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = wheelhouse(tmp_path, f"torch-2.8.0+cu128-{TAG}.whl", f"torch-2.9.0+cpu-{TAG}.whl")
    os.mkdir(os.path.join(path, f"torch-2.9.0-{TAG}.whl"))  # a directory is no wheel
    out = run_main({"path": path}, capsys)
    assert out["failed"] is True and out["wheels"] == []
    assert out["msg"] == render_jinja(path, "")["fail_msg"]


def test_module_refuses_a_missing_or_unset_wheelhouse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "absent")
    out = run_main({"path": missing}, capsys)
    assert out["failed"] is True and out["msg"] == render_jinja(missing, "")["fail_msg"]
    unset = run_main({"path": ""}, capsys)
    assert unset["failed"] is True and "the wheelhouse (none set)" in unset["msg"]


def test_module_names_the_variables_it_is_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run_main(
        {
            "path": wheelhouse(tmp_path),
            "wheelhouse_variable": "stage_wheelhouse",
            "controller_wheelhouse_variable": "stage_controller_wheelhouse",
        },
        capsys,
    )
    assert "-*.whl to stage_wheelhouse (or stage_controller_wheelhouse), or set" in out["msg"]


@pytest.mark.parametrize("controller", ["", "/c/wh"])
def test_module_refuses_a_wheelhouse_without_its_hashes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], controller: str
) -> None:
    """Offline installs are hash-checked against wheelhouse.json: a wheelhouse without one is
    refused here, before anything changes, naming the command that records it."""
    path = wheelhouse(tmp_path, f"torch-2.9.0+cu128-{TAG}.whl", manifest=False)
    out = run_main({"path": path, "controller_wheelhouse": controller}, capsys)
    assert out["failed"] is True
    assert "has no wheelhouse.json" in out["msg"] and "hash --dest" in out["msg"]
    assert (controller or "vllm_source_wheelhouse") in out["msg"]
    (Path(path) / "wheelhouse.json").write_text("{not json", "utf-8")
    out = run_main({"path": path, "controller_wheelhouse": controller}, capsys)
    assert out["failed"] is True and "unusable wheelhouse.json" in out["msg"]
