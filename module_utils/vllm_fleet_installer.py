"""Whether an offline wheelhouse can give a host the uv that vllm_source_installer uv needs.

uv is installed from PyPI's uv wheel (roles/vllm_source/vars/main.yml pins it), one wheel per
platform: `uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl`,
`..._aarch64...`, `...-musllinux_1_1_x86_64.whl`. A wheelhouse made for pip alone has none, one
made on another machine may have only another arch's: the preflight (library/vllm_uv_wheel_check.py)
refuses both before anything changes, instead of 06_venv.yml's later "missing wheels".

Pure functions (the host's libc aside), standard library only: they run on the host.
"""

from __future__ import annotations

import os
import platform
import re
from typing import List, Optional, Sequence, Tuple

from ansible.module_utils.vllm_fleet_hashes import wheel_name_version

# The legacy manylinux names and the glibc each stands for (PEP 600).
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_(\w+)")
_GLIBC = re.compile(r"glibc (\d+)\.(\d+)")
WHEELHOUSE_FIX = "python -m vllm_fleet.wheelhouse build --installer uv ..."

Glibc = Optional[Tuple[int, int]]


def host_glibc() -> Glibc:
    """This host's glibc as (major, minor); None where it has none (musl) or says nothing."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):
        return None
    match = _GLIBC.fullmatch(text.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def host_machine() -> str:
    """This host's CPU architecture as wheel tags spell it (x86_64, aarch64)."""
    return platform.machine()


def platform_tags(filename: str) -> List[str]:
    """The platform tags of a wheel's file name (a compressed tag set split at its dots)."""
    stem = filename[: -len(".whl")] if filename.endswith(".whl") else filename
    parts = stem.split("-")
    return parts[-1].split(".") if len(parts) >= 5 else []


def platform_usable(tag: str, machine: str, glibc: Glibc) -> bool:
    """Whether a wheel of this platform tag installs on a host of this machine and glibc.

    `any` goes everywhere, `linux_<machine>` on that machine, manylinux tags where the glibc
    is at least theirs; musllinux and other systems' tags never (the role's hosts are Debian
    and Ubuntu, glibc).
    """
    if tag == "any":
        return True
    if tag == f"linux_{machine}":
        return True
    legacy, _, arch = tag.partition("_")
    if legacy in _LEGACY_MANYLINUX:
        return arch == machine and glibc is not None and glibc >= _LEGACY_MANYLINUX[legacy]
    match = _MANYLINUX.fullmatch(tag)
    if match:
        needed = (int(match.group(1)), int(match.group(2)))
        return match.group(3) == machine and glibc is not None and glibc >= needed
    return False


def pinned_version(requirement: str, name: str) -> str:
    """The version of a `name==version` pin (the role's __vllm_source_uv_package)."""
    wanted, sep, version = requirement.partition("==")
    if not sep or wanted.strip().lower() != name or not version.strip():
        raise ValueError(f"expected a pin such as {name}==0.13.9, got {requirement!r}")
    return version.strip()


def pinned_wheels(names: Sequence[str], requirement: str, name: str = "uv") -> List[str]:
    """The wheels among the file names that are the pin's version of `name`, sorted."""
    version = pinned_version(requirement, name)
    return sorted(n for n in names if wheel_name_version(n) == (name, version))


def usable_wheels(names: Sequence[str], machine: str, glibc: Glibc) -> List[str]:
    """The wheels of which one platform tag installs on this host, in their order."""
    return [n for n in names if any(platform_usable(t, machine, glibc) for t in platform_tags(n))]


def host_description(machine: str, glibc: Glibc) -> str:
    """'x86_64, glibc 2.36', as the message names the host."""
    libc = f"glibc {glibc[0]}.{glibc[1]}" if glibc else "no glibc found"
    return f"{machine}, {libc}"


def uv_wheel_message(
    wheelhouse: str,
    wheelhouse_variable: str,
    requirement: str,
    found: Sequence[str],
    machine: str,
    glibc: Glibc,
) -> str:
    """What a host of vllm_source_installer uv whose offline wheelhouse lacks its uv is told."""
    others = f"it has only {', '.join(found)}" if found else "it has no uv wheel of that version"
    return (
        f"vllm_source_installer is uv and vllm_source_pip_offline is true, but the wheelhouse "
        f"{wheelhouse or '(none set)'} ({wheelhouse_variable}) holds no {requirement} wheel "
        f"that this host ({host_description(machine, glibc)}) can install: {others}. Add it on "
        f"the controller with `{WHEELHOUSE_FIX}` for this host's platform (it records the "
        "wheel's sha256 too), or set vllm_source_installer: pip."
    )


def uv_wheel_problem(
    names: Sequence[str],
    wheelhouse: str,
    wheelhouse_variable: str,
    requirement: str,
    machine: str,
    glibc: Glibc,
) -> Tuple[List[str], str]:
    """(the pin's uv wheels this host can install, the message when there is none, else "")."""
    found = pinned_wheels(names, requirement)
    usable = usable_wheels(found, machine, glibc)
    if usable:
        return usable, ""
    return [], uv_wheel_message(wheelhouse, wheelhouse_variable, requirement, found, machine, glibc)
