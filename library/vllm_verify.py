#!/usr/bin/python
"""Prove that the vLLM installed in a venv is the one that was asked for."""

from __future__ import annotations

import os
import sys

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_engine import secret_values
from ansible.module_utils.vllm_fleet_engine_check import engine_problem, run_engine_check
from ansible.module_utils.vllm_fleet_probe import import_problem, run_probe
from ansible.module_utils.vllm_fleet_verify import evaluate

DOCUMENTATION = r"""
---
module: vllm_verify
short_description: Import the installed vLLM and check its version, ModelOpt support and checkpoints
description:
  - Runs with the vLLM venv's own interpreter (set C(ansible_python_interpreter) to
    C(<venv>/bin/python) for the task), imports C(vllm) and reports what was installed.
  - Checks the public version and the recorded commit, that the ModelOpt quantization methods
    C(modelopt) and C(modelopt_fp4) are registered and resolve to config classes, whether the
    compiled kernels (C(vllm._C)) import, and how vLLM's own config code classifies each
    checkpoint directory.
  - For each checkpoint that resolves to a quantization method, builds its quantization config
    the way the engine does at start, up to the weights (C(VllmConfig.get_quantization_config)
    with a default C(LoadConfig), which runs the method's C(from_config), the GPU capability
    check where the platform reports a GPU, the activation dtype check and
    C(maybe_update_config)). A
    checkpoint vLLM refuses there (for example NVFP4 in C(hf_quant_config.json) without
    C(group_size)) fails the task with vLLM's reason and the fix, although its method name
    resolves.
  - Catches the legacy C(hf_quant_config.json) without C(producer) trap, which vLLM 0.22 and
    later load silently UNQUANTIZED and which vLLM 0.10.1 rejects.
  - vLLM is imported only in a child process of that interpreter (C(python -I)), never when the
    module file is loaded, so C(ansible-doc) and unit tests need no vLLM.
  - Nothing on the host changes; works in check mode.
options:
  expect_version:
    description:
      - Version the public part of C(vllm.__version__) must equal, e.g. C(0.30.0) or C(v0.30.0)
        (vllm_source_version). A local part such as C(+empty) is ignored.
    type: str
  expect_commit:
    description:
      - Commit SHA (full or abbreviated, 7+ hex digits) the build must come from
        (vllm_source_commit). Compared with the commit setuptools-scm recorded in
        C(vllm/_version.py); when none was recorded the check is skipped, a warning is given and
        C(commit_check) is C(unknown).
    type: str
  checkpoints:
    description:
      - Checkpoint directories that must resolve to a ModelOpt quantization method through
        C(vllm.config.ModelConfig) and whose quantization config vLLM must build as the engine
        does at start (vllm_source_verify_checkpoints). Only config files are read, no weights.
    type: list
    elements: path
    default: []
  require_kernels:
    description:
      - Fail when C(vllm._C) does not import, i.e. the build has no compiled kernels.
    type: bool
    default: false
  offline:
    description:
      - Set C(HF_HUB_OFFLINE=1) and C(TRANSFORMERS_OFFLINE=1) before importing vLLM, so that
        nothing is fetched from a hub.
    type: bool
    default: true
  compute_capabilities:
    description:
      - Compute capabilities of this host's GPUs, such as C(9.0) (from nvidia_driver_facts).
        Each checkpoint's method must support every one of them (the method's
        C(get_min_capability())); with compiled kernels, FP8 checkpoints also need vLLM's
        CUTLASS FP8 kernels for each (C(cutlass_scaled_mm_supports_fp8)).
    type: list
    elements: str
    default: []
  engine_check:
    description:
      - Start a vLLM engine on the GPU with dummy weights (C(load_format=dummy), a tiny Llama
        config, no tokenizer) and generate a few tokens, in a child process whose processes
        all end with it. Proves that the release as installed can start an engine; a runtime
        requirement left out (vllm_source_runtime_deps_exclude) that the engine imports at
        start fails here, with the root cause, not only at serving time.
      - Needs the compiled kernels and a GPU; skipped (C(engine.state) C(skipped)) without
        kernels.
    type: bool
    default: false
  engine_environment:
    description: Environment of the engine check (vllm_source_runtime_env, e.g.
      C(VLLM_USE_FLASHINFER_SAMPLER=0)); values of secret-named variables are masked.
    type: dict
    default: {}
  engine_gpu_memory_utilization:
    description: Fraction of the GPU's memory the engine check may take.
    type: float
    default: 0.3
  engine_timeout:
    description: Seconds the engine check may take before it is killed and reported.
    type: int
    default: 600
  excluded_requirements:
    description: The runtime requirements the install left out, named in the engine check's
      error so the fix is clear.
    type: list
    elements: str
    default: []
author: vllm-fleet
"""

