#!/usr/bin/python
"""Ansible module vllm_vl_check: run a ModelOpt vision-language checkpoint with the host's vLLM."""

from __future__ import annotations

import inspect
import sys
from typing import Any, Dict, List

from ansible.module_utils import vllm_fleet_vl
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_child import last_line
from ansible.module_utils.vllm_fleet_engine import root_cause, run_child, secret_values

DOCUMENTATION = r"""
module: vllm_vl_check
short_description: Generate from images and a prompt with a vision-language checkpoint
description:
  - Runs with the release venv's Python (set ansible_python_interpreter to it), in a child
    process of its own, the project's C(vllm-fleet-vl) command (vllm_fleet/vl.py).
  - Before loading any weight it refuses a checkpoint that is not ModelOpt (unless
    I(unquantized)), a GPU below the method's minimum compute capability, an architecture
    this vLLM does not know, and a vision tower this vLLM would quantize although the
    checkpoint keeps it unquantized. Each is decided by the installed vLLM's own code.
  - Then generates I(max_tokens) tokens greedily from the images (a generated test pattern
    when none is given) and I(prompt), and reports the text, the tokens and tokens/s.
  - Every process the run leaves behind (an C(EngineCore)) is ended and named in
    C(ended_processes). Changes nothing on the host.
options:
  model:
    description: Absolute checkpoint directory on the host.
    type: path
    required: true
  images:
    description: Image files on the host; none means a generated 224x224 test pattern.
    type: list
    elements: path
    default: []
  prompt:
    description: The user's text after the images.
    type: str
    default: Describe the picture.
  max_tokens:
    description: Tokens to generate.
    type: int
    default: 32
  max_model_len:
    description: vLLM's max_model_len for this run.
    type: int
    default: 2048
  gpu_memory_utilization:
    description: vLLM's gpu_memory_utilization for this run.
    type: float
    default: 0.3
  unquantized:
    description: Run a checkpoint that is not quantized (the baseline) instead of refusing it.
    type: bool
    default: false
  check_only:
    description: Only the checks; load no weight.
    type: bool
    default: false
  timeout:
    description: Seconds the run may take; 0 for no limit.
    type: int
    default: 900
  environment:
    description: Environment for the run (the role's runtime environment); secret values masked.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Generate from the checkpoint with the current release's vLLM.
  vllm_vl_check:
    model: /models/Qwen2.5-VL-7B-Instruct-FP8
    images: [/data/cat.jpg]
    prompt: What is in the picture?
    environment: {VLLM_USE_FLASHINFER_SAMPLER: "0"}
  vars:
    ansible_python_interpreter: /opt/vllm/current/venv/bin/python
  become: true
  become_user: vllm
"""

RETURN = r"""
report:
  description: The command's report (checks, refusals, text, tokens, tokens_per_s, load_s).
  returned: always
  type: dict
summary:
  description: One line for the fleet report.
  returned: always
  type: str
ended_processes:
  description: Processes of the run still alive when it returned, ended by the module.
  returned: always
  type: list
  elements: dict
"""

# The child: the command's own source, then its main() on the arguments given on stdin.
CHILD_SCRIPT = (
    inspect.getsource(vllm_fleet_vl)
    + "\nimport sys as _sys\n_sys.exit(main(json.loads(_sys.stdin.read())['argv']))\n"
)


def command_line(params: Dict[str, Any]) -> List[str]:
    """The vllm-fleet-vl arguments for the module's parameters (always --json)."""
    argv = ["--model", params["model"], "--prompt", params["prompt"], "--json"]
    for image in params["images"]:
        argv += ["--image", image]
    argv += ["--max-tokens", str(params["max_tokens"]), "--max-model-len",
             str(params["max_model_len"]), "--gpu-memory-utilization",
             str(params["gpu_memory_utilization"])]  # fmt: skip
    if params["unquantized"]:
        argv.append("--unquantized")
    if params["check_only"]:
        argv.append("--check-only")
    return argv


def parse_report(rc: int, stdout: str, stderr: str) -> Dict[str, Any]:
    """The command's JSON report (its last stdout line), or an error with the root cause."""
    import json

    for line in reversed(stdout.splitlines()):  # vLLM logs to stdout too, before and after
        if line.startswith("{"):
            try:
                report = json.loads(line)
            except ValueError:
                continue
            if isinstance(report, dict):
                return report
    cause = root_cause(stderr) or last_line(stderr) or f"exit status {rc}"
    return {"refusals": [], "error": f"vllm-fleet-vl ended without a report: {cause}"}


def summary_line(report: Dict[str, Any]) -> str:
    """One line: method, vision exclusion, tokens and tokens/s, or why it did not run."""
    checks = report.get("checks") or {}
    head = (
        f"{report.get('path')}: vLLM {report.get('vllm_version')}, "
        f"{checks.get('quantization') or 'unquantized'}, vision layers excluded "
        f"{checks.get('vision_layers_excluded')}/{checks.get('vision_layers')}"
    )
    if report.get("error"):
        return f"{head}: FAILED: {report['error']}"
    if report.get("refusals"):
        return f"{head}: REFUSED: {report['refusals'][0]}"
    if "tokens" in report:
        return (
            f"{head}: {report['tokens']} tokens at {report['tokens_per_s']} tokens/s: "
            f"{report.get('text', '')!r}"
        )
    return f"{head}: checks passed"


def run_module() -> None:
    module = AnsibleModule(
        argument_spec={
            "model": {"type": "path", "required": True},
            "images": {"type": "list", "elements": "path", "default": []},
            "prompt": {"type": "str", "default": "Describe the picture."},
            "max_tokens": {"type": "int", "default": 32},
            "max_model_len": {"type": "int", "default": 2048},
            "gpu_memory_utilization": {"type": "float", "default": 0.3},
            "unquantized": {"type": "bool", "default": False},
            "check_only": {"type": "bool", "default": False},
            "timeout": {"type": "int", "default": 900},
            "environment": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    params = module.params
    module.no_log_values.update(secret_values(params["environment"]))
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "NO_COLOR": "1"}
    env.update({str(k): str(v) for k, v in params["environment"].items()})
    if module.check_mode:
        params["check_only"] = True
    argv = [sys.executable, "-I", "-c", CHILD_SCRIPT]
    rc, stdout, stderr, ended = run_child(
        argv, {"argv": command_line(params)}, env, params["timeout"]
    )
    if rc is None:
        report = {"refusals": [], "error": f"timed out after {params['timeout']} s"}
    else:
        report = parse_report(rc, stdout, stderr)
    if ended:
        module.warn(
            f"ended {len(ended)} process(es) the run left behind: "
            + ", ".join(f"{p['pid']} {p['command']}" for p in ended)
        )
    result = {"report": report, "summary": summary_line(report), "ended_processes": ended}
    problems = list(report.get("refusals") or []) + (
        [report["error"]] if report.get("error") else []
    )
    if problems:
        module.fail_json(msg=" | ".join(problems), changed=False, **result)
    module.exit_json(changed=False, **result)


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
