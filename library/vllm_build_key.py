#!/usr/bin/python
"""Name the build key of a host's vLLM build, its release, and whether it is installed."""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_key import BUILD_MODES, build_inputs, build_key, fingerprint
from ansible.module_utils.vllm_fleet_plan import TARGET_DEVICES
from ansible.module_utils.vllm_fleet_release import (
    install_reason,
    read_stamp,
    release_dir,
    stamp_path,
)

DOCUMENTATION = r"""
---
module: vllm_build_key
short_description: Name the build key, the release and whether it still has to be installed
description:
  - Gathers every input of the vLLM wheel into C(build_inputs) and hashes them into the
    build key, the first 16 hex digits of the sha256 of the inputs as sorted JSON (the key
    the role's Jinja gave with the to_json and hash filters), so hosts with one key share one
    wheel and one release C(<prefix>/releases/<key>).
  - Reads that release's stamp C(venv/vllm-source-stamp.json). The release still has to be
    installed when the stamp is missing, unreadable, or records other build inputs.
  - The extra build environment enters the inputs only as its fingerprint (it may hold
    credentials) and is not logged.
  - Changes nothing; works in check mode.
options:
  prefix:
    description: The install prefix (vllm_source_prefix); releases live in C(<prefix>/releases).
    type: path
    required: true
  version:
    description: The vLLM tag (vllm_source_version).
    type: str
    required: true
  commit:
    description: The commit the tag resolved to (__vllm_source_resolved_commit).
    type: str
    required: true
  target_device:
    description: VLLM_TARGET_DEVICE (vllm_source_target_device).
    type: str
    choices: [cuda, empty]
    required: true
  torch_pin:
    description: The torch version the tag pins (__vllm_source_pins.torch_pin), such as C(2.9.0).
    type: str
    required: true
  torch_variant:
    description: The planned PyTorch variant (__vllm_source_plan.torch_variant), such as C(cu128).
    type: str
    required: true
  cuda_version:
    description: The CUDA toolkit's version (__vllm_source_toolkit.version); for cuda only.
    type: str
    default: ""
  arch_list:
    description: The planned TORCH_CUDA_ARCH_LIST (__vllm_source_plan.arch_list); for cuda only.
    type: str
    default: ""
  python_version:
    description: The venv Python's version (__vllm_source_python_version); its ABI (cp312) counts.
    type: str
    required: true
  distribution:
    description: The distribution fact, such as C(Ubuntu); lowercased.
    type: str
    required: true
  distribution_major_version:
    description: The distribution_major_version fact, such as C(24).
    type: str
    required: true
  architecture:
    description: The architecture fact, such as C(x86_64).
    type: str
    required: true
  build_mode:
    description: The build mode (vllm_source_build_mode).
    type: str
    choices: [full, precompiled]
    default: full
  precompiled_wheel_sha256:
    description: The sha256 of the precompiled wheel; counts for build_mode precompiled only.
    type: str
    default: ""
  build_env:
    description: The extra build environment (vllm_source_build_env); only its fingerprint counts.
    type: dict
    default: {}
author: vllm-fleet
"""

EXAMPLES = r"""
- name: Name the build key, the release and whether it still has to be installed.
  vllm_build_key:
    prefix: /opt/vllm
    version: v0.30.0
    commit: 0123456789abcdef0123456789abcdef01234567
    target_device: cuda
    torch_pin: 2.9.0
    torch_variant: cu128
    cuda_version: "12.8"
    arch_list: "9.0"
    python_version: 3.12.3
    distribution: Ubuntu
    distribution_major_version: "24"
    architecture: x86_64
    build_mode: full
    build_env: {}
  register: __vllm_source_reg_key
"""

