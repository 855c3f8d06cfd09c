#!/usr/bin/python
"""Ansible module: report the NVIDIA driver, its CUDA version and the GPUs."""

from __future__ import annotations

import os
from typing import Any, Dict, List, NoReturn, Optional, Tuple

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_nvidia import (
    CSV_QUERY_ARGS,
    FAILURE_COMPUTE_CAP_UNSUPPORTED,
    FAILURE_DRIVER_NOT_LOADED,
    FAILURE_NO_DEVICES,
    XML_QUERY_ARGS,
    NvidiaSmiParseError,
    absent_facts,
    classify_smi_failure,
    driver_facts,
    fill_capabilities_from_names,
    merge_gpus,
    parse_smi_csv,
    parse_smi_xml,
)

DOCUMENTATION = r"""
---
module: nvidia_driver_facts
short_description: Report the NVIDIA driver, the newest CUDA it runs, and its GPUs
description:
  - Runs C(nvidia-smi -q -x) for the driver version, the newest CUDA version the driver
    supports and the GPUs (name, UUID, memory, PCI bus id).
  - Runs C(nvidia-smi --query-gpu=index,name,uuid,driver_version,memory.total,compute_cap,pci.bus_id
    --format=csv,noheader,nounits) for each GPU's compute capability, which the XML does not carry.
  - When the driver is too old for the C(compute_cap) query field, the compute capability comes
    from a product-name table taken from NVIDIA's CUDA GPUs page, with a warning; a GPU whose
    name is not in the table fails the module (with O(require_gpu=false) it warns and leaves
    that GPU's C(compute_capability) empty).
  - Fails, naming the cause and the fix, when nvidia-smi is missing, when it cannot talk to the
    driver, or when it finds no GPU, unless O(require_gpu=false), which returns C(present=false)
    instead.
  - Read-only; supports check mode.
version_added: "0.1.0"
author:
  - vllm-fleet maintainers
options:
  nvidia_smi:
    description:
      - The nvidia-smi program, a name looked up on E(PATH) or an absolute path.
      - The role passes C(vllm_source_nvidia_smi).
    type: str
    default: nvidia-smi
  require_gpu:
    description:
      - Fail when there is no usable NVIDIA GPU (nvidia-smi missing, driver not loaded, no GPU).
      - With V(false), those cases return C(present=false) and an empty GPU list; use this for
        build or test hosts without a GPU. The role passes C(vllm_source_require_gpu).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - The compute capability table covers data-center and workstation GPUs from Volta (7.0) to
    Blackwell (12.x); see U(https://developer.nvidia.com/cuda-gpus).
"""

EXAMPLES = r"""
- name: Read the NVIDIA driver and GPU facts.
  nvidia_driver_facts:
    nvidia_smi: "{{ vllm_source_nvidia_smi }}"
    require_gpu: "{{ vllm_source_require_gpu }}"
  register: __vllm_source_driver

- name: Show the compute capabilities to build for.
  ansible.builtin.debug:
    msg: "{{ __vllm_source_driver.nvidia_driver.compute_capabilities | join(';') }}"
"""

RETURN = r"""
nvidia_driver:
  description: The NVIDIA driver and its GPUs.
  returned: always
  type: dict
  contains:
    present:
      description: Whether a working driver with at least one GPU was found.
      type: bool
      sample: true
    absent_reason:
      description: Why C(present) is false; empty when a GPU was found.
      type: str
      sample: ""
    driver_version:
      description: The driver version.
      type: str
      sample: "580.159.04"
    cuda_max_version:
      description: The newest CUDA version the driver supports (C(CUDA Version) in nvidia-smi).
      type: str
      sample: "13.0"
    gpu_count:
      description: How many GPUs the driver sees.
      type: int
      sample: 2
    gpus:
      description: One entry per GPU, in nvidia-smi index order.
      type: list
      elements: dict
      sample:
        - index: 0
          name: NVIDIA H200
          uuid: GPU-7f988403-5903-d217-3c3a-2a4b5033a999
          memory_mib: 143771
          compute_capability: "9.0"
          pci_bus_id: "00000000:00:06.0"
    compute_capabilities:
      description: The GPUs' compute capabilities, unique and in numeric order.
      type: list
      elements: str
      sample: ["9.0"]
"""

NO_GPU_HOST_HINT = "set vllm_source_require_gpu: false for a build or test host without a GPU"


def _first_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines[:count])


def resolve_nvidia_smi(module: AnsibleModule, name: str) -> Optional[str]:
    """The nvidia-smi path to run, or None when it does not exist."""
    if os.sep in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    return module.get_bin_path(name, required=False)


def missing_binary_message(name: str) -> str:
    where = "is not an executable file" if os.sep in name else "was not found on PATH"
    return (
        f"nvidia-smi {name!r} {where}, so the NVIDIA driver is not installed or the path is wrong. "
        "Install the NVIDIA driver (it provides nvidia-smi), fix the path in "
        f"vllm_source_nvidia_smi, or {NO_GPU_HOST_HINT}."
    )


def driver_not_loaded_message(path: str, output: str) -> str:
    return (
        f"{path} is installed but the NVIDIA driver is not loaded "
        f"({_first_lines(output, 1)}). Install the NVIDIA driver for the running kernel and "
        "load it (modprobe nvidia, or reboot after installing or upgrading it), or "
        f"{NO_GPU_HOST_HINT}."
    )


