"""Find a CUDA toolkit, read its version, and compare it with the driver's CUDA version.

Pure functions plus a `run` callable for `nvcc --version`, so pytest can drive them with
recorded output and fake toolkit folders. Runs on the managed host: Python 3.8+, stdlib only.
"""

from __future__ import annotations

import glob
import json
import os
import re
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from ansible.module_utils.vllm_fleet_versions import version_major_minor, version_tuple

RunCommand = Callable[[List[str]], Tuple[int, str, str]]

DEFAULT_SEARCH_PATHS = ["/usr/local/cuda", "/usr/local/cuda-*"]

# Minimum Linux x86_64 driver for each CUDA toolkit's GA release, from "CUDA Toolkit and
# Corresponding Driver Versions" (Table 3) in NVIDIA's CUDA Toolkit release notes,
# https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/. There was no CUDA 12.7.
CUDA_MIN_LINUX_DRIVER: Dict[str, str] = {
    "11.0": "450.51.05",
    "11.1": "455.23",
    "11.2": "460.27.03",
    "11.3": "465.19.01",
    "11.4": "470.42.01",
    "11.5": "495.29.05",
    "11.6": "510.39.01",
    "11.7": "515.43.04",
    "11.8": "520.61.05",
    "12.0": "525.60.13",
    "12.1": "530.30.02",
    "12.2": "535.54.03",
    "12.3": "545.23.06",
    "12.4": "550.54.14",
    "12.5": "555.42.02",
    "12.6": "560.28.03",
    "12.8": "570.26",
    "12.9": "575.51.03",
    "13.0": "580.65.06",
    "13.1": "590.44.01",
    "13.2": "595.45.04",
}

_NVCC_RELEASE_RE = re.compile(r"release (\d+)\.(\d+), V(\d+(?:\.\d+)+)")
_VERSION_TXT_RE = re.compile(r"CUDA Version (\d+(?:\.\d+)+)")


class CudaProbeError(Exception):
    """A toolkit folder whose version cannot be read."""


class Toolkit(NamedTuple):
    home: str
    version: str  # "13.0"
    version_full: str  # "13.0.88" (the nvcc version)
    nvcc: str
    default: bool = False  # found at a literal search path such as /usr/local/cuda


def major_minor(version: str) -> str:
    """'13.0.88' -> '13.0'."""
    parts = version_major_minor(version)
    if parts is None:
        raise CudaProbeError(f"not a CUDA version: {version!r}")
    return "{}.{}".format(*parts)


def parse_nvcc_version(text: str) -> Tuple[str, str]:
    """`nvcc --version` -> ('13.0', '13.0.88')."""
    match = _NVCC_RELEASE_RE.search(text)
    if match is None:
        raise CudaProbeError("nvcc --version has no 'release X.Y, VX.Y.Z' line")
    return f"{match.group(1)}.{match.group(2)}", match.group(3)


