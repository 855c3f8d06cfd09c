#!/usr/bin/python
"""Fail a CUDA build that skipped kernels its arch list could run (ModelOpt's above all)."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_kernels import (
    configure_lines,
    kernel_archs,
    missing_kernels,
)

DOCUMENTATION = r"""
---
module: vllm_kernel_check
short_description: Find the kernels a vLLM CUDA build skipped although its archs could run them
description:
  - >-
    vLLM's CMake prints "Not building <kernel> as ..." and goes on when a kernel family's archs
    are not in the build's list, and also when the CUDA compiler is too old for it (some
    messages then still say "no compatible archs"). The wheel builds, and a ModelOpt method
    fails at run time on the GPUs that needed the kernel.
  - >-
    Reads the tag's I(cmakelists) for the archs each kernel family is built for, and the build
    I(log)'s configure lines; a kernel family is missing for an arch of I(arch_list) when its
    CMake gives it that arch and no "Building <kernel> for archs" line of the log covers it.
  - >-
    A missing family that a ModelOpt method needs (NVFP4: C(modelopt_fp4), C(modelopt_mixed);
    CUTLASS FP8 GEMMs and MoE: C(modelopt), C(modelopt_mixed); MXFP8 grouped GEMMs:
    C(modelopt_mxfp8)) fails the task with I(policy=fail), naming the kernel, the archs, the
    methods and the fixes; with I(policy=warn), and for families no ModelOpt method needs, it
    is a warning. Changes nothing.
options:
  log:
    description: The build log (the build script's, with CMake's configure output).
    type: path
    required: true
  cmakelists:
    description: The tag's CMakeLists.txt, in the checkout the wheel was built from.
    type: path
    required: true
  arch_list:
    description: The build's TORCH_CUDA_ARCH_LIST (C(9.0;10.0), C(9.0 10.0+PTX)...).
    type: str
    required: true
  policy:
    description: C(fail) or C(warn) when a kernel a ModelOpt method needs is missing.
    type: str
    choices: [fail, warn]
    default: fail
author: vllm-fleet
"""

EXAMPLES = r"""
- name: Check that the build compiled the kernels its archs can run.
  vllm_kernel_check:
    log: /opt/vllm/logs/build-1f2e3d4c5b6a7980.log
    cmakelists: /opt/vllm/extern/vllm/CMakeLists.txt
    arch_list: "9.0;10.0"
"""

RETURN = r"""
checked:
  description: Whether the log had CMake's configure lines (a full CUDA build's log has them).
  type: bool
  returned: always
built:
  description: Kernel family -> the archs the log says it was built for.
  type: dict
  returned: always
missing:
  description: >-
    The kernel families missing for an arch of the list: each with C(kernel), C(archs), the
    log's C(reason) and the ModelOpt C(methods) that need it (empty for other kernels).
  type: list
  elements: dict
  returned: always
"""


def message(missing: dict, arch_list: str) -> str:
    archs = ", ".join(missing["archs"])
    head = (
        f"vLLM's build did not compile {missing['kernel']} for {archs} although "
        f"TORCH_CUDA_ARCH_LIST '{arch_list}' has it (CMake: \"{missing['reason']}\")"
    )
    if not missing["methods"]:
        return f"{head}; no ModelOpt method needs it, models that do lack it on GPUs of {archs}."
    return (
        f"{head}: {', '.join(missing['methods'])} would lack its kernels on GPUs of {archs}. "
        "Build with a CUDA toolkit new enough for them (the tag's CMakeLists.txt names the "
        f"version), drop {archs} from vllm_source_cuda_arch_list, or set "
        "vllm_source_kernel_check: warn to install it anyway."
    )


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "log": {"type": "path", "required": True},
            "cmakelists": {"type": "path", "required": True},
            "arch_list": {"type": "str", "required": True},
            "policy": {"type": "str", "choices": ["fail", "warn"], "default": "fail"},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        with open(p["cmakelists"], encoding="utf-8", errors="replace") as f:
            archs = kernel_archs(f.read())
        with open(p["log"], encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        module.fail_json(msg=f"cannot read {exc.filename}: {exc.strerror}")
    configure = configure_lines(lines)
    missing = missing_kernels(lines, archs, p["arch_list"])
    result = {
        "changed": False,
        "checked": bool(configure["built"] or configure["skipped"]),
        "built": {k: sorted(v) for k, v in configure["built"].items()},
        "missing": missing,
    }
    fatal = [m for m in missing if m["methods"] and p["policy"] == "fail"]
    for entry in missing:
        if entry not in fatal:
            module.warn(message(entry, p["arch_list"]))
    if fatal:
        module.fail_json(msg=" ".join(message(m, p["arch_list"]) for m in fatal), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
