"""vllm_torch_facts: a venv's PyTorch against the tag's pin and the planned variant.

The facts must read as the role's torch probe read them (its messages quote `found`): the
tests render that Jinja with ansible's Templar on the same probe output.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import vllm_torch_facts
from ansible.module_utils import _internal as _target
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.vllm_fleet_torch import (
    PROBE,
    probe_argv,
    probe_lines,
    torch_facts,
    torch_matches,
    variant_of_cuda,
)
from controller_side import controller_side

# roles/vllm_source/tasks/torch_probe.yml, which vllm_torch_facts replaces, verbatim.
JINJA_LINES = "{{ vllm_source_reg_torch.stdout_lines if vllm_source_reg_torch.rc == 0 else [] }}"
JINJA_FACTS = {
    "version": "{{ vllm_source_torch_lines[0] | default('') }}",
    "found": "{{ vllm_source_torch_lines | join(', CUDA ') or 'not importable' }}",
    "matches": (
        "{{ vllm_source_reg_torch.rc == 0\n"
        "   and (vllm_source_torch_lines[0] | split('+') | first) == vllm_source_pins.torch_pin\n"
        "   and (vllm_source_plan.torch_variant == 'cpu' and vllm_source_torch_lines[1] == 'cpu'\n"
        "        or ('cu' ~ (vllm_source_torch_lines[1] | replace('.', '')))"
        " == vllm_source_plan.torch_variant) }}"
    ),
}
JINJA_PROBE = "import torch; print(torch.__version__); print(torch.version.cuda or 'cpu')"

# (probe stdout as the command module gave it, rc, pin, variant, found, matches)
CASES = [
    ("2.9.0+cu128\n12.8", 0, "2.9.0", "cu128", "2.9.0+cu128, CUDA 12.8", True),
    ("2.9.0+cu130\n13.0", 0, "2.9.0", "cu130", "2.9.0+cu130, CUDA 13.0", True),
    ("2.9.0+cpu\ncpu", 0, "2.9.0", "cpu", "2.9.0+cpu, CUDA cpu", True),
    # PyPI's plain Linux wheel: no local version, CUDA inside.
    ("2.9.0\n12.8", 0, "2.9.0", "cu128", "2.9.0, CUDA 12.8", True),
    ("2.8.0+cu128\n12.8", 0, "2.9.0", "cu128", "2.8.0+cu128, CUDA 12.8", False),  # pin
    ("2.9.0+cu126\n12.6", 0, "2.9.0", "cu128", "2.9.0+cu126, CUDA 12.6", False),  # variant
    ("2.9.0+cu128\n12.8", 0, "2.9.0", "cpu", "2.9.0+cu128, CUDA 12.8", False),
    ("2.9.0+cpu\ncpu", 0, "2.9.0", "cu128", "2.9.0+cpu, CUDA cpu", False),
    ("2.9.0.post1+cu128\n12.8", 0, "2.9.0", "cu128", "2.9.0.post1+cu128, CUDA 12.8", False),
    ("", 1, "2.9.0", "cu128", "not importable", False),  # ModuleNotFoundError
    ("2.9.0+cu128\n12.8", 1, "2.9.0", "cu128", "not importable", False),  # failed after
]


def render_jinja(stdout: str, rc: int, pin: str, variant: str) -> Dict[str, Any]:
    with controller_side():
        from ansible.parsing.dataloader import DataLoader
        from ansible.template import Templar, trust_as_template

        reg = {"rc": rc, "stdout": stdout, "stdout_lines": stdout.splitlines()}
        variables = {
            "vllm_source_reg_torch": reg,
            "vllm_source_pins": {"torch_pin": pin},
            "vllm_source_plan": {"torch_variant": variant},
            "vllm_source_torch_lines": trust_as_template(JINJA_LINES),
        }
        templar = Templar(loader=DataLoader(), variables=variables)
        return {k: templar.template(trust_as_template(v)) for k, v in JINJA_FACTS.items()}


def fake_python(tmp_path: Path, stdout: str, rc: int = 0) -> str:
    """An executable that prints what the probe would and exits with rc."""
    path = tmp_path / "python"
    body = "".join(f"echo '{line}'\n" for line in stdout.splitlines())
    path.write_text(f"#!/bin/sh\n{body}exit {rc}\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def run_main(args: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> Dict[str, Any]:
    assert not _target.is_controller, "the module runs as on a host, not as the controller"
    with patch_module_args(args), pytest.raises(SystemExit):
        vllm_torch_facts.main()
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("stdout", "rc", "pin", "variant", "found", "matches"), CASES)
def test_facts_read_as_the_role_jinja_read_them(
    stdout: str, rc: int, pin: str, variant: str, found: str, matches: bool
) -> None:
    facts = torch_facts(rc, stdout + "\n", pin, variant)
    assert facts["found"] == found
    assert facts["matches"] is matches
    if rc == 0:
        # The Jinja's matches errors on a failed probe's empty lines only past its rc test.
        assert render_jinja(stdout, rc, pin, variant) == {
            "version": facts["version"],
            "found": found,
            "matches": matches,
        }
    else:
        assert render_jinja(stdout, rc, pin, variant)["found"] == "not importable"


def test_the_probe_is_the_roles() -> None:
    assert PROBE == JINJA_PROBE
    assert probe_argv("/v/bin/python") == ["/v/bin/python", "-B", "-c", JINJA_PROBE]


def test_version_and_cuda() -> None:
    facts = torch_facts(0, "2.9.0+cu128\n12.8\n", "2.9.0", "cu128")
    assert (facts["version"], facts["cuda"]) == ("2.9.0+cu128", "12.8")
    assert torch_facts(1, "", "2.9.0", "cu128")["version"] == ""
    assert torch_facts(1, "", "2.9.0", "cu128")["cuda"] == ""


def test_lines_and_variants() -> None:
    assert probe_lines(0, "a\nb\n\n") == ["a", "b"]
    assert probe_lines(2, "a\nb\n") == []
    assert variant_of_cuda("12.8") == "cu128" and variant_of_cuda("cpu") == "cpu"
    assert variant_of_cuda("13.0") == "cu130" and variant_of_cuda("") is None
    lines: List[str] = ["2.9.0+cu128"]  # no CUDA line
    assert torch_matches(lines, "2.9.0", "cu128") is False


@pytest.mark.parametrize(("stdout", "rc", "pin", "variant", "found", "matches"), CASES)
def test_module_runs_the_probe(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    stdout: str,
    rc: int,
    pin: str,
    variant: str,
    found: str,
    matches: bool,
) -> None:
    python = fake_python(tmp_path, stdout, rc)
    out = run_main({"python": python, "torch_pin": pin, "torch_variant": variant}, capsys)
    assert out["changed"] is False and "failed" not in out
    assert (out["found"], out["matches"]) == (found, matches)


def test_module_reports_a_python_without_torch(capsys: pytest.CaptureFixture[str]) -> None:
    # This interpreter has no torch: the real probe fails the way a bare venv's does.
    args = {"python": sys.executable, "torch_pin": "2.9.0", "torch_variant": "cpu"}
    out = run_main({**args, "_ansible_check_mode": True}, capsys)
    assert out["found"] == "not importable" and out["matches"] is False
    assert "No module named 'torch'" in out["error"]
    assert out["version"] == "" and out["cuda"] == ""


def test_module_reports_a_missing_python(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = {"python": str(tmp_path / "nope" / "python"), "torch_pin": "2.9.0"}
    out = run_main({**args, "torch_variant": "cu128"}, capsys)
    assert "failed" not in out
    assert out["found"] == "not importable" and out["matches"] is False
    assert out["error"].startswith(f"cannot run {tmp_path}/nope/python")
