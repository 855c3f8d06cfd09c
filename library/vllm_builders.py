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
    description: Names of the hosts that need a wheel, in play order.
    type: list
    elements: str
    required: true
  keys:
    description: The build key of each host in C(hosts), in the same order.
    type: list
    elements: str
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
    hosts: "{{ ansible_play_batch }}"
    keys: "{{ ansible_play_batch | map('extract', hostvars, 'vllm_source_build_key') | list }}"
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
            "hosts": {"type": "list", "elements": "str", "required": True},
            "keys": {"type": "list", "elements": "str", "required": True, "no_log": False},
            "builders_group": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    names, keys = module.params["hosts"], module.params["keys"]
    if len(names) != len(keys) or not all(keys):
        module.fail_json(msg=f"every host needs one build key; got hosts {names} and keys {keys}")
    hosts = [{"name": n, "key": k} for n, k in zip(names, keys)]
    builders = choose_builders(hosts, module.params["builders_group"])
    module.exit_json(changed=False, builders=builders)


if __name__ == "__main__":
    main()
