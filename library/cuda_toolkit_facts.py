#!/usr/bin/python
"""Ansible module: find the CUDA toolkit to build with and check it against the driver."""

from __future__ import annotations

import os
from typing import Dict, List, Tuple

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_cuda import (
    DEFAULT_SEARCH_PATHS,
    CudaProbeError,
    RunCommand,
    Toolkit,
    discover_toolkits,
    has_nvcc,
    major_minor,
    newer_than_driver_message,
    not_found_facts,
    probe_toolkit,
    select_toolkit,
    toolkit_facts,
)

DOCUMENTATION = r"""
---
module: cuda_toolkit_facts
short_description: Find the CUDA toolkit to build with and compare it with the NVIDIA driver
description:
  - Finds a CUDA toolkit (a folder with C(bin/nvcc)) and reads its version from
    C(nvcc --version), falling back to the toolkit's C(version.json) (or C(version.txt)).
  - With O(cuda_home) empty, searches O(search_paths) in order; a literal path such as
    C(/usr/local/cuda) that has nvcc wins; otherwise the newest globbed toolkit that the driver
    can run (its CUDA major.minor not above O(driver_cuda_version)); otherwise the newest.
  - When the toolkit is newer than the driver's CUDA version, warns (O(policy=warn)) or fails
    (O(policy=strict)), naming the minimum driver version that CUDA release needs.
  - Read-only; supports check mode.
version_added: "0.1.0"
author:
  - vllm-fleet maintainers
options:
  cuda_home:
    description:
      - The toolkit folder to use; it must contain C(bin/nvcc).
      - Empty to search O(search_paths). The role passes C(vllm_source_cuda_home).
    type: str
    default: ""
  required:
    description:
      - Fail when no toolkit is found. With V(false), return C(found=false) instead.
    type: bool
    default: true
  driver_cuda_version:
    description:
      - The newest CUDA version the NVIDIA driver supports, e.g. V(13.0) (the
        C(cuda_max_version) that M(nvidia_driver_facts) returns).
      - Empty when there is no driver or it is unknown; no comparison is made then.
    type: str
    default: ""
  policy:
    description:
      - What to do when the toolkit is newer than the driver supports.
      - V(warn) warns and goes on; V(strict) fails. The role passes C(vllm_source_cuda_policy).
    type: str
    choices: [warn, strict]
    default: warn
  search_paths:
    description:
      - Where to look when O(cuda_home) is empty. Entries with glob characters are expanded.
    type: list
    elements: str
    default: ["/usr/local/cuda", "/usr/local/cuda-*"]
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - Minimum driver versions are the Linux x86_64 GA values of the CUDA Toolkit release notes'
    table "CUDA Toolkit and Corresponding Driver Versions".
"""

EXAMPLES = r"""
- name: Find the CUDA toolkit and check it against the driver.
  cuda_toolkit_facts:
    cuda_home: "{{ vllm_source_cuda_home }}"
    policy: "{{ vllm_source_cuda_policy }}"
    driver_cuda_version: "{{ __vllm_source_driver.nvidia_driver.cuda_max_version }}"
  register: vllm_source_cuda

- name: Build with the toolkit that was found.
  ansible.builtin.command:
    cmd: nvcc --version
  environment:
    CUDA_HOME: "{{ vllm_source_cuda.cuda_toolkit.env.CUDA_HOME }}"
    PATH: "{{ vllm_source_cuda.cuda_toolkit.env.PATH }}:{{ ansible_env.PATH }}"
  changed_when: false
"""

RETURN = r"""
cuda_toolkit:
  description: The CUDA toolkit found.
  returned: always
  type: dict
  contains:
    found:
      description: Whether a toolkit was found.
      type: bool
      sample: true
    home:
      description: The toolkit folder.
      type: str
      sample: /usr/local/cuda
    version:
      description: The CUDA release, major.minor.
      type: str
      sample: "13.0"
    version_full:
      description: The nvcc version, as C(nvcc --version) prints it after C(V).
      type: str
      sample: "13.0.88"
    nvcc:
      description: Path of nvcc.
      type: str
      sample: /usr/local/cuda/bin/nvcc
    newer_than_driver:
      description: Whether the toolkit's CUDA version is above the driver's maximum.
      type: bool
      sample: false
    min_driver_version:
      description: Minimum Linux driver for this CUDA release; empty when not in the table.
      type: str
      sample: "580.65.06"
    env:
      description:
        - C(CUDA_HOME), and the folders to put first on C(PATH) and C(LD_LIBRARY_PATH).
        - Empty when no toolkit was found.
      type: dict
      sample:
        CUDA_HOME: /usr/local/cuda
        PATH: /usr/local/cuda/bin
        LD_LIBRARY_PATH: /usr/local/cuda/lib64
"""


