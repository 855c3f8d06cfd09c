"""vllm_verify's engine check: start an engine of the release with dummy weights on the GPU.

A tiny Llama config, vLLM's dummy weights and token ids in (no tokenizer), run by
vllm_fleet_engine's GENERATE_SCRIPT in a child whose processes all end with it. Proves that
the release as installed starts an engine: a runtime requirement left out that the engine
imports at start fails here, with its root cause.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from typing import Any, Dict, List, Optional

from ansible.module_utils.vllm_fleet_child import offline_environment
from ansible.module_utils.vllm_fleet_engine import GENERATE_SCRIPT, engine_report, run_child

# A Llama small enough to start in seconds, with dims every attention backend takes
# (head_dim 64) and FP8-friendly widths; the weights are vLLM's dummy ones, no tokenizer.
ENGINE_CHECK_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "vocab_size": 512,
    "max_position_embeddings": 512,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "torch_dtype": "bfloat16",
}
ENGINE_CHECK_TOKENS = 4


def engine_request(model_dir: str, gpu_memory_utilization: float) -> Dict[str, Any]:
    """The generation the engine check runs: dummy weights, token ids in, a few tokens out."""
    return {
        "path": model_dir,
        "load_format": "dummy",
        "prompt_token_ids": [1, 17, 42, 99],
        "tensor_parallel_size": 1,
        "max_model_len": 128,
        "max_tokens": ENGINE_CHECK_TOKENS,
        "gpu_memory_utilization": gpu_memory_utilization,
    }


def engine_result(
    rc: Optional[int], stdout: str, stderr: str, ended: List[Dict[str, Any]], timeout: int
) -> Dict[str, Any]:
    """Turn the engine check's child run into the module's C(engine) result."""
    if rc is None:
        report: Dict[str, Any] = {"error": f"timed out after {timeout} s"}
    else:
        report = engine_report("the engine check", rc, stdout, stderr)
    error = report.get("error")
    tokens = int(report.get("tokens") or 0)
    if not error and tokens <= 0:
        error = "the engine started but generated no tokens"
    return {
        "state": "failed" if error else "started",
        "load_s": report.get("load_s"),
        "tokens": tokens,
        "error": error,
        "ended_processes": ended,
    }


def engine_problem(engine: Dict[str, Any], excluded: List[str]) -> Optional[str]:
    """Return why the release cannot serve, from the engine check, or None."""
    if engine.get("state") != "failed":
        return None
    left_out = (
        f" The install left out {', '.join(excluded)} (vllm_source_runtime_deps_exclude): "
        "take the package the error names off that list, or set the vLLM variable that avoids "
        "it in vllm_source_runtime_env (e.g. VLLM_USE_FLASHINFER_SAMPLER: '0')."
        if excluded
        else " Read the root cause and fix the release's packages, then re-run."
    )
    return (
        f"an engine with this release does not start on this host's GPU: {engine['error']}."
        + left_out
    )


def run_engine_check(params: Dict[str, Any], kernels: bool) -> Dict[str, Any]:
    """Start an engine with dummy weights (when asked and the kernels are there), as the
    module's engine_* options say."""
    if not params["engine_check"]:
        return {"state": "not requested"}
    if not kernels:
        return {"state": "skipped", "reason": "vllm._C does not import: no kernels to run"}
    env = dict(offline_environment(), NO_COLOR="1")
    env.update({str(k): str(v) for k, v in params["engine_environment"].items()})
    model_dir = tempfile.mkdtemp(prefix="vllm-verify-engine-")
    try:
        with open(os.path.join(model_dir, "config.json"), "w", encoding="utf-8") as handle:
            json.dump(ENGINE_CHECK_CONFIG, handle)
        request = engine_request(model_dir, params["engine_gpu_memory_utilization"])
        argv = [sys.executable, "-I", "-c", GENERATE_SCRIPT]
        rc, stdout, stderr, ended = run_child(argv, request, env, params["engine_timeout"])
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)
    return engine_result(rc, stdout, stderr, ended, params["engine_timeout"])
