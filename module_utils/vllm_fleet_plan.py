"""Decide how to build vLLM on a host: torch variant, CUDA arch list, compile parallelism.

Pure decisions for the `vllm_build_plan` module; every failure is a PlanError whose
message names the cause and the role variable to change. Runs on Python 3.8+ hosts.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible.module_utils.vllm_fleet_versions import (
    Capability,
    capability_key,
    parse_capability,
    variant_cuda,
    version_major_minor,
)

TARGET_DEVICES = ("cuda", "empty")
TORCH_VARIANTS = ("auto", "cpu", "cu126", "cu128", "cu130")
DEFAULT_AVAILABLE_VARIANTS = ["cu130", "cu128", "cu126"]

# Union of CUDA_SUPPORTED_ARCHS in vLLM 0.30.0's CMakeLists.txt (it picks one list by the
# nvcc version: 7.0 only before CUDA 12.8, 10.1/10.3/12.1 only on 12.8-12.9, 10.7 from 13.4).
# vllm_source_facts returns the tag's own union as cuda_supported_archs.
VLLM_CUDA_ARCHS = (
    "7.0",
    "7.5",
    "8.0",
    "8.6",
    "8.7",
    "8.9",
    "9.0",
    "10.0",
    "10.1",
    "10.3",
    "10.7",
    "11.0",
    "12.0",
    "12.1",
)

PTX = "+PTX"
ARCH_EXAMPLE = '"8.0;9.0" or "9.0a 10.0f+PTX"'

GIB_PER_MB = 1.0 / 1024.0


class PlanError(ValueError):
    """The build cannot be planned as asked; the message says what to change."""


# --- versions ----------------------------------------------------------------------


def cuda_version(text: str) -> Optional[Tuple[int, int]]:
    """`12.4` or `13.0.88` -> (12, 4); "" -> None; anything else is a PlanError."""
    if not text or not text.strip():
        return None
    version = version_major_minor(text)
    if version is None:
        raise PlanError(f"Cannot read the CUDA version {text!r}")
    return version


def _dotted(version: Tuple[int, int]) -> str:
    return "{}.{}".format(*version)


# --- torch variant -------------------------------------------------------------------


def _toolkit_fits(variant: Tuple[int, int], toolkit: Optional[Tuple[int, int]]) -> bool:
    """torch's cpp_extension refuses a toolkit of another CUDA major; newer is not assumed."""
    return toolkit is None or (variant[0] == toolkit[0] and variant <= toolkit)


def _known_variants(available: Sequence[str]) -> List[Tuple[Tuple[int, int], str]]:
    """The CUDA variants of `available`, newest first."""
    parsed = []
    for name in available:
        version = variant_cuda(name)
        if version is None and name != "cpu":
            raise PlanError(
                f"torch variant {name!r} is not cpu or cuXYZ (e.g. cu128): fix the list of "
                "available variants passed to vllm_build_plan"
            )
        if version is not None:
            parsed.append((version, name))
    return sorted(parsed, reverse=True)


def choose_torch_variant(
    target_device: str,
    requested: str,
    available: Sequence[str],
    driver_cuda: str,
    toolkit_cuda: str,
) -> Tuple[str, List[str]]:
    """Pick the PyTorch wheel variant (cpu, cu126, ...); returns it and warnings.

    auto: cpu for the empty target; otherwise the newest available variant the driver
    runs (CUDA <= the driver's max) and, when a toolkit is known, of the toolkit's CUDA
    major and not newer than it. A CUDA target on a host without a driver uses the
    toolkit alone (a build host may compile for GPUs it lacks).
    """
    driver = cuda_version(driver_cuda)
    toolkit = cuda_version(toolkit_cuda)
    variants = _known_variants(available)
    if requested == "auto":
        return _auto_variant(target_device, variants, driver, toolkit), []
    if requested == "cpu":
        if target_device == "cuda":
            raise PlanError(
                "torch variant cpu cannot build vLLM's CUDA kernels: set "
                "vllm_source_torch_variant: auto (or a cuXYZ variant), or "
                "vllm_source_target_device: empty"
            )
        return "cpu", []
    return requested, _check_explicit_variant(requested, variants, driver, toolkit)


