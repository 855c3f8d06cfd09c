#!/usr/bin/python
"""Plan a vLLM source build: PyTorch variant, CUDA arch list and compile parallelism."""

from __future__ import annotations

import os
from typing import Optional, Tuple

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_plan import (
    DEFAULT_AVAILABLE_VARIANTS,
    TARGET_DEVICES,
    TORCH_VARIANTS,
    VLLM_CUDA_ARCHS,
    PlanError,
    build_plan,
    cgroup_memory_limit_mb,
    mem_total_mb_from_meminfo,
)

DOCUMENTATION = r"""
---
module: vllm_build_plan
short_description: Plan the torch variant, CUDA archs, MAX_JOBS and NVCC_THREADS of a vLLM build
description:
  - Pure decisions from the host's GPU, driver and toolkit facts; reads only the CPU count
    (os.sched_getaffinity) and MemTotal of /proc/meminfo, or the process's cgroup memory
    limit when it is lower (a container, a systemd slice), when they are not given.
    Changes nothing; works in check mode.
  - Fails, naming the role variable to change, when no PyTorch variant fits the driver and
    toolkit, when an explicit arch list is malformed or lacks a GPU of this host, or when a
    CUDA build has no GPU and no arch list.
  - Warns (and keeps the value) when an explicit MAX_JOBS is more than RAM holds.
options:
  target_device:
    description: VLLM_TARGET_DEVICE (vllm_source_target_device).
    type: str
    choices: [cuda, empty]
    default: cuda
  compute_capabilities:
    description:
      - Compute capabilities of this host's GPUs, such as C(9.0).
      - The nvidia_driver fact's compute_capabilities.
    type: list
    elements: str
    default: []
  gpus:
    description:
      - This host's GPUs (nvidia_driver.gpus), dicts with index, name and compute_capability.
      - Only used to name the GPU an arch list misses.
    type: list
    elements: dict
    default: []
  driver_cuda_version:
    description: Newest CUDA the driver supports, such as C(12.4); empty when there is no driver.
    type: str
    default: ""
  toolkit_cuda_version:
    description:
      - Version of the CUDA toolkit that will compile the kernels, such as C(12.8).
      - Empty when there is none.
    type: str
    default: ""
  torch_variant:
    description:
      - PyTorch wheel variant (vllm_source_torch_variant).
      - C(auto) picks one from the driver and toolkit.
    type: str
    choices: [auto, cpu, cu126, cu128, cu130]
    default: auto
  torch_variants_available:
    description: The variants the index or wheelhouse offers for the pinned torch.
    type: list
    elements: str
    default: [cu130, cu128, cu126]
  cuda_arch_list:
    description: TORCH_CUDA_ARCH_LIST (vllm_source_cuda_arch_list); empty uses this host's GPUs.
    type: str
    default: ""
  supported_archs:
    description:
      - Archs vLLM builds kernels for (vllm_source_facts' cuda_supported_archs of the tag).
      - Empty uses vLLM 0.30.0's list.
    type: list
    elements: str
    default: []
  warn:
    description:
      - Show the plan's warnings (an OOM risk, a toolkit newer than the driver, ...).
      - The role's early check of the inputs runs with C(false), so each warning shows once.
    type: bool
    default: true
  max_jobs:
    description: MAX_JOBS (vllm_source_max_jobs); 0 picks it from the CPUs and RAM.
    type: int
    default: 0
  nvcc_threads:
    description: NVCC_THREADS (vllm_source_nvcc_threads); 0 picks 2 for several archs, else 1.
    type: int
    default: 1
  mem_per_job_gb:
    description: RAM, in GiB, one compile job may use (vllm_source_build_mem_per_job_gb).
    type: float
    default: 6
  cpu_count:
    description: CPUs the build may use; 0 reads this process's CPU affinity.
    type: int
    default: 0
  mem_total_mb:
    description: >-
      RAM in MiB; 0 reads MemTotal from /proc/meminfo, or the cgroup memory limit when
      that is lower.
    type: int
    default: 0
author: vllm-fleet
"""

EXAMPLES = r"""
- name: Plan the PyTorch variant, the arch list and the compile jobs.
  vllm_build_plan:
    target_device: cuda
    compute_capabilities: "{{ nvidia_driver.compute_capabilities }}"
    gpus: "{{ nvidia_driver.gpus }}"
    driver_cuda_version: "{{ nvidia_driver.cuda_max_version }}"
    toolkit_cuda_version: "12.8"
    max_jobs: 0
  register: __vllm_source_reg_plan
"""

