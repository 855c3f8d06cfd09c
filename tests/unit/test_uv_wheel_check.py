"""vllm_uv_wheel_check: with vllm_source_installer uv offline, the wheelhouse must hold a uv
wheel at the role's pin that this host can install, or the preflight refuses it."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
import vllm_uv_wheel_check
import yaml
from ansible.module_utils import _internal as _target
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.vllm_fleet_installer import (
    host_glibc,
    host_machine,
    pinned_wheels,
    platform_tags,
    platform_usable,
    usable_wheels,
    uv_wheel_problem,
)
from controller_side import controller_side
from packaging.tags import sys_tags
from packaging.utils import parse_wheel_filename

ROLE = Path(__file__).resolve().parents[2] / "roles" / "vllm_source"
PIN = "uv==0.13.9"
# The uv wheel of tools/make-wheelhouse.sh (pip download uv==0.13.9 on the x86_64 test machine).
X86 = "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
# uv's other Linux wheels, named the way PyPI names them.
AARCH64 = (
    "uv-0.13.9-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl"
)
AARCH64_228 = "uv-0.13.9-py3-none-manylinux_2_28_aarch64.whl"
MUSL = "uv-0.13.9-py3-none-musllinux_1_1_x86_64.whl"
OTHERS = [
    "uv-0.13.9-py3-none-macosx_11_0_arm64.whl",
    "uv-0.13.9-py3-none-win_amd64.whl",
    "uv-0.13.9-py3-none-manylinux_2_31_riscv64.whl",
    "uv-0.13.9.tar.gz",
]
ALL = [X86, AARCH64, AARCH64_228, MUSL, *OTHERS]
BOOKWORM = (2, 36)


def test_a_wheels_platform_tags_are_its_compressed_set() -> None:
    assert platform_tags(X86) == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert platform_tags(AARCH64) == [
        "manylinux_2_17_aarch64",
        "manylinux2014_aarch64",
        "musllinux_1_1_aarch64",
    ]
    assert platform_tags("uv-0.13.9.tar.gz") == []


@pytest.mark.parametrize(
    ("tag", "machine", "glibc", "usable"),
    [
        ("manylinux_2_17_x86_64", "x86_64", BOOKWORM, True),
        ("manylinux_2_17_x86_64", "x86_64", (2, 17), True),
        ("manylinux_2_17_x86_64", "x86_64", (2, 12), False),  # glibc older than the tag's
        ("manylinux_2_17_x86_64", "aarch64", BOOKWORM, False),
        ("manylinux_2_28_aarch64", "aarch64", (2, 31), True),
        ("manylinux_2_28_aarch64", "aarch64", (2, 27), False),
        ("manylinux2014_x86_64", "x86_64", (2, 17), True),
        ("manylinux2014_x86_64", "x86_64", (2, 16), False),
        ("manylinux2010_x86_64", "x86_64", (2, 12), True),
        ("manylinux1_x86_64", "x86_64", (2, 5), True),
        ("manylinux_2_17_x86_64", "x86_64", None, False),  # no glibc: no manylinux
        ("musllinux_1_1_x86_64", "x86_64", BOOKWORM, False),
        ("linux_x86_64", "x86_64", None, True),
        ("linux_x86_64", "aarch64", BOOKWORM, False),
        ("any", "ppc64le", None, True),
        ("macosx_11_0_arm64", "arm64", None, False),
        ("win_amd64", "x86_64", BOOKWORM, False),
    ],
)
def test_a_platform_tag_is_usable_on_its_machine_and_glibc(
    tag: str, machine: str, glibc: Optional[Tuple[int, int]], usable: bool
) -> None:
    assert platform_usable(tag, machine, glibc) is usable


def test_this_machine_agrees_with_packaging() -> None:
    """On the machine the tests run on, the wheels kept are the ones pip's own tag list
    (packaging.tags.sys_tags) installs, musllinux aside (the role's hosts have glibc)."""
    supported = {str(t) for t in sys_tags()}

    def pip_takes(name: str) -> bool:
        return any(str(t) in supported for t in parse_wheel_filename(name)[3])

    wheels = [n for n in ALL if n.endswith(".whl")]
    assert host_glibc() is not None, "the tests run on a glibc machine"
    assert usable_wheels(wheels, host_machine(), host_glibc()) == [
        n for n in wheels if pip_takes(n)
    ]


def test_only_the_pins_version_of_uv_counts() -> None:
    names = [X86, "uv-0.13.8-py3-none-manylinux_2_17_x86_64.whl", "uvloop-0.13.9-py3-none-any.whl"]
    assert pinned_wheels(names, PIN) == [X86]
    assert pinned_wheels(names, "uv==0.13.8") == ["uv-0.13.8-py3-none-manylinux_2_17_x86_64.whl"]
    with pytest.raises(ValueError, match=re.escape("uv==0.13.9")):
        pinned_wheels(names, "uv>=0.13")


def test_a_host_with_a_wheel_of_its_own_passes() -> None:
    assert uv_wheel_problem(ALL, "/srv/wh", "vllm_source_wheelhouse", PIN, "x86_64", BOOKWORM) == (
        [X86],
        "",
    )
    usable, message = uv_wheel_problem(
        ALL, "/srv/wh", "vllm_source_wheelhouse", PIN, "aarch64", (2, 31)
    )
    assert usable == [AARCH64, AARCH64_228] and message == ""


def test_the_message_names_the_variables_the_host_and_both_fixes() -> None:
    usable, message = uv_wheel_problem(
        [X86, MUSL], "/srv/wh", "vllm_source_controller_wheelhouse", PIN, "aarch64", (2, 31)
    )
    assert usable == []
    assert message == (
        "vllm_source_installer is uv and vllm_source_pip_offline is true, but the wheelhouse "
        "/srv/wh (vllm_source_controller_wheelhouse) holds no uv==0.13.9 wheel that this host "
        f"(aarch64, glibc 2.31) can install: it has only {X86}, {MUSL}. Add it on the "
        "controller with `python -m vllm_fleet.wheelhouse build --installer uv ...` for this "
        "host's platform (it records the wheel's sha256 too), or set vllm_source_installer: pip."
    )
    _, none = uv_wheel_problem([], "", "vllm_source_wheelhouse", PIN, "x86_64", None)
    assert "the wheelhouse (none set) (vllm_source_wheelhouse)" in none
    assert "this host (x86_64, no glibc found)" in none
    assert "it has no uv wheel of that version" in none


# --- The module, as on a host ---------------------------------------------------------------


def run_main(
    args: Dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    host: Tuple[str, Optional[Tuple[int, int]]] = ("x86_64", BOOKWORM),
) -> Dict[str, Any]:
    monkeypatch.setattr(vllm_uv_wheel_check, "host_machine", lambda: host[0])
    monkeypatch.setattr(vllm_uv_wheel_check, "host_glibc", lambda: host[1])
    assert not _target.is_controller, "the module runs as on a host, not as the controller"
    with patch_module_args({"requirement": PIN, **args}), pytest.raises(SystemExit):
        vllm_uv_wheel_check.main()
    return json.loads(capsys.readouterr().out)


def wheelhouse(tmp_path: Path, *names: str) -> str:
    path = tmp_path / "wheelhouse"
    path.mkdir()
    for name in names:
        (path / name).write_bytes(b"")
    return str(path)


def test_module_passes_with_the_hosts_wheel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = wheelhouse(tmp_path, X86, AARCH64, "torch-2.13.0+cpu-cp311-cp311-linux_x86_64.whl")
    out = run_main({"path": path, "_ansible_check_mode": True}, capsys, monkeypatch)
    assert "failed" not in out and out["changed"] is False
    assert (out["wheels"], out["machine"], out["glibc"]) == ([X86], "x86_64", "2.36")


def test_module_refuses_a_wheelhouse_made_for_pip_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = wheelhouse(tmp_path, "torch-2.13.0+cpu-cp311-cp311-linux_x86_64.whl")
    (Path(path) / X86).mkdir()  # a directory is no wheel
    out = run_main({"path": path}, capsys, monkeypatch)
    assert out["failed"] is True and out["wheels"] == []
    assert out["msg"].startswith("vllm_source_installer is uv and vllm_source_pip_offline is true")
    assert f"the wheelhouse {path} (vllm_source_wheelhouse) holds no uv==0.13.9 wheel" in out["msg"]
    assert "--installer uv" in out["msg"] and "vllm_source_installer: pip" in out["msg"]


def test_module_refuses_another_archs_wheel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = wheelhouse(tmp_path, X86)
    out = run_main({"path": path}, capsys, monkeypatch, host=("aarch64", (2, 36)))
    assert (
        out["failed"] is True
        and f"(aarch64, glibc 2.36) can install: it has only {X86}" in (out["msg"])
    )


def test_module_takes_the_controllers_names_and_reads_no_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The controller's wheelhouse is not on the host: its names come as wheel_names, and a
    host directory of the same path is not what decides."""
    host_copy = wheelhouse(tmp_path, X86)
    args = {"path": host_copy, "wheelhouse_variable": "vllm_source_controller_wheelhouse"}
    out = run_main({**args, "wheel_names": [MUSL]}, capsys, monkeypatch)
    assert out["failed"] is True and "(vllm_source_controller_wheelhouse)" in out["msg"]
    out = run_main({**args, "wheel_names": [X86]}, capsys, monkeypatch)
    assert "failed" not in out and out["wheels"] == [X86]


def test_module_refuses_a_requirement_that_is_no_pin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = run_main({"requirement": "uv", "wheel_names": [X86]}, capsys, monkeypatch)
    assert out["failed"] is True and out["msg"].startswith("requirement: expected a pin")


# --- The role's task ------------------------------------------------------------------------


def preflight_task() -> Tuple[List[str], Dict[str, Any]]:
    """(the names of the tasks of 01_preflight.yml, the uv wheel check's task)."""
    tasks = yaml.safe_load((ROLE / "tasks" / "01_preflight.yml").read_text("utf-8"))
    (task,) = [t for t in tasks if "vllm_uv_wheel_check" in t]
    return [t["name"] for t in tasks], task


@functools.lru_cache(maxsize=None)
def plugin_loader(init: Any) -> None:
    """Ansible's plugin loader, set up once for the process (a second time it warns)."""
    init()


def render(task: Dict[str, Any], variables: Dict[str, Any]) -> Dict[str, Any]:
    with controller_side():
        from ansible.parsing.dataloader import DataLoader
        from ansible.plugins.loader import init_plugin_loader
        from ansible.template import Templar, trust_as_template

        plugin_loader(init_plugin_loader)  # the lookups, ansible.builtin.fileglob among them
        trusted = {
            k: trust_as_template(v) if isinstance(v, str) else v for k, v in variables.items()
        }
        templar = Templar(loader=DataLoader(), variables=trusted)
        args = {
            k: templar.template(trust_as_template(v))
            for k, v in task["vllm_uv_wheel_check"].items()
        }
        when = templar.evaluate_conditional(trust_as_template(task["when"]))
    return {**args, "when": when}


def role_variables(**overrides: Any) -> Dict[str, Any]:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text("utf-8"))
    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text("utf-8"))
    return {**defaults, **role_vars, "omit": "__omit__", **overrides}


