#!/usr/bin/python
"""Choose the one host per build key that builds the wheel the others install."""

from __future__ import annotations

from typing import Any, Dict, List

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_fleet import cached_wheel, describe_discarded, plan_builds

DOCUMENTATION = r"""
---
module: vllm_builders
short_description: Choose one builder per vLLM build key, skipping keys the artifact cache has
description:
  - Given the batch's hosts in play order with their build keys and whether each needs its
    release installed, returns the hosts that build. With build once, a key the controller's
    artifact cache already holds is built by nobody; every other key by one host - the first
    with that key in the inventory group vllm_builders, else the first of the play with it.
    Without build once, every host that needs its release builds its own wheel.
  - A key counts as cached only when its wheel can be trusted, so when its C(.sha256) records a
    sha256, the wheel is a zip with a C(.dist-info/WHEEL), and its sha256 is the recorded
    one (hashed once per file; the verdict is kept in C(<wheel>.verified) and reused while
    the recorded sha256 and the wheel's inode, size, mtime and ctime are unchanged).
  - A cached wheel that cannot be trusted (bytes changed, truncated, no or a bad
    C(.sha256), not a zip) is renamed with its C(.sha256) to C(<name>.corrupt-<UTC time>),
    listed in C(discarded) and warned about, and its key is built again. That rename is the
    only change it makes (none in check mode, which lists what it would move).
  - Reads the artifact cache, so it runs on the controller, once for the batch
    (C(delegate_to=localhost), C(run_once)).
options:
  hosts:
    description: Names of the batch's hosts, in play order.
    type: list
    elements: str
    required: true
  keys:
    description: The build key of each host in C(hosts), in order; empty for a host without one.
    type: list
    elements: str
    required: true
  needs_install:
    description: Whether each host in C(hosts) needs its release installed, in the same order.
    type: list
    elements: bool
    required: true
  builders_group:
    description: Host names of the inventory group vllm_builders (may be empty).
    type: list
    elements: str
    default: []
  artifact_cache:
    description: The controller's artifact cache, C(<cache>/<key>/*.whl) and its C(.sha256).
    type: path
    required: true
  build_once:
    description: One build per key, shared through the cache; false makes every host build.
    type: bool
    default: true
author: vllm-fleet
"""

EXAMPLES = r"""
- name: Choose one builder per build key.
  vllm_builders:
    hosts: "{{ ansible_play_batch }}"
    keys: "{{ ansible_play_batch | map('extract', hostvars) | map(attribute='key', default='') }}"
    needs_install: "{{ ansible_play_batch | map('extract', hostvars)
      | map(attribute='needs', default=false) }}"
    builders_group: "{{ groups['vllm_builders'] | default([]) }}"
    artifact_cache: ~/.cache/vllm-fleet/artifacts
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
builders:
  description: Build key -> the host that builds it, for the keys that are built.
  type: dict
  returned: always
builds:
  description: The hosts that build a wheel in this batch.
  type: list
  elements: str
  returned: always
cached:
  description: The keys of the batch whose wheel the artifact cache already holds, checked.
  type: list
  elements: str
  returned: always
discarded:
  description: >-
    The cached wheels of the batch's keys that could not be trusted and were moved aside (in
    check mode: would be), so their keys are built: each with C(key), C(wheel) (its path
    before), C(reason) and C(moved_to) (the new paths of the wheel and its C(.sha256); empty
    in check mode or when the rename failed).
  type: list
  elements: dict
  returned: always
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "hosts": {"type": "list", "elements": "str", "required": True},
            "keys": {"type": "list", "elements": "str", "required": True, "no_log": False},
            "needs_install": {"type": "list", "elements": "bool", "required": True},
            "builders_group": {"type": "list", "elements": "str", "default": []},
            "artifact_cache": {"type": "path", "required": True},
            "build_once": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    if not len(p["hosts"]) == len(p["keys"]) == len(p["needs_install"]):
        module.fail_json(
            msg=f"hosts, keys and needs_install must be as long; got {p['hosts']}, "
            f"{p['keys']} and {p['needs_install']}"
        )
    hosts = [
        {"name": n, "key": k, "needs_install": i}
        for n, k, i in zip(p["hosts"], p["keys"], p["needs_install"])
    ]
    keys = sorted({h["key"] for h in hosts if h["key"] and h["needs_install"]})
    cached: List[str] = []
    discarded: List[Dict[str, Any]] = []
    for key in keys if p["build_once"] else []:
        found, bad = cached_wheel(p["artifact_cache"], key, dry_run=module.check_mode)
        discarded += bad
        if found:
            cached.append(key)
    for item in discarded:
        module.warn(describe_discarded(item))
    builders, builds = plan_builds(hosts, p["builders_group"], cached, p["build_once"])
    module.exit_json(
        changed=bool(discarded),
        builders=builders,
        builds=builds,
        cached=cached,
        discarded=discarded,
    )


if __name__ == "__main__":
    main()
