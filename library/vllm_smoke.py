#!/usr/bin/python
"""Ansible module vllm_smoke: generate tokens with the installed vLLM on the host's GPUs."""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, List

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_engine import (
    GENERATE_SCRIPT,
    engine_report,
    run_child,
    secret_values,
)
from ansible.module_utils.vllm_fleet_smoke import (
    evaluate,
    model_problem,
    plan_runs,
    summary_line,
    tensor_parallel_sizes,
)

DOCUMENTATION = r"""
module: vllm_smoke
short_description: Generate text with the installed vLLM from local models, quantized ones included
description:
  - Runs with the venv's Python (set ansible_python_interpreter to it). For every model and
    tensor-parallel size it starts a fresh child process that loads the model with
    C(vllm.LLM), generates I(max_tokens) tokens greedily from I(prompt) and reports the
    tokens, the time and the quantization method vLLM resolved.
  - Fails when a run generates nothing, when vLLM raises (reporting the root cause, the end of
    the first traceback the engine printed), when a model listed with a C(quantization) runs
    under another method (a ModelOpt checkpoint that silently loads unquantized fails here),
    or when a model given an C(expect) text does not continue its prompt with it.
  - Each child runs in a process group of its own and shuts its engine down; once it returns,
    every process of that run still alive (an C(EngineCore), workers) is ended and named in
    C(ended_processes), so no run leaves GPU memory taken.
  - On a host with two or more GPUs, I(tensor_parallel_size) 0 also runs every model with
    C(tensor_parallel_size) equal to the GPU count.
options:
  models:
    description:
      - Mappings with C(path) (an absolute model directory on the host), optional
        C(quantization) (the method to pass to vLLM and expect back, e.g. C(modelopt)),
        optional C(name), and optional C(prompt) (replaces I(prompt) for this model).
      - C(expect) is the text the model's greedy continuation of its prompt must reproduce;
        C(min_agreement) (default 1.0) the share of its tokens, position by position, that
        must match (the figure is returned as C(agreement)).
    type: list
    elements: raw
    required: true
  gpu_count:
    description: GPUs on the host (from nvidia_driver_facts).
    type: int
    default: 1
  tensor_parallel_size:
    description: 0 follows the GPU count; a positive size adds runs with that size.
    type: int
    default: 0
  prompt:
    description: The prompt every run continues.
    type: str
    default: The fleet built vLLM from source, and
  max_tokens:
    description: Tokens to generate per run (EOS is ignored so every run generates them all).
    type: int
    default: 16
  max_model_len:
    description: Context length to reserve KV cache for.
    type: int
    default: 256
  gpu_memory_utilization:
    description: Fraction of each GPU's memory vLLM may take.
    type: float
    default: 0.3
  timeout:
    description: Seconds one run may take before it is killed and reported as failed.
    type: int
    default: 900
  environment:
    description: Extra environment for the child processes (e.g. C(NCCL_NVLS_ENABLE)). The
      values of variables whose names say they are secrets (TOKEN, SECRET, PASSWORD, KEY,
      CREDENTIAL, AUTH) are masked wherever they would appear in the output.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Generate from an FP16 model and a ModelOpt FP8 checkpoint.
  vllm_smoke:
    models:
      - path: /models/small-llama
      - path: /models/small-llama-modelopt-fp8
        quantization: modelopt
    gpu_count: 2
  vars:
    ansible_python_interpreter: /opt/vllm/venv/bin/python
"""

RETURN = r"""
runs:
  description: One entry per model and tensor-parallel size.
  returned: always
  type: list
  elements: dict
  sample:
    - name: small-llama-modelopt-fp8
      path: /models/small-llama-modelopt-fp8
      quantization: modelopt
      resolved_quantization: modelopt
      tensor_parallel_size: 2
      tokens: 16
      load_s: 41.2
      generate_s: 0.21
      tokens_per_s: 76.2
      text: " every host generated the same text."
      expect: " every host generated the same text."
      agreement: 1.0
      expect_matched: true
      error: null
      ended_processes: []
tokens_total:
  description: Tokens generated over all runs.
  returned: success
  type: int
summary:
  description: One line per run (model, tensor-parallel size, method, tokens, speed, text).
  returned: when runs ran
  type: list
  elements: str
"""


def run_report(rc: int, stdout: str, stderr: str) -> Dict[str, Any]:
    """Return the generation's JSON report, or an error report with the root cause."""
    return engine_report("the generation process", rc, stdout, stderr)


def generate(module: AnsibleModule, run: Dict[str, Any], env: Dict[str, str]) -> Dict[str, Any]:
    """Run one generation in a child process of its own, end whatever it left running, and
    return its report."""
    params = module.params
    request = dict(run)
    for key in ("max_tokens", "max_model_len", "gpu_memory_utilization"):
        request[key] = params[key]
    argv = [sys.executable, "-I", "-c", GENERATE_SCRIPT]
    rc, stdout, stderr, ended = run_child(argv, request, env, params["timeout"])
    if rc is None:
        report = {"error": f"timed out after {params['timeout']} s (vllm_source_smoke_timeout)"}
    else:
        report = run_report(rc, stdout, stderr)
    report["ended_processes"] = ended
    if ended:
        module.warn(
            f"{run['name']}: ended {len(ended)} process(es) the run left behind: "
            + ", ".join(f"{p['pid']} {p['command']}" for p in ended)
        )
    return report


def run_module() -> None:
    module = AnsibleModule(
        argument_spec={
            "models": {"type": "list", "elements": "raw", "required": True},
            "gpu_count": {"type": "int", "default": 1},
            "tensor_parallel_size": {"type": "int", "default": 0},
            "prompt": {"type": "str", "default": "The fleet built vLLM from source, and"},
            "max_tokens": {"type": "int", "default": 16},
            "max_model_len": {"type": "int", "default": 256},
            "gpu_memory_utilization": {"type": "float", "default": 0.3},
            "timeout": {"type": "int", "default": 900},
            "environment": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    params = module.params
    # Only the values that are secrets are masked in the output: marking the whole mapping
    # no_log would mask every "0" and "1" in the result (token counts, sizes) as well.
    module.no_log_values.update(secret_values(params["environment"]))
    models: List[Any] = params["models"]
    problems = [p for p in (model_problem(i, m) for i, m in enumerate(models)) if p]
    if not models:
        problems.append("vllm_source_smoke_models is empty: list at least one local model")
    for model in models:
        path = model.get("path") if isinstance(model, dict) else None
        if isinstance(path, str) and not os.path.isfile(os.path.join(path, "config.json")):
            problems.append(
                f"{path} is not a model directory readable by this user (no "
                "config.json): fix its path in vllm_source_smoke_models"
            )
    try:
        sizes = tensor_parallel_sizes(params["tensor_parallel_size"], params["gpu_count"])
    except ValueError as exc:
        problems.append(str(exc))
        sizes = []
    if problems:
        module.fail_json(msg=" | ".join(problems), problems=problems, runs=[])
    runs = plan_runs(models, sizes, params["prompt"])
    if module.check_mode:
        module.exit_json(changed=False, runs=runs, tokens_total=0, skipped=True)
    env = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "NO_COLOR": "1",
    }
    env.update({str(k): str(v) for k, v in params["environment"].items()})
    reports = [generate(module, run, env) for run in runs]
    results, problems = evaluate(runs, reports)
    total = sum(result["tokens"] for result in results)
    summary = [summary_line(result) for result in results]
    if problems:
        module.fail_json(msg=" | ".join(problems), problems=problems, runs=results, summary=summary)
    module.exit_json(changed=False, runs=results, tokens_total=total, summary=summary)


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
