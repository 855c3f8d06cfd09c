"""The role plans for the archs the requested tag itself builds (issue 11's defect).

The plan used to run before the tag's pins were read, so every tag was checked against
vLLM 0.30.0's arch list: a GPU the tag has no kernels for passed the plan and failed only
after a 30-60 minute build. This renders the role's own plan arguments with the pins of
vLLM 0.10.1 (its real CMake files in tests/data) and runs vllm_build_plan on them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional

import pytest
import vllm_build_plan
import yaml
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.vllm_fleet_pins import source_facts
from ansible.module_utils.vllm_fleet_plan import VLLM_CUDA_ARCHS
from jinja2.nativetypes import NativeEnvironment

ROOT = Path(__file__).resolve().parents[2]
TAG = ROOT / "tests" / "data" / "vllm-src" / "0.10.1"
PLAN_PHASE = ROOT / "roles" / "vllm_source" / "tasks" / "04_plan.yml"


def read(relpath: str) -> Optional[str]:
    path = TAG / relpath
    return path.read_text(encoding="utf-8") if path.is_file() else None


def roles_plan_args(pins: Dict[str, Any]) -> Dict[str, Any]:
    """The plan task's supported_archs as the role renders it, with these pins read."""
    task = next(t for t in yaml.safe_load(PLAN_PHASE.read_text()) if "vllm_build_plan" in t)
    expression = task["vllm_build_plan"]["supported_archs"]
    return {
        "supported_archs": NativeEnvironment()
        .from_string(expression)
        .render(__vllm_source_pins=pins)
    }


def test_a_gpu_the_tag_has_no_kernels_for_fails_the_plan(capsys: pytest.CaptureFixture[str]):
    pins = source_facts(read, lambda rel: (TAG / rel).is_file())
    args = roles_plan_args(pins)
    # 10.3 (B300) is in vLLM 0.30.0's list, not in 0.10.1's.
    assert "10.3" in VLLM_CUDA_ARCHS and "10.3" not in args["supported_archs"]
    host = {
        "target_device": "cuda",
        "compute_capabilities": ["10.3"],
        "driver_cuda_version": "13.0",
        "toolkit_cuda_version": "12.8",
        "torch_variants_available": ["cu128"],
        "cpu_count": 8,
        "mem_total_mb": 65536,
    }
    with patch_module_args({**host, **args}), pytest.raises(SystemExit) as exc:
        vllm_build_plan.main()
    result = json.loads(capsys.readouterr().out)
    assert exc.value.code == 1
    assert "vLLM builds no kernels for compute capability 10.3" in result["msg"]
    assert "7.0;7.2;7.5;8.0;8.6;8.7;8.9;9.0;10.0;10.1;12.0" in result["msg"]
