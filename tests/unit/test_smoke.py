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
from ansible.module_utils.vllm_fleet_engine import root_cause, secret_values
from ansible.module_utils.vllm_fleet_smoke import (
    agreement,
    evaluate,
    model_problem,
    plan_runs,
    run_problem,
    summary_line,
    tensor_parallel_sizes,
)

FAKE_VLLM = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
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

    class _Core:
        # Like vLLM's engine core client: the engine process ends on shutdown().
        def __init__(self, process):
            self.process = process

        def shutdown(self):
            if self.process is not None:
                self.process.kill()
                self.process.wait()

    class _Tokenizer:
        # One id per character, so prompt + expect splits at the prompt's end.
        def encode(self, text):
            return [ord(c) for c in text]

    def _engine_process(model, behaviour):
        # A stand-in EngineCore: a process of the run that outlives the child unless shut down.
        seconds = behaviour.get("exits_after", 300)
        argv = [sys.executable, "-c", "import time; time.sleep(%s)" % seconds]
        process = subprocess.Popen(argv, start_new_session=behaviour.get("escape", False))
        with open(os.path.join(model, "engine.pid"), "w") as f:
            f.write(str(process.pid))
        return process

    class LLM:
        def __init__(self, model, tensor_parallel_size, quantization=None, **kwargs):
            with open(os.path.join(model, "behaviour.json")) as f:
                self.behaviour = json.load(f)
            if "cause" in self.behaviour:
                # What vLLM prints when the engine process dies at start.
                sys.stderr.write(
                    "(EngineCore_DP0 pid=4242) ERROR 12-01 19:22:10 [core.py:708] "
                    "EngineCore failed to start.\\n"
                    "(EngineCore_DP0 pid=4242) ERROR 12-01 19:22:10 [core.py:708] "
                    "Traceback (most recent call last):\\n"
                    "(EngineCore_DP0 pid=4242) ERROR 12-01 19:22:10 [core.py:708]   "
                    'File "/v/sampler.py", line 7, in __init__\\n'
                    "(EngineCore_DP0 pid=4242) ERROR 12-01 19:22:10 [core.py:708]     "
                    "import flashinfer\\n"
                    "(EngineCore_DP0 pid=4242) ERROR 12-01 19:22:10 [core.py:708] "
                    + self.behaviour["cause"] + "\\n"
                    "Traceback (most recent call last):\\n"
                    '  File "/v/llm.py", line 3, in __init__\\n'
                    "RuntimeError: Engine core initialization failed. See root cause above.\\n"
                )
                raise RuntimeError(
                    "Engine core initialization failed. See root cause above. "
                    "Failed core proc(s): {}"
                )
            if "raise" in self.behaviour:
                raise RuntimeError(self.behaviour["raise"])
            if self.behaviour.get("sleep"):
                time.sleep(self.behaviour["sleep"])
            resolved = self.behaviour.get("resolved", quantization)
            self.llm_engine = _Engine(resolved)
            process = _engine_process(model, self.behaviour)
            leaks = any(self.behaviour.get(k) for k in ("leak", "escape", "exits_after"))
            self.llm_engine.engine_core = _Core(None if leaks else process)
            self.tp = tensor_parallel_size
            os.environ.get("NCCL_NVLS_ENABLE") == "0" or sys.exit("environment not passed")

        def get_tokenizer(self):
            return _Tokenizer()

        def generate(self, prompts, params):
            count = self.behaviour.get("tokens", params.max_tokens)
            text = self.behaviour.get("text")
            if text is not None:
                return [_Output([ord(c) for c in text], text)]
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
    environment = {
        "NCCL_NVLS_ENABLE": "0",
        "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
        "HF_TOKEN": "hf_SECRET_smoke",
    }
    args = {"environment": environment, **args}
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
    assert model_problem(0, {"path": "/m", "expect": " x", "min_agreement": 0.5}) is None
    assert "min_agreement must be a fraction in (0, 1]" in str(
        model_problem(0, {"path": "/m", "expect": " x", "min_agreement": 2})
    )
    assert "min_agreement needs vllm_source_smoke_models[3].expect" in str(
        model_problem(3, {"path": "/m", "min_agreement": 0.5})
    )
    empty = model_problem(0, {"path": "/m", "expect": ""})
    assert ".expect must be a non-empty string" in str(empty)


