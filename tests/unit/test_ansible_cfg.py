"""The project's ansible.cfg settings are in effect (a key in the wrong section is ignored)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def dumped() -> dict:
    """`ansible-config dump --only-changed` with the project's ansible.cfg: name -> line."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    env.pop("ANSIBLE_CALLBACK_PLUGINS", None)
    out = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-config"), "dump", "--only-changed"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {line.split("(", 1)[0]: line for line in out.splitlines() if "(" in line}


@pytest.mark.parametrize(
    "name, value",
    [
        ("HOST_PATTERN_MISMATCH", "= error"),  # [inventory], not [defaults]
        ("DEFAULT_CALLBACK_PLUGIN_PATH", "/callback_plugins"),  # vllm_fleet_no_hosts
        ("DEFAULT_MODULE_PATH", "/library"),
    ],
)
def test_setting_comes_from_the_projects_ansible_cfg(name: str, value: str) -> None:
    line = dumped().get(name, f"{name} not changed by ansible.cfg (its default applies)")
    assert "ansible.cfg)" in line and value in line, line
