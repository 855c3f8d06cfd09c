"""Kernels a CUDA build skipped although its arch list could run them (vllm_fleet_kernels,
vllm_kernel_check), on vLLM's real CMakeLists.txt (0.22.0, 0.30.0) and the configure output
of the real v0.22.0 full build on 2x H200 (TORCH_CUDA_ARCH_LIST=9.0, CUDA 13)."""

from __future__ import annotations

import json
import lzma
import re
from pathlib import Path

import pytest
import vllm_kernel_check
from ansible.module_utils.common import warnings as _warnings
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.vllm_fleet_kernels import (
    configure_lines,
    covers,
    kernel_archs,
    kernel_name,
    missing_kernels,
)

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "tests" / "data" / "vllm-src"
LOG = ROOT / "docs" / "gpu-validation" / "h200x2-2026-11-28" / "full-build.log.xz"


@pytest.fixture(autouse=True)
def _no_warnings(monkeypatch) -> None:
    monkeypatch.setattr(_warnings, "_global_warnings", {})


@pytest.fixture(scope="module")
def log_lines():
    with lzma.open(LOG, "rt", encoding="utf-8", errors="replace") as f:
        return f.read().splitlines()


@pytest.fixture(scope="module")
def archs_022():
    return kernel_archs((SRC / "0.22.0" / "CMakeLists.txt").read_text())


def test_both_spellings_of_a_kernel_are_one_name():
    assert kernel_name("scaled_mm_c3x_sm120") == kernel_name("scaled_mm_c3x_120")
    assert kernel_name("grouped_mm_c3x kernels") == kernel_name("grouped_mm_c3x")


@pytest.mark.parametrize(
    ("kernel_arch", "arch", "runs"),
    [
        ("9.0a", "9.0", True),
        ("10.0f", "10.3", True),
        ("10.0a", "10.3", False),
        ("8.9+PTX", "8.9", True),
        ("12.0f", "10.0", False),
    ],
)
def test_an_arch_suffix_says_which_gpus_run_it(kernel_arch, arch, runs):
    assert covers(kernel_arch, arch) is runs


def test_the_cmakelists_gives_each_kernel_family_its_archs(archs_022):
    assert archs_022["scaled_mm_c3x_90"] == {"9.0a"}
    assert {"10.0a", "12.0a"} <= archs_022["nvfp4"]  # both NVFP4 blocks
    assert {"9.0a", "10.0a"} <= archs_022["grouped_mm_c3x"]  # the SM90 and the SM100 block
    archs_030 = kernel_archs((SRC / "0.30.0" / "CMakeLists.txt").read_text())
    assert {"10.0f", "11.0f", "10.0a"} <= archs_030["sm10x/11x nvfp4/mxfp4"]  # both CUDA branches
    assert archs_030["sm12x nvfp4"] == {"12.0a", "12.0f", "12.1a"}


def test_the_words_of_a_skip_do_not_say_its_reason():
    """Why the log's reason is not trusted: 0.22.0 skips NVFP4 for a CUDA compiler older than
    12.8 with the words it uses for no fitting arch."""
    text = (SRC / "0.22.0" / "CMakeLists.txt").read_text()
    block = re.search(
        r"if\(\$\{CMAKE_CUDA_COMPILER_VERSION\} VERSION_GREATER_EQUAL 12\.8 AND FP4_ARCHS\)"
        r"(?:(?!endif\(\)).)*?else\(\)\s*message\(STATUS \"Not building NVFP4 as no compatible "
        r"archs were found\.\"\)",
        text,
        re.S,
    )
    assert block, "the NVFP4 block's test and its message"


def test_the_h200_build_read_from_its_log(log_lines):
    configure = configure_lines(log_lines)
    assert configure["built"]["scaled_mm_c3x_90"] == {"9.0a"}
    assert configure["built"]["grouped_mm_c3x"] == {"9.0a"}
    assert ("nvfp4", "no compatible archs were found") in configure["skipped"]


def test_a_build_for_its_own_gpus_misses_nothing(log_lines, archs_022):
    # grouped_mm_c3x's SM100 block was skipped, its SM90 block built: nothing is missing.
    assert missing_kernels(log_lines, archs_022, "9.0") == []


def test_the_same_configure_output_misses_kernels_for_archs_it_was_asked_for(log_lines, archs_022):
    """Read against a list with 10.0 and 12.0 (what a build with a CUDA compiler too old for
    them prints, in the same words): every ModelOpt family for those archs is missing."""
    missing = {m["kernel"]: m for m in missing_kernels(log_lines, archs_022, "9.0;10.0 12.0")}
    assert missing["nvfp4"]["archs"] == ["10.0", "12.0"]
    assert missing["nvfp4"]["methods"] == ["modelopt_fp4", "modelopt_mixed"]
    assert missing["scaled_mm_c3x_100"]["archs"] == ["10.0"]
    assert missing["scaled_mm_c3x_120"]["methods"] == ["modelopt", "modelopt_mixed"]
    assert missing["es mxfp8 grouped"]["methods"] == ["modelopt_mxfp8"]
    assert missing["grouped_mm_c3x"]["archs"] == ["10.0"]  # 9.0 was built
    assert missing["cutlass mla"]["methods"] == []  # not ModelOpt's
    assert "scaled_mm_c3x_90" not in missing


def test_a_skip_because_another_block_built_it_loses_nothing(archs_022):
    lines = ["  -- Not building scaled_mm_c2x as all archs are already built for and covered by"]
    assert missing_kernels(lines, archs_022, "8.9") == []


def run(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        vllm_kernel_check.main()
    return json.loads(capsys.readouterr().out)


def write_log(tmp_path, log_lines):
    log = tmp_path / "build.log"
    log.write_text("\n".join(log_lines) + "\n")
    return str(log)


def test_the_module_fails_naming_kernel_archs_methods_and_fix(tmp_path, log_lines, capsys):
    args = {
        "log": write_log(tmp_path, log_lines),
        "arch_list": "9.0;10.0",
        "cmakelists": str(SRC / "0.22.0" / "CMakeLists.txt"),
    }
    result = run(args, capsys)
    assert result["failed"] and result["checked"]
    msg = result["msg"]
    assert "did not compile nvfp4 for 10.0" in msg and "modelopt_fp4, modelopt_mixed" in msg
    assert "vllm_source_cuda_arch_list" in msg and "vllm_source_kernel_check: warn" in msg
    assert "cutlass mla" not in msg  # a warning: no ModelOpt method needs it
    assert any("cutlass mla" in json.dumps(w) for w in result["warnings"])


def test_the_module_warns_by_policy_and_passes_a_complete_build(tmp_path, log_lines, capsys):
    args = {
        "log": write_log(tmp_path, log_lines),
        "arch_list": "9.0;10.0",
        "policy": "warn",
        "cmakelists": str(SRC / "0.22.0" / "CMakeLists.txt"),
    }
    warned = run(args, capsys)
    assert not warned.get("failed") and len(warned["missing"]) == len(warned["warnings"]) == 5
    _warnings._global_warnings.clear()
    complete = run({**args, "arch_list": "9.0", "policy": "fail"}, capsys)
    assert not complete.get("failed") and complete["missing"] == []
    assert complete["built"]["scaled_mm_c3x_90"] == ["9.0a"]
    empty = run({**args, "log": write_log(tmp_path, ["== build mode empty"])}, capsys)
    assert empty["checked"] is False and empty["missing"] == []
