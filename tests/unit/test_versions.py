"""vllm_fleet_versions: the one reading of release versions, CUDA variants, compute
capabilities and commit SHAs that every module uses."""

from __future__ import annotations

from typing import Optional, Tuple

import pytest
from ansible.module_utils.vllm_fleet_versions import (
    Capability,
    capability_key,
    capability_text,
    capability_value,
    cuda_variant,
    is_commit,
    parse_capability,
    split_version,
    variant_cuda,
    version_major_minor,
    version_tuple,
)

# --- release versions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "public", "local"),
    [
        ("0.30.0", "0.30.0", None),
        ("0.30.0+empty", "0.30.0", "empty"),
        ("0.30.1.dev1+gced6857af", "0.30.1.dev1", "gced6857af"),
        ("0.30.0+", "0.30.0", None),
        (" 2.13.0+cpu\n", "2.13.0", "cpu"),
    ],
)
def test_split_version(version: str, public: str, local: Optional[str]) -> None:
    assert split_version(version) == (public, local)


@pytest.mark.parametrize(
    ("version", "release"),
    [
        ("3.11.2", (3, 11, 2)),
        ("3.12.3+local", (3, 12, 3)),
        ("3.13.0rc1", (3, 13, 0)),  # platform.python_version() of a release candidate
        ("13.0.88", (13, 0, 88)),  # nvcc
        ("11.8.20220929", (11, 8, 20220929)),  # a toolkit's version.json
        ("570.86.15", (570, 86, 15)),  # a driver
        ("12.4abc", (12, 4)),
        ("12.", (12,)),
        ("python", ()),
        ("N/A", ()),
        ("", ()),
    ],
)
def test_version_tuple(version: str, release: Tuple[int, ...]) -> None:
    assert version_tuple(version) == release


def test_version_tuple_orders_numerically() -> None:
    assert version_tuple("12.10") > version_tuple("12.9")
    assert version_tuple("13.0.88") > version_tuple("13.0.9")


@pytest.mark.parametrize(
    ("version", "pair"),
    [("12.4", (12, 4)), ("13.0.88", (13, 0)), (" 12.8 ", (12, 8)), ("13", None), ("N/A", None)],
)
def test_version_major_minor(version: str, pair: Optional[Tuple[int, int]]) -> None:
    assert version_major_minor(version) == pair


# --- CUDA wheel variants -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "cuda"),
    [("cu126", "12.6"), ("cu128", "12.8"), ("cu130", "13.0"), ("cu118", "11.8")],
)
def test_cuda_variants_both_ways(variant: str, cuda: str) -> None:
    assert variant_cuda(variant) == version_major_minor(cuda)
    assert cuda_variant(cuda) == variant
    assert cuda_variant(f"{cuda}.1") == variant  # torch.version.cuda may carry a patch level


def test_cpu_is_no_cuda_variant() -> None:
    assert variant_cuda("cpu") is None
    assert variant_cuda("cu1") is None
    assert cuda_variant("cpu") is None


# --- compute capabilities ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "capability"),
    [
        ("9.0", Capability(9, 0)),  # nvidia-smi
        ("12.1", Capability(12, 1)),
        ("9.0a", Capability(9, 0, "a")),  # TORCH_CUDA_ARCH_LIST
        ("10.0f", Capability(10, 0, "f")),
        ("90", Capability(9, 0)),  # vLLM's integers
        ("100", Capability(10, 0)),
        ("sm_90", Capability(9, 0)),  # nvcc
        ("sm_90a", Capability(9, 0, "a")),
        ("compute_120", Capability(12, 0)),
        (" 8.9\n", Capability(8, 9)),
    ],
)
def test_parse_capability_forms(text: str, capability: Capability) -> None:
    assert parse_capability(text) == capability


@pytest.mark.parametrize("text", ["", "9", "9.x", "9.10", "sm90", "Hopper", "9.0+PTX", "9.0b"])
def test_parse_capability_refuses_other_text(text: str) -> None:
    assert parse_capability(text) is None


def test_capability_writes_as_nvidia_smi_and_vllm_do() -> None:
    assert str(parse_capability("sm_90a")) == "9.0a"
    assert parse_capability("10.0f").value == 100
    assert capability_value("9.0") == 90
    assert capability_value("12.1") == 121
    assert capability_value("sm_89") == 89
    assert capability_text(89) == "8.9"
    assert capability_text(100) == "10.0"
    assert capability_text(None) is None
    with pytest.raises(ValueError, match=r"not a compute capability such as 9\.0"):
        capability_value("Hopper")


def test_capabilities_sort_numerically() -> None:
    found = ["10.0", "9.0a", "9.0", "12.0", "8.9", "garbage"]
    assert sorted(found, key=capability_key) == ["garbage", "8.9", "9.0", "9.0a", "10.0", "12.0"]


# --- commits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "commit"),
    [
        ("ced6857af", True),
        ("CED6857AF0123456789ABCDEF0123456789ABCDE", True),
        ("abc123", False),  # too short
        ("v0.30.0", False),
        ("gced6857af", False),  # setuptools-scm's node, not a SHA
        ("a" * 41, False),
    ],
)
def test_is_commit(text: str, commit: bool) -> None:
    assert is_commit(text) is commit
