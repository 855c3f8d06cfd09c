#!/usr/bin/python
"""Find a build key's wheel and its recorded sha256 in the controller's artifact cache."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_fleet import cached_wheel

DOCUMENTATION = r"""
---
module: vllm_artifact
short_description: Find a build key's wheel in the controller's artifact cache
description:
  - Returns the wheel under C(<artifact_cache>/<key>/) and the sha256 its builder recorded in
    C(<wheel>.sha256); fails, naming the key's builder and the fixes, when there is none.
  - Runs on the controller (C(delegate_to=localhost)). Changes nothing.
options:
  artifact_cache:
    description: The controller's artifact cache (vllm_source_artifact_cache).
    type: path
    required: true
  key:
    description: The build key.
    type: str
    required: true
  builder:
    description: The host that was to build the key (for the message when the wheel is missing).
    type: str
    default: ""
author: vllm-fleet
"""

EXAMPLES = r"""
- name: Find this key's wheel and its sha256 in the controller's artifact cache.
  vllm_artifact:
    artifact_cache: ~/.cache/vllm-fleet/artifacts
    key: 0123456789abcdef
  delegate_to: localhost
"""

RETURN = r"""
wheel:
  description: Path of the key's wheel on the controller.
  type: str
  returned: success
sha256:
  description: The sha256 recorded when the wheel was built.
  type: str
  returned: success
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "artifact_cache": {"type": "path", "required": True},
            "key": {"type": "str", "required": True, "no_log": False},
            "builder": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    p = module.params
    found = cached_wheel(p["artifact_cache"], p["key"])
    if not found:
        module.fail_json(
            msg=f"The controller's artifact cache {p['artifact_cache']}/{p['key']} has no wheel "
            f"for build key {p['key']}: its builder {p['builder'] or '?'} failed (see its error "
            "above) or left this batch. Fix that host, or put it in no vllm_builders group and "
            "re-run; vllm_source_build_once: false makes every host build."
        )
    module.exit_json(changed=False, wheel=found[0], sha256=found[1])


if __name__ == "__main__":
    main()