RETURN = r"""
build_inputs:
  description: Every input of the wheel, as the stamp records it; all values are strings.
  type: dict
  returned: always
  sample:
    version: v0.30.0
    commit: 0123456789abcdef0123456789abcdef01234567
    target_device: cuda
    torch: 2.9.0+cu128
    torch_variant: cu128
    cuda: "12.8"
    arch_list: "9.0"
    python_abi: cp312
    platform: ubuntu24-x86_64
    build_mode: full
    precompiled_wheel: ""
    build_env: 44136fa355b3678a
build_key:
  description: The first 16 hex digits of the sha256 of build_inputs as sorted JSON.
  type: str
  returned: always
  sample: 3f2a9c0e1b7d4a55
release_dir:
  description: The release this key installs into, C(<prefix>/releases/<key>).
  type: str
  returned: always
  sample: /opt/vllm/releases/3f2a9c0e1b7d4a55
stamp_path:
  description: The release's stamp, C(<prefix>/releases/<key>/venv/vllm-source-stamp.json).
  type: str
  returned: always
  sample: /opt/vllm/releases/3f2a9c0e1b7d4a55/venv/vllm-source-stamp.json
needs_install:
  description: Whether the release still has to be installed (install_reason is not empty).
  type: bool
  returned: always
install_reason:
  description: Why the release has to be installed; empty when its stamp records build_inputs.
  type: str
  returned: always
  sample: no stamp at /opt/vllm/releases/3f2a9c0e1b7d4a55/venv/vllm-source-stamp.json
"""


def no_log_strings(value: Any) -> Iterator[str]:
    """The strings AnsibleModule masks in every output for a no_log value (its scalars)."""
    if isinstance(value, Mapping):
        for item in value.values():
            yield from no_log_strings(item)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            yield from no_log_strings(item)
    elif isinstance(value, str):
        if value:
            yield value
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def hide_build_env(module: AnsibleModule) -> None:
    """Replace the build environment by its fingerprint, in the params the result echoes too.

    Its values are hashed, never returned, so they leave the no_log masking: masking would
    replace every occurrence of a short value (VLLM_FOO=1) inside the key and the paths.
    """
    env = module.params["build_env"] or {}
    module.no_log_values.difference_update(no_log_strings(env))
    module.params["build_env"] = fingerprint(env)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "prefix": {"type": "path", "required": True},
            "version": {"type": "str", "required": True},
            "commit": {"type": "str", "required": True},
            "target_device": {"type": "str", "required": True, "choices": list(TARGET_DEVICES)},
            "torch_pin": {"type": "str", "required": True},
            "torch_variant": {"type": "str", "required": True},
            "cuda_version": {"type": "str", "default": ""},
            "arch_list": {"type": "str", "default": ""},
            "python_version": {"type": "str", "required": True},
            "distribution": {"type": "str", "required": True},
            "distribution_major_version": {"type": "str", "required": True},
            "architecture": {"type": "str", "required": True},
            "build_mode": {"type": "str", "default": "full", "choices": list(BUILD_MODES)},
            "precompiled_wheel_sha256": {"type": "str", "default": ""},
            "build_env": {"type": "dict", "default": {}, "no_log": True},
        },
        supports_check_mode=True,
    )
    env = module.params["build_env"] or {}
    hide_build_env(module)
    p = module.params
    inputs = build_inputs(
        version=p["version"],
        commit=p["commit"],
        target_device=p["target_device"],
        torch_pin=p["torch_pin"],
        torch_variant=p["torch_variant"],
        cuda_version=p["cuda_version"] or "",
        arch_list=p["arch_list"] or "",
        python_version=p["python_version"],
        distribution=p["distribution"],
        distribution_major_version=p["distribution_major_version"],
        architecture=p["architecture"],
        build_mode=p["build_mode"],
        precompiled_wheel_sha256=p["precompiled_wheel_sha256"] or "",
        build_env=env,
    )
    key = build_key(inputs)
    stamp = stamp_path(p["prefix"], key)
    reason = install_reason(*read_stamp(stamp), inputs)
    module.exit_json(
        changed=False,
        build_inputs=inputs,
        build_key=key,
        release_dir=release_dir(p["prefix"], key),
        stamp_path=stamp,
        needs_install=bool(reason),
        install_reason=reason,
    )


if __name__ == "__main__":
    main()
