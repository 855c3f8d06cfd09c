#!/usr/bin/python
"""Prove that the vLLM installed in a venv is the one that was asked for."""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import sys
import tempfile
import traceback
from typing import Any, Dict, List, Optional, Tuple

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_child import child_report, last_line
from ansible.module_utils.vllm_fleet_engine import (
    GENERATE_SCRIPT,
    engine_report,
    run_child,
    secret_values,
)

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
        C(vllm.config.ModelConfig) (vllm_source_verify_checkpoints).
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
      description: Last line of vLLM's error for this checkpoint, or null.
      type: str
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

REQUIRED_MODELOPT_METHODS = ("modelopt", "modelopt_fp4")
NO_KERNELS_KIND = "no-kernels (VLLM_TARGET_DEVICE=empty or broken build)"
HEX_RE = re.compile(r"^[0-9a-f]{7,40}$")
SCM_NODE_RE = re.compile(r"(?:^|[.+])g([0-9a-f]{7,40})(?:$|[.+])")


# ---------------------------------------------------------------------------
# Pure helpers (no vLLM needed)
# ---------------------------------------------------------------------------


def split_version(version: str) -> Tuple[str, Optional[str]]:
    """Split a PEP 440 version into its public and local parts (local is None without a +)."""
    public, sep, local = version.strip().partition("+")
    return public, (local if sep and local else None)


def normalize_expected_version(version: str) -> str:
    """Turn a tag such as v0.30.0 into the version 0.30.0."""
    version = version.strip()
    if version[:1] in ("v", "V") and version[1:2].isdigit():
        return version[1:]
    return version


def version_problem(expected: Optional[str], public_version: str) -> Optional[str]:
    """Return why the installed public version is not the expected one, or None."""
    if not expected:
        return None
    wanted = normalize_expected_version(expected)
    if split_version(wanted)[0] == public_version:
        return None
    return (
        f"installed vLLM is {public_version}, expected {wanted}: the venv holds another build. "
        "Set vllm_source_version to the tag you mean, or rebuild so the venv gets it."
    )


def normalize_commit(commit: str) -> str:
    """Lower-case a commit and drop setuptools-scm's g prefix (gced6857af -> ced6857af)."""
    commit = commit.strip().lower()
    if commit.startswith("g") and HEX_RE.match(commit[1:]):
        return commit[1:]
    return commit


def recorded_commit(commit_id: Optional[str], version: str) -> Optional[str]:
    """Return the commit vLLM recorded: _version.commit_id, else a +g<sha> in the version."""
    if commit_id:
        commit = normalize_commit(str(commit_id))
        if HEX_RE.match(commit):
            return commit
    match = SCM_NODE_RE.search(version.lower())
    return match.group(1) if match else None


def commit_check(expected: Optional[str], recorded: Optional[str]) -> Tuple[str, Optional[str]]:
    """Compare commits by prefix; return (state, problem).

    state is matched, mismatched, unknown (nothing recorded), invalid or not requested.
    """
    if not expected:
        return "not requested", None
    wanted = normalize_commit(expected)
    if not HEX_RE.match(wanted):
        return "invalid", (
            f"vllm_source_commit {expected!r} is not a commit SHA: give 7 to 40 hex digits."
        )
    if recorded is None:
        return "unknown", None
    if wanted.startswith(recorded) or recorded.startswith(wanted):
        return "matched", None
    return "mismatched", (
        f"installed vLLM was built from commit {recorded}, expected {wanted}: the source was "
        "checked out at another commit (a moved tag?). Set vllm_source_commit to the commit of "
        "vllm_source_version, or rebuild from that commit."
    )


def exception_line(exc: BaseException) -> str:
    """Render an exception as its traceback's last line, e.g. 'ValueError: bad'."""
    return last_line("".join(traceback.format_exception_only(type(exc), exc)))


def modelopt_methods_of(methods: List[str]) -> List[str]:
    """Return the quantization method names that belong to ModelOpt."""
    return [name for name in methods if name.startswith("modelopt")]


