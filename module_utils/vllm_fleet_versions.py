"""The one reading of each version-like string the fleet meets.

- release versions: `3.11.2`, `13.0.88`, `0.30.0+empty` (version_tuple, split_version,
  version_major_minor);
- CUDA wheel variants: `cu128` <-> CUDA 12.8 (variant_cuda, cuda_variant);
- NVIDIA compute capabilities: `9.0` (nvidia-smi), `9.0a`/`10.0f` (TORCH_CUDA_ARCH_LIST),
  `90` (vLLM's integers), `sm_90`/`sm_90a` (nvcc) (parse_capability and its helpers);
- commit SHAs, full or abbreviated (is_commit).

Every module that reads one of these calls the function here. Whether a version satisfies a
PEP 440 specifier is vllm_fleet_specifiers. Runs on the managed host: Python 3.8+, stdlib only.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional, Tuple

_CUDA_VARIANT = re.compile(r"^cu(\d+)(\d)$")
_COMMIT = re.compile(r"^[0-9a-fA-F]{7,40}$")
# major.minor as nvidia-smi and TORCH_CUDA_ARCH_LIST write it; then vLLM's and nvcc's
# major and minor run together. Either takes an arch-specific (a) or family (f) suffix.
_CAPABILITY_DOTTED = re.compile(r"^(\d+)\.(\d)([af]?)$")
_CAPABILITY_JOINED = re.compile(r"^(?:sm_|compute_)?(\d+)(\d)([af]?)$")


# --- release versions --------------------------------------------------------------------


def split_version(version: str) -> Tuple[str, Optional[str]]:
    """Split a version into its public and local parts (local is None without a +)."""
    public, sep, local = version.strip().partition("+")
    return public, (local if sep and local else None)


def version_tuple(version: str) -> Tuple[int, ...]:
    """`3.11.2` -> (3, 11, 2); trailing non-numeric parts such as `rc1` or `+local` drop.

    () when the text does not start with a number. Also reads CUDA and driver versions
    (`13.0.88`, `11.8.20220929`), which are dotted numbers rather than PEP 440 versions.
    """
    parts = []
    for part in split_version(version)[0].split("."):
        digits = re.match(r"^(\d+)", part)
        if not digits:
            break
        parts.append(int(digits.group(1)))
        if digits.group(1) != part:
            break
    return tuple(parts)


def version_major_minor(version: str) -> Optional[Tuple[int, int]]:
    """`12.4` or `13.0.88` -> (12, 4) / (13, 0); None without a major and a minor."""
    release = version_tuple(version)
    return (release[0], release[1]) if len(release) >= 2 else None


# --- CUDA wheel variants ------------------------------------------------------------------


def variant_cuda(variant: str) -> Optional[Tuple[int, int]]:
    """`cu128` -> (12, 8), `cu130` -> (13, 0); `cpu` (or anything else) -> None."""
    match = _CUDA_VARIANT.match(variant)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2))


def cuda_variant(version: str) -> Optional[str]:
    """The wheel variant of a CUDA version: `12.8` -> `cu128`; None when it is no version."""
    major_minor = version_major_minor(version)
    return "cu{}{}".format(*major_minor) if major_minor else None


# --- compute capabilities -----------------------------------------------------------------


class Capability(NamedTuple):
    """An NVIDIA compute capability; str() writes it as nvidia-smi does (`9.0`, `9.0a`)."""

    major: int
    minor: int
    suffix: str = ""  # "a": arch-specific (9.0a), "f": family (10.0f)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}{self.suffix}"

    @property
    def value(self) -> int:
        """vLLM's integer form, major * 10 + minor (90 for 9.0)."""
        return self.major * 10 + self.minor


def parse_capability(text: str) -> Optional[Capability]:
    """`9.0`, `9.0a`, `10.0f`, `90`, `sm_90`, `sm_90a` -> Capability; None otherwise."""
    text = text.strip()
    match = _CAPABILITY_DOTTED.match(text) or _CAPABILITY_JOINED.match(text)
    if not match:
        return None
    return Capability(int(match.group(1)), int(match.group(2)), match.group(3))


def capability_key(text: str) -> Tuple[object, ...]:
    """Sort key: `10.0` after `9.0`, `9.0a` after `9.0`; what does not parse sorts first."""
    capability = parse_capability(text)
    return tuple(capability) if capability else ()


def capability_value(text: str) -> int:
    """nvidia-smi's `9.0` (or any form parse_capability reads) as vLLM's integer, 90."""
    capability = parse_capability(text)
    if capability is None:
        raise ValueError(f"{text!r} is not a compute capability such as 9.0")
    return capability.value


def capability_text(value: Optional[int]) -> Optional[str]:
    """vLLM's integer capability (89) as nvidia-smi writes it (`8.9`); None stays None."""
    if value is None:
        return None
    return str(Capability(value // 10, value % 10))


# --- commits ----------------------------------------------------------------------------


def is_commit(text: str) -> bool:
    """Whether `text` is a commit SHA, full or abbreviated (7 to 40 hex digits)."""
    return bool(_COMMIT.match(text))
