#!/usr/bin/python
"""Read a vLLM checkout's pins (torch, Python, build requirements, CMake sources)."""

from __future__ import annotations

import os
from typing import Callable, Optional

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_pins import PinError, python_outside_message, source_facts
from ansible.module_utils.vllm_fleet_specifiers import VersionError, version_satisfies
from ansible.module_utils.vllm_fleet_versions import version_tuple

DOCUMENTATION = r"""
---
module: vllm_source_facts
short_description: Read the torch pin, Python range and CMake sources of a vLLM checkout
description:
  - Reads pyproject.toml, setup.py, CMakeLists.txt and the cmake/external_projects/*.cmake
    files that CMakeLists.txt includes. Changes nothing; works in check mode.
  - The exact C(torch == X) pin comes from pyproject.toml's [build-system].requires. When
    C(use_existing_torch.py) already stripped it from the working tree, the committed file
    (C(git show HEAD:pyproject.toml)) is read instead.
  - Fails when the checkout pins no torch, or when O(python_version) is outside the
    tag's requires-python.
options:
  path:
    description: The vLLM checkout (a git clone or an unpacked sdist).
    type: path
    required: true
  python_version:
    description:
      - Version of the interpreter the venv will use (vllm_source_python), such as C(3.11.2).
      - Empty skips the check.
    type: str
    default: ""
author: vllm-fleet
"""

EXAMPLES = r"""
- name: Read the pins and check the venv Python against the tag.
  vllm_source_facts:
    path: /opt/vllm/src/vllm
    python_version: "3.11.2"
  register: vllm_source_reg_facts
"""

RETURN = r"""
vllm_source:
  description: What the checkout pins.
  type: dict
  returned: success
  contains:
    torch_pin:
      description: The X of C(torch == X) in [build-system].requires.
      type: str
      sample: "2.13.0"
    torch_pin_source:
      description: Where the pin was read, C(pyproject.toml) or C(git HEAD:pyproject.toml).
      type: str
    requires_python:
      description: pyproject's [project].requires-python, else setup.py's python_requires.
      type: str
      sample: ">=3.10,<3.15"
    build_requires:
      description: The [build-system].requires list, verbatim (the torch pin included).
      type: list
      elements: str
    use_existing_torch_script:
      description: Relative path of use_existing_torch.py (moved to tools/ in 0.33), or "".
      type: str
      sample: use_existing_torch.py
    rust_frontend:
      description: Whether setup.py imports setuptools_rust (vLLM 0.22+).
      type: bool
    fetchcontent:
      description:
        - The git sources a CUDA build fetches with CMake FetchContent, in include order.
        - Each has name, repository, tag, src_dir_env (the environment variable that points
          the build at a local copy instead; "" if none) and file (where it is declared).
      type: list
      elements: dict
      sample:
        - name: cutlass
          repository: https://github.com/nvidia/cutlass.git
          tag: v4.7.1
          src_dir_env: VLLM_CUTLASS_SRC_DIR
          file: CMakeLists.txt
    cuda_supported_archs:
      description:
        - Union of CMakeLists.txt's CUDA_SUPPORTED_ARCHS lists.
        - vLLM picks one of them by the nvcc version.
      type: list
      elements: str
      sample: ["7.5", "8.0", "8.6", "8.7", "8.9", "9.0", "10.0", "12.0"]
"""


def file_reader(root: str) -> Callable[[str], Optional[str]]:
    """read(relpath) -> the text of root/relpath, or None when it is not a file."""

    def read(relpath: str) -> Optional[str]:
        path = os.path.join(root, relpath)
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    return read


def committed_pyproject(module: AnsibleModule, root: str) -> Optional[str]:
    """pyproject.toml as committed at HEAD, or None when root is not a git checkout."""
    if not os.path.exists(os.path.join(root, ".git")):
        return None
    git = module.get_bin_path("git")
    if not git:
        return None
    argv = [git, "-c", "safe.directory=*", "-C", root, "show", "HEAD:pyproject.toml"]
    rc, out, _ = module.run_command(argv)
    return out if rc == 0 else None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "python_version": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    root = module.params["path"]
    python_version = (module.params["python_version"] or "").strip()
    if not os.path.isdir(root):
        module.fail_json(
            msg=f"vLLM checkout {root} does not exist: check vllm_source_prefix and that the "
            "clone of vllm_source_version succeeded."
        )
    if python_version and not version_tuple(python_version):
        module.fail_json(
            msg=f"python_version {python_version!r} is not a version such as 3.11.2: check "
            "that vllm_source_python names a Python interpreter."
        )
    try:
        facts = source_facts(
            file_reader(root),
            lambda relpath: os.path.isfile(os.path.join(root, relpath)),
            lambda: committed_pyproject(module, root),
        )
        requires_python = facts["requires_python"]
        if (
            python_version
            and requires_python
            and not version_satisfies(python_version, requires_python)
        ):
            module.fail_json(
                msg=python_outside_message(python_version, requires_python),
                vllm_source=facts,
            )
    except (PinError, VersionError) as exc:
        module.fail_json(msg=f"{root}: {exc}")
    module.exit_json(changed=False, vllm_source=facts)


if __name__ == "__main__":
    main()