EXAMPLES = r"""
- name: Check that the installed vLLM is the requested build and reads our ModelOpt checkpoints.
  vllm_verify:
    expect_version: "{{ vllm_source_version }}"
    expect_commit: "{{ vllm_source_commit | default(omit, true) }}"
    checkpoints: "{{ vllm_source_verify_checkpoints }}"
    require_kernels: "{{ vllm_source_target_device == 'cuda' }}"
  vars:
    ansible_python_interpreter: "{{ vllm_source_prefix }}/venv/bin/python"
"""

RETURN = r"""
vllm_version:
  description: C(vllm.__version__) as the package reports it.
  type: str
  returned: always
  sample: 0.30.0
vllm_public_version:
  description: The public part of C(vllm_version) (before any C(+)).
  type: str
  returned: always
  sample: 0.30.0
vllm_local_version:
  description: >-
    The local part of C(vllm_version), or of the installed distribution's version when
    C(vllm_version) has none (C(empty) for a VLLM_TARGET_DEVICE=empty build); null when neither
    has one.
  type: str
  returned: always
  sample: empty
vllm_dist_version:
  description: The version in the installed distribution's metadata (importlib.metadata).
  type: str
  returned: always
  sample: 0.30.0+empty
vllm_location:
  description: Directory of the imported C(vllm) package.
  type: str
  returned: always
vllm_commit:
  description: Commit recorded in C(vllm/_version.py) (without the C(g) prefix); null when unknown.
  type: str
  returned: always
  sample: ced6857af
commit_check:
  description: >-
    C(matched), C(mismatched), C(unknown) (no commit recorded, check skipped),
    C(invalid) (expect_commit is not a SHA) or C(not requested).
  type: str
  returned: always
torch_version:
  description: C(torch.__version__) in the venv.
  type: str
  returned: always
  sample: 2.13.0+cpu
torch_cuda_version:
  description: C(torch.version.cuda); null for a CPU build of torch.
  type: str
  returned: always
quantization_methods:
  description: C(QUANTIZATION_METHODS) of C(vllm.model_executor.layers.quantization).
  type: list
  elements: str
  returned: always
modelopt_methods:
  description: Every method whose name starts with C(modelopt), mapped to its config class name.
  type: dict
  returned: always
  sample: {"modelopt": "ModelOptFp8Config", "modelopt_fp4": "ModelOptNvFp4Config"}
kernels:
  description: Whether C(vllm._C) imports (C(vllm_C)) and the last line of the error if not.
  type: dict
  returned: always
  sample: {"vllm_C": false, "error": "ModuleNotFoundError: No module named 'vllm._C'"}
build_kind:
  description: C(cuda) when C(vllm._C) imports, otherwise a no-kernels description.
  type: str
  returned: always
checkpoints:
  description: One entry per checkpoint with how vLLM classified it.
  type: list
  elements: dict
  returned: always
  contains:
    path:
      description: The checkpoint directory.
      type: str
    quantization:
      description: C(ModelConfig.quantization); null when vLLM loads it unquantized or failed.
      type: str
    is_modelopt:
      description: Whether the quantization is a ModelOpt method.
      type: bool
    hf_quant_config_producer:
      description: C(producer.name) in C(hf_quant_config.json); null when absent.
      type: str
    error:
      description: >-
        Last line of vLLM's error when C(ModelConfig) classifies this checkpoint, or null.
      type: str
    load_error:
      description: >-
        Last line of vLLM's error when it builds this checkpoint's quantization config as the
        engine does at start (C(VllmConfig.get_quantization_config)), e.g.
        C(ValueError: NVFP4 quantization requires the following fields in hf_quant_config.json:
        ['group_size']); null when it builds it or the checkpoint is not quantized.
      type: str
    quant_config:
      description: >-
        Class of the quantization config vLLM built, e.g. C(ModelOptNvFp4Config); null when
        none was built.
      type: str
    min_capability:
      description: >-
        C(get_min_capability()) of the built quantization config, as a compute capability such as
        C(7.5); the GPU check uses it before the method's registry value. Null when none was built.
      type: str
    exclude_modules:
      description: >-
        The layers the built quantization config leaves unquantized (its C(exclude_modules),
        from C(exclude_modules) in C(hf_quant_config.json) or C(ignore) in C(config.json));
        null when none was built or the config has no such list.
      type: list
      elements: str
min_capabilities:
  description: The lowest compute capability each ModelOpt method runs on in this vLLM, e.g. C(8.9).
  type: dict
  returned: always
  sample: {"modelopt": "8.0", "modelopt_fp4": "7.5"}
fp8_kernels:
  description: >-
    Per GPU compute capability, whether vLLM's CUTLASS FP8 kernels support it (empty without
    kernels).
  type: dict
  returned: always
  sample: {"9.0": true}
extensions:
  description: >-
    Every compiled extension module in the vllm package (its C(.so) files), mapped to null
    when it imports and to the last line of its import error otherwise.
  type: dict
  returned: always
  sample: {"vllm._C": null, "vllm._moe_C": null, "vllm.vllm_flash_attn._vllm_fa3_C": null}
engine:
  description: >-
    The engine check: C(state) (C(started), C(failed), C(skipped) or C(not requested)),
    C(reason), C(load_s), C(tokens), C(error) and C(ended_processes) (processes of the check
    still alive when it returned, which the module ended).
  type: dict
  returned: always
  sample: {"state": "started", "load_s": 31.2, "tokens": 4, "error": null, "ended_processes": []}
"""

