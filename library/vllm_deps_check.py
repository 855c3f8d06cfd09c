#!/usr/bin/python
"""Check that a vLLM tag's FetchContent sources are staged for an offline build."""

from __future__ import annotations

import os
from typing import List, Tuple

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_deps import check_deps, failure_message

DOCUMENTATION = r"""
---
module: vllm_deps_check
short_description: Check the staged FetchContent sources of a vLLM tag before an offline build
description:
  - A CUDA build of vLLM fetches CUTLASS, flash-attention, FlashMLA, DeepGEMM, QuTLASS,
    triton_kernels and more with CMake FetchContent, unless a C(*_SRC_DIR) environment
    variable points it at a local copy. This module checks the local copies in O(deps_dir)
    against the pins (the C(fetchcontent) list of M(vllm_source_facts)) and returns the
    environment to pass to the build. Changes nothing; works in check mode.
  - "Layout of O(deps_dir), as C(playbooks/stage_sources.yml) writes it: one folder
    C(<deps_dir>/<name>/) per pin, named by the pin's C(name), holding the project's tree at
    the pinned commit with its submodules filled, and a manifest
    C(<deps_dir>/<name>/.vllm-fleet-source.json) =
    C({\"name\", \"repository\", \"tag\", \"commit\"}) (repository and tag as pinned, commit the
    full SHA checked out)."
  - A git checkout in C(<deps_dir>/<name>/) without the manifest is accepted too when
    C(git rev-parse HEAD) is the pinned commit, or the pinned tag points at HEAD
    (C(git tag --points-at HEAD)).
  - Each C(*_SRC_DIR) points at the project folder, except C(TRITON_KERNELS_SRC_DIR), which
    vLLM expects at the triton_kernels Python package,
    C(<deps_dir>/triton_kernels/python/triton_kernels/triton_kernels).
  - Fails, before any build, with one message that lists every problem - a project that
    is missing, staged at another commit, or has no C(*_SRC_DIR) override in this vLLM
    version (it cannot be built offline), and a C(*_SRC_DIR) in O(build_env) that is not
    an absolute path.
options:
  pins:
    description:
      - The pins, C(vllm_source.fetchcontent) of M(vllm_source_facts) - dicts with
        C(name), C(repository), C(tag), C(src_dir_env) and C(file).
    type: list
    elements: dict
    required: true
  deps_dir:
    description: The staged sources (vllm_source_deps_dir), one folder per pin C(name).
    type: path
    required: true
  build_env:
    description:
      - The environment the build gets (vllm_source_build_env).
      - An absolute C(*_SRC_DIR) there overrides the staged path of its project; a relative
        or empty one is an error.
    type: dict
    default: {}
author: vllm-fleet
"""

EXAMPLES = r"""
- name: Check the staged sources before building offline.
  vllm_deps_check:
    pins: "{{ __vllm_source_pins.fetchcontent }}"
    deps_dir: /srv/vllm-deps/v0.30.0
    build_env: "{{ vllm_source_build_env }}"
  register: __vllm_source_reg_deps

- name: Build with the staged sources.
  ansible.builtin.command:
    argv: [pip, install, --no-build-isolation, .]
  environment: "{{ vllm_source_build_env | combine(__vllm_source_reg_deps.vllm_deps.env) }}"
  changed_when: true
"""

RETURN = r"""
vllm_deps:
  description: The checked projects, also returned on failure.
  type: dict
  returned: always
  contains:
    env:
      description:
        - Environment variable to absolute path, for every project whose status is ok.
        - An absolute path in O(build_env) wins over the staged one.
      type: dict
      sample:
        VLLM_CUTLASS_SRC_DIR: /srv/vllm-deps/v0.30.0/cutlass
        TRITON_KERNELS_SRC_DIR: >-
          /srv/vllm-deps/v0.30.0/triton_kernels/python/triton_kernels/triton_kernels
    projects:
      description: One entry per pin, in the order of O(pins).
      type: list
      elements: dict
      contains:
        name:
          description: The pin's FetchContent name, also its folder in O(deps_dir).
          type: str
        src_dir_env:
          description: The override variable ("" when this vLLM version has none).
          type: str
        path:
          description: The absolute path the override gets ("" for C(no_override)).
          type: str
        tag:
          description: The pinned GIT_TAG (a tag or a commit SHA).
          type: str
        status:
          description: C(ok), C(missing), C(wrong_commit) or C(no_override).
          type: str
        verified_by:
          description:
            - How an ok or wrong_commit project was identified - C(manifest), C(git) (a
              checkout without manifest) or C(vllm_source_build_env) (an override);
              "" otherwise.
          type: str
        message:
          description: The problem ("" when status is ok).
          type: str
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "pins": {"type": "list", "elements": "dict", "required": True},
            "deps_dir": {"type": "path", "required": True},
            "build_env": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    deps_dir = os.path.abspath(module.params["deps_dir"])
    build_env = module.params["build_env"] or {}
    pins = module.params["pins"]
    for index, pin in enumerate(pins):
        if not pin.get("name"):
            module.fail_json(
                msg=f"pins[{index}] has no name: pass the vllm_source.fetchcontent list "
                "that vllm_source_facts returns."
            )

    def run(argv: List[str]) -> Tuple[int, str, str]:
        git = module.get_bin_path("git")
        if not git:
            return 127, "", "git is not installed"
        rc, out, err = module.run_command([git, *argv[1:]])
        return rc, out, err

    vllm_deps, problems = check_deps(pins, deps_dir, build_env, run)
    if problems:
        module.fail_json(msg=failure_message(deps_dir, problems), vllm_deps=vllm_deps)
    module.exit_json(changed=False, vllm_deps=vllm_deps)


if __name__ == "__main__":
    main()