def no_gpu_message(path: str, driver_version: str) -> str:
    driver = f"driver {driver_version} " if driver_version else "driver "
    return (
        f"The NVIDIA {driver}is loaded but {path} finds no GPU. Check that the GPU is "
        f"attached to this host or VM (lspci | grep -i nvidia), or {NO_GPU_HOST_HINT}."
    )


def smi_failed_message(argv: List[str], rc: int, output: str) -> str:
    return (
        f"{' '.join(argv)} failed with rc {rc}: {_first_lines(output) or 'no output'}. "
        "Repair the NVIDIA driver installation, fix the path in vllm_source_nvidia_smi, or "
        f"{NO_GPU_HOST_HINT}."
    )


def unknown_capability_message(names: List[str], driver_version: str) -> str:
    return (
        f"Cannot tell the compute capability of {', '.join(sorted(set(names)))}: nvidia-smi "
        f"of driver {driver_version or '(unknown)'} does not support the compute_cap query "
        "field and the product name is not in the table from "
        "https://developer.nvidia.com/cuda-gpus. Upgrade the NVIDIA driver so that nvidia-smi "
        f"reports compute_cap, or {NO_GPU_HOST_HINT}."
    )


class Probe:
    """Runs nvidia-smi and turns each outcome into facts or a failure."""

    def __init__(self, module: AnsibleModule, path: str) -> None:
        self.module = module
        self.path = path
        self.require_gpu: bool = module.params["require_gpu"]

    def run(self, args: List[str]) -> Tuple[int, str, str]:
        return self.module.run_command([self.path, *args])

    def absent(self, message: str, driver_version: str = "", cuda_version: str = "") -> NoReturn:
        """Fail when a GPU is required, else exit with present=false."""
        if self.require_gpu:
            self.module.fail_json(msg=message)
        self.module.exit_json(
            changed=False, nvidia_driver=absent_facts(message, driver_version, cuda_version)
        )

    def read_xml(self) -> Dict[str, Any]:
        rc, out, err = self.run(XML_QUERY_ARGS)
        if rc != 0:
            self.handle_failure([self.path, *XML_QUERY_ARGS], rc, out, err, "")
        try:
            facts = parse_smi_xml(out)
        except NvidiaSmiParseError as exc:
            self.absent(smi_failed_message([self.path, *XML_QUERY_ARGS], rc, str(exc)))
        if not facts["gpus"]:
            self.absent(
                no_gpu_message(self.path, facts["driver_version"]),
                facts["driver_version"],
                facts["cuda_max_version"],
            )
        return facts

    def read_csv(self, driver_version: str) -> Optional[List[Dict[str, Any]]]:
        """CSV rows, or None when the driver rejects the compute_cap field."""
        rc, out, err = self.run(CSV_QUERY_ARGS)
        if rc != 0:
            self.handle_failure([self.path, *CSV_QUERY_ARGS], rc, out, err, driver_version)
            return None
        try:
            return parse_smi_csv(out)
        except NvidiaSmiParseError as exc:
            self.module.fail_json(
                msg=smi_failed_message([self.path, *CSV_QUERY_ARGS], rc, str(exc))
            )

    def handle_failure(
        self, argv: List[str], rc: int, out: str, err: str, driver_version: str
    ) -> None:
        """Exit for every failure except an old driver rejecting compute_cap."""
        kind = classify_smi_failure(out, err)
        output = f"{err}\n{out}"
        if kind == FAILURE_COMPUTE_CAP_UNSUPPORTED:
            return
        if kind == FAILURE_DRIVER_NOT_LOADED:
            self.absent(driver_not_loaded_message(self.path, output))
        if kind == FAILURE_NO_DEVICES:
            self.absent(no_gpu_message(self.path, driver_version))
        self.absent(smi_failed_message(argv, rc, output))

    def facts(self) -> Dict[str, Any]:
        xml_facts = self.read_xml()
        csv_rows = self.read_csv(xml_facts["driver_version"])
        gpus = merge_gpus(xml_facts["gpus"], csv_rows)
        if any(not gpu["compute_capability"] for gpu in gpus):
            self.capabilities_from_names(gpus, xml_facts["driver_version"])
        return driver_facts(xml_facts, gpus)

    def capabilities_from_names(self, gpus: List[Dict[str, Any]], driver_version: str) -> None:
        unknown = fill_capabilities_from_names(gpus)
        if unknown:
            message = unknown_capability_message(unknown, driver_version)
            if self.require_gpu:
                self.module.fail_json(msg=message)
            self.module.warn(message)
        known = ["{}: {}".format(g["name"], g["compute_capability"]) for g in gpus]
        self.module.warn(
            "nvidia-smi of driver {} does not report compute_cap; the compute capability was "
            "taken from the product name ({}). A newer NVIDIA driver reports it "
            "directly.".format(driver_version or "(unknown)", ", ".join(known))
        )


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "nvidia_smi": {"type": "str", "default": "nvidia-smi"},
            "require_gpu": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    name = module.params["nvidia_smi"]
    path = resolve_nvidia_smi(module, name)
    probe = Probe(module, path or name)
    if path is None:
        probe.absent(missing_binary_message(name))
    module.exit_json(changed=False, nvidia_driver=probe.facts())


if __name__ == "__main__":
    main()
