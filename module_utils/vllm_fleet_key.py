"""The build key: a hash of every input of the wheel, so hosts with one key share one wheel.

Pure functions, shared by library/vllm_build_key.py and its unit tests. The key is what the
role's Jinja gave, `(inputs | to_json(sort_keys=true) | hash('sha256'))[:16]`: ansible's
to_json is json.dumps with the default separators (", ", ": ") and ensure_ascii, and
hash('sha256') hashes those (ASCII) bytes, so every key already in a prefix stays valid.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict

KEY_LENGTH = 16
BUILD_MODES = ("full", "precompiled")


def fingerprint(value: Any) -> str:
    """The first 16 hex digits of the sha256 of `value` as ansible's to_json(sort_keys=true)."""
    text = json.dumps(value, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:KEY_LENGTH]


def python_abi(python_version: str) -> str:
    """CPython ABI tag of a version: 3.12.3 -> cp312 (its first two parts, joined)."""
    return "cp" + "".join(python_version.split(".")[:2])


def platform_tag(distribution: str, major_version: str, architecture: str) -> str:
    """ubuntu24-x86_64 from the facts distribution, distribution_major_version, architecture."""
    return f"{distribution.lower()}{major_version}-{architecture}"


def build_inputs(
    *,
    version: str,
    commit: str,
    target_device: str,
    torch_pin: str,
    torch_variant: str,
    cuda_version: str,
    arch_list: str,
    python_version: str,
    distribution: str,
    distribution_major_version: str,
    architecture: str,
    build_mode: str,
    precompiled_wheel_sha256: str,
    build_env: Dict[str, Any],
) -> Dict[str, str]:
    """Every input of the wheel, as the stamp records it.

    The CUDA toolkit and the arch list count for the cuda target only, the precompiled
    wheel's sha256 for the precompiled mode only; the extra build environment only as its
    fingerprint, since it may hold credentials.
    """
    cuda = target_device == "cuda"
    return {
        "version": version,
        "commit": commit,
        "target_device": target_device,
        # The tag's pin in the planned variant: what torch.__version__ reports once installed.
        "torch": f"{torch_pin}+{torch_variant}",
        "torch_variant": torch_variant,
        "cuda": cuda_version if cuda else "",
        "arch_list": arch_list if cuda else "",
        "python_abi": python_abi(python_version),
        "platform": platform_tag(distribution, distribution_major_version, architecture),
        "build_mode": build_mode,
        "precompiled_wheel": precompiled_wheel_sha256 if build_mode == "precompiled" else "",
        "build_env": fingerprint(build_env),
    }


def build_key(inputs: Dict[str, str]) -> str:
    """The build key of a set of build inputs."""
    return fingerprint(inputs)
