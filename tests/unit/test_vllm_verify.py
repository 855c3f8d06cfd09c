"""Tests for library/vllm_verify.py and the module_utils it runs: vllm_fleet_probe (the child
scripts), vllm_fleet_identity, vllm_fleet_modelopt, vllm_fleet_engine_check, vllm_fleet_verify.

Unit tests use files recorded from real runs (tests/data/vllm-verify): the config files that
nvidia-modelopt 0.47.0 wrote for the fixture checkpoints, and the probe report of a real
vLLM 0.30.0 VLLM_TARGET_DEVICE=empty install. The integration tests run the module through
`ansible` against a real venv (VLLM_VERIFY_VENV) and checkpoints (VLLM_CHECKPOINTS, made by
tools/make-checkpoints.sh).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
import vllm_verify as vv
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.vllm_fleet_child import CHILD_HELPERS, last_line
from ansible.module_utils.vllm_fleet_engine_check import (
    ENGINE_CHECK_CONFIG,
    engine_problem,
    engine_request,
    engine_result,
    run_engine_check,
)
from ansible.module_utils.vllm_fleet_identity import (
    commit_check,
    normalize_expected_version,
    recorded_commit,
    version_problem,
)
from ansible.module_utils.vllm_fleet_modelopt import (
    checkpoint_entries,
    checkpoint_metadata,
    checkpoint_problem,
    gpu_problems,
    is_modelopt_method,
    is_noproducer_trap,
    modelopt_methods_of,
    registry_problem,
)
from ansible.module_utils.vllm_fleet_probe import (
    EXTENSIONS_SCRIPT,
    PROBE_SCRIPT,
    parse_extensions,
    parse_probe_output,
    probe_request,
)
from ansible.module_utils.vllm_fleet_verify import (
    NO_KERNELS_KIND,
    evaluate,
    extension_warnings,
    kernels_problem,
    kernels_state,
)
from modelopt_shapes import write_shapes

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA = REPO_ROOT / "tests" / "data" / "vllm-verify"
FP8 = "tiny-llama-modelopt-fp8"
LEGACY = "tiny-llama-legacy-noproducer"
PLAIN = "tiny-llama"


@pytest.fixture
def checkpoints(tmp_path: Path) -> Path:
    """Checkpoint dirs holding the recorded config files (no weights needed for metadata)."""
    for name in (FP8, LEGACY, PLAIN):
        shutil.copytree(DATA / name, tmp_path / name)
    return tmp_path


@pytest.fixture
def probe_report(checkpoints: Path) -> Dict[str, Any]:
    """The recorded probe report with its checkpoint paths pointed at the tmp copies."""
    report = json.loads((DATA / "probe-vllm-0.30.0-empty.json").read_text())
    report["checkpoints"] = {
        path.replace("CHECKPOINTS", str(checkpoints)): value
        for path, value in report["checkpoints"].items()
    }
    return report


# --- versions ---------------------------------------------------------------------------


def test_expected_version_accepts_tag_form() -> None:
    assert normalize_expected_version("v0.30.0") == "0.30.0"
    assert normalize_expected_version(" 0.10.1 ") == "0.10.1"
    assert version_problem("v0.30.0", "0.30.0") is None
    assert version_problem("0.30.0+empty", "0.30.0") is None
    assert version_problem(None, "0.30.0") is None


def test_version_mismatch_names_the_variable() -> None:
    problem = version_problem("v0.22.0", "0.30.0")
    assert problem is not None
    assert "installed vLLM is 0.30.0, expected 0.22.0" in problem
    assert "vllm_source_version" in problem


# --- commits ----------------------------------------------------------------------------


def test_recorded_commit_from_version_file_and_version() -> None:
    # 0.30.0's sdist _version.py records commit_id 'gced6857af'.
    assert recorded_commit("gced6857af", "0.30.0") == "ced6857af"
    assert recorded_commit(None, "0.30.1.dev1+g1a2b3c4d") == "1a2b3c4d"
    assert recorded_commit(None, "0.1.dev5+g1234567.d20250101") == "1234567"
    assert recorded_commit(None, "0.30.0+empty") is None
    assert recorded_commit("", "0.30.0") is None


def test_commit_check_states() -> None:
    full = "ced6857af0123456789abcdef0123456789abcde"
    assert commit_check(None, "ced6857af") == ("not requested", None)
    assert commit_check(full, "ced6857af") == ("matched", None)
    assert commit_check("gCED6857AF", "ced6857af0") == ("matched", None)
    assert commit_check(full, None) == ("unknown", None)
    state, problem = commit_check("0123456", "ced6857af")
    assert state == "mismatched"
    assert problem is not None and "vllm_source_commit" in problem and "ced6857af" in problem
    state, problem = commit_check("v0.30.0", "ced6857af")
    assert state == "invalid"
    assert problem is not None and "not a commit SHA" in problem


# --- registry ---------------------------------------------------------------------------


def test_registry_ok_on_recorded_0_30_0(probe_report: Dict[str, Any]) -> None:
    methods = probe_report["methods"]
    assert modelopt_methods_of(methods) == [
        "modelopt",
        "modelopt_fp4",
        "modelopt_mxfp8",
        "modelopt_mixed",
    ]
    assert registry_problem(methods, probe_report["resolved"]) is None


def test_registry_missing_modelopt_fp4() -> None:
    problem = registry_problem(["awq", "fp8", "modelopt"], {"modelopt": "ModelOptFp8Config"})
    assert problem is not None
    assert "lacks modelopt_fp4" in problem and "vllm_source_version" in problem


def test_registry_unresolvable_method() -> None:
    resolved = {"modelopt": "ModelOptFp8Config", "modelopt_fp4": None}
    problem = registry_problem(["modelopt", "modelopt_fp4"], resolved)
    assert problem is not None and "does not resolve modelopt_fp4" in problem


# --- checkpoints ------------------------------------------------------------------------


def test_metadata_of_real_exports(checkpoints: Path) -> None:
    fp8 = checkpoint_metadata(str(checkpoints / FP8))
    assert fp8["hf_quant_config_producer"] == "modelopt"
    assert fp8["config_has_quantization_config"] is True
    assert not is_noproducer_trap(fp8)
    legacy = checkpoint_metadata(str(checkpoints / LEGACY))
    assert legacy["has_hf_quant_config"] is True
    assert legacy["hf_quant_config_producer"] is None
    assert legacy["config_has_quantization_config"] is False
    assert is_noproducer_trap(legacy)
    plain = checkpoint_metadata(str(checkpoints / PLAIN))
    assert plain["has_config"] and not plain["has_hf_quant_config"]
    assert not is_noproducer_trap(plain)


def test_metadata_reports_broken_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    meta = checkpoint_metadata(str(tmp_path))
    assert meta["has_config"] is False
    assert meta["errors"] and "JSONDecodeError" in meta["errors"][0]


def test_modelopt_checkpoint_has_no_problem(checkpoints: Path) -> None:
    meta = checkpoint_metadata(str(checkpoints / FP8))
    assert checkpoint_problem(str(checkpoints / FP8), "modelopt", None, meta) is None
    assert is_modelopt_method("modelopt_fp4")
    assert not is_modelopt_method(None)
    assert not is_modelopt_method("fp8")


def test_noproducer_trap_unquantized_message(checkpoints: Path) -> None:
    path = str(checkpoints / LEGACY)
    problem = checkpoint_problem(path, None, None, checkpoint_metadata(path), "0.30.0")
    assert problem is not None
    assert "hf_quant_config.json has no producer" in problem
    assert "vLLM 0.30.0 resolves no quantization" in problem and "UNQUANTIZED" in problem
    assert "export_hf_checkpoint" in problem
    assert '"producer": {"name": "modelopt"' in problem
    assert "vllm_source_verify_checkpoints" in problem


def test_noproducer_trap_raising_message(checkpoints: Path) -> None:
    path = str(checkpoints / LEGACY)
    error = "ValueError: Unknown quantization method: . Must be one of [...]"
    problem = checkpoint_problem(path, None, error, checkpoint_metadata(path), "0.10.1")
    assert problem is not None
    assert f"vLLM 0.10.1 rejects it ({error})" in problem
    assert "export_hf_checkpoint" in problem


def test_trap_ignored_when_config_json_decides(checkpoints: Path) -> None:
    # config.json's quantization_config wins over hf_quant_config.json in vLLM.
    path = checkpoints / LEGACY
    config = json.loads((path / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "fp8"}
    (path / "config.json").write_text(json.dumps(config))
    meta = checkpoint_metadata(str(path))
    assert not is_noproducer_trap(meta)
    problem = checkpoint_problem(str(path), "fp8", None, meta, "0.30.0")
    assert problem is not None and "resolves to quantization 'fp8'" in problem


def test_plain_checkpoint_message(checkpoints: Path) -> None:
    path = str(checkpoints / PLAIN)
    problem = checkpoint_problem(path, None, None, checkpoint_metadata(path))
    assert problem is not None
    assert "has no quantization config" in problem and "loads it unquantized" in problem


def test_checkpoint_entries_flags_missing_dir(tmp_path: Path) -> None:
    missing = str(tmp_path / "absent")
    entries, problems = checkpoint_entries([missing], {})
    assert entries == [
        {
            "path": missing,
            "quantization": None,
            "is_modelopt": False,
            "hf_quant_config_producer": None,
            "error": "not a directory",
            "load_error": None,
            "quant_config": None,
            "min_capability": None,
            "exclude_modules": None,
        }
    ]
    assert len(problems) == 1 and "is not a directory" in problems[0]


# --- kernels ----------------------------------------------------------------------------


def test_kernels_state_and_requirement() -> None:
    kernels, kind = kernels_state(None)
    assert kernels == {"vllm_C": True, "error": ""} and kind == "cuda"
    error = "ModuleNotFoundError: No module named 'vllm._C'"
    kernels, kind = kernels_state(error)
    assert kernels == {"vllm_C": False, "error": error}
    assert kind == NO_KERNELS_KIND
    assert kernels_problem(False, kernels) is None
    problem = kernels_problem(True, kernels)
    assert problem is not None and "vllm_source_target_device" in problem


# --- probe output and evaluation --------------------------------------------------------


def test_parse_probe_output() -> None:
    report, error = parse_probe_output(0, 'noise\n{"version": "0.30.0"}\n', "")
    assert report == {"version": "0.30.0"} and error is None
    report, error = parse_probe_output(-11, "", "Fatal Python error: Segmentation fault\n")
    assert report == {}
    assert error == (
        "the probe exited with -11 and no report: Fatal Python error: Segmentation fault"
    )


def test_evaluate_recorded_report(checkpoints: Path, probe_report: Dict[str, Any]) -> None:
    paths = [str(checkpoints / FP8)]
    params = {"expect_version": "v0.30.0", "expect_commit": None, "require_kernels": False}
    result, problems, warnings = evaluate(params, probe_report, paths)
    assert problems == [] and warnings == []
    assert result["vllm_public_version"] == "0.30.0"
    assert result["vllm_local_version"] == "empty"  # from the dist version 0.30.0+empty
    assert result["torch_version"] == "2.13.0+cpu" and result["torch_cuda_version"] is None
    assert result["build_kind"] == NO_KERNELS_KIND
    assert result["modelopt_methods"]["modelopt"] == "ModelOptFp8Config"
    assert result["modelopt_methods"]["modelopt_fp4"] == "ModelOptNvFp4Config"
    assert result["checkpoints"] == [
        {
            "path": paths[0],
            "quantization": "modelopt",
            "is_modelopt": True,
            "hf_quant_config_producer": "modelopt",
            "error": None,
            "load_error": None,
            "quant_config": None,
            "min_capability": None,
            "exclude_modules": None,
        }
    ]


def test_evaluate_collects_every_problem(checkpoints: Path, probe_report: Dict[str, Any]) -> None:
    paths = [str(checkpoints / name) for name in (FP8, LEGACY, PLAIN)]
    params = {"expect_version": "0.22.0", "expect_commit": "ced6857af", "require_kernels": True}
    result, problems, warnings = evaluate(params, probe_report, paths)
    assert result["commit_check"] == "unknown"
    assert len(warnings) == 1 and "vllm_source_commit was not checked" in warnings[0]
    assert len(problems) == 4
    assert "expected 0.22.0" in problems[0]
    assert "vllm._C does not import" in problems[1]
    assert "hf_quant_config.json has no producer" in problems[2]
    assert "has no quantization config" in problems[3]
    assert [entry["is_modelopt"] for entry in result["checkpoints"]] == [True, False, False]


# --- the module's main() ----------------------------------------------------------------


def run_main(args: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> Dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        vv.main()
    return json.loads(capsys.readouterr().out)


def test_main_with_recorded_probe(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    checkpoints: Path,
    probe_report: Dict[str, Any],
) -> None:
    calls: List[Dict[str, Any]] = []

    def fake_run_command(self: Any, args: List[str], **kwargs: Any) -> Any:
        calls.append({"args": args, **kwargs})
        return 0, json.dumps(probe_report) + "\n", "INFO vllm log lines\n"

    monkeypatch.setattr(vv.AnsibleModule, "run_command", fake_run_command)
    out = run_main({"checkpoints": [str(checkpoints / FP8)], "expect_version": "0.30.0"}, capsys)
    assert out.get("failed") is not True, out
    assert out["changed"] is False
    assert out["checkpoints"][0]["quantization"] == "modelopt"
    assert calls[0]["args"][:3] == [sys.executable, "-I", "-c"]
    assert calls[0]["environ_update"] == {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    assert json.loads(calls[0]["data"]) == {
        "checkpoints": [str(checkpoints / FP8)],
        "capabilities": {},
    }


def test_main_fails_when_vllm_does_not_import(capsys: pytest.CaptureFixture[str]) -> None:
    # Runs the real probe with this interpreter, which has no vLLM.
    out = run_main({"offline": False}, capsys)
    assert out["failed"] is True
    assert "vllm does not import with" in out["msg"]
    assert "ModuleNotFoundError: No module named 'vllm'" in out["msg"]
    assert "vllm_source_python" in out["msg"]


def test_module_file_imports_no_vllm() -> None:
    code = f"import sys; sys.path.insert(0, {str(REPO_ROOT / 'library')!r}); "
    code += "import ansible.module_utils as mu; "
    code += f"mu.__path__.append({str(REPO_ROOT / 'module_utils')!r}); import vllm_verify; "
    code += "assert not [m for m in sys.modules if m.split('.')[0] in ('vllm', 'torch')]"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_checkpoint_entries_flags_a_checkpoint_this_user_cannot_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: path != str(locked))
    entries, problems = checkpoint_entries([str(locked)], {})
    assert entries[0]["error"] == "not readable"
    assert len(problems) == 1
    assert "not readable by user" in problems[0]
    assert "vllm_source_user" in problems[0] and "chmod -R a+rX" in problems[0]


def test_last_line_skips_pydantics_link_footer() -> None:
    text = (
        "1 validation error for ModelConfig\n"
        "  Value error, Invalid repository ID or local directory specified: '/srv/x'\n"
        "    For further information visit https://errors.pydantic.dev/2.14/v/value_error\n"
    )
    assert last_line(text).startswith("Value error, Invalid repository ID")


def test_the_children_read_errors_with_the_modules_last_line() -> None:
    # The child scripts cannot import module_utils: they start with CHILD_HELPERS, the text
    # that defines last_line, so a child and the module name an error by the same line.
    message = "1 validation error\n  Value error, bad path\n    For further information visit x\n"
    code = CHILD_HELPERS + f"print(exception_line(ValueError({message!r})))"
    done = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == last_line(message) == "Value error, bad path"


def test_probe_request_names_readable_checkpoints_and_vllms_capabilities(
    checkpoints: Path, tmp_path: Path
) -> None:
    fp8, missing = str(checkpoints / FP8), str(tmp_path / "absent")
    assert probe_request([fp8, missing], ["9.0", "sm_100", "Hopper"]) == {
        "checkpoints": [fp8],
        "capabilities": {"9.0": 90, "sm_100": 100},
    }


def fp8_entry(path: str = "/models/fp8") -> Dict[str, Any]:
    return {"path": path, "quantization": "modelopt", "is_modelopt": True}


def test_gpu_problems_refuses_a_gpu_older_than_the_methods_minimum() -> None:
    problems = gpu_problems([fp8_entry()], {"modelopt": 89}, {}, ["8.0", "9.0"], "0.22.0")
    assert len(problems) == 1
    assert "compute capability 8.9 or newer" in problems[0]
    assert "GPUs have 8.0" in problems[0] and "9.0" not in problems[0].split("have")[1]
    assert "vllm_source_verify_checkpoints" in problems[0]


def test_gpu_problems_refuses_fp8_without_kernels_for_the_gpu() -> None:
    problems = gpu_problems([fp8_entry()], {"modelopt": 80}, {"9.0": False}, ["9.0"])
    assert len(problems) == 1
    assert "CUTLASS FP8 kernels do not support compute capability 9.0" in problems[0]
    assert "vllm_source_cuda_arch_list" in problems[0]


def test_gpu_problems_accepts_supported_gpus_and_hosts_without_gpus() -> None:
    assert gpu_problems([fp8_entry()], {"modelopt": 89}, {"9.0": True}, ["9.0"]) == []
    assert gpu_problems([fp8_entry()], {"modelopt": 89}, {}, []) == []
    plain = {"path": "/m", "quantization": None, "is_modelopt": False}
    assert gpu_problems([plain], {"modelopt": 89}, {}, ["7.5"]) == []


# --- what the engine does at start: building the quantization config ----------------------

# Reasons a real vLLM 0.30.0 (VLLM_TARGET_DEVICE=empty) gave for crafted shapes
# (tests/modelopt_shapes.py) when the probe built their quantization config.
NVFP4_NO_GROUP_SIZE = (
    "ValueError: NVFP4 quantization requires the following fields in hf_quant_config.json: "
    "['group_size']"
)
NO_QUANT_ALGO = "ValueError: Missing 'quant_algo' in quantization config"
MXFP8_FLOAT16 = (
    "ValueError: torch.float16 is not supported for quantization method modelopt_mxfp8. "
    "Supported dtypes: [torch.bfloat16]"
)
NESTED_MXFP8 = (
    "Value error, Unknown ModelOpt quant algo: MXFP8 [type=value_error, "
    "input_value=ArgsKwargs((), {'model': ..._tokenizer_init': True}), input_type=ArgsKwargs]"
)
OLD_GPU = (
    "ValueError: The quantization method modelopt_fp4 is not supported for the current GPU. "
    "Minimum capability: 75. Current capability: 70."
)


@pytest.fixture
def shapes(tmp_path: Path) -> Dict[str, Any]:
    return write_shapes(DATA / PLAIN, tmp_path / "shapes", "0.30.0")


def loaded(quantization: str, **fields: Any) -> Dict[str, Any]:
    """One checkpoint of a probe report whose quantization config was built."""
    entry = {"quantization": quantization, "error": None, "load_error": None}
    entry.update({"quant_config": None, "min_capability": None, "exclude_modules": None})
    return {**entry, **fields}


def test_a_nested_checkpoint_vllm_refuses_at_load_is_a_problem(shapes: Dict[str, Any]) -> None:
    path = str(shapes["nested-nvfp4-no-group-size"].path)
    problem = checkpoint_problem(
        path, "modelopt_fp4", None, checkpoint_metadata(path), "0.30.0", NVFP4_NO_GROUP_SIZE
    )
    assert problem is not None
    assert problem.startswith(f"checkpoint {path} (listed in vllm_source_verify_checkpoints)")
    assert "is modelopt_fp4 to vLLM 0.30.0, which refuses it" in problem
    assert f"from hf_quant_config.json: {NVFP4_NO_GROUP_SIZE}." in problem
    assert (
        'Add the fields vLLM lists to the "quantization" block of hf_quant_config.json' in problem
    )
    assert "export_hf_checkpoint" in problem


def test_a_flat_checkpoint_vllm_refuses_at_load_names_config_json(shapes: Dict[str, Any]) -> None:
    path = str(shapes["flat-no-quant-algo"].path)
    meta = checkpoint_metadata(path)
    problem = checkpoint_problem(path, "modelopt", None, meta, "0.30.0", NO_QUANT_ALGO)
    assert problem is not None
    assert f"from config.json's quantization_config: {NO_QUANT_ALGO}." in problem
    assert f"Correct config.json's quantization_config in {path}" in problem
    assert "export_hf_checkpoint" in problem and "vllm_source_verify_checkpoints" in problem


def test_load_fixes_follow_vllms_reason(shapes: Dict[str, Any]) -> None:
    path = str(shapes["flat-mxfp8-float16"].path)
    problem = checkpoint_problem(
        path, "modelopt_mxfp8", None, checkpoint_metadata(path), "0.30.0", MXFP8_FLOAT16
    )
    assert problem is not None and f'Set "dtype" in {path}/config.json' in problem
    path = str(shapes["flat-nvfp4"].path)
    problem = checkpoint_problem(
        path, "modelopt_fp4", None, checkpoint_metadata(path), "x", OLD_GPU
    )
    assert problem is not None and "Minimum capability: 75" in problem
    assert f"Serve {path} on GPUs with at least the minimum capability" in problem


def test_a_checkpoint_vllm_loads_has_no_problem(shapes: Dict[str, Any]) -> None:
    path = str(shapes["nested-nvfp4"].path)
    assert checkpoint_problem(path, "modelopt_fp4", None, checkpoint_metadata(path)) is None


def test_a_nested_algo_vllm_cannot_classify_says_where_it_belongs(
    shapes: Dict[str, Any],
) -> None:
    path = str(shapes["nested-mxfp8"].path)
    problem = checkpoint_problem(path, None, NESTED_MXFP8, checkpoint_metadata(path), "0.30.0")
    assert problem is not None
    assert "Unknown ModelOpt quant algo: MXFP8" in problem
    assert "must be in config.json's quantization_config" in problem
    assert "export_hf_checkpoint" in problem and "vllm_source_verify_checkpoints" in problem


def test_checkpoint_entries_report_what_the_engine_would_load(shapes: Dict[str, Any]) -> None:
    good, bad = str(shapes["flat-mixed"].path), str(shapes["nested-nvfp4-no-group-size"].path)
    probed = {
        good: loaded(
            "modelopt_mixed",
            quant_config="ModelOptMixedPrecisionConfig",
            min_capability=75,
            exclude_modules=["lm_head"],
        ),
        bad: loaded("modelopt_fp4", load_error=NVFP4_NO_GROUP_SIZE),
    }
    entries, problems = checkpoint_entries([good, bad], probed, "0.30.0")
    assert entries[0] == {
        "path": good,
        "quantization": "modelopt_mixed",
        "is_modelopt": True,
        "hf_quant_config_producer": None,
        "error": None,
        "load_error": None,
        "quant_config": "ModelOptMixedPrecisionConfig",
        "min_capability": "7.5",
        "exclude_modules": ["lm_head"],
    }
    assert entries[1]["load_error"] == NVFP4_NO_GROUP_SIZE and entries[1]["is_modelopt"]
    assert len(problems) == 1 and problems[0].startswith(f"checkpoint {bad} ")
    assert NVFP4_NO_GROUP_SIZE in problems[0]


def test_evaluate_fails_a_checkpoint_that_only_resolves_a_name(
    shapes: Dict[str, Any], probe_report: Dict[str, Any]
) -> None:
    # Before the probe built the quantization config, this report passed: ModelConfig named
    # modelopt_fp4 and nothing else was asked.
    path = str(shapes["nested-nvfp4-no-group-size"].path)
    report = {
        **probe_report,
        "checkpoints": {path: loaded("modelopt_fp4", load_error=NVFP4_NO_GROUP_SIZE)},
    }
    result, problems, _ = evaluate({"expect_version": "0.30.0"}, report, [path])
    assert [p for p in problems if NVFP4_NO_GROUP_SIZE in p], problems
    assert result["checkpoints"][0]["load_error"] == NVFP4_NO_GROUP_SIZE


def test_gpu_problems_use_the_loaded_configs_minimum_capability() -> None:
    # The registry's class says 7.5; the checkpoint's own loaded config says 8.9.
    entry = {**fp8_entry("/models/nvfp4"), "quantization": "modelopt_fp4", "min_capability": "8.9"}
    problems = gpu_problems([entry], {"modelopt_fp4": 75}, {}, ["8.0"], "0.30.0")
    assert len(problems) == 1 and "compute capability 8.9 or newer" in problems[0]
    entry["min_capability"] = None  # not loaded: the registry's minimum decides
    assert gpu_problems([entry], {"modelopt_fp4": 75}, {}, ["8.0"]) == []


# --- the engine check and the compiled extensions -----------------------------------------

ENGINE_DEATH = (
    "(EngineCore_DP0 pid=77) ERROR 12-01 19:22:10 [core.py:708] Traceback (most recent call "
    "last):\n"
    '(EngineCore_DP0 pid=77) ERROR 12-01 19:22:10 [core.py:708]   File "/v/topk.py", line 9\n'
    "(EngineCore_DP0 pid=77) ERROR 12-01 19:22:10 [core.py:708]     import flashinfer\n"
    "(EngineCore_DP0 pid=77) ERROR 12-01 19:22:10 [core.py:708] ModuleNotFoundError: No "
    "module named 'flashinfer'\n"
)


def test_engine_result_names_the_root_cause_and_the_fix() -> None:
    report = '{"error": "RuntimeError: Engine core initialization failed. See root cause above."}'
    engine = engine_result(0, report + "\n", ENGINE_DEATH, [], 600)
    assert engine["state"] == "failed"
    assert engine["error"].endswith(
        '(root cause: File "/v/topk.py", line 9 | import flashinfer | ModuleNotFoundError: '
        "No module named 'flashinfer')"
    )
    problem = engine_problem(engine, ["flashinfer-python", "triton"])
    assert problem.startswith("an engine with this release does not start on this host's GPU:")
    assert "left out flashinfer-python, triton (vllm_source_runtime_deps_exclude)" in problem
    assert "VLLM_USE_FLASHINFER_SAMPLER" in problem
    started = engine_result(0, '{"tokens": 4, "load_s": 12.5}\n', "", [], 600)
    assert (started["state"], started["tokens"], started["load_s"]) == ("started", 4, 12.5)
    assert engine_problem(started, []) is None
    assert engine_result(None, "", "", [], 5)["error"] == "timed out after 5 s"
    assert "generated no tokens" in engine_result(0, '{"tokens": 0}\n', "", [], 5)["error"]


def test_engine_check_runs_a_real_child_and_ends_it() -> None:
    # This interpreter has no vLLM: the child's report says so and the check fails with it.
    params: Dict[str, Any] = {
        "engine_check": True,
        "engine_environment": {"VLLM_USE_FLASHINFER_SAMPLER": "0"},
        "engine_gpu_memory_utilization": 0.1,
        "engine_timeout": 60,
    }
    engine = run_engine_check(params, kernels=True)
    assert engine["state"] == "failed"
    assert "No module named 'vllm'" in engine["error"]
    assert engine["ended_processes"] == []
    assert run_engine_check(params, kernels=False)["state"] == "skipped"
    params["engine_check"] = False
    assert run_engine_check(params, kernels=True) == {"state": "not requested"}


def test_engine_request_uses_dummy_weights_and_token_ids() -> None:
    request = engine_request("/tmp/m", 0.2)
    assert request["load_format"] == "dummy"
    assert request["prompt_token_ids"] and max(request["prompt_token_ids"]) < 512
    assert ENGINE_CHECK_CONFIG["hidden_size"] // ENGINE_CHECK_CONFIG["num_attention_heads"] == 64


def test_extensions_that_do_not_import_are_named() -> None:
    extensions = {"vllm._C": None, "vllm._flashmla_C": "ImportError: libcuda.so.1: cannot open"}
    assert extension_warnings(extensions) == [
        "compiled extension vllm._flashmla_C does not import: ImportError: libcuda.so.1: cannot "
        "open; the features it carries are unavailable in this release"
    ]


def test_extensions_of_a_crashing_import_are_named() -> None:
    stdout = (
        '{"modules": ["vllm._C", "vllm._moe_C", "vllm._flashmla_C", "vllm.cumem_allocator"]}\n'
        '{"module": "vllm._C", "error": null}\n'
        '{"module": "vllm._moe_C", "error": "ImportError: undefined symbol: foo"}\n'
    )
    assert parse_extensions(-11, stdout, "Fatal Python error: Segmentation fault\n") == {
        "vllm._C": None,
        "vllm._moe_C": "ImportError: undefined symbol: foo",
        "vllm._flashmla_C": "the import child exited with -11: Fatal Python error: "
        "Segmentation fault",
        "vllm.cumem_allocator": "not tried: the import child had crashed before it",
    }


def test_extensions_script_lists_and_imports_every_so(tmp_path: Path) -> None:
    # A stand-in vllm package with one importable "extension" (a .so name over a Python file
    # is not loadable, so the test checks listing and the error path with a broken one).
    site = tmp_path / "site"
    (site / "vllm" / "sub").mkdir(parents=True)
    (site / "vllm" / "__init__.py").write_text("")
    (site / "vllm" / "_C.abi3.so").write_bytes(b"not an ELF file")
    (site / "vllm" / "sub" / "_x_C.cpython-312-x86_64-linux-gnu.so").write_bytes(b"")
    done = subprocess.run(
        [sys.executable, "-c", EXTENSIONS_SCRIPT],
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=False,
    )
    found = parse_extensions(done.returncode, done.stdout, done.stderr)
    assert sorted(found) == ["vllm._C", "vllm.sub._x_C"]
    assert found["vllm._C"].startswith("ImportError")  # not an ELF file
    assert found["vllm.sub._x_C"].startswith(("ImportError", "ModuleNotFoundError"))


STAND_IN_VLLM = {
    "__init__.py": "__version__ = '0.30.1.dev1+g1a2b3c4d'\n",
    "_C.py": "",
    "_custom_ops.py": "def cutlass_scaled_mm_supports_fp8(capability):\n"
    "    return capability >= 89\n",
    "model_executor/__init__.py": "",
    "model_executor/layers/__init__.py": "",
    "model_executor/layers/quantization.py": (
        "class ModelOptFp8Config:\n"
        "    @classmethod\n"
        "    def get_min_capability(cls):\n"
        "        return 89\n"
        "QUANTIZATION_METHODS = ['fp8', 'modelopt']\n"
        "def get_quantization_config(name):\n"
        "    return ModelOptFp8Config\n"
    ),
    "config.py": (
        "class LoadConfig:\n"
        "    pass\n"
        "class ModelOptFp8Config:\n"
        "    exclude_modules = ['lm_head']\n"
        "    def get_min_capability(self):\n"
        "        return 80\n"
        "class ModelConfig:\n"
        "    def __init__(self, model, skip_tokenizer_init):\n"
        "        self.model = model\n"
        "        self.quantization = None\n"
        "        if model.endswith(('-fp8', '-fp8-broken')):\n"
        "            self.quantization = 'modelopt'\n"
        "class VllmConfig:\n"
        "    @staticmethod\n"
        "    def _get_quantization_config(model_config, load_config):\n"
        "        assert isinstance(load_config, LoadConfig)\n"
        "        if model_config.model.endswith('-broken'):\n"
        "            raise ValueError('exclude_modules must be a list, got <class 1>')\n"
        "        return ModelOptFp8Config()\n"
    ),
}


# vLLM 0.22+: the public VllmConfig.get_quantization_config (deep copy, then the static one).
PUBLIC_GET_QUANTIZATION_CONFIG = (
    "def _public(model_config, load_config):\n"
    "    import copy\n"
    "    config = VllmConfig._get_quantization_config(copy.deepcopy(model_config), load_config)\n"
    "    config.exclude_modules = ['lm_head', 'via get_quantization_config']\n"
    "    return config\n"
    "VllmConfig.get_quantization_config = staticmethod(_public)\n"
)


@pytest.mark.parametrize("public", [True, False], ids=["get_quantization_config", "static-only"])
def test_probe_script_reads_a_stand_in_vllm(tmp_path: Path, public: bool) -> None:
    # A stand-in vllm package with kernels, a registry, config classes and FP8 kernels for
    # 8.9 and newer: the probe's report, as evaluate() reads it. The probe builds each
    # ModelOpt checkpoint's quantization config as the engine does at start, with the public
    # VllmConfig.get_quantization_config or, in older vLLM, the static
    # _get_quantization_config, and reports the error of one vLLM refuses.
    site = tmp_path / "site"
    for name, text in STAND_IN_VLLM.items():
        (site / "vllm" / name).parent.mkdir(parents=True, exist_ok=True)
        (site / "vllm" / name).write_text(text)
    if public:
        with open(site / "vllm" / "config.py", "a") as handle:
            handle.write(PUBLIC_GET_QUANTIZATION_CONFIG)
    fp8, plain, broken = tmp_path / "model-fp8", tmp_path / "model", tmp_path / "m-fp8-broken"
    for path in (fp8, plain, broken):
        path.mkdir()
    request = probe_request([str(fp8), str(plain), str(broken)], ["8.0", "9.0"])
    done = subprocess.run(
        [sys.executable, "-c", PROBE_SCRIPT],
        input=json.dumps(request),
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    )
    report, error = parse_probe_output(done.returncode, done.stdout, done.stderr)
    assert error is None, done.stderr
    assert report["version"] == "0.30.1.dev1+g1a2b3c4d" and report["vllm_c_error"] is None
    assert report["resolved"] == {"modelopt": "ModelOptFp8Config"}
    assert report["min_capability"] == {"modelopt": 89}
    assert report["fp8_kernels"] == {"8.0": False, "9.0": True}
    nothing_loaded = {"quant_config": None, "min_capability": None, "exclude_modules": None}
    excluded = ["lm_head", "via get_quantization_config"] if public else ["lm_head"]
    assert report["checkpoints"] == {
        str(fp8): {
            "quantization": "modelopt",
            "error": None,
            "load_error": None,
            "quant_config": "ModelOptFp8Config",
            "min_capability": 80,
            "exclude_modules": excluded,
        },
        str(plain): {"quantization": None, "error": None, "load_error": None, **nothing_loaded},
        str(broken): {
            "quantization": "modelopt",
            "error": None,
            "load_error": "ValueError: exclude_modules must be a list, got <class 1>",
            **nothing_loaded,
        },
    }
