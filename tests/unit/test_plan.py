"""vllm_build_plan: torch variant, arch list, MAX_JOBS and NVCC_THREADS decisions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Tuple

import pytest
import vllm_build_plan
from ansible.module_utils.common import warnings as _warnings
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.vllm_fleet_plan import (
    VLLM_CUDA_ARCHS,
    PlanError,
    arch_capability,
    arch_covers,
    build_plan,
    cgroup_memory_limit_mb,
    choose_torch_variant,
    cuda_version,
    mem_total_mb_from_meminfo,
    memory_bound_jobs,
    parse_arch_list,
    plan_max_jobs,
    plan_nvcc_threads,
    resolve_arch_list,
)
from ansible.module_utils.vllm_fleet_versions import Capability

DATA = Path(__file__).resolve().parents[1] / "data"
AVAILABLE = ["cu130", "cu128", "cu126"]
# The GPU validation host (shared/testdata/gpu-h200x2): 2x H200, driver 580 (CUDA 13.0),
# nvcc 13.0, 32 CPUs, 251.8 GiB (free -b: 270334464000 bytes).
H200_GPUS = [
    {"index": 0, "name": "NVIDIA H200", "compute_capability": "9.0"},
    {"index": 1, "name": "NVIDIA H200", "compute_capability": "9.0"},
]
H200_MEM_MB = 270334464000 // (1024 * 1024)


def run_main(args: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> Tuple[int, Dict]:
    # A module runs in a fresh process: start without the warnings earlier runs left.
    _warnings._global_warnings.clear()
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        vllm_build_plan.main()
    return int(exc.value.code or 0), json.loads(capsys.readouterr().out)


def plan(**overrides: Any) -> Tuple[Dict[str, Any], list]:
    args: Dict[str, Any] = {
        "target_device": "cuda",
        "compute_capabilities": ["9.0", "9.0"],
        "driver_cuda_version": "13.0",
        "toolkit_cuda_version": "13.0",
        "torch_variant": "auto",
        "torch_variants_available": AVAILABLE,
        "cuda_arch_list": "",
        "max_jobs": 0,
        "nvcc_threads": 1,
        "mem_per_job_gb": 4.0,
        "cpu_count": 32,
        "mem_total_mb": H200_MEM_MB,
        "gpus": H200_GPUS,
    }
    args.update(overrides)
    return build_plan(**args)


# --- versions ------------------------------------------------------------------------------


def test_version_parsing() -> None:
    # The parsing is vllm_fleet_versions' (tests/unit/test_versions.py); the plan adds its error.
    assert cuda_version("12.4") == (12, 4)
    assert cuda_version("13.0.88") == (13, 0)
    assert cuda_version("") is None
    with pytest.raises(PlanError, match="CUDA version"):
        cuda_version("N/A")


# --- torch variant ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("driver", "toolkit", "expected"),
    [
        ("13.0", "13.0", "cu130"),  # the H200 validation host
        ("13.0", "", "cu130"),
        ("13.0", "12.8", "cu128"),  # toolkit major 12: cu130 is refused by cpp_extension
        ("13.0", "12.6", "cu126"),  # not newer than the toolkit
        ("12.9", "", "cu128"),
        ("12.8", "12.8", "cu128"),
        ("12.6", "12.9", "cu126"),  # the driver bounds it
        ("12.7", "", "cu126"),
        ("", "12.8", "cu128"),  # CUDA build host without a GPU: the toolkit decides
    ],
)
def test_auto_variant(driver: str, toolkit: str, expected: str) -> None:
    variant, warnings = choose_torch_variant("cuda", "auto", AVAILABLE, driver, toolkit)
    assert variant == expected
    assert warnings == []


def test_auto_respects_what_is_available() -> None:
    assert choose_torch_variant("cuda", "auto", ["cu126"], "13.0", "")[0] == "cu126"
    assert choose_torch_variant("cuda", "auto", ["cu126", "cu128"], "13.0", "")[0] == "cu128"


def test_empty_target_is_cpu() -> None:
    assert choose_torch_variant("empty", "auto", AVAILABLE, "13.0", "13.0") == ("cpu", [])
    assert choose_torch_variant("empty", "auto", AVAILABLE, "", "") == ("cpu", [])
    assert choose_torch_variant("empty", "cpu", AVAILABLE, "", "") == ("cpu", [])


def test_cuda_target_without_driver_or_toolkit_fails() -> None:
    with pytest.raises(PlanError) as exc:
        choose_torch_variant("cuda", "auto", AVAILABLE, "", "")
    assert "neither an NVIDIA driver nor a CUDA toolkit" in str(exc.value)
    assert "vllm_source_torch_variant" in str(exc.value)
    assert "vllm_source_target_device: empty" in str(exc.value)


def test_no_variant_fits_names_versions_and_variables() -> None:
    with pytest.raises(PlanError) as exc:
        choose_torch_variant("cuda", "auto", AVAILABLE, "12.4", "")
    msg = str(exc.value)
    assert msg.startswith("No PyTorch CUDA variant (cu130, cu128, cu126) fits this host")
    assert "driver supports CUDA 12.4" in msg
    assert "no CUDA toolkit" in msg
    assert "vllm_source_torch_variant" in msg and "vllm_source_cuda_home" in msg

    with pytest.raises(PlanError) as exc:
        choose_torch_variant("cuda", "auto", AVAILABLE, "13.0", "11.8")
    assert "CUDA toolkit 11.8" in str(exc.value)
    assert "driver supports CUDA 13.0" in str(exc.value)


def test_explicit_variant_newer_than_the_driver() -> None:
    with pytest.raises(PlanError) as exc:
        choose_torch_variant("cuda", "cu130", AVAILABLE, "12.8", "")
    assert str(exc.value) == (
        "vllm_source_torch_variant cu130 needs a driver that supports CUDA 13.0; "
        "this host's driver supports 12.8: set vllm_source_torch_variant: auto "
        "(or cu126/cu128), or upgrade the driver"
    )


def test_explicit_variant_when_nothing_fits_the_driver() -> None:
    with pytest.raises(PlanError) as exc:
        choose_torch_variant("cuda", "cu130", AVAILABLE, "12.4", "")
    assert str(exc.value) == (
        "vllm_source_torch_variant cu130 needs a driver that supports CUDA 13.0; "
        "this host's driver supports 12.4: upgrade the driver, or point "
        "vllm_source_cuda_home at an older toolkit "
        "(no available variant, cu130, cu128, cu126, runs on this driver with this toolkit)"
    )


def test_explicit_variant_of_another_toolkit_major() -> None:
    with pytest.raises(PlanError) as exc:
        choose_torch_variant("cuda", "cu130", AVAILABLE, "13.0", "12.8")
    msg = str(exc.value)
    assert "cu130 (CUDA 13.0) cannot build with the CUDA 12.8 toolkit" in msg
    assert "vllm_source_cuda_home at a CUDA 13.x toolkit" in msg


def test_explicit_variant_newer_than_the_toolkit_warns() -> None:
    variant, warnings = choose_torch_variant("cuda", "cu128", AVAILABLE, "13.0", "12.6")
    assert variant == "cu128"
    assert len(warnings) == 1
    assert "newer than the CUDA 12.6 toolkit" in warnings[0]


def test_explicit_variant_kept_when_it_fits() -> None:
    assert choose_torch_variant("cuda", "cu126", AVAILABLE, "13.0", "12.8") == ("cu126", [])
    # An empty build on a GPU-less host may still install a CUDA torch.
    assert choose_torch_variant("empty", "cu128", AVAILABLE, "", "") == ("cu128", [])


def test_explicit_variant_not_available() -> None:
    with pytest.raises(PlanError, match=r"cu130 is not among the available variants \(cu128"):
        choose_torch_variant("cuda", "cu130", ["cu128", "cu126"], "13.0", "")


def test_cpu_variant_cannot_build_cuda_kernels() -> None:
    with pytest.raises(PlanError, match="torch variant cpu cannot build vLLM's CUDA kernels"):
        choose_torch_variant("cuda", "cpu", AVAILABLE, "13.0", "13.0")


def test_bad_available_list() -> None:
    with pytest.raises(PlanError, match=r"'rocm6\.2' is not cpu or cuXYZ"):
        choose_torch_variant("cuda", "auto", ["rocm6.2"], "13.0", "")


# --- arch list -------------------------------------------------------------------------------


def test_auto_arch_list_is_unique_and_sorted() -> None:
    assert resolve_arch_list("cuda", "", ["9.0", "8.0", "9.0", "12.0"]) == "8.0;9.0;12.0"
    assert resolve_arch_list("cuda", "", ["9.0", "9.0"], H200_GPUS) == "9.0"
    assert resolve_arch_list("empty", "", []) == ""
    assert resolve_arch_list("empty", "9.0", ["9.0"]) == ""


def test_cuda_without_gpus_needs_an_arch_list() -> None:
    with pytest.raises(PlanError) as exc:
        resolve_arch_list("cuda", "", [])
    assert "No GPU was found" in str(exc.value)
    assert "vllm_source_cuda_arch_list" in str(exc.value)
    # With an explicit list a GPU-less host can build.
    assert resolve_arch_list("cuda", "8.0;9.0", []) == "8.0;9.0"


def test_auto_arch_list_rejects_a_gpu_vllm_does_not_build_for() -> None:
    gpus = [{"index": 0, "name": "Tesla P100-PCIE-16GB", "compute_capability": "6.0"}]
    with pytest.raises(PlanError) as exc:
        resolve_arch_list("cuda", "", ["6.0"], gpus)
    msg = str(exc.value)
    assert "compute capability 6.0" in msg and "GPU 0 (Tesla P100-PCIE-16GB)" in msg
    assert "vllm_source_target_device: empty" in msg


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("9.0", ["9.0"]),
        ("8.0;9.0", ["8.0", "9.0"]),
        ("9.0 10.0+PTX", ["9.0", "10.0+PTX"]),  # vLLM's docs example for a GH200
        ("7.0;7.5;8.0;8.9;9.0;10.0;12.0", ["7.0", "7.5", "8.0", "8.9", "9.0", "10.0", "12.0"]),
        (" 9.0a ; 10.0f ", ["9.0a", "10.0f"]),
        ("12.1a+PTX", ["12.1a+PTX"]),
    ],
)
def test_parse_arch_list_accepts(text: str, tokens: list) -> None:
    assert parse_arch_list(text) == tokens


@pytest.mark.parametrize(
    "bad", ["90", "sm_90", "9", "9.0x", "9.10", "Hopper", "9.0+ptx", "9.0,8.0"]
)
def test_parse_arch_list_rejects_malformed(bad: str) -> None:
    with pytest.raises(PlanError) as exc:
        parse_arch_list("8.0;" + bad)
    msg = str(exc.value)
    assert f"vllm_source_cuda_arch_list entry {bad!r} is not an arch vLLM reads" in msg
    assert '"8.0;9.0"' in msg  # an example


def test_arch_capability_reads_only_what_vllms_cmake_reads() -> None:
    assert arch_capability("9.0") == Capability(9, 0)
    assert arch_capability("10.0f+PTX") == Capability(10, 0, "f")
    assert arch_capability("12.1a") == Capability(12, 1, "a")
    # Forms parse_capability reads elsewhere (vLLM's integers, nvcc's names) are not entries.
    assert arch_capability("90") is None
    assert arch_capability("sm_90") is None
    assert arch_capability("09.0") is None


@pytest.mark.parametrize("unsupported", ["6.1", "7.2", "9.5"])
def test_parse_arch_list_rejects_archs_vllm_does_not_build(unsupported: str) -> None:
    with pytest.raises(PlanError) as exc:
        parse_arch_list(f"9.0;{unsupported}")
    assert f"vLLM builds no kernels for {unsupported}" in str(exc.value)
    assert "vllm_source_cuda_arch_list" in str(exc.value)


def test_supported_archs_of_the_tag_widen_the_set() -> None:
    # 0.10.1 still builds for 7.2 (Xavier); vllm_source_facts returns its list.
    archs_0_10_1 = ["7.0", "7.2", "7.5", "8.0", "8.6", "8.7", "8.9", "9.0", "10.0", "10.1", "12.0"]
    assert parse_arch_list("7.2", archs_0_10_1) == ["7.2"]


def test_empty_explicit_tokens() -> None:
    with pytest.raises(PlanError, match="names no arch"):
        parse_arch_list(" ; ")


def test_explicit_list_must_cover_every_gpu() -> None:
    gpus = [
        {"index": 0, "name": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"},
        {"index": 1, "name": "NVIDIA H200", "compute_capability": "9.0"},
    ]
    with pytest.raises(PlanError) as exc:
        resolve_arch_list("cuda", "8.0", ["8.0", "9.0"], gpus)
    assert str(exc.value) == (
        "vllm_source_cuda_arch_list '8.0' has no kernels for GPU 1 (NVIDIA H200), compute "
        "capability 9.0,: the build would not run on this host. Add 9.0 to "
        'vllm_source_cuda_arch_list, or set it to "" to build for this host\'s GPUs'
    )
    # Without GPU details the message still names the capability.
    with pytest.raises(PlanError, match=r"this host's GPU of compute capability 9\.0"):
        resolve_arch_list("cuda", "8.0", ["8.0", "9.0"])


def test_explicit_list_that_covers_the_gpus_is_kept_as_given() -> None:
    assert resolve_arch_list("cuda", "8.0 9.0a", ["9.0"], H200_GPUS) == "8.0;9.0a"
    assert resolve_arch_list("cuda", "10.0f", ["10.3"]) == "10.0f"


def test_ptx_does_not_cover_a_newer_gpu() -> None:
    with pytest.raises(PlanError, match="has no kernels for"):
        resolve_arch_list("cuda", "8.0+PTX", ["9.0"], H200_GPUS)


@pytest.mark.parametrize(
    ("token", "capability", "covers"),
    [
        ("9.0", "9.0", True),
        ("9.0a", "9.0", True),
        ("9.0+PTX", "9.0", True),
        ("8.0+PTX", "9.0", False),
        ("10.0f", "10.3", True),  # family arch
        ("10.0a", "10.3", False),
        ("10.0", "10.3", False),
        ("12.0f", "12.1", True),
        ("12.0f", "10.0", False),
        ("10.3f", "10.0", False),
    ],
)
def test_arch_covers(token: str, capability: str, covers: bool) -> None:
    assert arch_covers(token, capability) is covers


def test_default_supported_archs() -> None:
    assert "9.0" in VLLM_CUDA_ARCHS and "12.0" in VLLM_CUDA_ARCHS
    assert "6.0" not in VLLM_CUDA_ARCHS


# --- MAX_JOBS / NVCC_THREADS ----------------------------------------------------------------------


def test_max_jobs_cpu_bound() -> None:
    jobs, reason, warnings = plan_max_jobs(0, 16, 128840, 4.0)  # 125.8 GiB
    assert jobs == 16
    assert reason == "16 CPUs, 125.8 GiB RAM at 4 GiB per compile job -> MAX_JOBS=16 (CPU-bound)"
    assert warnings == []


def test_max_jobs_memory_bound() -> None:
    jobs, reason, _ = plan_max_jobs(0, 64, 32 * 1024, 4.0)
    assert jobs == 8
    assert reason == "64 CPUs, 32.0 GiB RAM at 4 GiB per compile job -> MAX_JOBS=8 (memory-bound)"


def test_max_jobs_h200_host() -> None:
    jobs, reason, _ = plan_max_jobs(0, 32, H200_MEM_MB, 4.0)
    assert jobs == 32
    assert reason.startswith("32 CPUs, 251.8 GiB RAM")


def test_max_jobs_never_below_one() -> None:
    jobs, reason, _ = plan_max_jobs(0, 2, 1024, 4.0)
    assert jobs == 1
    assert reason.endswith("MAX_JOBS=1 (memory-bound)")
    assert memory_bound_jobs(1024, 4.0) == 1
    assert memory_bound_jobs(24 * 1024, 4.0) == 6


def test_max_jobs_uses_floor() -> None:
    assert plan_max_jobs(0, 64, int(23.9 * 1024), 4.0)[0] == 5
    assert plan_max_jobs(0, 64, 24 * 1024, 2.5)[0] == 9


def test_explicit_max_jobs_kept_with_oom_warning() -> None:
    jobs, reason, warnings = plan_max_jobs(32, 32, 64 * 1024, 4.0)
    assert jobs == 32
    assert reason.endswith("MAX_JOBS=32 (vllm_source_max_jobs)")
    assert len(warnings) == 1
    assert warnings[0].startswith("vllm_source_max_jobs=32 is more compile jobs than RAM holds")
    assert "OOM" in warnings[0]


def test_explicit_max_jobs_within_memory_is_quiet() -> None:
    assert plan_max_jobs(8, 32, 64 * 1024, 4.0) == (
        8,
        "32 CPUs, 64.0 GiB RAM at 4 GiB per compile job -> MAX_JOBS=8 (vllm_source_max_jobs)",
        [],
    )


def test_bad_job_inputs() -> None:
    with pytest.raises(PlanError, match="vllm_source_build_mem_per_job_gb must be above 0"):
        plan_max_jobs(0, 4, 1024, 0)
    with pytest.raises(PlanError, match="vllm_source_max_jobs must be 0"):
        plan_max_jobs(-1, 4, 1024, 4)
    with pytest.raises(PlanError, match="vllm_source_nvcc_threads must be 0"):
        plan_nvcc_threads(-2, 1, 4)


def test_nvcc_threads() -> None:
    assert plan_nvcc_threads(1, 3, 16) == (1, [])
    assert plan_nvcc_threads(4, 3, 16) == (4, [])
    assert plan_nvcc_threads(0, 1, 16) == (1, [])  # auto: one arch gains nothing from threads
    assert plan_nvcc_threads(0, 2, 16) == (2, [])
    assert plan_nvcc_threads(0, 3, 1) == (1, [])  # never above MAX_JOBS
    threads, warnings = plan_nvcc_threads(8, 2, 4)
    assert threads == 8
    assert "vllm_source_nvcc_threads=8 is above MAX_JOBS=4" in warnings[0]


def test_meminfo() -> None:
    text = "MemTotal:       131935660 kB\nMemFree:        1000 kB\n"
    assert mem_total_mb_from_meminfo(text) == 128843
    with pytest.raises(PlanError, match="MemTotal"):
        mem_total_mb_from_meminfo("nothing here")


# --- the whole plan ------------------------------------------------------------------------------


def test_plan_for_the_h200_host() -> None:
    result, warnings = plan()
    assert result == {
        "torch_variant": "cu130",
        "arch_list": "9.0",
        "max_jobs": 32,
        "max_jobs_reason": (
            "32 CPUs, 251.8 GiB RAM at 4 GiB per compile job -> MAX_JOBS=32 (CPU-bound)"
        ),
        "nvcc_threads": 1,
        "env": {
            "VLLM_TARGET_DEVICE": "cuda",
            "MAX_JOBS": "32",
            "NVCC_THREADS": "1",
            "TORCH_CUDA_ARCH_LIST": "9.0",
        },
    }
    assert warnings == []


def test_plan_for_an_empty_build_on_a_gpu_less_host() -> None:
    result, warnings = plan(
        target_device="empty",
        compute_capabilities=[],
        gpus=[],
        driver_cuda_version="",
        toolkit_cuda_version="",
        cpu_count=2,
        mem_total_mb=24 * 1024,
    )
    assert result["torch_variant"] == "cpu"
    assert result["arch_list"] == ""
    assert result["env"] == {"VLLM_TARGET_DEVICE": "empty", "MAX_JOBS": "2", "NVCC_THREADS": "1"}
    assert warnings == []


def test_plan_collects_every_warning() -> None:
    _, warnings = plan(torch_variant="cu128", toolkit_cuda_version="12.6", max_jobs=128)
    assert len(warnings) == 2
    assert "toolkit" in warnings[0] and "vllm_source_max_jobs=128" in warnings[1]


def test_plan_rejects_an_unknown_target() -> None:
    with pytest.raises(PlanError, match="vllm_source_target_device 'rocm'"):
        plan(target_device="rocm")


# --- the module ---------------------------------------------------------------------------------


def test_main_plans_the_h200_host(capsys: pytest.CaptureFixture[str]) -> None:
    rc, result = run_main(
        {
            "target_device": "cuda",
            "compute_capabilities": ["9.0"],
            "gpus": H200_GPUS,
            "driver_cuda_version": "13.0",
            "toolkit_cuda_version": "13.0",
            "max_jobs": "0",  # the role passes templated strings
            "nvcc_threads": "1",
            "mem_per_job_gb": "4",
            "cpu_count": 32,
            "mem_total_mb": H200_MEM_MB,
            "_ansible_check_mode": True,
        },
        capsys,
    )
    assert rc == 0
    assert result["changed"] is False
    assert result["vllm_build_plan"]["torch_variant"] == "cu130"
    assert result["vllm_build_plan"]["env"]["TORCH_CUDA_ARCH_LIST"] == "9.0"
    assert result["vllm_build_plan"]["max_jobs"] == 32
    assert not result.get("warnings")


def test_main_detects_cpus_and_memory(capsys: pytest.CaptureFixture[str]) -> None:
    import os

    rc, result = run_main({"target_device": "empty"}, capsys)
    assert rc == 0
    plan_ = result["vllm_build_plan"]
    cpus = len(os.sched_getaffinity(0))
    assert plan_["max_jobs_reason"].startswith(f"{cpus} CPUs, ")
    assert 1 <= plan_["max_jobs"] <= cpus
    assert plan_["torch_variant"] == "cpu"


def test_main_warns_about_oom(capsys: pytest.CaptureFixture[str]) -> None:
    rc, result = run_main(
        {
            "target_device": "empty",
            "max_jobs": 64,
            "cpu_count": 64,
            "mem_total_mb": 16 * 1024,
        },
        capsys,
    )
    assert rc == 0
    assert result["vllm_build_plan"]["max_jobs"] == 64
    # ansible-core 2.19 returns warnings as structured events; their text is inside.
    warnings = json.dumps(result["warnings"])
    assert "vllm_source_max_jobs=64 is more compile jobs than RAM holds (2 at 6 GiB" in warnings
    assert "OOM-killed" in warnings


def test_the_early_input_check_warns_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    # 02_host.yml checks the inputs with warn=false, 04_plan.yml plans with the tag's archs
    # and warns: each warning shows once per host, not twice.
    args = {"target_device": "empty", "max_jobs": 64, "cpu_count": 64, "mem_total_mb": 16 * 1024}
    rc, result = run_main({**args, "warn": False}, capsys)
    assert rc == 0 and result["vllm_build_plan"]["max_jobs"] == 64
    assert not result.get("warnings")


def test_main_fails_on_a_too_new_variant(capsys: pytest.CaptureFixture[str]) -> None:
    rc, result = run_main(
        {
            "compute_capabilities": ["8.0"],
            "driver_cuda_version": "12.4",
            "torch_variant": "cu130",
            "cpu_count": 8,
            "mem_total_mb": 65536,
        },
        capsys,
    )
    assert rc == 1
    assert result["msg"].startswith(
        "vllm_source_torch_variant cu130 needs a driver that supports CUDA 13.0; "
        "this host's driver supports 12.4"
    )


def test_main_uses_the_tags_supported_archs(capsys: pytest.CaptureFixture[str]) -> None:
    args = {
        "compute_capabilities": ["7.2"],
        "driver_cuda_version": "12.6",
        "cpu_count": 8,
        "mem_total_mb": 32768,
    }
    rc, result = run_main(args, capsys)
    assert rc == 1
    assert "compute capability 7.2" in result["msg"]
    supported = ["7.0", "7.2", "7.5", "8.0", "8.6", "8.7", "8.9", "9.0", "10.0", "10.1", "12.0"]
    rc, result = run_main({**args, "supported_archs": supported}, capsys)
    assert rc == 0
    assert result["vllm_build_plan"]["arch_list"] == "7.2"
    assert result["vllm_build_plan"]["torch_variant"] == "cu126"


def test_main_rejects_a_variant_outside_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    rc, result = run_main({"torch_variant": "cu118", "cpu_count": 2, "mem_total_mb": 4096}, capsys)
    assert rc == 1
    assert "torch_variant" in result["msg"]


def test_shared_h200_testdata_agrees_with_the_constants() -> None:
    shared = DATA.parents[1].parent / "shared" / "testdata" / "gpu-h200x2"
    if not shared.is_dir():
        pytest.skip("shared/testdata not beside the repository")
    csv = (shared / "nvidia-smi-query-gpu.csv").read_text().splitlines()[1:]
    assert [row.split(", ")[5] for row in csv] == ["9.0", "9.0"]
    assert int((shared / "free-b.txt").read_text().split()[7]) // (1024 * 1024) == H200_MEM_MB


# --- cgroup memory limits ---------------------------------------------------------------


def sysfs(files):
    return lambda rel: files.get(rel)


def test_cgroup_v2_limit_of_a_container_is_read_at_its_root() -> None:
    # Inside a container with its own cgroup namespace, /proc/self/cgroup says "0::/".
    assert cgroup_memory_limit_mb("0::/\n", sysfs({"memory.max": "4294967296\n"})) == 4096


def test_cgroup_v2_takes_the_tightest_limit_up_the_tree() -> None:
    files = {
        "system.slice/build.service/memory.max": "max\n",
        "system.slice/memory.max": "8589934592\n",
    }
    assert cgroup_memory_limit_mb("0::/system.slice/build.service\n", sysfs(files)) == 8192


def test_cgroup_v1_memory_controller_and_its_unlimited_value() -> None:
    text = "12:cpu,cpuacct:/docker/abc\n11:memory:/docker/abc\n"
    limited = {"memory/docker/abc/memory.limit_in_bytes": "2147483648\n"}
    assert cgroup_memory_limit_mb(text, sysfs(limited)) == 2048
    unlimited = {"memory/docker/abc/memory.limit_in_bytes": "9223372036854771712\n"}
    assert cgroup_memory_limit_mb(text, sysfs(unlimited)) is None


def test_no_cgroup_limit_means_none() -> None:
    assert (
        cgroup_memory_limit_mb("0::/user.slice\n", sysfs({"user.slice/memory.max": "max"})) is None
    )
    assert cgroup_memory_limit_mb("", sysfs({})) is None


def test_a_cgroup_limit_bounds_max_jobs_and_is_named() -> None:
    jobs, reason, _ = plan_max_jobs(0, 64, 8 * 1024, 4, "cgroup memory limit")
    assert jobs == 2
    assert "8.0 GiB RAM (cgroup memory limit)" in reason and "memory-bound" in reason


def test_main_plans_for_the_cgroup_limit_under_memtotal(capsys, monkeypatch) -> None:
    files = {
        "/proc/meminfo": "MemTotal:       263904712 kB\n",  # 251 GiB on the host
        "/proc/self/cgroup": "0::/\n",
        "/sys/fs/cgroup/memory.max": str(12 * 1024**3) + "\n",  # a 12 GiB container
    }
    monkeypatch.setattr(vllm_build_plan, "read_text", files.get)
    rc, result = run_main({"target_device": "empty", "cpu_count": 32}, capsys)
    assert rc == 0
    assert result["vllm_build_plan"]["max_jobs"] == 2  # 12 GiB at the default 6 GiB a job
    assert "12.0 GiB RAM (cgroup memory limit)" in result["vllm_build_plan"]["max_jobs_reason"]


def test_the_tags_own_arch_list_decides() -> None:
    # vLLM 0.10.1 builds no kernels for 12.1 (DGX Spark's GB10) or 11.0: with its own list
    # the plan refuses such a GPU before the build; with 0.30.0's list it planned a build that
    # has no kernels for it.
    from ansible.module_utils.vllm_fleet_cmake import cuda_supported_archs

    cmake = (DATA / "vllm-src" / "0.10.1" / "CMakeLists.txt").read_text()
    tag_archs = cuda_supported_archs(cmake)
    assert "12.1" not in tag_archs and "12.1" in VLLM_CUDA_ARCHS
    assert resolve_arch_list("cuda", "", ["12.1"], supported=VLLM_CUDA_ARCHS) == "12.1"
    with pytest.raises(PlanError, match=r"12\.1"):
        resolve_arch_list("cuda", "", ["12.1"], supported=tag_archs)
    with pytest.raises(PlanError, match=r"11\.0"):
        resolve_arch_list("cuda", "9.0;11.0", ["9.0"], supported=tag_archs)


def test_a_malformed_arch_list_is_refused_whatever_the_target() -> None:
    with pytest.raises(PlanError, match="vllm_source_cuda_arch_list entry 'sm_90'"):
        plan(target_device="empty", compute_capabilities=[], cuda_arch_list="9.0;sm_90")


def test_an_arch_list_the_target_ignores_is_warned_about() -> None:
    result, warnings = plan(target_device="empty", compute_capabilities=[], cuda_arch_list="9.0")
    assert result["arch_list"] == "" and "TORCH_CUDA_ARCH_LIST" not in result["env"]
    assert any("vllm_source_cuda_arch_list '9.0' is ignored" in w for w in warnings), warnings
    _, quiet = plan(target_device="empty", compute_capabilities=[], cuda_arch_list="")
    assert not any("ignored" in w for w in quiet)
