"""Whether vLLM reads the checkpoints as ModelOpt ones and can run them on this host's GPUs.

From the probe's report (vllm_fleet_probe) and the checkpoints' own config files: the
ModelOpt methods in vLLM's registry, how vLLM classified each checkpoint (catching the legacy
hf_quant_config.json without a modelopt producer, which vLLM 0.22+ loads silently
UNQUANTIZED), whether vLLM builds the checkpoint's quantization config as the engine does at
start (a method name alone is not a loadable checkpoint), and each method's minimum compute
capability and FP8 kernels against the GPUs.
"""

from __future__ import annotations

import getpass
import json
import os
from typing import Any, Dict, List, Optional, Tuple

from ansible.module_utils.vllm_fleet_child import exception_line
from ansible.module_utils.vllm_fleet_versions import capability_text, capability_value
from ansible.module_utils.vllm_fleet_vl import architecture_refusals, layer_refusals, summary

EXPORT_FIX = "re-export it with nvidia-modelopt (modelopt.torch.export.export_hf_checkpoint)"

REQUIRED_MODELOPT_METHODS = ("modelopt", "modelopt_fp4")


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


def quantization_source(meta: Dict[str, Any]) -> str:
    """The file whose quantization config vLLM reads: config.json's wins over
    hf_quant_config.json."""
    if meta["config_has_quantization_config"]:
        return "config.json's quantization_config"
    return "hf_quant_config.json"


def load_fix(path: str, load_error: str, meta: Dict[str, Any]) -> str:
    """What to do about the reason vLLM gave for refusing a checkpoint's quantization config."""
    source = quantization_source(meta)
    if "not supported for the current GPU" in load_error:
        return (
            f"Serve {path} on GPUs with at least the minimum capability vLLM names, or drop "
            "it from vllm_source_verify_checkpoints for this host"
        )
    if "is not supported for quantization method" in load_error:
        return (
            f'Set "dtype" in {path}/config.json to one of the dtypes vLLM names, or '
            f"{EXPORT_FIX}, or drop it from vllm_source_verify_checkpoints"
        )
    if "requires the following fields" in load_error:
        block = (
            'the "quantization" block of hf_quant_config.json'
            if source == "hf_quant_config.json"
            else source
        )
        return (
            f"Add the fields vLLM lists to {block} in {path}, or {EXPORT_FIX}, or drop it "
            "from vllm_source_verify_checkpoints"
        )
    return (
        f"Correct {source} in {path} as vLLM's reason says, or {EXPORT_FIX}, or drop it from "
        "vllm_source_verify_checkpoints"
    )


def load_problem(
    path: str,
    quantization: str,
    load_error: str,
    meta: Dict[str, Any],
    vllm_version: str = "this",
) -> str:
    """The problem for a checkpoint vLLM classifies as a ModelOpt method but refuses when the
    engine starts: building its quantization config (from_config, the capability and dtype
    checks) raised `load_error`."""
    return (
        f"checkpoint {path} (listed in vllm_source_verify_checkpoints) is {quantization} to "
        f"vLLM {vllm_version}, which refuses it when the engine builds its quantization config "
        f"from {quantization_source(meta)}: {load_error.rstrip('.')}. "
        f"{load_fix(path, load_error, meta)}."
    )


def checkpoint_problem(
    path: str,
    quantization: Optional[str],
    error: Optional[str],
    meta: Dict[str, Any],
    vllm_version: str = "this",
    load_error: Optional[str] = None,
) -> Optional[str]:
    """Return why a checkpoint does not load as ModelOpt in this vLLM, or None when it does.

    `error` is vLLM's error from classifying the checkpoint (ModelConfig), `load_error` its
    error from building the quantization config as the engine does at start.
    """
    if is_modelopt_method(quantization):
        if load_error:
            return load_problem(path, str(quantization), load_error, meta, vllm_version)
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
        hint = ""
        if meta["has_hf_quant_config"] and not meta["config_has_quantization_config"]:
            hint = (
                " vLLM classifies a modelopt hf_quant_config.json only by its FP8 and NVFP4 "
                "quant_algo values; other algorithms (MXFP8, MIXED_PRECISION) must be in "
                f"config.json's quantization_config: {EXPORT_FIX} (nvidia-modelopt 0.31+ "
                "writes config.json's quantization_config)."
            )
        return (
            f"checkpoint {path}: vLLM {vllm_version} cannot read its config: {error}.{hint} "
            "Fix the checkpoint or drop it from vllm_source_verify_checkpoints."
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
            quantization, producer, result = None, None, {}
        else:
            meta = checkpoint_metadata(path)
            result = probed.get(path, {"quantization": None, "error": "not probed"})
            quantization, error = result.get("quantization"), result.get("error")
            producer = meta["hf_quant_config_producer"]
            problem = checkpoint_problem(
                path, quantization, error, meta, vllm_version, result.get("load_error")
            )
        entries.append(
            {
                "path": path,
                "quantization": quantization,
                "is_modelopt": is_modelopt_method(quantization),
                "hf_quant_config_producer": producer,
                "error": error,
                "load_error": result.get("load_error"),
                "quant_config": result.get("quant_config"),
                "min_capability": capability_text(result.get("min_capability")),
                "exclude_modules": result.get("exclude_modules"),
            }
        )
        if problem:
            problems.append(problem)
        elif result.get("vision"):
            entries[-1]["vision"] = summary(result["vision"])
            problems += vision_problems(result["vision"])
    return entries, problems


def vision_problems(facts: Dict[str, Any]) -> List[str]:
    """A vision-language checkpoint's problems from vllm-fleet-vl's facts (the probe's
    `vision` entry): an architecture this vLLM does not know, a vision tower it would
    quantize, a language model left unquantized."""
    found = architecture_refusals(facts) or layer_refusals(facts)
    return [
        f"checkpoint {problem}; or drop it from vllm_source_verify_checkpoints."
        for problem in found
    ]


def gpu_problems(
    entries: List[Dict[str, Any]],
    min_capability: Dict[str, Optional[int]],
    fp8_kernels: Dict[str, bool],
    capabilities: List[str],
    vllm_version: str = "this",
) -> List[str]:
    """Why a checkpoint's method cannot run on this host's GPUs, one problem per checkpoint.

    The minimum capability is the checkpoint's own loaded config's (entry `min_capability`)
    when the probe built it, else the method's (`min_capability`, from the registry).
    """
    problems: List[str] = []
    for entry in entries:
        method = entry.get("quantization")
        if not is_modelopt_method(method) or not capabilities:
            continue
        loaded = entry.get("min_capability")
        needed = capability_value(loaded) if loaded else min_capability.get(method)
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