def _auto_variant(
    target_device: str,
    variants: List[Tuple[Tuple[int, int], str]],
    driver: Optional[Tuple[int, int]],
    toolkit: Optional[Tuple[int, int]],
) -> str:
    if target_device != "cuda":
        return "cpu"
    if driver is None and toolkit is None:
        raise PlanError(
            "vllm_source_target_device is cuda but this host has neither an NVIDIA driver nor "
            "a CUDA toolkit to choose a PyTorch CUDA variant from: set vllm_source_torch_variant "
            "(e.g. cu128) and vllm_source_cuda_home, or vllm_source_target_device: empty"
        )
    for version, name in variants:
        if (driver is None or version <= driver) and _toolkit_fits(version, toolkit):
            return name
    names = ", ".join(name for _, name in variants) or "none"
    driver_text = f"supports CUDA {_dotted(driver)}" if driver else "is absent"
    toolkit_text = f"CUDA toolkit {_dotted(toolkit)}" if toolkit else "no CUDA toolkit"
    raise PlanError(
        f"No PyTorch CUDA variant ({names}) fits this host: its driver {driver_text} and it "
        f"has {toolkit_text} "
        "(torch needs a variant no newer than the driver, of the toolkit's CUDA major and no "
        "newer than it). Set vllm_source_torch_variant to a variant that fits, point "
        "vllm_source_cuda_home at a matching toolkit, or upgrade the driver"
    )


def _check_explicit_variant(
    requested: str,
    variants: List[Tuple[Tuple[int, int], str]],
    driver: Optional[Tuple[int, int]],
    toolkit: Optional[Tuple[int, int]],
) -> List[str]:
    version = variant_cuda(requested)
    if version is None:
        raise PlanError(
            "vllm_source_torch_variant {!r} is not one of {}".format(
                requested, ", ".join(TORCH_VARIANTS)
            )
        )
    names = [name for _, name in variants]
    if requested not in names:
        raise PlanError(
            "torch variant {} is not among the available variants ({}): set "
            "vllm_source_torch_variant to one of them, or auto".format(requested, ", ".join(names))
        )
    if driver is not None and version > driver:
        fitting = [n for v, n in sorted(variants) if v <= driver and _toolkit_fits(v, toolkit)]
        if fitting:
            fix = "set vllm_source_torch_variant: auto (or {}), or upgrade the driver".format(
                "/".join(fitting)
            )
        else:
            fix = (
                "upgrade the driver, or point vllm_source_cuda_home at an older toolkit "
                "(no available variant, {}, runs on this driver with this toolkit)".format(
                    ", ".join(names)
                )
            )
        raise PlanError(
            f"vllm_source_torch_variant {requested} needs a driver that supports CUDA "
            f"{_dotted(version)}; "
            f"this host's driver supports {_dotted(driver)}: {fix}"
        )
    if toolkit is not None and version[0] != toolkit[0]:
        raise PlanError(
            f"torch variant {requested} (CUDA {_dotted(version)}) cannot build with the CUDA "
            f"{_dotted(toolkit)} toolkit: torch refuses a toolkit of another CUDA major. Set "
            "vllm_source_torch_variant: auto, or point vllm_source_cuda_home at a CUDA "
            f"{version[0]}.x toolkit"
        )
    if toolkit is not None and version > toolkit:
        return [
            f"torch variant {requested} (CUDA {_dotted(version)}) is newer than the CUDA "
            f"{_dotted(toolkit)} toolkit that will compile vLLM's kernels; torch only warns, "
            "but vllm_source_torch_variant: auto picks a variant that matches"
        ]
    return []


# --- CUDA arch list ----------------------------------------------------------------------


def arch_capability(token: str) -> Optional[Capability]:
    """The capability of a TORCH_CUDA_ARCH_LIST entry as vLLM's CMake reads it: major.minor,
    an optional arch-specific (a) or family (f) suffix, an optional +PTX; None for any other
    form (`sm_90`, `90`)."""
    arch = token[: -len(PTX)] if token.endswith(PTX) else token
    capability = parse_capability(arch)
    return capability if capability is not None and str(capability) == arch else None


