"""Tests for library/vllm_verify.py.

Unit tests use files recorded from real runs (tests/data/vllm-verify): the config files that
nvidia-modelopt 0.47.0 wrote for the fixture checkpoints, and the probe report of a real
vLLM 0.30.0 VLLM_TARGET_DEVICE=empty install. The integration tests run the module through
`ansible` against a real venv (VLLM_VERIFY_VENV) and checkpoints (VLLM_CHECKPOINTS, made by
tools/make-checkpoints.sh).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar, Dict, List

import pytest
import vllm_verify as vv
from ansible.module_utils.testing import patch_module_args

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


@pytest.mark.parametrize(
    ("version", "public", "local"),
    [
        ("0.30.0", "0.30.0", None),
        ("0.30.0+empty", "0.30.0", "empty"),
        ("0.30.1.dev1+gced6857af", "0.30.1.dev1", "gced6857af"),
        ("0.30.0+", "0.30.0", None),
    ],
)
def test_split_version(version: str, public: str, local: str | None) -> None:
    assert vv.split_version(version) == (public, local)


def test_expected_version_accepts_tag_form() -> None:
    assert vv.normalize_expected_version("v0.30.0") == "0.30.0"
    assert vv.normalize_expected_version(" 0.10.1 ") == "0.10.1"
    assert vv.version_problem("v0.30.0", "0.30.0") is None
    assert vv.version_problem("0.30.0+empty", "0.30.0") is None
    assert vv.version_problem(None, "0.30.0") is None


def test_version_mismatch_names_the_variable() -> None:
    problem = vv.version_problem("v0.22.0", "0.30.0")
    assert problem is not None
    assert "installed vLLM is 0.30.0, expected 0.22.0" in problem
    assert "vllm_source_version" in problem


# --- commits ----------------------------------------------------------------------------


def test_recorded_commit_from_version_file_and_version() -> None:
    # 0.30.0's sdist _version.py records commit_id 'gced6857af'.
    assert vv.recorded_commit("gced6857af", "0.30.0") == "ced6857af"
    assert vv.recorded_commit(None, "0.30.1.dev1+g1a2b3c4d") == "1a2b3c4d"
    assert vv.recorded_commit(None, "0.1.dev5+g1234567.d20250101") == "1234567"
    assert vv.recorded_commit(None, "0.30.0+empty") is None
    assert vv.recorded_commit("", "0.30.0") is None


def test_commit_check_states() -> None:
    full = "ced6857af0123456789abcdef0123456789abcde"
    assert vv.commit_check(None, "ced6857af") == ("not requested", None)
    assert vv.commit_check(full, "ced6857af") == ("matched", None)
    assert vv.commit_check("gCED6857AF", "ced6857af0") == ("matched", None)
    assert vv.commit_check(full, None) == ("unknown", None)
    state, problem = vv.commit_check("0123456", "ced6857af")
    assert state == "mismatched"
    assert problem is not None and "vllm_source_commit" in problem and "ced6857af" in problem
    state, problem = vv.commit_check("v0.30.0", "ced6857af")
    assert state == "invalid"
    assert problem is not None and "not a commit SHA" in problem


# --- registry ---------------------------------------------------------------------------


def test_registry_ok_on_recorded_0_30_0(probe_report: Dict[str, Any]) -> None:
    methods = probe_report["methods"]
    assert vv.modelopt_methods_of(methods) == [
        "modelopt",
        "modelopt_fp4",
        "modelopt_mxfp8",
        "modelopt_mixed",
    ]
    assert vv.registry_problem(methods, probe_report["resolved"]) is None


def test_registry_missing_modelopt_fp4() -> None:
    problem = vv.registry_problem(["awq", "fp8", "modelopt"], {"modelopt": "ModelOptFp8Config"})
    assert problem is not None
    assert "lacks modelopt_fp4" in problem and "vllm_source_version" in problem


def test_registry_unresolvable_method() -> None:
    resolved = {"modelopt": "ModelOptFp8Config", "modelopt_fp4": None}
    problem = vv.registry_problem(["modelopt", "modelopt_fp4"], resolved)
    assert problem is not None and "does not resolve modelopt_fp4" in problem


# --- checkpoints ------------------------------------------------------------------------


def test_metadata_of_real_exports(checkpoints: Path) -> None:
    fp8 = vv.checkpoint_metadata(str(checkpoints / FP8))
    assert fp8["hf_quant_config_producer"] == "modelopt"
    assert fp8["config_has_quantization_config"] is True
    assert not vv.is_noproducer_trap(fp8)
    legacy = vv.checkpoint_metadata(str(checkpoints / LEGACY))
    assert legacy["has_hf_quant_config"] is True
    assert legacy["hf_quant_config_producer"] is None
    assert legacy["config_has_quantization_config"] is False
    assert vv.is_noproducer_trap(legacy)
    plain = vv.checkpoint_metadata(str(checkpoints / PLAIN))
    assert plain["has_config"] and not plain["has_hf_quant_config"]
    assert not vv.is_noproducer_trap(plain)


def test_metadata_reports_broken_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    meta = vv.checkpoint_metadata(str(tmp_path))
    assert meta["has_config"] is False
    assert meta["errors"] and "JSONDecodeError" in meta["errors"][0]


def test_modelopt_checkpoint_has_no_problem(checkpoints: Path) -> None:
    meta = vv.checkpoint_metadata(str(checkpoints / FP8))
    assert vv.checkpoint_problem(str(checkpoints / FP8), "modelopt", None, meta) is None
    assert vv.is_modelopt_method("modelopt_fp4")
    assert not vv.is_modelopt_method(None)
    assert not vv.is_modelopt_method("fp8")


def test_noproducer_trap_unquantized_message(checkpoints: Path) -> None:
    path = str(checkpoints / LEGACY)
    problem = vv.checkpoint_problem(path, None, None, vv.checkpoint_metadata(path), "0.30.0")
    assert problem is not None
    assert "hf_quant_config.json has no producer" in problem
    assert "vLLM 0.30.0 resolves no quantization" in problem and "UNQUANTIZED" in problem
    assert "export_hf_checkpoint" in problem
    assert '"producer": {"name": "modelopt"' in problem
    assert "vllm_source_verify_checkpoints" in problem


def test_noproducer_trap_raising_message(checkpoints: Path) -> None:
    path = str(checkpoints / LEGACY)
    error = "ValueError: Unknown quantization method: . Must be one of [...]"
    problem = vv.checkpoint_problem(path, None, error, vv.checkpoint_metadata(path), "0.10.1")
    assert problem is not None
    assert f"vLLM 0.10.1 rejects it ({error})" in problem
    assert "export_hf_checkpoint" in problem


def test_trap_ignored_when_config_json_decides(checkpoints: Path) -> None:
    # config.json's quantization_config wins over hf_quant_config.json in vLLM.
    path = checkpoints / LEGACY
    config = json.loads((path / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "fp8"}
    (path / "config.json").write_text(json.dumps(config))
    meta = vv.checkpoint_metadata(str(path))
    assert not vv.is_noproducer_trap(meta)
    problem = vv.checkpoint_problem(str(path), "fp8", None, meta, "0.30.0")
    assert problem is not None and "resolves to quantization 'fp8'" in problem


def test_plain_checkpoint_message(checkpoints: Path) -> None:
    path = str(checkpoints / PLAIN)
    problem = vv.checkpoint_problem(path, None, None, vv.checkpoint_metadata(path))
    assert problem is not None
    assert "has no quantization config" in problem and "loads it unquantized" in problem


def test_checkpoint_entries_flags_missing_dir(tmp_path: Path) -> None:
    missing = str(tmp_path / "absent")
    entries, problems = vv.checkpoint_entries([missing], {})
    assert entries == [
        {
            "path": missing,
            "quantization": None,
            "is_modelopt": False,
            "hf_quant_config_producer": None,
            "error": "not a directory",
        }
    ]
    assert len(problems) == 1 and "is not a directory" in problems[0]


# --- kernels ----------------------------------------------------------------------------


def test_kernels_state_and_requirement() -> None:
    kernels, kind = vv.kernels_state(None)
    assert kernels == {"vllm_C": True, "error": ""} and kind == "cuda"
    error = "ModuleNotFoundError: No module named 'vllm._C'"
    kernels, kind = vv.kernels_state(error)
    assert kernels == {"vllm_C": False, "error": error}
    assert kind == vv.NO_KERNELS_KIND
    assert vv.kernels_problem(False, kernels) is None
    problem = vv.kernels_problem(True, kernels)
    assert problem is not None and "vllm_source_target_device" in problem


# --- probe output and evaluation --------------------------------------------------------


def test_parse_probe_output() -> None:
    report, error = vv.parse_probe_output(0, 'noise\n{"version": "0.30.0"}\n', "")
    assert report == {"version": "0.30.0"} and error is None
    report, error = vv.parse_probe_output(-11, "", "Fatal Python error: Segmentation fault\n")
    assert report == {}
    assert error == (
        "the probe exited with -11 and no report: Fatal Python error: Segmentation fault"
    )


def test_evaluate_recorded_report(checkpoints: Path, probe_report: Dict[str, Any]) -> None:
    paths = [str(checkpoints / FP8)]
    params = {"expect_version": "v0.30.0", "expect_commit": None, "require_kernels": False}
    result, problems, warnings = vv.evaluate(params, probe_report, paths)
    assert problems == [] and warnings == []
    assert result["vllm_public_version"] == "0.30.0"
    assert result["vllm_local_version"] == "empty"  # from the dist version 0.30.0+empty
    assert result["torch_version"] == "2.13.0+cpu" and result["torch_cuda_version"] is None
    assert result["build_kind"] == vv.NO_KERNELS_KIND
    assert result["modelopt_methods"]["modelopt"] == "ModelOptFp8Config"
    assert result["modelopt_methods"]["modelopt_fp4"] == "ModelOptNvFp4Config"
    assert result["checkpoints"] == [
        {
            "path": paths[0],
            "quantization": "modelopt",
            "is_modelopt": True,
            "hf_quant_config_producer": "modelopt",
            "error": None,
        }
    ]


def test_evaluate_collects_every_problem(checkpoints: Path, probe_report: Dict[str, Any]) -> None:
    paths = [str(checkpoints / name) for name in (FP8, LEGACY, PLAIN)]
    params = {"expect_version": "0.22.0", "expect_commit": "ced6857af", "require_kernels": True}
    result, problems, warnings = vv.evaluate(params, probe_report, paths)
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
        "capabilities": [],
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
    monkeypatch.setattr(vv.os, "access", lambda path, mode: path != str(locked))
    entries, problems = vv.checkpoint_entries([str(locked)], {})
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
    assert vv.last_line(text).startswith("Value error, Invalid repository ID")


def fp8_entry(path: str = "/models/fp8") -> Dict[str, Any]:
    return {"path": path, "quantization": "modelopt", "is_modelopt": True}


def test_capabilities_convert_between_nvidia_smi_and_vllm() -> None:
    assert vv.capability_value("9.0") == 90
    assert vv.capability_value("12.1") == 121
    assert vv.capability_text(89) == "8.9"
    assert vv.capability_text(100) == "10.0"
    assert vv.capability_text(None) is None


def test_gpu_problems_refuses_a_gpu_older_than_the_methods_minimum() -> None:
    problems = vv.gpu_problems([fp8_entry()], {"modelopt": 89}, {}, ["8.0", "9.0"], "0.22.0")
    assert len(problems) == 1
    assert "compute capability 8.9 or newer" in problems[0]
    assert "GPUs have 8.0" in problems[0] and "9.0" not in problems[0].split("have")[1]
    assert "vllm_source_verify_checkpoints" in problems[0]


def test_gpu_problems_refuses_fp8_without_kernels_for_the_gpu() -> None:
    problems = vv.gpu_problems([fp8_entry()], {"modelopt": 80}, {"9.0": False}, ["9.0"])
    assert len(problems) == 1
    assert "CUTLASS FP8 kernels do not support compute capability 9.0" in problems[0]
    assert "vllm_source_cuda_arch_list" in problems[0]


def test_gpu_problems_accepts_supported_gpus_and_hosts_without_gpus() -> None:
    assert vv.gpu_problems([fp8_entry()], {"modelopt": 89}, {"9.0": True}, ["9.0"]) == []
    assert vv.gpu_problems([fp8_entry()], {"modelopt": 89}, {}, []) == []
    plain = {"path": "/m", "quantization": None, "is_modelopt": False}
    assert vv.gpu_problems([plain], {"modelopt": 89}, {}, ["7.5"]) == []


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
    engine = vv.engine_result(0, report + "\n", ENGINE_DEATH, [], 600)
    assert engine["state"] == "failed"
    assert engine["error"].endswith(
        '(root cause: File "/v/topk.py", line 9 | import flashinfer | ModuleNotFoundError: '
        "No module named 'flashinfer')"
    )
    problem = vv.engine_problem(engine, ["flashinfer-python", "triton"])
    assert problem.startswith("an engine with this release does not start on this host's GPU:")
    assert "left out flashinfer-python, triton (vllm_source_runtime_deps_exclude)" in problem
    assert "VLLM_USE_FLASHINFER_SAMPLER" in problem
    started = vv.engine_result(0, '{"tokens": 4, "load_s": 12.5}\n', "", [], 600)
    assert (started["state"], started["tokens"], started["load_s"]) == ("started", 4, 12.5)
    assert vv.engine_problem(started, []) is None
    assert vv.engine_result(None, "", "", [], 5)["error"] == "timed out after 5 s"
    assert "generated no tokens" in vv.engine_result(0, '{"tokens": 0}\n', "", [], 5)["error"]


def test_engine_check_runs_a_real_child_and_ends_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # This interpreter has no vLLM: the child's report says so and the check fails with it.
    class Module:
        params: ClassVar[Dict[str, Any]] = {
            "engine_check": True,
            "engine_environment": {"VLLM_USE_FLASHINFER_SAMPLER": "0"},
            "engine_gpu_memory_utilization": 0.1,
            "engine_timeout": 60,
        }

    engine = vv.run_engine_check(Module(), kernels=True)
    assert engine["state"] == "failed"
    assert "No module named 'vllm'" in engine["error"]
    assert engine["ended_processes"] == []
    assert vv.run_engine_check(Module(), kernels=False)["state"] == "skipped"
    Module.params = {**Module.params, "engine_check": False}
    assert vv.run_engine_check(Module(), kernels=True) == {"state": "not requested"}


def test_engine_request_uses_dummy_weights_and_token_ids() -> None:
    request = vv.engine_request("/tmp/m", 0.2)
    assert request["load_format"] == "dummy"
    assert request["prompt_token_ids"] and max(request["prompt_token_ids"]) < 512
    assert (
        vv.ENGINE_CHECK_CONFIG["hidden_size"] // vv.ENGINE_CHECK_CONFIG["num_attention_heads"] == 64
    )


def test_extensions_that_do_not_import_are_named() -> None:
    extensions = {"vllm._C": None, "vllm._flashmla_C": "ImportError: libcuda.so.1: cannot open"}
    assert vv.extension_warnings(extensions) == [
        "compiled extension vllm._flashmla_C does not import: ImportError: libcuda.so.1: cannot "
        "open; the features it carries are unavailable in this release"
    ]


def test_extensions_of_a_crashing_import_are_named() -> None:
    stdout = (
        '{"modules": ["vllm._C", "vllm._moe_C", "vllm._flashmla_C", "vllm.cumem_allocator"]}\n'
        '{"module": "vllm._C", "error": null}\n'
        '{"module": "vllm._moe_C", "error": "ImportError: undefined symbol: foo"}\n'
    )
    assert vv.parse_extensions(-11, stdout, "Fatal Python error: Segmentation fault\n") == {
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
        [sys.executable, "-c", vv.EXTENSIONS_SCRIPT],
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=False,
    )
    found = vv.parse_extensions(done.returncode, done.stdout, done.stderr)
    assert sorted(found) == ["vllm._C", "vllm.sub._x_C"]
    assert found["vllm._C"].startswith("ImportError")  # not an ELF file
    assert found["vllm.sub._x_C"].startswith(("ImportError", "ModuleNotFoundError"))