def registry_problem(methods: List[str], resolved: Dict[str, Optional[str]]) -> Optional[str]:
    """Return why ModelOpt is not usable from the registry, or None.

    `resolved` maps each ModelOpt method to its config class name, or to None when
    get_quantization_config failed for it.
    """
    missing = [name for name in REQUIRED_MODELOPT_METHODS if name not in methods]
    if missing:
        return (
            f"vLLM's QUANTIZATION_METHODS lacks {', '.join(missing)}: this vLLM cannot load "
            "ModelOpt checkpoints. Set vllm_source_version to a release with ModelOpt "
            "support (0.10.1 or later) and rebuild."
        )
    broken = [name for name in REQUIRED_MODELOPT_METHODS if not resolved.get(name)]
    if broken:
        return (
            f"get_quantization_config does not resolve {', '.join(broken)}: the vLLM install is "
            "broken. Rebuild it (check the vllm_source_python venv and the install log)."
        )
    return None


def read_json(path: str) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """Read a JSON object from a file; return (data, None), (None, None) if absent, or an error."""
    if not os.path.isfile(path):
        return None, None
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        return None, f"{path}: {exception_line(exc)}"
    if not isinstance(data, dict):
        return None, f"{path}: not a JSON object"
    return data, None


def checkpoint_metadata(path: str) -> Dict[str, Any]:
    """Read what decides a checkpoint's quantization: config.json and hf_quant_config.json."""
    config, config_error = read_json(os.path.join(path, "config.json"))
    hf_quant, hf_quant_error = read_json(os.path.join(path, "hf_quant_config.json"))
    quant_cfg = (config or {}).get("quantization_config")
    producer = None
    if hf_quant is not None:
        producer_block = hf_quant.get("producer")
        if isinstance(producer_block, dict):
            producer = producer_block.get("name")
    return {
        "has_config": config is not None,
        "config_has_quantization_config": isinstance(quant_cfg, dict),
        "has_hf_quant_config": hf_quant is not None,
        "hf_quant_config_producer": producer,
        "errors": [error for error in (config_error, hf_quant_error) if error],
    }


def is_noproducer_trap(meta: Dict[str, Any]) -> bool:
    """True for the legacy trap: hf_quant_config.json decides and names no modelopt producer."""
    return (
        meta["has_hf_quant_config"]
        and not meta["config_has_quantization_config"]
        and meta["hf_quant_config_producer"] != "modelopt"
    )


def is_modelopt_method(quantization: Optional[str]) -> bool:
    """True when vLLM classified a checkpoint as one of the ModelOpt methods."""
    return bool(quantization) and str(quantization).startswith("modelopt")


def checkpoint_problem(
    path: str,
    quantization: Optional[str],
    error: Optional[str],
    meta: Dict[str, Any],
    vllm_version: str = "this",
) -> Optional[str]:
    """Return why a checkpoint does not load as ModelOpt in this vLLM, or None when it does."""
    if is_modelopt_method(quantization):
        return None
    if is_noproducer_trap(meta):
        producer = meta["hf_quant_config_producer"]
        what = "has no producer" if producer is None else f"names producer {producer!r}"
        if error:
            outcome = f"vLLM {vllm_version} rejects it ({error})"
        else:
            outcome = (
                f"vLLM {vllm_version} resolves no quantization and would load the model "
                "UNQUANTIZED without a warning"
            )
        return (
            f"checkpoint {path}: hf_quant_config.json {what}, so vLLM does not see a ModelOpt "
            f"checkpoint: {outcome}. (vLLM 0.22+ loads such a checkpoint UNQUANTIZED; 0.10.1 "
            "raises 'Unknown quantization method'.) Re-export it with nvidia-modelopt "
            "(modelopt.torch.export.export_hf_checkpoint), or add "
            '"producer": {"name": "modelopt", "version": "<modelopt version>"} to its '
            "hf_quant_config.json; or drop it from vllm_source_verify_checkpoints."
        )
    if error:
        return (
            f"checkpoint {path}: vLLM {vllm_version} cannot read its config: {error}. Fix the "
            "checkpoint or drop it from vllm_source_verify_checkpoints."
        )
    if not meta["has_hf_quant_config"] and not meta["config_has_quantization_config"]:
        found = (
            "has no quantization config (no quantization_config in config.json, no "
            "hf_quant_config.json), so vLLM loads it unquantized"
        )
    else:
        found = f"resolves to quantization {quantization!r} in vLLM {vllm_version}"
    return (
        f"checkpoint {path} {found}, not as ModelOpt. Point vllm_source_verify_checkpoints at "
        "checkpoints exported by nvidia-modelopt (export_hf_checkpoint)."
    )