def test_plan_runs_every_model_at_every_size() -> None:
    models = [{"path": "/m/a/"}, {"path": "/m/b", "quantization": "modelopt", "prompt": "Hi"}]
    runs = plan_runs(models, [1, 2], "Default")
    planned = [(r["name"], r["tensor_parallel_size"], r["quantization"], r["prompt"]) for r in runs]
    assert planned == [
        ("a", 1, None, "Default"),
        ("a", 2, None, "Default"),
        ("b", 1, "modelopt", "Hi"),
        ("b", 2, "modelopt", "Hi"),
    ]
    assert "expect" not in runs[0]
    expecting = plan_runs([{"path": "/m/c", "expect": " ok"}], [1], "P")[0]
    assert (expecting["expect"], expecting["min_agreement"]) == (" ok", 1.0)


def test_agreement_counts_matching_positions() -> None:
    assert agreement([5, 6, 7, 8], [5, 6, 7]) == 1.0
    assert agreement([5, 9, 7], [5, 6, 7]) == 0.6667
    assert agreement([5], [5, 6, 7, 8]) == 0.25
    assert agreement([1, 2], None) is None


def test_expected_text_verdicts() -> None:
    run = {"name": "m", "tensor_parallel_size": 1, "quantization": None, "expect": " ab"}
    run["min_agreement"] = 1.0
    good = {"tokens": 3, "token_ids": [1, 2, 3], "expected_ids": [1, 2], "text": " ab!"}
    assert run_problem(run, good) is None
    bad = {"tokens": 3, "token_ids": [1, 9, 3], "expected_ids": [1, 2], "text": " a?!"}
    assert "reproduced 50% of the expected tokens (at least 100% needed)" in str(
        run_problem(run, bad)
    )
    assert run_problem({**run, "min_agreement": 0.5}, bad) is None
    # Without the expected ids (a tokenizer merging across the prompt's end): the text decides.
    assert run_problem(run, {"tokens": 2, "text": " ab and more"}) is None
    assert "not with the expected ' ab'" in str(run_problem(run, {"tokens": 2, "text": " no"}))
    result = evaluate([run], [bad])[0][0]
    assert (result["agreement"], result["expect_matched"]) == (0.5, False)
    assert summary_line(result).endswith("expected continuation MISSED (50% of its tokens)")


# What vLLM 0.22 prints when its engine process dies at start (paths shortened).
VLLM_ENGINE_DEATH = """\
INFO 12-01 19:22:01 [llm.py:300] Supported tasks: ['generate']
(EngineCore_DP0 pid=4242) ERROR 12-01 19:22:10 [core.py:708] EngineCore failed to start.
(EngineCore_DP0 pid=4242) ERROR 12-01 19:22:10 [core.py:708] Traceback (most recent call last):
(EngineCore_DP0 pid=4242) ERROR 12-01 19:22:10 [core.py:708]   File "/v/core.py", line 699, in run
(EngineCore_DP0 pid=4242) ERROR 12-01 19:22:10 [core.py:708]     engine_core = EngineCoreProc(*a)
(EngineCore_DP0 pid=4242) ERROR 12-01 19:22:10 [core.py:708]                   ^^^^^^^^^^^^^^^^^^
(EngineCore_DP0 pid=4242) ERROR 12-01 19:22:10 [core.py:708]   File "/v/s.py", line 40, in init
(EngineCore_DP0 pid=4242) ERROR 12-01 19:22:10 [core.py:708]     import flashinfer
(EngineCore_DP0 pid=4242) ERROR 12-01 19:22:10 [core.py:708] ModuleNotFoundError: No module 'fi'
Process EngineCore_DP0:
Traceback (most recent call last):
  File "/usr/lib/python3.12/multiprocessing/process.py", line 314, in _bootstrap
ModuleNotFoundError: No module named 'flashinfer'
Traceback (most recent call last):
  File "<string>", line 40, in main
RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}
"""


def test_root_cause_is_the_first_traceback() -> None:
    assert root_cause(VLLM_ENGINE_DEATH) == (
        'File "/v/s.py", line 40, in init | import flashinfer | '
        "ModuleNotFoundError: No module 'fi'"
    )
    assert root_cause("INFO nothing failed\n") is None
    text = "Traceback (most recent call last):\n  File x\nOSError: https://u:tok@h/x gone\n"
    assert "tok@" not in str(root_cause(text))
    assert "https://***@h/x gone" in str(root_cause(text))


