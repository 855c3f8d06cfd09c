#!/usr/bin/python
"""Ansible module vllm_smoke: generate tokens with the installed vLLM on the host's GPUs."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_child import child_report
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
  - Fails when a run generates nothing, when vLLM raises, or when a model listed with a
    C(quantization) runs under another method (a ModelOpt checkpoint that silently loads
    unquantized fails here).
  - On a host with two or more GPUs, I(tensor_parallel_size) 0 also runs every model with
    C(tensor_parallel_size) equal to the GPU count.
options:
  models:
    description: Mappings with C(path) (an absolute model directory on the host), optional
      C(quantization) (the method to pass to vLLM and expect back, e.g. C(modelopt)) and
      optional C(name).
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
    description: Extra environment for the child processes (e.g. C(NCCL_NVLS_ENABLE)). Values
      are never returned.
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
      text: " the cache layer ..."
      error: null
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

# Runs as `<venv python> -I -c GENERATE_SCRIPT` with the run as JSON on stdin; the report is
# the last stdout line. vLLM's own logging goes to stderr. A fresh process per run: an engine
# with tensor parallelism leaves workers and CUDA state behind.
GENERATE_SCRIPT = r"""
import json, os, sys, time, traceback

def last(exc):
    lines = "".join(traceback.format_exception_only(type(exc), exc)).splitlines()
    lines = [l.strip() for l in lines if l.strip()]
    return lines[-1] if lines else repr(exc)

def resolved_quantization(llm):
    engine = llm.llm_engine
    for owner in (getattr(engine, "vllm_config", None), engine):
        config = getattr(owner, "model_config", None)
        if config is not None:
            value = getattr(config, "quantization", None)
            return str(value) if value else None
    return None

def main():
    run = json.loads(sys.stdin.read())
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    report = {}
    try:
        from vllm import LLM, SamplingParams
        started = time.monotonic()
        llm = LLM(model=run["path"], quantization=run.get("quantization"),
                  tensor_parallel_size=run["tensor_parallel_size"],
                  max_model_len=run["max_model_len"],
                  gpu_memory_utilization=run["gpu_memory_utilization"],
                  enforce_eager=True, seed=0)
        report["load_s"] = round(time.monotonic() - started, 2)
        report["quantization"] = resolved_quantization(llm)
        params = SamplingParams(max_tokens=run["max_tokens"], temperature=0.0, ignore_eos=True)
        started = time.monotonic()
        outputs = llm.generate([run["prompt"]], params)
        report["generate_s"] = round(time.monotonic() - started, 4)
        completion = outputs[0].outputs[0]
        report["tokens"] = len(completion.token_ids)
        report["text"] = completion.text
    except BaseException as exc:
        report["error"] = last(exc)
    sys.stdout.flush()
    out.write(json.dumps(report) + "\n")
    out.flush()
    os._exit(0)

if __name__ == "__main__":
    main()
"""


def run_report(rc: int, stdout: str, stderr: str) -> Dict[str, Any]:
    """Return the generation's JSON report, or an error report built from its exit and output."""
    report, error = child_report("the generation process", rc, stdout, stderr)
    return {"error": error} if error else report


def generate(module: AnsibleModule, run: Dict[str, Any], env: Dict[str, str]) -> Dict[str, Any]:
    """Run one generation in a child process and return its report."""
    params = module.params
    request = dict(run)
    for key in ("prompt", "max_tokens", "max_model_len", "gpu_memory_utilization"):
        request[key] = params[key]
    argv = [sys.executable, "-I", "-c", GENERATE_SCRIPT]
    if params["timeout"] > 0:
        argv = ["timeout", "--kill-after=30", str(params["timeout"]), *argv]
    rc, stdout, stderr = module.run_command(
        argv, data=json.dumps(request), environ_update=env, cwd="/"
    )
    report = run_report(rc, stdout, stderr)
    if rc == 124:
        report["error"] = f"timed out after {params['timeout']} s (vllm_source_smoke_timeout)"
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
            "environment": {"type": "dict", "default": {}, "no_log": True},
        },
        supports_check_mode=True,
    )
    params = module.params
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
    runs = plan_runs(models, sizes)
    if module.check_mode:
        module.exit_json(changed=False, runs=runs, tokens_total=0, skipped=True)
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
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
