#!/usr/bin/python
"""Choose the one host per build key that builds the wheel the others install."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_fleet import choose_builders

DOCUMENTATION = r"""
---
module: vllm_builders
short_description: Choose one builder per vLLM build key
description:
  - Given the play's hosts in play order with their build keys, returns for each key the host
    that builds it - the first host with that key in the inventory group vllm_builders, else
    the first host of the play with that key. Hosts with the same key share its wheel.
  - Pure computation; changes nothing. Run it once (C(run_once)) for the play.
options:
  hosts:
    description: The play's hosts in order, each a dict with C(name) and C(key).
    type: list
    elements: dict
    required: true
  builders_group:
    description: Host names of the inventory group vllm_builders (may be empty).
    type: list
    elements: str
    default: []
author: vllm-fleet
"""

EXAMPLES = r"""
- name: Choose one builder per build key.
  vllm_builders:
    hosts: "{{ ansible_play_hosts | map('extract', hostvars) | ... }}"
    builders_group: "{{ groups['vllm_builders'] | default([]) }}"
  run_once: true
"""

RETURN = r"""
builders:
  description: Build key -> the host that builds it.
  type: dict
  returned: always
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "hosts": {"type": "list", "elements": "dict", "required": True},
            "builders_group": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    bad = [h for h in module.params["hosts"] if not h.get("name") or not h.get("key")]
    if bad:
        module.fail_json(msg=f"every host needs a name and a build key; got {bad[:3]!r}")
    builders = choose_builders(module.params["hosts"], module.params["builders_group"])
    module.exit_json(changed=False, builders=builders)


if __name__ == "__main__":
    main()