def parse_version_json(text: str) -> Tuple[str, str]:
    """A toolkit's version.json (CUDA 11.1+) -> ('12.6', '12.6.85').

    The `cuda` entry gives the release (its third part may be a date, e.g. 11.8.20220929);
    the `cuda_nvcc` entry gives the nvcc version, which is what nvcc --version prints.
    """
    try:
        data = json.loads(text)
        release = str(data["cuda"]["version"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CudaProbeError(f"version.json has no cuda.version: {exc}") from exc
    nvcc = data.get("cuda_nvcc", {})
    full = str(nvcc.get("version", "")) if isinstance(nvcc, dict) else ""
    return major_minor(release), full or release


def parse_version_txt(text: str) -> Tuple[str, str]:
    """A toolkit's version.txt (CUDA 11.0 and older): 'CUDA Version 10.2.89'."""
    match = _VERSION_TXT_RE.search(text)
    if match is None:
        raise CudaProbeError("version.txt has no 'CUDA Version X.Y.Z'")
    return major_minor(match.group(1)), match.group(1)


def nvcc_path(home: str) -> str:
    return os.path.join(home, "bin", "nvcc")


def has_nvcc(home: str) -> bool:
    path = nvcc_path(home)
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def read_toolkit_version(home: str, run: RunCommand) -> Tuple[str, str]:
    """Version of the toolkit at home: nvcc --version, else version.json, else version.txt."""
    rc, out, err = run([nvcc_path(home), "--version"])
    problems = []
    if rc == 0:
        try:
            return parse_nvcc_version(out)
        except CudaProbeError as exc:
            problems.append(str(exc))
    else:
        problems.append(f"nvcc --version failed with rc {rc}: {(err or out).strip()[:200]}")
    for name, parser in (("version.json", parse_version_json), ("version.txt", parse_version_txt)):
        text = _read(os.path.join(home, name))
        if text is None:
            continue
        try:
            return parser(text)
        except CudaProbeError as exc:
            problems.append(str(exc))
    raise CudaProbeError(
        f"cannot read the CUDA version of {home}: {'; '.join(problems)}; "
        "and no readable version.json or version.txt"
    )


def probe_toolkit(home: str, run: RunCommand, default: bool = False) -> Toolkit:
    version, full = read_toolkit_version(home, run)
    return Toolkit(home, version, full, nvcc_path(home), default)


def _is_pattern(path: str) -> bool:
    return any(char in path for char in "*?[")


def candidate_homes(patterns: List[str]) -> List[Tuple[str, bool]]:
    """Folders with bin/nvcc, as (home, default) in search order.

    Literal paths (no glob characters) are defaults, tried first by select_toolkit.
    Globbed paths that lead to the same folder count once, under the folder's real name.
    """
    found: List[Tuple[str, bool]] = []
    by_real: Dict[str, int] = {}
    for pattern in patterns:
        literal = not _is_pattern(pattern)
        for home in [pattern] if literal else sorted(glob.glob(pattern)):
            home = home.rstrip("/") or "/"
            if not has_nvcc(home):
                continue
            real = os.path.realpath(home)
            if real in by_real and not literal:
                seen = by_real[real]
                if home == real and not found[seen][1]:
                    found[seen] = (home, False)
                continue
            by_real.setdefault(real, len(found))
            found.append((home, literal))
    return found


def discover_toolkits(patterns: List[str], run: RunCommand) -> Tuple[List[Toolkit], List[str]]:
    """Probe every candidate; returns the toolkits and a note per folder that failed."""
    toolkits, problems = [], []
    for home, default in candidate_homes(patterns):
        try:
            toolkits.append(probe_toolkit(home, run, default))
        except CudaProbeError as exc:
            problems.append(str(exc))
    return toolkits, problems


def is_newer_than_driver(version: str, driver_cuda_version: str) -> bool:
    """Whether a toolkit's major.minor is above the driver's maximum CUDA version."""
    if not driver_cuda_version:
        return False
    return version_tuple(major_minor(version)) > version_tuple(major_minor(driver_cuda_version))


def select_toolkit(toolkits: List[Toolkit], driver_cuda_version: str) -> Optional[Toolkit]:
    """The toolkit to build with.

    A default location (/usr/local/cuda) with nvcc wins; else the newest versioned
    toolkit the driver can run; else (driver unknown or too old for all) the newest.
    """
    for toolkit in toolkits:
        if toolkit.default:
            return toolkit
    if not toolkits:
        return None
    runnable = [t for t in toolkits if not is_newer_than_driver(t.version, driver_cuda_version)]
    return max(runnable or toolkits, key=lambda t: version_tuple(t.version_full))


def min_driver_version(version: str) -> str:
    """Minimum Linux driver for a CUDA major.minor; '' when not in the table."""
    return CUDA_MIN_LINUX_DRIVER.get(major_minor(version), "")


def toolkit_env(home: str) -> Dict[str, str]:
    """What a build needs: CUDA_HOME, and the folders to put first on PATH / LD_LIBRARY_PATH."""
    return {
        "CUDA_HOME": home,
        "PATH": os.path.join(home, "bin"),
        "LD_LIBRARY_PATH": os.path.join(home, "lib64"),
    }


def toolkit_facts(toolkit: Toolkit, driver_cuda_version: str) -> Dict[str, object]:
    """The `cuda_toolkit` return value for a found toolkit."""
    return {
        "found": True,
        "home": toolkit.home,
        "version": toolkit.version,
        "version_full": toolkit.version_full,
        "nvcc": toolkit.nvcc,
        "newer_than_driver": is_newer_than_driver(toolkit.version, driver_cuda_version),
        "min_driver_version": min_driver_version(toolkit.version),
        "env": toolkit_env(toolkit.home),
    }


def not_found_facts() -> Dict[str, object]:
    """The `cuda_toolkit` return value when no toolkit was found and none is required."""
    return {
        "found": False,
        "home": "",
        "version": "",
        "version_full": "",
        "nvcc": "",
        "newer_than_driver": False,
        "min_driver_version": "",
        "env": {},
    }


def newer_than_driver_message(toolkit: Toolkit, driver_cuda_version: str) -> str:
    """Why a toolkit newer than the driver is a problem, and the ways out."""
    minimum = min_driver_version(toolkit.version)
    needs = (
        f"CUDA {toolkit.version} needs NVIDIA driver >= {minimum} (Linux x86_64, from the CUDA "
        "release notes)"
        if minimum
        else f"CUDA {toolkit.version} needs a newer NVIDIA driver"
    )
    return (
        f"The CUDA toolkit {toolkit.version_full} at {toolkit.home} is newer than the NVIDIA "
        f"driver supports (driver maximum CUDA {driver_cuda_version}): {needs}. Upgrade the "
        "driver, or point vllm_source_cuda_home at an older toolkit; kernels built with this "
        "toolkit may fail to load on this driver."
    )