RETURN = r"""
vllm_build_plan:
  description: The decisions.
  type: dict
  returned: success
  contains:
    torch_variant:
      description: PyTorch wheel variant to install (cpu, cu126, cu128, cu130).
      type: str
      sample: cu128
    arch_list:
      description: TORCH_CUDA_ARCH_LIST, "" unless target_device is cuda.
      type: str
      sample: "8.0;9.0"
    max_jobs:
      description: MAX_JOBS.
      type: int
      sample: 16
    max_jobs_reason:
      description: Why MAX_JOBS has its value.
      type: str
      sample: "16 CPUs, 125.8 GiB RAM at 4 GiB per compile job -> MAX_JOBS=16 (CPU-bound)"
    nvcc_threads:
      description: NVCC_THREADS.
      type: int
      sample: 1
    env:
      description: The build environment; TORCH_CUDA_ARCH_LIST only for the cuda target.
      type: dict
      sample:
        VLLM_TARGET_DEVICE: cuda
        MAX_JOBS: "16"
        NVCC_THREADS: "1"
        TORCH_CUDA_ARCH_LIST: "9.0"
"""


def detect_cpu_count() -> int:
    """CPUs this process may run on (what vLLM's setup.py counts), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def read_text(path: str) -> Optional[str]:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def detect_mem_total_mb() -> Tuple[int, str]:
    """MemTotal, or the cgroup memory limit when that is lower, and which one it is."""
    mem = mem_total_mb_from_meminfo(read_text("/proc/meminfo") or "")
    limit = cgroup_memory_limit_mb(
        read_text("/proc/self/cgroup") or "", lambda rel: read_text("/sys/fs/cgroup/" + rel)
    )
    if limit is not None and limit < mem:
        return limit, "cgroup memory limit"
    return mem, ""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "target_device": {"type": "str", "default": "cuda", "choices": list(TARGET_DEVICES)},
            "compute_capabilities": {"type": "list", "elements": "str", "default": []},
            "gpus": {"type": "list", "elements": "dict", "default": []},
            "driver_cuda_version": {"type": "str", "default": ""},
            "toolkit_cuda_version": {"type": "str", "default": ""},
            "torch_variant": {"type": "str", "default": "auto", "choices": list(TORCH_VARIANTS)},
            "torch_variants_available": {
                "type": "list",
                "elements": "str",
                "default": list(DEFAULT_AVAILABLE_VARIANTS),
            },
            "cuda_arch_list": {"type": "str", "default": ""},
            "supported_archs": {"type": "list", "elements": "str", "default": []},
            "max_jobs": {"type": "int", "default": 0},
            "nvcc_threads": {"type": "int", "default": 1},
            "mem_per_job_gb": {"type": "float", "default": 6.0},
            "cpu_count": {"type": "int", "default": 0},
            "mem_total_mb": {"type": "int", "default": 0},
            "warn": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        mem_total_mb, mem_source = (
            (p["mem_total_mb"], "") if p["mem_total_mb"] else detect_mem_total_mb()
        )
        plan, warnings = build_plan(
            target_device=p["target_device"],
            compute_capabilities=p["compute_capabilities"],
            driver_cuda_version=p["driver_cuda_version"] or "",
            toolkit_cuda_version=p["toolkit_cuda_version"] or "",
            torch_variant=p["torch_variant"],
            torch_variants_available=p["torch_variants_available"],
            cuda_arch_list=p["cuda_arch_list"] or "",
            max_jobs=p["max_jobs"],
            nvcc_threads=p["nvcc_threads"],
            mem_per_job_gb=p["mem_per_job_gb"],
            cpu_count=p["cpu_count"] or detect_cpu_count(),
            mem_total_mb=mem_total_mb,
            mem_source=mem_source,
            gpus=p["gpus"],
            supported_archs=p["supported_archs"] or VLLM_CUDA_ARCHS,
        )
    except PlanError as exc:
        module.fail_json(msg=str(exc))
    for warning in warnings if p["warn"] else []:
        module.warn(warning)
    module.exit_json(changed=False, vllm_build_plan=plan)


if __name__ == "__main__":
    main()
