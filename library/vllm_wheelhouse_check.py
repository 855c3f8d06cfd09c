#!/usr/bin/python
"""Refuse an offline wheelhouse that lacks the torch wheel the vLLM tag pins, or the
wheelhouse.json that hash-checked installs need."""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_hashes import (
    ManifestError,
    manifest_message,
    read_manifest,
    wheelhouse_files,
)
from ansible.module_utils.vllm_fleet_torch import (
    missing_torch_wheel_message,
    torch_wheel_patterns,
    torch_wheels,
)

DOCUMENTATION = r"""
---
module: vllm_wheelhouse_check
short_description: Refuse an offline wheelhouse without the torch wheel the vLLM tag pins
description:
  - Looks in a wheelhouse directory (not its subdirectories) for
    C(torch-<pin>+<variant>-*.whl) or C(torch-<pin>-*.whl); a plain wheel of the pin is
    accepted, its CUDA variant is only known once it is installed.
  - Fails, naming the wheel to add and where, when there is none (or no wheelhouse at all).
  - >-
    Fails when the wheelhouse has no usable C(wheelhouse.json) (the sha256 of its wheels, which
    C(vllm_pip_hashed) installs by), naming the command that records it, so a wheelhouse that
    cannot be installed hash-checked is refused before anything changes.
  - Runs where the wheelhouse is, on the host or with C(delegate_to=localhost) for the
    controller's wheelhouse. Changes nothing; works in check mode.
options:
  path:
    description: >-
      The wheelhouse directory; empty means none is set, which fails.
      The host's vllm_source_wheelhouse, or the controller's vllm_source_controller_wheelhouse.
    type: str
    default: ""
  torch_pin:
    description: The torch version the tag pins (__vllm_source_pins.torch_pin), such as C(2.9.0).
    type: str
    required: true
  torch_variant:
    description: The planned PyTorch variant (__vllm_source_plan.torch_variant), such as C(cu128).
    type: str
    required: true
  vllm_version:
    description: The vLLM tag that pins the torch (vllm_source_version), for the message.
    type: str
    required: true
  wheelhouse_variable:
    description: The variable that names the host's wheelhouse, for the message.
    type: str
    default: vllm_source_wheelhouse
  controller_wheelhouse_variable:
    description: The variable that names the controller's wheelhouse, for the message.
    type: str
    default: vllm_source_controller_wheelhouse
  controller_wheelhouse:
    description: >-
      The controller's wheelhouse that I(path) is (checked on the controller) or that is
      copied to the host, for the manifest's message; empty for a host's own wheelhouse.
    type: str
    default: ""
author: vllm-fleet
"""

EXAMPLES = r"""
- name: Refuse a wheelhouse without the tag's torch.
  vllm_wheelhouse_check:
    path: /srv/wheelhouse
    torch_pin: 2.9.0
    torch_variant: cu128
    vllm_version: v0.30.0

- name: Refuse a controller wheelhouse without the tag's torch.
  vllm_wheelhouse_check:
    path: /srv/controller-wheelhouse
    torch_pin: 2.9.0
    torch_variant: cu128
    vllm_version: v0.30.0
  delegate_to: localhost
"""

RETURN = r"""
wheels:
  description: The pin's torch wheels in the wheelhouse, full paths, sorted by name.
  type: list
  elements: str
  returned: always
  sample: [/srv/wheelhouse/torch-2.9.0+cu128-cp312-cp312-manylinux_2_28_x86_64.whl]
patterns:
  description: The file name patterns looked for.
  type: list
  elements: str
  returned: always
  sample: [torch-2.9.0+cu128-*.whl, torch-2.9.0-*.whl]
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "str", "default": ""},
            "torch_pin": {"type": "str", "required": True},
            "torch_variant": {"type": "str", "required": True},
            "vllm_version": {"type": "str", "required": True},
            "wheelhouse_variable": {"type": "str", "default": "vllm_source_wheelhouse"},
            "controller_wheelhouse_variable": {
                "type": "str",
                "default": "vllm_source_controller_wheelhouse",
            },
            "controller_wheelhouse": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    p = module.params
    path = os.path.expanduser(p["path"] or "")
    names = torch_wheels(wheelhouse_files(path) if path else [], p["torch_pin"], p["torch_variant"])
    result = {
        "wheels": [os.path.join(path, n) for n in names],
        "patterns": torch_wheel_patterns(p["torch_pin"], p["torch_variant"]),
    }
    if not names:
        module.fail_json(
            msg=missing_torch_wheel_message(
                p["path"] or "",
                p["torch_pin"],
                p["torch_variant"],
                p["vllm_version"],
                p["wheelhouse_variable"],
                p["controller_wheelhouse_variable"],
            ),
            **result,
        )
    try:
        read_manifest(path)
    except ManifestError as exc:
        module.fail_json(
            msg=manifest_message(exc.args[0], path, p["controller_wheelhouse"]), **result
        )
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