def parse_arch_list(text: str, supported: Sequence[str] = VLLM_CUDA_ARCHS) -> List[str]:
    """Split a TORCH_CUDA_ARCH_LIST (`;` or spaces) and check every entry.

    Each entry is major.minor with an optional a/f suffix and an optional +PTX, and its
    major.minor is an arch vLLM builds for. PlanError names the bad entry.
    """
    tokens = [t for t in re.split(r"[;\s]+", text.strip()) if t]
    if not tokens:
        raise PlanError(
            f"vllm_source_cuda_arch_list {text!r} names no arch: set it like {ARCH_EXAMPLE}, "
            'or to "" to use this host\'s GPUs'
        )
    for token in tokens:
        capability = arch_capability(token)
        if capability is None:
            raise PlanError(
                f"vllm_source_cuda_arch_list entry {token!r} is not an arch vLLM reads "
                "(major.minor, "
                f"optional a or f suffix, optional +PTX): set it like {ARCH_EXAMPLE}"
            )
        base = f"{capability.major}.{capability.minor}"
        if base not in supported:
            raise PlanError(
                "vllm_source_cuda_arch_list entry {!r}: vLLM builds no kernels for {} (it "
                "builds for {}): remove it or set it like {}".format(
                    token, base, ";".join(supported), ARCH_EXAMPLE
                )
            )
    return tokens


def arch_covers(token: str, capability: str) -> bool:
    """Whether kernels built for arch `token` run on a GPU of compute `capability`.

    `9.0`/`9.0a` cover 9.0. A family arch (`10.0f`) also covers the same major with a
    higher minor (10.3). `+PTX` does not widen anything: vLLM drops it.
    """
    arch, gpu = arch_capability(token), parse_capability(capability)
    if arch is None or gpu is None:
        return False
    if (arch.major, arch.minor) == (gpu.major, gpu.minor):
        return True
    return arch.suffix == "f" and arch.major == gpu.major and arch.minor <= gpu.minor


def _gpu_label(capability: str, gpus: Sequence[Dict[str, Any]]) -> str:
    named = [
        "GPU {} ({})".format(g.get("index", "?"), g.get("name") or "unnamed")
        for g in gpus
        if str(g.get("compute_capability", "")) == capability
    ]
    if named:
        return "{}, compute capability {},".format(", ".join(named), capability)
    return f"this host's GPU of compute capability {capability}"


def resolve_arch_list(
    target_device: str,
    explicit: str,
    capabilities: Sequence[str],
    gpus: Sequence[Dict[str, Any]] = (),
    supported: Sequence[str] = VLLM_CUDA_ARCHS,
) -> str:
    """TORCH_CUDA_ARCH_LIST for the build ("" when not building CUDA kernels).

    Auto ("") is the GPUs' capabilities, unique and ascending, joined by ";". An explicit
    list must be well formed and cover every GPU the host has. A target that builds no
    kernels ignores the list, but a malformed one is still refused (ignored_arch_list warns).
    """
    if target_device != "cuda":
        if explicit.strip():
            parse_arch_list(explicit, supported)
        return ""
    detected = sorted({c.strip() for c in capabilities if c and c.strip()}, key=capability_key)
    if not explicit.strip():
        if not detected:
            raise PlanError(
                "No GPU was found to take the CUDA arch list from: set vllm_source_cuda_arch_list "
                f"to the archs to build for, e.g. {ARCH_EXAMPLE}, or "
                "vllm_source_target_device: empty"
            )
        unsupported = [c for c in detected if c not in supported]
        if unsupported:
            raise PlanError(
                "vLLM builds no kernels for compute capability {} ({}): vLLM supports {}. "
                "Set vllm_source_target_device: empty, or vllm_source_cuda_arch_list to a "
                "supported arch".format(
                    ", ".join(unsupported), _gpu_label(unsupported[0], gpus), ";".join(supported)
                )
            )
        return ";".join(detected)
    tokens = parse_arch_list(explicit, supported)
    for capability in detected:
        if not any(arch_covers(token, capability) for token in tokens):
            raise PlanError(
                f"vllm_source_cuda_arch_list {explicit!r} has no kernels for "
                f"{_gpu_label(capability, gpus)}: the build would not run on this host. Add "
                f'{capability} to vllm_source_cuda_arch_list, or set it to "" to build for '
                "this host's GPUs"
            )
    return ";".join(tokens)