def kernels_state(vllm_c_error: Optional[str]) -> Tuple[Dict[str, Any], str]:
    """Return the kernels dict and build_kind from the vllm._C import result."""
    if vllm_c_error is None:
        return {"vllm_C": True, "error": ""}, "cuda"
    return {"vllm_C": False, "error": vllm_c_error}, NO_KERNELS_KIND


def kernels_problem(require: bool, kernels: Dict[str, Any]) -> Optional[str]:
    """Return why a kernel-less build is not acceptable, or None."""
    if not require or kernels["vllm_C"]:
        return None
    return (
        f"vllm._C does not import ({kernels['error']}): this vLLM has no compiled kernels. Build "
        "with vllm_source_target_device: cuda on a host with the CUDA toolkit, or set "
        "require_kernels: false for a kernel-less (empty) build."
    )


def offline_environment() -> Dict[str, str]:
    """Environment that keeps transformers and huggingface_hub off the network."""
    return {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


# ---------------------------------------------------------------------------
# The probe: runs as `<venv python> -I -c PROBE_SCRIPT` and is the only code that imports vLLM.
# A child process because ansible-core 2.19 patches sys.intern in the module process, which
# makes torch._dynamo fail at import ("substitute_in_graph expects a function"); the child also
# keeps vLLM's stdout logging and any crash away from the module's JSON. -I keeps the current
# directory (maybe a vLLM source tree) and PYTHONPATH out of sys.path.
# ---------------------------------------------------------------------------

PROBE_SCRIPT = r"""
import json, os, sys, traceback

def last(exc):
    lines = traceback.format_exception_only(type(exc), exc)
    lines = [l.strip() for l in "".join(lines).splitlines() if l.strip()]
    lines = [l for l in lines if not l.startswith("For further information visit")] or lines
    return lines[-1] if lines else repr(exc)

request = json.loads(sys.stdin.read() or "{}")
out = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
report = {"python": sys.executable}

def finish():
    sys.stdout.flush()
    out.write(json.dumps(report))
    out.flush()
    sys.exit(0)

try:
    import vllm
except Exception as exc:
    report["import_error"] = last(exc)
    finish()

report["version"] = str(getattr(vllm, "__version__", "unknown"))
report["location"] = os.path.dirname(os.path.abspath(vllm.__file__ or ""))
try:
    from vllm import _version
    report["commit_id"] = getattr(_version, "__commit_id__", None) or getattr(
        _version, "commit_id", None)
except Exception:
    report["commit_id"] = None
try:
    from importlib.metadata import version as dist_version
    report["dist_version"] = dist_version("vllm")
except Exception:
    report["dist_version"] = None
try:
    import torch
    report["torch_version"] = str(torch.__version__)
    report["torch_cuda_version"] = getattr(torch.version, "cuda", None)
except Exception as exc:
    report["torch_version"] = None
    report["torch_cuda_version"] = None
    report["torch_error"] = last(exc)
try:
    import vllm._C
    report["vllm_c_error"] = None
except Exception as exc:
    report["vllm_c_error"] = last(exc)

report["methods"], report["resolved"], report["registry_errors"] = [], {}, {}
try:
    from vllm.model_executor.layers.quantization import (
        QUANTIZATION_METHODS, get_quantization_config)
    report["methods"] = [str(m) for m in QUANTIZATION_METHODS]
    for name in report["methods"]:
        if name.startswith("modelopt"):
            try:
                report["resolved"][name] = get_quantization_config(name).__name__
            except Exception as exc:
                report["resolved"][name] = None
                report["registry_errors"][name] = last(exc)
except Exception as exc:
    report["registry_errors"]["QUANTIZATION_METHODS"] = last(exc)

report["min_capability"] = {}
for name in report["resolved"]:
    try:
        cls = get_quantization_config(name)
        report["min_capability"][name] = int(cls.get_min_capability())
    except Exception:
        report["min_capability"][name] = None

report["fp8_kernels"] = {}
if report["vllm_c_error"] is None and request.get("capabilities"):
    try:
        from vllm import _custom_ops as ops
        for cap in request["capabilities"]:
            major, minor = (int(part) for part in cap.split("."))
            supported = ops.cutlass_scaled_mm_supports_fp8(major * 10 + minor)
            report["fp8_kernels"][cap] = bool(supported)
    except Exception as exc:
        report["fp8_kernels_error"] = last(exc)

report["checkpoints"] = {}
for path in request.get("checkpoints", []):
    try:
        from vllm.config import ModelConfig
        try:
            config = ModelConfig(model=path, skip_tokenizer_init=True)
        except TypeError:
            config = ModelConfig(model=path, task="auto", tokenizer=path, tokenizer_mode="auto",
                                 trust_remote_code=False, dtype="auto", seed=0,
                                 skip_tokenizer_init=True)
        quantization = getattr(config, "quantization", None)
        report["checkpoints"][path] = {
            "quantization": str(quantization) if quantization else None, "error": None}
    except Exception as exc:
        report["checkpoints"][path] = {"quantization": None, "error": last(exc)}
finish()
"""


# Imports every compiled extension of the vllm package, one JSON line per module as it goes,
# in a child of its own: an extension that crashes the interpreter at import costs the lines
# after it, not the probe's report.
EXTENSIONS_SCRIPT = r"""
import importlib, importlib.util, json, os, sys, traceback
out = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
# Where the package is, without importing it: a build without kernels has no .so to import.
location = list(importlib.util.find_spec("vllm").submodule_search_locations)[0]
modules = []
for folder, _, names in sorted(os.walk(location)):
    for name in sorted(names):
        if name.endswith(".so"):
            relative = os.path.relpath(os.path.join(folder, name[: name.index(".")]),
                                       os.path.dirname(location))
            modules.append(relative.replace(os.sep, "."))
out.write(json.dumps({"modules": modules}) + "\n")
out.flush()
for module in modules:
    try:
        importlib.import_module(module)
        error = None
    except Exception as exc:
        lines = [l.strip() for l in traceback.format_exception_only(type(exc), exc) if l.strip()]
        error = lines[-1] if lines else repr(exc)
    out.write(json.dumps({"module": module, "error": error}) + "\n")
    out.flush()
"""


def parse_extensions(rc: int, stdout: str, stderr: str) -> Dict[str, Optional[str]]:
    """Map each compiled extension to None (imports) or its error, from the child's lines; an
    extension the child did not report on (it crashed there) gets the crash as its error."""
    modules: List[str] = []
    results: Dict[str, Optional[str]] = {}
    for line in stdout.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and "modules" in item:
            modules = list(item["modules"])
        elif isinstance(item, dict) and "module" in item:
            results[str(item["module"])] = item.get("error")
    crash = f"the import child exited with {rc}: {last_line(stderr) or 'no output'}"
    for module in modules:
        if module not in results:
            results[module] = crash
            crash = "not tried: the import child had crashed before it"
    return results


def parse_probe_output(rc: int, stdout: str, stderr: str) -> Tuple[Dict[str, Any], Optional[str]]:
    """Return the probe's report, or an error naming what went wrong (exit code, stderr tail)."""
    return child_report("the probe", rc, stdout, stderr)


def identity_from_probe(report: Dict[str, Any]) -> Dict[str, Any]:
    """Turn the probe's raw version facts into the module's return values."""
    version = str(report.get("version", "unknown"))
    dist_version = report.get("dist_version")
    public, local = split_version(version)
    if local is None and dist_version:
        local = split_version(str(dist_version))[1]
    commit = recorded_commit(report.get("commit_id"), version)
    if commit is None and dist_version:
        commit = recorded_commit(None, str(dist_version))
    return {
        "vllm_version": version,
        "vllm_public_version": public,
        "vllm_local_version": local,
        "vllm_dist_version": dist_version,
        "vllm_location": report.get("location"),
        "vllm_commit": commit,
        "torch_version": report.get("torch_version"),
        "torch_cuda_version": report.get("torch_cuda_version"),
    }


def unusable_checkpoint(path: str) -> Optional[Tuple[str, str]]:
    """Return (short error, problem) when this user cannot read `path` at all, else None."""
    if not os.path.isdir(path):
        return "not a directory", (
            f"checkpoint {path} is not a directory on this host: fix the path in "
            "vllm_source_verify_checkpoints or copy the checkpoint there first."
        )
    if not os.access(path, os.R_OK | os.X_OK):
        return "not readable", (
            f"checkpoint {path} is not readable by user {getpass.getuser()}, who runs vLLM "
            "(vllm_source_user): make it readable (chmod -R a+rX) or list another path in "
            "vllm_source_verify_checkpoints."
        )
    return None


def checkpoint_entries(
    paths: List[str], probed: Dict[str, Dict[str, Any]], vllm_version: str = "this"
) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Build the checkpoints report and the problems, from the probe's per-path results."""
    entries: List[Dict[str, Any]] = []
    problems: List[str] = []
    for path in paths:
        unusable = unusable_checkpoint(path)
        if unusable:
            error, problem = unusable
            quantization, producer = None, None
        else:
            meta = checkpoint_metadata(path)
            result = probed.get(path, {"quantization": None, "error": "not probed"})
            quantization, error = result.get("quantization"), result.get("error")
            producer = meta["hf_quant_config_producer"]
            problem = checkpoint_problem(path, quantization, error, meta, vllm_version)
        entries.append(
            {
                "path": path,
                "quantization": quantization,
                "is_modelopt": is_modelopt_method(quantization),
                "hf_quant_config_producer": producer,
                "error": error,
            }
        )
        if problem:
            problems.append(problem)
    return entries, problems


def capability_text(value: Optional[int]) -> Optional[str]:
    """vLLM's integer capability (89) as nvidia-smi writes it ("8.9")."""
    if value is None:
        return None
    return f"{value // 10}.{value % 10}"


def capability_value(cap: str) -> int:
    """nvidia-smi's "9.0" as vLLM's integer capability (90)."""
    major, minor = (int(part) for part in cap.split("."))
    return major * 10 + minor


def gpu_problems(
    entries: List[Dict[str, Any]],
    min_capability: Dict[str, Optional[int]],
    fp8_kernels: Dict[str, bool],
    capabilities: List[str],
    vllm_version: str = "this",
) -> List[str]:
    """Why a checkpoint's method cannot run on this host's GPUs, one problem per checkpoint."""
    problems: List[str] = []
    for entry in entries:
        method = entry.get("quantization")
        if not is_modelopt_method(method) or not capabilities:
            continue
        needed = min_capability.get(method)
        too_old = [c for c in capabilities if needed is not None and capability_value(c) < needed]
        no_fp8 = [c for c in capabilities if method == "modelopt" and fp8_kernels.get(c) is False]
        if too_old:
            problems.append(
                f"checkpoint {entry['path']} is {method}, which vLLM {vllm_version} runs on "
                f"compute capability {capability_text(needed)} or newer; this host's GPUs have "
                f"{', '.join(too_old)}: serve it on newer GPUs or drop it from "
                "vllm_source_verify_checkpoints for this host."
            )
        elif no_fp8:
            problems.append(
                f"checkpoint {entry['path']} is FP8 (modelopt) but this build's CUTLASS FP8 "
                f"kernels do not support compute capability {', '.join(no_fp8)}: rebuild with "
                "vllm_source_cuda_arch_list covering these GPUs (empty = the detected GPUs)."
            )
    return problems


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


def extension_warnings(extensions: Dict[str, Optional[str]]) -> List[str]:
    """One warning per compiled extension that does not import (vllm._C is a problem)."""
    return [
        f"compiled extension {name} does not import: {error}; the features it carries are "
        "unavailable in this release"
        for name, error in sorted(extensions.items())
        if error and name != "vllm._C"
    ]


def run_engine_check(module: AnsibleModule, kernels: bool) -> Dict[str, Any]:
    """Start an engine with dummy weights (when asked and the kernels are there)."""
    params = module.params
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


def evaluate(
    params: Dict[str, Any], report: Dict[str, Any], paths: List[str]
) -> Tuple[Dict[str, Any], List[str], List[str]]:
    """Decide from a probe report: return (result, problems, warnings)."""
    result: Dict[str, Any] = identity_from_probe(report)
    kernels, build_kind = kernels_state(report.get("vllm_c_error"))
    methods = list(report.get("methods", []))
    resolved = dict(report.get("resolved", {}))
    extensions = dict(report.get("extensions") or {})
    result.update(
        kernels=kernels,
        build_kind=build_kind,
        quantization_methods=methods,
        modelopt_methods=resolved,
        extensions=extensions,
    )
    problems: List[str] = []
    warnings: List[str] = extension_warnings(extensions)
    problem = registry_problem(methods, resolved)
    if problem:
        errors = report.get("registry_errors") or {}
        if errors:
            problem += " Errors: " + "; ".join(f"{k}: {v}" for k, v in sorted(errors.items()))
        problems.append(problem)
    problem = version_problem(params.get("expect_version"), result["vllm_public_version"])
    if problem:
        problems.append(problem)
    state, problem = commit_check(params.get("expect_commit"), result["vllm_commit"])
    result["commit_check"] = state
    if problem:
        problems.append(problem)
    if state == "unknown":
        warnings.append(
            "vLLM recorded no commit in vllm/_version.py (built without git metadata or with "
            "SETUPTOOLS_SCM_PRETEND_VERSION): vllm_source_commit was not checked."
        )
    problem = kernels_problem(bool(params.get("require_kernels")), kernels)
    if problem:
        problems.append(problem)
    entries, checkpoint_problems = checkpoint_entries(
        paths, report.get("checkpoints", {}), result["vllm_public_version"]
    )
    result["checkpoints"] = entries
    problems.extend(checkpoint_problems)
    min_capability = dict(report.get("min_capability") or {})
    fp8_kernels = dict(report.get("fp8_kernels") or {})
    result["min_capabilities"] = {k: capability_text(v) for k, v in sorted(min_capability.items())}
    result["fp8_kernels"] = fp8_kernels
    problems.extend(
        gpu_problems(
            entries,
            min_capability,
            fp8_kernels,
            list(params.get("compute_capabilities") or []),
            result["vllm_public_version"],
        )
    )
    return result, problems, warnings


def run_module() -> None:
    """Entry point: run the probe with this interpreter, check what it found, and report."""
    module = AnsibleModule(
        argument_spec={
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
        },
        supports_check_mode=True,
    )
    params = module.params
    module.no_log_values.update(secret_values(params["engine_environment"]))
    paths = [os.path.abspath(path) for path in params["checkpoints"]]
    env = offline_environment() if params["offline"] else {}
    rc, stdout, stderr = module.run_command(
        [sys.executable, "-I", "-c", PROBE_SCRIPT],
        data=json.dumps(
            {
                "checkpoints": [p for p in paths if not unusable_checkpoint(p)],
                "capabilities": params["compute_capabilities"],
            }
        ),
        environ_update=env,
        cwd="/",
    )
    report, probe_error = parse_probe_output(rc, stdout, stderr)
    if probe_error or "import_error" in report:
        cause = probe_error or report["import_error"]
        module.fail_json(
            msg=(
                f"vllm does not import with {sys.executable}: {cause}. Check that the install "
                "task used this venv (vllm_source_prefix, vllm_source_python) and read its log; "
                "rebuild if the package is missing or half installed."
            ),
            python=sys.executable,
            stderr_tail=stderr[-4000:],
        )
    report["extensions"] = parse_extensions(
        *module.run_command(
            [sys.executable, "-I", "-c", EXTENSIONS_SCRIPT], environ_update=env, cwd="/"
        )
    )
    result, problems, warnings = evaluate(params, report, paths)
    result["engine"] = run_engine_check(module, bool(result["kernels"]["vllm_C"]))
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
