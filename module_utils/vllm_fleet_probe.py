"""The probe: the child processes that import the installed vLLM in its own venv.

PROBE_SCRIPT reports vLLM's version, commit, kernels, quantization registry, the minimum
capability of each ModelOpt method, FP8 kernel support per GPU, how vLLM's config code
classifies each checkpoint and whether the engine's start would build its quantization config
(or refuse it, and why); EXTENSIONS_SCRIPT imports every compiled extension. run_probe
runs both with the module's interpreter and reads their reports.
"""

from __future__ import annotations

import inspect
import json
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible.module_utils import vllm_fleet_vl
from ansible.module_utils.vllm_fleet_child import (
    CHILD_HELPERS,
    child_report,
    last_line,
    offline_environment,
)
from ansible.module_utils.vllm_fleet_modelopt import unusable_checkpoint
from ansible.module_utils.vllm_fleet_versions import parse_capability

# AnsibleModule.run_command, or a stand-in with its signature.
RunCommand = Callable[..., Tuple[int, str, str]]

# The probe runs as `<venv python> -I -c PROBE_SCRIPT`, the request as JSON on stdin. A child
# process because ansible-core 2.19 patches sys.intern in the module process, which makes
# torch._dynamo fail at import ("substitute_in_graph expects a function"); the child also
# keeps vLLM's stdout logging and any crash away from the module's JSON. -I keeps the current
# directory (maybe a vLLM source tree) and PYTHONPATH out of sys.path.

# vllm-fleet-vl's source (vllm_fleet/vl.py) comes first: the probe builds each checkpoint's
# ModelConfig and quantization config with its functions, and for a vision-language
# checkpoint asks its vllm_facts which layers this vLLM would quantize.
PROBE_SCRIPT = (
    CHILD_HELPERS
    + inspect.getsource(vllm_fleet_vl)
    + r"""
import json, os, sys

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
    report["import_error"] = exception_line(exc)
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
    report["torch_error"] = exception_line(exc)
try:
    import vllm._C
    report["vllm_c_error"] = None
except Exception as exc:
    report["vllm_c_error"] = exception_line(exc)

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
                report["registry_errors"][name] = exception_line(exc)
except Exception as exc:
    report["registry_errors"]["QUANTIZATION_METHODS"] = exception_line(exc)

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
        for cap, value in request["capabilities"].items():
            supported = ops.cutlass_scaled_mm_supports_fp8(value)
            report["fp8_kernels"][cap] = bool(supported)
    except Exception as exc:
        report["fp8_kernels_error"] = exception_line(exc)


# What the engine does at start, up to the weights: the checkpoint's quantization config built
# by the method's from_config, then the capability (skipped where the platform reports none),
# dtype and maybe_update_config checks (vl.py's model_config_of and quant_config_of).
def loaded_fields(quant_config):
    fields = {"quant_config": type(quant_config).__name__, "min_capability": None,
              "exclude_modules": None}
    try:
        fields["min_capability"] = int(quant_config.get_min_capability())
    except Exception:
        pass
    exclude = getattr(quant_config, "exclude_modules", None)
    if isinstance(exclude, (list, tuple)):
        fields["exclude_modules"] = [str(name) for name in exclude]
    return fields


report["checkpoints"] = {}
for path in request.get("checkpoints", []):
    entry = {"quantization": None, "error": None, "load_error": None, "quant_config": None,
             "min_capability": None, "exclude_modules": None}
    report["checkpoints"][path] = entry
    try:
        if "vision_config" in (read_json_file(os.path.join(path, "config.json")) or {}):
            entry["vision"] = vllm_facts(path)
    except Exception as exc:
        entry["vision"] = {"path": path, "error": exception_line(exc)}
    try:
        config = model_config_of(path)
        quantization = getattr(config, "quantization", None)
    except Exception as exc:
        entry["error"] = exception_line(exc)
        continue
    entry["quantization"] = str(quantization) if quantization else None
    if not quantization:
        continue
    try:
        quant_config = quant_config_of(config)
    except Exception as exc:
        entry["load_error"] = exception_line(exc)
        continue
    if quant_config is not None:
        entry.update(loaded_fields(quant_config))
finish()
"""
)


# Imports every compiled extension of the vllm package, one JSON line per module as it goes,
# in a child of its own: an extension that crashes the interpreter at import costs the lines
# after it, not the probe's report.
EXTENSIONS_SCRIPT = (
    CHILD_HELPERS
    + r"""
import importlib, importlib.util, json, os, sys
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
        error = exception_line(exc)
    out.write(json.dumps({"module": module, "error": error}) + "\n")
    out.flush()
"""
)


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


def probe_request(paths: List[str], capabilities: List[str]) -> Dict[str, Any]:
    """What the probe reads on stdin: the checkpoints this user can read, and each GPU
    capability with vLLM's integer for it (9.0: 90) for the FP8 kernel check."""
    parsed = {cap: parse_capability(cap) for cap in capabilities}
    return {
        "checkpoints": [path for path in paths if not unusable_checkpoint(path)],
        "capabilities": {cap: c.value for cap, c in parsed.items() if c is not None},
    }


def import_problem(cause: str) -> str:
    """The failure message when vLLM does not import in the module's interpreter."""
    return (
        f"vllm does not import with {sys.executable}: {cause}. Check that the install "
        "task used this venv (vllm_source_prefix, vllm_source_python) and read its log; "
        "rebuild if the package is missing or half installed."
    )


def run_probe(
    run_command: RunCommand, paths: List[str], capabilities: List[str], offline: bool
) -> Tuple[Dict[str, Any], Optional[str], str]:
    """Run the probe, then the extensions child, with this interpreter.

    Returns (report, why vLLM does not import or None, the probe's stderr); the report's
    `extensions` is the extensions child's result.
    """
    env = offline_environment() if offline else {}
    rc, stdout, stderr = run_command(
        [sys.executable, "-I", "-c", PROBE_SCRIPT],
        data=json.dumps(probe_request(paths, capabilities)),
        environ_update=env,
        cwd="/",
    )
    report, error = parse_probe_output(rc, stdout, stderr)
    if error or "import_error" in report:
        return report, error or report["import_error"], stderr
    report["extensions"] = parse_extensions(
        *run_command([sys.executable, "-I", "-c", EXTENSIONS_SCRIPT], environ_update=env, cwd="/")
    )
    return report, None, stderr