def explicit_toolkit(module: AnsibleModule, home: str) -> Toolkit:
    """The toolkit at vllm_source_cuda_home, or fail saying what is wrong with it."""
    if not has_nvcc(home):
        module.fail_json(
            msg=f"vllm_source_cuda_home is {home!r}, but {os.path.join(home, 'bin', 'nvcc')} "
            "is not an executable file. Point vllm_source_cuda_home at a CUDA toolkit folder "
            '(the one holding bin/nvcc), or set it to "" to search '
            f"{', '.join(module.params['search_paths'])}."
        )
    try:
        return probe_toolkit(home, run_with(module))
    except CudaProbeError as exc:
        module.fail_json(
            msg=f"vllm_source_cuda_home is {home!r}, but {exc}. Repair or reinstall that "
            "toolkit, or point vllm_source_cuda_home at another one."
        )


def run_with(module: AnsibleModule) -> RunCommand:
    """module.run_command as the plain callable that vllm_fleet_cuda expects."""

    def run(argv: List[str]) -> Tuple[int, str, str]:
        return module.run_command(argv)

    return run


def not_found_message(search_paths: List[str], problems: List[str]) -> str:
    details = f" ({'; '.join(problems)})" if problems else ""
    return (
        f"No CUDA toolkit found: none of {', '.join(search_paths)} has a usable bin/nvcc"
        f"{details}. Install the CUDA toolkit, set vllm_source_cuda_home to its folder, or set "
        "vllm_source_target_device: empty to build vLLM without CUDA kernels."
    )


def check_driver(module: AnsibleModule, toolkit: Toolkit, facts: Dict[str, object]) -> None:
    """Warn or fail when the toolkit is newer than the driver supports."""
    if not facts["newer_than_driver"]:
        return
    message = newer_than_driver_message(toolkit, module.params["driver_cuda_version"])
    if module.params["policy"] == "strict":
        module.fail_json(
            msg=f"{message} Set vllm_source_cuda_policy: warn to proceed anyway.",
            cuda_toolkit=facts,
        )
    module.warn(message)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "cuda_home": {"type": "str", "default": ""},
            "required": {"type": "bool", "default": True},
            "driver_cuda_version": {"type": "str", "default": ""},
            "policy": {"type": "str", "default": "warn", "choices": ["warn", "strict"]},
            "search_paths": {
                "type": "list",
                "elements": "str",
                "default": list(DEFAULT_SEARCH_PATHS),
            },
        },
        supports_check_mode=True,
    )
    driver_cuda = module.params["driver_cuda_version"].strip()
    if driver_cuda:
        try:
            driver_cuda = major_minor(driver_cuda)
        except CudaProbeError:
            module.fail_json(
                msg=f"driver_cuda_version {driver_cuda!r} is not a CUDA version like 13.0."
            )
    module.params["driver_cuda_version"] = driver_cuda

    home = module.params["cuda_home"].strip()
    if home:
        toolkit = explicit_toolkit(module, home.rstrip("/") or "/")
    else:
        toolkits, problems = discover_toolkits(module.params["search_paths"], run_with(module))
        for problem in problems:
            module.warn(f"Skipped a CUDA toolkit: {problem}")
        selected = select_toolkit(toolkits, driver_cuda)
        if selected is None:
            if module.params["required"]:
                module.fail_json(msg=not_found_message(module.params["search_paths"], problems))
            module.exit_json(changed=False, cuda_toolkit=not_found_facts())
        toolkit = selected

    facts = toolkit_facts(toolkit, driver_cuda)
    check_driver(module, toolkit, facts)
    module.exit_json(changed=False, cuda_toolkit=facts)


if __name__ == "__main__":
    main()
