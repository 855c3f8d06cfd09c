"""The kernels a CUDA build of vLLM skipped although its arch list could run them.

vLLM's CMakeLists.txt intersects each kernel family's archs with the build's
(`cuda_archs_loose_intersection(VAR "9.0a;10.0f" "${CUDA_ARCHS}")`) and prints, at configure
time, "Building <kernel> for archs: ..." or "Not building <kernel> as ...". A kernel is also
skipped when the CUDA compiler is too old for it, sometimes with the same words as when no
arch fits ("Not building NVFP4 as no compatible archs were found." follows a test of both):
the build succeeds, and a ModelOpt method fails at run time on the GPUs that needed it.

So the log's words are not trusted for the reason: a kernel is missing for an arch of the
build's list when the tag's CMakeLists.txt gives the kernel that arch (`kernel_archs`) and
the log has no "Building <kernel> for archs:" line covering it (`missing_kernels`). Pure
functions; library/vllm_kernel_check.py runs them on the builder after the build.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Set

_INTERSECTION = re.compile(r'cuda_archs_loose_intersection\(\s*(\w+)\s+"([^"]*)"', re.S)
_MESSAGE = re.compile(r'message\(\s*STATUS\s+"(Not building|Building) ([^"]+?) (as|for archs)\b')
# The configure lines in a build log (stamped by the build script, indented by pip).
_BUILDING = re.compile(r"--\s+Building (.+?) for archs: (.*?)\s*$")
_NOT_BUILDING = re.compile(r"--\s+Not building (.+?) as (.*?)\s*$")
# Skips that lose nothing: the archs are built by another block of the same kernels.
HARMLESS = ("already built",)

# Which ModelOpt methods need a kernel family, by its normalised name.
METHODS = (
    (re.compile(r"fp4"), ("modelopt_fp4", "modelopt_mixed")),
    (re.compile(r"mxfp8"), ("modelopt_mxfp8",)),
    (re.compile(r"scaled_mm|grouped_mm|moe_data"), ("modelopt", "modelopt_mixed")),
)


def kernel_name(text: str) -> str:
    """One name for a kernel family, as CMake's two messages spell it differently
    ("scaled_mm_c3x_sm120 ..." and "scaled_mm_c3x_120 ...", "grouped_mm_c3x kernels")."""
    name = " ".join(text.lower().split())
    name = re.sub(r" kernels?$", "", name)
    return re.sub(r"_sm(\d+)$", r"_\1", name)


def arch_of(text: str) -> str:
    """An arch list entry without its suffix: 9.0a, 8.0+PTX, 10.0f -> 9.0, 8.0, 10.0."""
    return re.sub(r"(\+ptx|[af])$", "", text.strip().lower())


def covers(kernel_arch: str, arch: str) -> bool:
    """Whether a kernel built for kernel_arch runs on GPUs of `arch` ("10.0f" is the family
    of 10.x; otherwise the same major.minor)."""
    kernel_arch = kernel_arch.strip().lower()
    if kernel_arch.endswith("f"):
        return arch_of(kernel_arch).split(".")[0] == arch_of(arch).split(".")[0]
    return arch_of(kernel_arch) == arch_of(arch)


def split_archs(text: str) -> List[str]:
    """An arch list as CMake or TORCH_CUDA_ARCH_LIST writes it (; , or space apart)."""
    return [part for part in re.split(r"[;,\s]+", text) if part]


def kernel_archs(cmakelists: str) -> Dict[str, Set[str]]:
    """Every kernel family the CMakeLists.txt prints a message for -> the archs its blocks
    intersect the build's list with (every block of that name, every CUDA-version branch)."""
    events = [
        (m.start(), "archs", m.group(1), m.group(2)) for m in _INTERSECTION.finditer(cmakelists)
    ]
    events += [(m.start(), "message", m.group(2), "") for m in _MESSAGE.finditer(cmakelists)]
    result: Dict[str, Set[str]] = {}
    # A block: its intersections (one per CUDA-version branch, maybe of several variables),
    # then its messages; the messages speak of the variable intersected last.
    block: Dict[str, Set[str]] = {}
    last_var, after_message = "", False
    for _, kind, first, second in sorted(events):
        if kind == "archs":
            if after_message:
                block, after_message = {}, False
            block.setdefault(first, set()).update(split_archs(second))
            last_var = first
        elif last_var:
            result.setdefault(kernel_name(first), set()).update(block.get(last_var, set()))
            after_message = True
    return result


def configure_lines(lines: Iterable[str]) -> Dict[str, List]:
    """The build log's "Building ... for archs" and "Not building ... as" lines:
    {"built": {kernel: archs}, "skipped": [(kernel, reason)]}."""
    built: Dict[str, Set[str]] = {}
    skipped: List = []
    for line in lines:
        match = _BUILDING.search(line)
        if match:
            built.setdefault(kernel_name(match.group(1)), set()).update(split_archs(match.group(2)))
            continue
        match = _NOT_BUILDING.search(line)
        if match:
            skipped.append((kernel_name(match.group(1)), match.group(2).rstrip(".")))
    return {"built": built, "skipped": skipped}


def methods_of(kernel: str) -> List[str]:
    for pattern, methods in METHODS:
        if pattern.search(kernel):
            return list(methods)
    return []


def missing_kernels(
    log_lines: Iterable[str], archs_by_kernel: Dict[str, Set[str]], arch_list: str
) -> List[Dict[str, object]]:
    """The kernel families the log says were not built although an arch of `arch_list`
    (the build's TORCH_CUDA_ARCH_LIST) is one the CMakeLists gives them and no "Building"
    line covers: each with its archs missing, the log's reason and the ModelOpt methods that
    need it."""
    configure = configure_lines(log_lines)
    wanted = split_archs(arch_list)
    found: Dict[str, Dict[str, object]] = {}
    for kernel, reason in configure["skipped"]:
        if any(words in reason for words in HARMLESS):
            continue
        supported = archs_by_kernel.get(kernel, set())
        built = configure["built"].get(kernel, set())
        missing = [
            arch_of(arch)
            for arch in wanted
            if any(covers(k, arch) for k in supported) and not any(covers(b, arch) for b in built)
        ]
        if missing and kernel not in found:
            found[kernel] = {
                "kernel": kernel,
                "archs": sorted(set(missing), key=lambda a: [int(x) for x in a.split(".")]),
                "reason": reason,
                "methods": methods_of(kernel),
            }
    return list(found.values())