def test_the_preflight_checks_uv_before_any_task_that_changes_the_host() -> None:
    names, task = preflight_task()
    assert names.index(task["name"]) > names.index(
        "Check the offline inputs the controller copies to the host."
    )
    on = render(task, role_variables(vllm_source_installer="uv", vllm_source_pip_offline=True,
                                     vllm_source_wheelhouse="/srv/wh"))  # fmt: skip
    assert on == {
        "requirement": PIN,
        "path": "/srv/wh",
        "wheel_names": "__omit__",
        "wheelhouse_variable": "vllm_source_wheelhouse",
        "when": True,
    }
    for installer, offline in (("pip", True), ("uv", False)):
        variables = role_variables(vllm_source_installer=installer, vllm_source_pip_offline=offline)
        assert render(task, variables)["when"] is False


def test_the_preflight_lists_the_controllers_uv_wheels(tmp_path: Path) -> None:
    controller = wheelhouse(
        tmp_path, X86, MUSL, "uvloop-0.23.0-py3-none-any.whl", "pip-26.3-py3-none-any.whl"
    )
    _, task = preflight_task()
    args = render(task, role_variables(vllm_source_installer="uv", vllm_source_pip_offline=True,
                                       vllm_source_controller_wheelhouse=controller))  # fmt: skip
    assert args["path"] == controller
    assert args["wheelhouse_variable"] == "vllm_source_controller_wheelhouse"
    assert sorted(args["wheel_names"]) == sorted([X86, MUSL])
