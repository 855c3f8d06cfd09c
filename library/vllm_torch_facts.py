#!/usr/bin/python
"""Read a Python's PyTorch and compare it with the tag's pin and the planned variant."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_torch import probe_argv, torch_facts

DOCUMENTATION = r"""
---
module: vllm_torch_facts
short_description: Read the PyTorch of a Python and compare it with the tag's pin and variant
description:
  - Runs the given Python with C(-B -c) and a line that prints C(torch.__version__) and
    C(torch.version.cuda) (or C(cpu)), as the user the task becomes, and compares the version
    without its local +suffix with the pin, and the CUDA version (12.8 is C(cu128)) or C(cpu)
    with the planned variant.
  - A Python that is missing, or cannot import torch, is reported with found C(not importable)
    and matches false; the module itself does not fail for it.
  - Changes nothing; works in check mode.
options:
  python:
    description: The Python to ask, such as C(<venv>/bin/python).
    type: path
    required: true
  torch_pin:
    description: The torch version the tag pins (__vllm_source_pins.torch_pin), such as C(2.9.0).
    type: str
    required: true
  torch_variant:
    description: The planned PyTorch variant (__vllm_source_plan.torch_variant), C(cpu) or C(cu128).
    type: str
    required: true
author: vllm-fleet
"""

EXAMPLES = r"""
- name: Read the version and CUDA variant of the venv's PyTorch.
  vllm_torch_facts:
    python: /opt/vllm/releases/3f2a9c0e1b7d4a55/venv/bin/python
    torch_pin: 2.9.0
    torch_variant: cu128
  become: true
  become_user: vllm
  register: __vllm_source_reg_torch
"""

RETURN = r"""
version:
  description: torch.__version__, empty when torch is not importable.
  type: str
  returned: always
  sample: 2.9.0+cu128
cuda:
  description: torch.version.cuda, or C(cpu) for a CPU build; empty when not importable.
  type: str
  returned: always
  sample: "12.8"
found:
  description: What was found, for messages; C(not importable) when the probe failed.
  type: str
  returned: always
  sample: 2.9.0+cu128, CUDA 12.8
matches:
  description: Whether it is torch_pin (any local suffix) in torch_variant.
  type: bool
  returned: always
error:
  description: The end of the probe's stderr when it failed, else empty.
  type: str
  returned: always
  sample: "ModuleNotFoundError: No module named 'torch'"
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "python": {"type": "path", "required": True},
            "torch_pin": {"type": "str", "required": True},
            "torch_variant": {"type": "str", "required": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        rc, out, err = module.run_command(probe_argv(p["python"]), handle_exceptions=False)
    except OSError as exc:
        rc, out, err = 127, "", f"cannot run {p['python']}: {exc}"
    facts = torch_facts(rc, out, p["torch_pin"], p["torch_variant"])
    error = "" if rc == 0 else err.strip()[-1000:]
    module.exit_json(changed=False, error=error, **facts)


if __name__ == "__main__":
    main()