# --- parallelism ----------------------------------------------------------------------


def memory_bound_jobs(mem_total_mb: int, mem_per_job_gb: float) -> int:
    """How many compile jobs the host's RAM holds at `mem_per_job_gb` each (at least 1)."""
    return max(1, math.floor(mem_total_mb * GIB_PER_MB / mem_per_job_gb))


def plan_max_jobs(
    requested: int,
    cpu_count: int,
    mem_total_mb: int,
    mem_per_job_gb: float,
    mem_source: str = "",
) -> Tuple[int, str, List[str]]:
    """MAX_JOBS, the reason, and warnings.

    Auto (0): max(1, min(CPUs, floor(RAM GiB / GiB per job))). An explicit value is kept;
    above the memory bound it warns of the OOM kills vLLM builds are known for.
    """
    if mem_per_job_gb <= 0:
        raise PlanError(f"vllm_source_build_mem_per_job_gb must be above 0, not {mem_per_job_gb:g}")
    if requested < 0:
        raise PlanError(
            f"vllm_source_max_jobs must be 0 (auto) or a positive number, not {requested}"
        )
    cpu_count = max(1, cpu_count)
    by_memory = memory_bound_jobs(mem_total_mb, mem_per_job_gb)
    mem_gib = mem_total_mb * GIB_PER_MB
    where = f" ({mem_source})" if mem_source else ""
    facts = (
        f"{cpu_count} CPUs, {mem_gib:.1f} GiB RAM{where} at {mem_per_job_gb:g} GiB per compile job"
    )
    if requested:
        reason = f"{facts} -> MAX_JOBS={requested} (vllm_source_max_jobs)"
        warnings = []
        if requested > by_memory:
            warnings.append(
                f"vllm_source_max_jobs={requested} is more compile jobs than RAM holds "
                f"({by_memory} at {mem_per_job_gb:g} GiB each on this host's {mem_gib:.1f} GiB): "
                "the build risks being OOM-killed. Lower vllm_source_max_jobs, or set it to 0 "
                "(auto)"
            )
        return requested, reason, warnings
    jobs = max(1, min(cpu_count, by_memory))
    bound = "CPU-bound" if cpu_count <= by_memory else "memory-bound"
    return jobs, f"{facts} -> MAX_JOBS={jobs} ({bound})", []


def plan_nvcc_threads(requested: int, arch_count: int, max_jobs: int) -> Tuple[int, List[str]]:
    """NVCC_THREADS and warnings.

    vLLM's setup.py runs MAX_JOBS // NVCC_THREADS ninja jobs of NVCC_THREADS threads each,
    so the total stays MAX_JOBS. Threads only help when nvcc compiles several archs per file.
    Auto (0): 2 for several archs, else 1, never above MAX_JOBS.
    """
    if requested < 0:
        raise PlanError(
            f"vllm_source_nvcc_threads must be 0 (auto) or a positive number, not {requested}"
        )
    if requested == 0:
        return min(2 if arch_count > 1 else 1, max_jobs), []
    if requested > max_jobs:
        return requested, [
            f"vllm_source_nvcc_threads={requested} is above MAX_JOBS={max_jobs}: vLLM still "
            f"runs one compile job, with {requested} threads, which can use more RAM than "
            "planned. Lower vllm_source_nvcc_threads"
        ]
    return requested, []


# --- the whole plan ----------------------------------------------------------------------


