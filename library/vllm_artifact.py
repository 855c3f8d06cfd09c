#!/usr/bin/python
"""Find a build key's wheel and its recorded sha256 in the controller's artifact cache."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_fleet import cached_wheel, describe_discarded

DOCUMENTATION = r"""
---
module: vllm_artifact
short_description: Find a build key's wheel in the controller's artifact cache, checked
description:
  - Returns the wheel under C(<artifact_cache>/<key>/) and the sha256 its builder recorded in
    C(<wheel>.sha256), once the wheel proved to be that file - before anything copies it to
    a host. Fails, naming the key's builder and the fixes, when the cache has no such wheel.
  - A wheel is trusted when its C(.sha256) records a sha256, the wheel is a zip with a
    C(.dist-info/WHEEL), and its sha256 is the recorded one. Hashing the whole wheel happens
    once per file; the verdict is kept in C(<wheel>.verified) and reused while the recorded
    sha256 and the wheel's inode, size, mtime and ctime are unchanged.
  - A wheel that cannot be trusted (bytes changed, truncated, no or a bad C(.sha256), not a
    zip), and a C(.sha256) without its wheel, is never returned. It is renamed with its
    C(.sha256) to C(<name>.corrupt-<UTC time>), listed in C(discarded) and warned about,
    so that the next run builds the key again. That rename is the only change it makes
    (none in check mode, which lists what it would move).
  - Runs on the controller (C(delegate_to=localhost)).
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
  description: The sha256 recorded when the wheel was built, which the wheel has.
  type: str
  returned: success
discarded:
  description: >-
    The key's cached wheels that could not be trusted and were moved aside (in check mode:
    would be), each with C(key), C(wheel) (its path before), C(reason) and C(moved_to) (the
    new paths of the wheel and its C(.sha256); empty in check mode or when the rename failed).
  type: list
  elements: dict
  returned: always
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
    found, discarded = cached_wheel(p["artifact_cache"], p["key"], dry_run=module.check_mode)
    for item in discarded:
        module.warn(describe_discarded(item))
    if not found:
        why = (
            f"the only wheel there could not be trusted ({discarded[-1]['reason']}) and was "
            "moved aside: re-run, and the key is built again"
            if discarded
            else f"its builder {p['builder'] or '?'} failed (see its error above) or left this "
            "batch. Fix that host, or put it in no vllm_builders group and re-run"
        )
        module.fail_json(
            msg=f"The controller's artifact cache {p['artifact_cache']}/{p['key']} has no wheel "
            f"for build key {p['key']}: {why}; vllm_source_build_once: false makes "
            "every host build.",
            changed=bool(discarded),
            discarded=discarded,
        )
    module.exit_json(changed=bool(discarded), wheel=found[0], sha256=found[1], discarded=discarded)


if __name__ == "__main__":
    main()
