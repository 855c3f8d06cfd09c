"""vllm_smoke: which generations run, when one fails, and the child-process protocol.

The generation itself needs GPU kernels; here the child runs against a stand-in `vllm`
package (in a throwaway venv) that implements the two calls the script makes, so the real
script, its stdout handling, the timeout and the module's verdicts are exercised.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict

import pytest
import vllm_smoke
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.vllm_fleet_smoke import (
    evaluate,
    model_problem,
    plan_runs,
    run_problem,
    summary_line,
    tensor_parallel_sizes,
)

FAKE_VLLM = textwrap.dedent(
    """
    import json, os, sys, time
    print("INFO fake vLLM log line on stdout")  # vLLM logs to stdout; the script must cope

    class _Config:
        def __init__(self, quantization):
            self.quantization = quantization

    class _Engine:
        def __init__(self, quantization):
            self.vllm_config = type("V", (), {"model_config": _Config(quantization)})()

    class _Completion:
        def __init__(self, ids, text):
            self.token_ids, self.text = ids, text

    class _Output:
        def __init__(self, ids, text):
            self.outputs = [_Completion(ids, text)]

    class SamplingParams:
        def __init__(self, max_tokens, temperature, ignore_eos):
            self.max_tokens = max_tokens

    class LLM:
        def __init__(self, model, quantization, tensor_parallel_size, **kwargs):
            with open(os.path.join(model, "behaviour.json")) as f:
                self.behaviour = json.load(f)
            if "raise" in self.behaviour:
                raise RuntimeError(self.behaviour["raise"])
            if self.behaviour.get("sleep"):
                time.sleep(self.behaviour["sleep"])
            resolved = self.behaviour.get("resolved", quantization)
            self.llm_engine = _Engine(resolved)
            self.tp = tensor_parallel_size
            os.environ.get("NCCL_NVLS_ENABLE") == "0" or sys.exit("environment not passed")

        def generate(self, prompts, params):
            count = self.behaviour.get("tokens", params.max_tokens)
            return [_Output(list(range(count)), " tp%d" % self.tp * count)]
    """
)


@pytest.fixture(scope="module")
def fake_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    venv = tmp_path_factory.mktemp("fake-vllm-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "vllm").mkdir()
    (site / "vllm" / "__init__.py").write_text(FAKE_VLLM)
    return str(venv / "bin" / "python")


def model_dir(root: Path, name: str, behaviour: Dict[str, Any]) -> str:
    path = root / name
    path.mkdir()
    (path / "config.json").write_text("{}")
    (path / "behaviour.json").write_text(json.dumps(behaviour))
    return str(path)


def run_main(
    args: Dict[str, Any], python: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> Dict[str, Any]:
    monkeypatch.setattr(sys, "executable", python)
    args = {"environment": {"NCCL_NVLS_ENABLE": "0", "HF_TOKEN": "hf_SECRET_smoke"}, **args}
    with patch_module_args(args), pytest.raises(SystemExit):
        vllm_smoke.main()
    return json.loads(capsys.readouterr().out)


# --- pure decisions --------------------------------------------------------------------


def test_tensor_parallel_sizes_follow_the_gpu_count() -> None:
    assert tensor_parallel_sizes(0, 1) == [1]
    assert tensor_parallel_sizes(0, 2) == [1, 2]
    assert tensor_parallel_sizes(0, 8) == [1, 8]
    assert tensor_parallel_sizes(1, 8) == [1]
    assert tensor_parallel_sizes(4, 8) == [1, 4]


def test_tensor_parallel_size_beyond_the_gpus_is_refused() -> None:
    with pytest.raises(
        ValueError, match="vllm_source_smoke_tensor_parallel_size is 4 but the host has 2"
    ):
        tensor_parallel_sizes(4, 2)
    with pytest.raises(ValueError, match="0 \\(auto\\)"):
        tensor_parallel_sizes(-1, 2)


def test_model_entries_are_checked() -> None:
    assert model_problem(0, {"path": "/m", "quantization": "modelopt"}) is None
    assert "must be a mapping" in str(model_problem(1, "/m"))
    assert "vllm_source_smoke_models[2].path must be an absolute" in str(
        model_problem(2, {"path": "m"})
    )
    assert "unknown keys ['dtype']" in str(model_problem(0, {"path": "/m", "dtype": "fp16"}))


def test_plan_runs_every_model_at_every_size() -> None:
    runs = plan_runs([{"path": "/m/a/"}, {"path": "/m/b", "quantization": "modelopt"}], [1, 2])
    assert [(r["name"], r["tensor_parallel_size"], r["quantization"]) for r in runs] == [
        ("a", 1, None),
        ("a", 2, None),
        ("b", 1, "modelopt"),
        ("b", 2, "modelopt"),
    ]


def test_run_problem_verdicts() -> None:
    run = {"name": "b", "tensor_parallel_size": 2, "quantization": "modelopt"}
    assert run_problem(run, {"tokens": 16, "quantization": "modelopt"}) is None
    assert "generated no tokens" in str(run_problem(run, {"tokens": 0, "quantization": "modelopt"}))
    assert "ran it as 'unquantized'" in str(run_problem(run, {"tokens": 16, "quantization": None}))
    assert "vLLM failed: boom" in str(run_problem(run, {"error": "boom"}))


def test_evaluate_and_summary() -> None:
    runs = [{"name": "a", "path": "/a", "quantization": None, "tensor_parallel_size": 1}]
    results, problems = evaluate(runs, [{"tokens": 8, "generate_s": 0.5, "text": "x", "load_s": 3}])
    assert problems == []
    assert results[0]["tokens_per_s"] == 16.0
    assert summary_line(results[0]).startswith("a tp=1 unquantized: 8 tokens in 0.5 s (16.0 tok/s")


def test_child_report_takes_the_last_json_line() -> None:
    assert vllm_smoke.run_report(0, 'noise\n{"tokens": 3}\n', "") == {"tokens": 3}
    error = vllm_smoke.run_report(-9, "noise\n", "INFO x\nKilled\n")["error"]
    assert error == "the generation process exited with -9 and no report: Killed"


# --- the module with the real child script and a stand-in vLLM ---------------------------


def test_generates_from_each_model_at_each_size(
    tmp_path: Path, fake_python: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    fp16 = model_dir(tmp_path, "small-llama", {})
    fp8 = model_dir(tmp_path, "small-llama-fp8", {})
    out = run_main(
        {
            "models": [{"path": fp16}, {"path": fp8, "quantization": "modelopt"}],
            "gpu_count": 2,
            "max_tokens": 4,
        },
        fake_python,
        monkeypatch,
        capsys,
    )
    assert out.get("failed") is not True, out
    assert [(r["name"], r["tensor_parallel_size"], r["tokens"]) for r in out["runs"]] == [
        ("small-llama", 1, 4),
        ("small-llama", 2, 4),
        ("small-llama-fp8", 1, 4),
        ("small-llama-fp8", 2, 4),
    ]
    assert out["runs"][3]["resolved_quantization"] == "modelopt"
    assert out["runs"][3]["text"] == " tp2" * 4
    assert out["tokens_total"] == 16
    assert "hf_SECRET_smoke" not in json.dumps(out)


def test_fails_when_a_modelopt_checkpoint_runs_unquantized(
    tmp_path: Path, fake_python: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    legacy = model_dir(tmp_path, "legacy", {"resolved": None})
    out = run_main(
        {"models": [{"path": legacy, "quantization": "modelopt"}]}, fake_python, monkeypatch, capsys
    )
    assert out["failed"] is True
    assert "asked for quantization 'modelopt' but vLLM ran it as 'unquantized'" in out["msg"]


def test_fails_on_zero_tokens_and_on_vllm_errors(
    tmp_path: Path, fake_python: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    empty = model_dir(tmp_path, "empty", {"tokens": 0})
    broken = model_dir(tmp_path, "broken", {"raise": "CUDA error: no kernel image"})
    out = run_main(
        {"models": [{"path": empty}, {"path": broken}]}, fake_python, monkeypatch, capsys
    )
    assert out["failed"] is True
    assert out["problems"] == [
        "empty (tensor_parallel_size=1): generated no tokens",
        "broken (tensor_parallel_size=1): vLLM failed: RuntimeError: CUDA error: no kernel image",
    ]
    assert (
        out["summary"][1]
        == "broken tp=1 unquantized: FAILED: RuntimeError: CUDA error: no kernel image"
    )


def test_a_hung_run_is_killed_and_reported(
    tmp_path: Path, fake_python: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    slow = model_dir(tmp_path, "slow", {"sleep": 30})
    out = run_main({"models": [{"path": slow}], "timeout": 1}, fake_python, monkeypatch, capsys)
    assert out["failed"] is True
    assert "timed out after 1 s (vllm_source_smoke_timeout)" in out["msg"]


def test_refuses_bad_models_before_running(
    tmp_path: Path, fake_python: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    out = run_main(
        {
            "models": [{"path": str(tmp_path / "missing")}],
            "gpu_count": 2,
            "tensor_parallel_size": 4,
        },
        fake_python,
        monkeypatch,
        capsys,
    )
    assert out["failed"] is True
    assert "is not a model directory readable by this user" in out["msg"]
    assert "vllm_source_smoke_tensor_parallel_size is 4 but the host has 2" in out["msg"]
    assert out["runs"] == []