def build_plan(
    target_device: str,
    compute_capabilities: Sequence[str],
    driver_cuda_version: str,
    toolkit_cuda_version: str,
    torch_variant: str,
    torch_variants_available: Sequence[str],
    cuda_arch_list: str,
    max_jobs: int,
    nvcc_threads: int,
    mem_per_job_gb: float,
    cpu_count: int,
    mem_total_mb: int,
    gpus: Sequence[Dict[str, Any]] = (),
    supported_archs: Sequence[str] = VLLM_CUDA_ARCHS,
    mem_source: str = "",
) -> Tuple[Dict[str, Any], List[str]]:
    """The `vllm_build_plan` return value and the warnings to show."""
    if target_device not in TARGET_DEVICES:
        raise PlanError(
            "vllm_source_target_device {!r} is not one of {}".format(
                target_device, ", ".join(TARGET_DEVICES)
            )
        )
    variant, warnings = choose_torch_variant(
        target_device,
        torch_variant,
        torch_variants_available,
        driver_cuda_version,
        toolkit_cuda_version,
    )
    arch_list = resolve_arch_list(
        target_device,
        cuda_arch_list,
        compute_capabilities,
        gpus,
        supported_archs or VLLM_CUDA_ARCHS,
    )
    if target_device != "cuda" and cuda_arch_list.strip():
        ignored = (
            f"vllm_source_cuda_arch_list {cuda_arch_list!r} is ignored: vllm_source_target_device "
            f'{target_device!r} builds no CUDA kernels (set the list to "" to silence this)'
        )
        warnings = [*warnings, ignored]
    jobs, reason, job_warnings = plan_max_jobs(
        max_jobs, cpu_count, mem_total_mb, mem_per_job_gb, mem_source
    )
    arch_count = len(arch_list.split(";")) if arch_list else 0
    threads, thread_warnings = plan_nvcc_threads(nvcc_threads, arch_count, jobs)
    env = {
        "VLLM_TARGET_DEVICE": target_device,
        "MAX_JOBS": str(jobs),
        "NVCC_THREADS": str(threads),
    }
    if target_device == "cuda":
        env["TORCH_CUDA_ARCH_LIST"] = arch_list
    plan = {
        "torch_variant": variant,
        "arch_list": arch_list,
        "max_jobs": jobs,
        "max_jobs_reason": reason,
        "nvcc_threads": threads,
        "env": env,
    }
    return plan, warnings + job_warnings + thread_warnings


def mem_total_mb_from_meminfo(text: str) -> int:
    """MemTotal of /proc/meminfo in MiB (the file gives kB, i.e. KiB)."""
    match = re.search(r"^MemTotal:\s+(\d+)\s*kB", text, re.M)
    if not match:
        raise PlanError("/proc/meminfo has no MemTotal line")
    return int(match.group(1)) // 1024


# Above this, a cgroup v1 memory limit means "no limit" (the kernel reports ~2^63).
CGROUP_V1_UNLIMITED = 1 << 60


def cgroup_memory_limit_mb(
    proc_self_cgroup: str, read: Callable[[str], Optional[str]]
) -> Optional[int]:
    """The tightest memory limit on this process's cgroup and its ancestors, in MiB.

    `proc_self_cgroup` is /proc/self/cgroup; `read(path)` returns the text of a file under
    /sys/fs/cgroup (path relative to it) or None. cgroup v2 reads memory.max ("max": no
    limit), v1 the memory controller's memory.limit_in_bytes. None when nothing limits.
    A build in a container or a systemd slice with a memory limit is OOM-killed at that
    limit, not at MemTotal.
    """
    candidates: List[str] = []
    for line in proc_self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        levels = [p for p in path.strip().split("/") if p]
        # This cgroup, then each ancestor up to the root.
        chain = [levels[:n] for n in range(len(levels), -1, -1)]
        if controllers == "":
            candidates += ["/".join([*c, "memory.max"]) for c in chain]
        elif "memory" in controllers.split(","):
            candidates += ["/".join(["memory", *c, "memory.limit_in_bytes"]) for c in chain]
    limits = []
    for path in candidates:
        text = (read(path) or "").strip()
        if text.isdigit() and int(text) < CGROUP_V1_UNLIMITED:
            limits.append(int(text) // (1024 * 1024))
    return min(limits) if limits else None
