"""vllm_runtime_requirements: vLLM's Requires-Dist less vllm_source_runtime_deps_exclude."""

from __future__ import annotations

import json
from importlib.metadata import requires
from typing import Any, Dict

import pytest
import vllm_runtime_requirements as vrr
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.vllm_fleet_requirements import (
    canonical_name,
    requirement_name,
    select_requirements,
    unknown_exclusions,
)

# Lines as they appear in a vLLM 0.22.0 wheel's METADATA (Requires-Dist), markers included.
VLLM_REQUIRES = [
    "regex",
    "transformers!=5.0.*,!=5.1.*,>=4.56.0",
    'llguidance<1.8.0,>=1.7.0; platform_machine == "x86_64" or platform_machine == "arm64"',
    'setuptools<81.0.0,>=77.0.3; python_version > "3.11"',
    "torch==2.11.0",
    "flashinfer-python==0.6.11.post2",
    "flashinfer_cubin==0.6.11.post2",
    "nvidia-cutlass-dsl[cu13]==4.5.2",
    'tensorizer==2.10.1; extra == "tensorizer"',
    'pandas; extra == "bench"',
]


def here(marker: str) -> bool:
    """A stand-in interpreter: x86_64, Python 3.12, no extras."""
    return "extra" not in marker and ("x86_64" in marker or "3.11" in marker)


def test_names_are_canonical() -> None:
    assert canonical_name("Flashinfer_Cubin") == "flashinfer-cubin"
    assert requirement_name("nvidia-cutlass-dsl[cu13]==4.5.2") == "nvidia-cutlass-dsl"
    assert requirement_name("transformers!=5.0.*,>=4.56.0") == "transformers"
    with pytest.raises(ValueError):
        requirement_name("==1.0")


def test_excluded_names_match_in_any_spelling_and_extras_are_dropped() -> None:
    install, excluded = select_requirements(
        VLLM_REQUIRES,
        ["torch", "flashinfer_python", "FlashInfer-Cubin", "nvidia.cutlass.dsl"],
        here,
    )
    assert install == [
        "regex",
        "transformers!=5.0.*,!=5.1.*,>=4.56.0",
        "llguidance<1.8.0,>=1.7.0",
        "setuptools<81.0.0,>=77.0.3",
    ]
    assert excluded == [
        "torch==2.11.0",
        "flashinfer-python==0.6.11.post2",
        "flashinfer_cubin==0.6.11.post2",
        "nvidia-cutlass-dsl[cu13]==4.5.2",
    ]


def test_nothing_excluded_keeps_every_applicable_requirement() -> None:
    install, excluded = select_requirements(VLLM_REQUIRES, [], here)
    assert excluded == []
    assert len(install) == 8  # the two extras are gone


def test_unknown_exclusions_are_named() -> None:
    assert unknown_exclusions(VLLM_REQUIRES, ["torch", "flashinfr-cubin"]) == ["flashinfr-cubin"]


def run_main(args: Dict[str, Any], capsys: Any) -> Dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        vrr.main()
    return json.loads(capsys.readouterr().out)


def test_module_reads_an_installed_distribution(capsys: Any) -> None:
    # pytest is installed in the test venv: a real Requires-Dist with real markers.
    out = run_main({"distribution": "pytest", "exclude": ["pluggy", "no-such-dep"]}, capsys)
    assert out.get("failed") is not True, out
    real = [r.split(";")[0].strip() for r in requires("pytest") or []]
    assert out["excluded"] == [r for r in real if r.startswith("pluggy")]
    assert any(r.startswith("iniconfig") for r in out["requirements"])
    assert not any("colorama" in r for r in out["requirements"])  # sys_platform == "win32"
    warnings = " ".join(
        str(w.get("message", w) if isinstance(w, dict) else w) for w in out["warnings"]
    )
    assert "vllm_source_runtime_deps_exclude names 'no-such-dep'" in warnings


def test_module_fails_when_the_distribution_is_missing(capsys: Any) -> None:
    out = run_main({"distribution": "vllm-not-installed-here"}, capsys)
    assert out["failed"] is True
    assert "vllm-not-installed-here is not installed for this Python" in out["msg"]