ARGUMENT_SPEC = {
    "expect_version": {"type": "str"},
    "expect_commit": {"type": "str"},
    "checkpoints": {"type": "list", "elements": "path", "default": []},
    "require_kernels": {"type": "bool", "default": False},
    "offline": {"type": "bool", "default": True},
    "compute_capabilities": {"type": "list", "elements": "str", "default": []},
    "engine_check": {"type": "bool", "default": False},
    "engine_environment": {"type": "dict", "default": {}},
    "engine_gpu_memory_utilization": {"type": "float", "default": 0.3},
    "engine_timeout": {"type": "int", "default": 600},
    "excluded_requirements": {"type": "list", "elements": "str", "default": []},
}


def run_module() -> None:
    """Run the probe with this interpreter, check what it found, and report."""
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    module.no_log_values.update(secret_values(params["engine_environment"]))
    paths = [os.path.abspath(path) for path in params["checkpoints"]]
    report, cause, stderr = run_probe(
        module.run_command, paths, params["compute_capabilities"], params["offline"]
    )
    if cause:
        module.fail_json(
            msg=import_problem(cause), python=sys.executable, stderr_tail=stderr[-4000:]
        )
    result, problems, warnings = evaluate(params, report, paths)
    result["engine"] = run_engine_check(params, bool(result["kernels"]["vllm_C"]))
    problem = engine_problem(result["engine"], params["excluded_requirements"])
    if problem:
        problems.append(problem)
    result.update(changed=False, python=sys.executable)
    for warning in warnings:
        module.warn(warning)
    if problems:
        module.fail_json(msg=" | ".join(problems), problems=problems, **result)
    module.exit_json(**result)


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