def test_only_secret_variables_are_masked() -> None:
    env = {"HF_TOKEN": "hf_x", "NCCL_NVLS_ENABLE": "0", "API_KEY": "k1", "WANDB_PASSWORD": "pw"}
    assert sorted(secret_values(env)) == ["hf_x", "k1", "pw"]


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
    # The environment has "0" and "1" values: numbers in the result stay readable.
    assert out["runs"][0]["tensor_parallel_size"] == 1
    assert out["invocation"]["module_args"]["environment"] == {
        "NCCL_NVLS_ENABLE": "0",
        "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
        "HF_TOKEN": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER",
    }
    assert json.dumps(out).count("VALUE_SPECIFIED_IN_NO_LOG_PARAMETER") == 1
    assert "********" not in json.dumps(out)
    # Every engine shut down by itself: nothing had to be ended.
    assert all(r["ended_processes"] == [] for r in out["runs"])
    assert not alive(tmp_path / "small-llama" / "engine.pid")


def alive(pid_file: Path) -> bool:
    pid = int(pid_file.read_text())
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("behaviour", [{"leak": True}, {"escape": True}])
def test_no_process_of_a_run_survives_it(
    behaviour: Dict[str, Any],
    tmp_path: Path,
    fake_python: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    # The engine process is left running (leak), even in a session of its own (escape).
    leaky = model_dir(tmp_path, "leaky", behaviour)
    out = run_main({"models": [{"path": leaky}]}, fake_python, monkeypatch, capsys)
    assert out.get("failed") is not True, out
    pid = int((tmp_path / "leaky" / "engine.pid").read_text())
    assert not alive(tmp_path / "leaky" / "engine.pid")
    assert [p["pid"] for p in out["runs"][0]["ended_processes"]] == [pid]
    assert "ended 1 process(es) the run left behind" in json.dumps(out["warnings"])


def test_a_process_finishing_its_own_shutdown_is_left_to_end(
    tmp_path: Path, fake_python: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    # The engine process ends by itself a second after the child returned (vLLM's engine
    # shutdown is asynchronous): it is waited for, not killed, and not reported.
    slow = model_dir(tmp_path, "slow-exit", {"exits_after": 1})
    out = run_main({"models": [{"path": slow}]}, fake_python, monkeypatch, capsys)
    assert out.get("failed") is not True, out
    assert out["runs"][0]["ended_processes"] == []
    assert not alive(tmp_path / "slow-exit" / "engine.pid")


def test_expected_continuation_is_checked(
    tmp_path: Path, fake_python: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    right = model_dir(tmp_path, "right", {"text": " every host. junk"})
    wrong = model_dir(tmp_path, "wrong", {"text": " every hose. junk"})
    models = [{"path": right, "expect": " every host."}, {"path": wrong, "expect": " every host."}]
    out = run_main({"models": models, "prompt": "P"}, fake_python, monkeypatch, capsys)
    assert out["failed"] is True
    assert [r["agreement"] for r in out["runs"]] == [1.0, 0.9167]
    assert [r["expect_matched"] for r in out["runs"]] == [True, False]
    assert out["problems"] == [
        "wrong (tensor_parallel_size=1): reproduced 92% of the expected tokens (at least 100% "
        "needed): continued the prompt with ' every hose. junk', expected ' every host.'; the "
        "kernels compute something else than the checkpoint's own framework did, or the "
        "checkpoint is not the one that was trained for this text"
    ]


def test_an_engine_that_died_at_start_reports_the_root_cause(
    tmp_path: Path, fake_python: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    cause = "ModuleNotFoundError: No module named 'flashinfer'"
    dead = model_dir(tmp_path, "dead", {"cause": cause})
    out = run_main({"models": [{"path": dead}]}, fake_python, monkeypatch, capsys)
    assert out["failed"] is True
    assert out["problems"] == [
        "dead (tensor_parallel_size=1): vLLM failed: RuntimeError: Engine core initialization "
        "failed. See root cause above. Failed core proc(s): {} (root cause: File "
        '"/v/sampler.py", line 7, in __init__ | import flashinfer | ModuleNotFoundError: No '
        "module named 'flashinfer')"
    ]


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
