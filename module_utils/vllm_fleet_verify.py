"""vllm_verify's verdict: from the probe's report to the module's result, problems, warnings.

Puts together the identity checks (vllm_fleet_identity), the kernels and compiled extensions,
and the ModelOpt registry, checkpoint and GPU checks (vllm_fleet_modelopt).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ansible.module_utils.vllm_fleet_identity import (
    commit_check,
    identity_from_probe,
    version_problem,
)
from ansible.module_utils.vllm_fleet_modelopt import (
    checkpoint_entries,
    gpu_problems,
    registry_problem,
)
from ansible.module_utils.vllm_fleet_versions import capability_text

NO_KERNELS_KIND = "no-kernels (VLLM_TARGET_DEVICE=empty or broken build)"


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


def extension_warnings(extensions: Dict[str, Optional[str]]) -> List[str]:
    """One warning per compiled extension that does not import (vllm._C is a problem)."""
    return [
        f"compiled extension {name} does not import: {error}; the features it carries are "
        "unavailable in this release"
        for name, error in sorted(extensions.items())
        if error and name != "vllm._C"
    ]


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
