#!/usr/bin/python
"""Check, without writing anything, that a prefix can hold a vLLM install."""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: vllm_prefix_check
short_description: Check that the install prefix is on a writable disk with enough free space
description:
  - Finds the prefix, or its nearest existing parent, and reads its file system with statvfs.
  - Fails when that file system is mounted read-only or has less free space than required.
  - Changes nothing on the host; works in check mode.
options:
  path:
    description: Absolute install prefix (vllm_source_prefix).
    type: path
    required: true
  min_free_gb:
    description: Free space, in GiB, the prefix's file system must have (vllm_source_min_free_gb).
    type: float
    default: 30
author: vllm-fleet
"""

EXAMPLES = r"""
- name: Check that the prefix is on a writable disk with enough free space.
  vllm_prefix_check:
    path: /opt/vllm
    min_free_gb: 30
"""

RETURN = r"""
existing_path:
  description: The prefix itself or its nearest existing parent directory.
  type: str
  returned: always
free_gb:
  description: Free space available to unprivileged users on that file system, in GiB.
  type: float
  returned: always
read_only:
  description: Whether that file system is mounted read-only.
  type: bool
  returned: always
"""

GIB = 1024**3


def nearest_existing(path: str) -> str:
    """Return `path` or its closest ancestor that exists."""
    current = os.path.normpath(path)
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def space_problem(path: str, free_gb: float, read_only: bool, min_free_gb: float) -> str | None:
    """Return why the prefix cannot hold an install, or None when it can."""
    if read_only:
        return (
            f"vllm_source_prefix {path} is on a read-only file system: set vllm_source_prefix to "
            "a directory on a writable disk."
        )
    if free_gb < min_free_gb:
        return (
            f"vllm_source_prefix {path} has {free_gb:.1f} GiB free, less than the "
            f"{min_free_gb:g} GiB a build needs (vllm_source_min_free_gb): free space there or set "
            "vllm_source_prefix to a larger disk."
        )
    return None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "min_free_gb": {"type": "float", "default": 30},
        },
        supports_check_mode=True,
    )
    path = module.params["path"]
    if not os.path.isabs(path):
        module.fail_json(msg=f"vllm_source_prefix must be an absolute path, got '{path}'.")
    existing = nearest_existing(path)
    if not os.path.isdir(existing):
        module.fail_json(
            msg=f"vllm_source_prefix {path} is under {existing}, which is not a directory: "
            "choose another vllm_source_prefix."
        )
    stats = os.statvfs(existing)
    free_gb = stats.f_bavail * stats.f_frsize / GIB
    read_only = bool(stats.f_flag & os.ST_RDONLY)
    result = {
        "changed": False,
        "existing_path": existing,
        "free_gb": round(free_gb, 2),
        "read_only": read_only,
    }
    problem = space_problem(path, free_gb, read_only, module.params["min_free_gb"])
    if problem:
        module.fail_json(msg=problem, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
