#!/usr/bin/python
"""Refuse an offline wheelhouse without a uv wheel this host can install, for
vllm_source_installer uv, before anything changes."""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_hashes import wheelhouse_files
from ansible.module_utils.vllm_fleet_installer import host_glibc, host_machine, uv_wheel_problem

DOCUMENTATION = r"""
---
module: vllm_uv_wheel_check
short_description: Refuse an offline wheelhouse without a uv wheel this host can install
description:
  - >-
    For C(vllm_source_installer=uv) offline: looks for the pinned uv's wheels
    (C(uv-<version>-*.whl)) among the wheelhouse's files and keeps those with a platform tag
    this host installs (its CPU architecture, and a manylinux glibc no newer than its own).
  - >-
    Fails, naming vllm_source_installer, the wheelhouse's variable and the fixes
    (C(python -m vllm_fleet.wheelhouse build --installer uv), or vllm_source_installer pip),
    when there is none.
  - >-
    Runs on the host; the files of a controller's wheelhouse (vllm_source_controller_wheelhouse)
    are given as I(wheel_names). Changes nothing; works in check mode.
options:
  requirement:
    description: The uv the role installs, a C(uv==VERSION) pin (__vllm_source_uv_package).
    type: str
    required: true
  path:
    description: >-
      The wheelhouse directory on the host, whose files are read (not its subdirectories'); or
      the controller's, for the message, when I(wheel_names) is given.
    type: str
    default: ""
  wheel_names:
    description: >-
      The file names of the controller's wheelhouse; when given, I(path) is not read.
    type: list
    elements: str
  wheelhouse_variable:
    description: The variable that names the wheelhouse, for the message.
    type: str
    default: vllm_source_wheelhouse
author: vllm-fleet
"""

EXAMPLES = r"""
- name: Refuse a host wheelhouse without a uv wheel for this host.
  vllm_uv_wheel_check:
    requirement: uv==0.13.9
    path: /srv/wheelhouse

- name: Refuse a controller wheelhouse without a uv wheel for this host.
  vllm_uv_wheel_check:
    requirement: uv==0.13.9
    path: /srv/controller-wheelhouse
    wheel_names: "{{ query('ansible.builtin.fileglob', '/srv/controller-wheelhouse/uv-*.whl')
      | map('basename') }}"
    wheelhouse_variable: vllm_source_controller_wheelhouse
"""

RETURN = r"""
wheels:
  description: The pinned uv's wheels that this host can install, by file name.
  type: list
  elements: str
  returned: always
  sample: [uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl]
machine:
  description: This host's CPU architecture, as wheel tags spell it.
  type: str
  returned: always
  sample: x86_64
glibc:
  description: This host's glibc version; empty where none was found.
  type: str
  returned: always
  sample: "2.36"
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "requirement": {"type": "str", "required": True},
            "path": {"type": "str", "default": ""},
            "wheel_names": {"type": "list", "elements": "str"},
            "wheelhouse_variable": {"type": "str", "default": "vllm_source_wheelhouse"},
        },
        supports_check_mode=True,
    )
    p = module.params
    path = p["path"] or ""
    names = p["wheel_names"]
    if names is None:
        names = wheelhouse_files(os.path.expanduser(path)) if path else []
    machine, glibc = host_machine(), host_glibc()
    result = {"machine": machine, "glibc": ".".join(map(str, glibc)) if glibc else ""}
    try:
        usable, message = uv_wheel_problem(
            names, path, p["wheelhouse_variable"], p["requirement"], machine, glibc
        )
    except ValueError as exc:
        module.fail_json(msg=f"requirement: {exc}", wheels=[], **result)
    if message:
        module.fail_json(msg=message, wheels=[], **result)
    module.exit_json(changed=False, wheels=usable, **result)


if __name__ == "__main__":
    main()
