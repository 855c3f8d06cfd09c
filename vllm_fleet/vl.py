"""vllm-fleet-vl: run a ModelOpt-quantized vision-language checkpoint with this venv's vLLM.

    vllm-fleet-vl --model /models/Qwen2.5-VL-7B-Instruct-FP8 --image cat.jpg \
        --prompt "What is in the picture?"

Run it with the Python of the release's venv (`/opt/vllm/current/venv/bin/python -m
vllm_fleet.vl`, or scripts/qwen/run_qwen2_5_vl_vllm_modelopt.py). Before any weight is
loaded it refuses, with the reason and the fix, a checkpoint that is not ModelOpt, a GPU
whose compute capability is below the method's minimum, an architecture this vLLM does not
know, and a vision tower this vLLM would quantize although the checkpoint keeps it
unquantized (an `exclude_modules` form the tag does not remap, vLLM issue #28072). Each of
these is decided by the installed vLLM's own code: its ModelConfig, its quantization config
built as the engine builds it, the model class's weight-name mapping applied to that config
as the model's constructor applies it, and the config's `is_layer_excluded` asked for every
linear layer the checkpoint holds. Then it generates from the images and the prompt and
prints the text, the token count and tokens/s (`--json`: one JSON object).

This file is also module_utils/vllm_fleet_vl.py (a symlink), which the role's vllm_verify
and vllm_vl_check modules send to hosts: standard library only at import time, vLLM imported
inside functions, no `from __future__` (the modules run it after other code).
"""

import argparse
import base64
import fnmatch
import inspect
import io
import json
import os
import struct
import sys
import time
import types
from typing import Any, Dict, List, Optional, Sequence

# Where vision-language models keep their vision tower when the model class names none.
VISION_PREFIXES = ("visual.", "vision_tower.", "vision_model.", "model.visual.")
EXCLUSION_FIX = (
    "use a vLLM tag that remaps wildcard exclusions (vLLM PR #30164, in 0.13 and later: "
    "set vllm_source_version and rebuild), or re-export the checkpoint with nvidia-modelopt "
    "so that exclude_modules names the vision tower as this vLLM names it"
)
REEXPORT_FIX = "export it with nvidia-modelopt (modelopt.torch.export.export_hf_checkpoint)"


# ---------------------------------------------------------------------------------------
# The checkpoint's files, read without vLLM.


def read_json_file(path: str) -> Optional[Dict[str, Any]]:
    """A JSON object from `path`, or None when the file is absent."""
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    return data if isinstance(data, dict) else None


def safetensors_shapes(path: str) -> Dict[str, List[int]]:
    """The tensor names and shapes in one .safetensors file, from its header alone."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return {
        name: list(info.get("shape", []))
        for name, info in header.items()
        if name != "__metadata__" and isinstance(info, dict)
    }


def weight_shapes(path: str) -> Dict[str, List[int]]:
    """Every tensor of the checkpoint at `path` and its shape (all *.safetensors files)."""
    shapes: Dict[str, List[int]] = {}
    for name in sorted(os.listdir(path)):
        if name.endswith(".safetensors"):
            shapes.update(safetensors_shapes(os.path.join(path, name)))
    return shapes


def linear_modules(shapes: Dict[str, List[int]]) -> List[str]:
    """The modules whose `.weight` is a matrix: the layers a quantization config decides on."""
    return sorted(
        name[: -len(".weight")]
        for name, shape in shapes.items()
        if name.endswith(".weight") and len(shape) == 2
    )


def is_tower(module: str, prefixes: Sequence[str]) -> bool:
    """Whether `module` (a vLLM module name) belongs to the vision tower."""
    return any(module.startswith(prefix) for prefix in prefixes)


# ---------------------------------------------------------------------------------------
# Facts from the installed vLLM.


def model_config_of(path: str):
    from vllm.config import ModelConfig

    try:
        return ModelConfig(model=path, skip_tokenizer_init=True)
    except TypeError:  # tags whose ModelConfig wants every argument
        return ModelConfig(
            model=path, task="auto", tokenizer=path, tokenizer_mode="auto",
            trust_remote_code=False, dtype="auto", seed=0, skip_tokenizer_init=True,
        )  # fmt: skip


def quant_config_of(model_config):
    """The checkpoint's quantization config, built as the engine builds it at start."""
    import copy

    from vllm.config import LoadConfig, VllmConfig

    load = getattr(VllmConfig, "get_quantization_config", None)
    if load is None:
        return VllmConfig._get_quantization_config(copy.deepcopy(model_config), LoadConfig())
    return load(model_config, LoadConfig())


def apply_model_mapping(quant_config, model_class) -> str:
    """Rename the config's layer lists with the model class's weight mapping, as this tag does.

    Models with the SupportsQuant mixin do it in their constructor (_maybe_apply_model_mapping),
    the others through configure_quant_config; returns which one ran, or "none".
    """
    try:
        from vllm.model_executor.models.interfaces import SupportsQuant
    except ImportError:
        SupportsQuant = None
    hook = getattr(SupportsQuant, "_maybe_apply_model_mapping", None)
    if SupportsQuant is not None and issubclass(model_class, SupportsQuant) and hook:
        packed = getattr(quant_config, "packed_modules_mapping", None)
        if not isinstance(packed, dict):
            quant_config.packed_modules_mapping = {}
        stand_in = types.SimpleNamespace(
            quant_config=quant_config,
            hf_to_vllm_mapper=getattr(model_class, "hf_to_vllm_mapper", None),
            packed_modules_mapping=getattr(model_class, "packed_modules_mapping", None),
        )
        hook(stand_in)
        return "SupportsQuant"
    try:
        from vllm.model_executor.model_loader.utils import configure_quant_config
    except ImportError:
        return "none"
    configure_quant_config(quant_config, model_class)
    return "configure_quant_config"


def mapped_name(mapper, name: str) -> Optional[str]:
    """A checkpoint weight name as the model class's mapper loads it (None: dropped)."""
    if mapper is None:
        return name
    map_name = getattr(mapper, "_map_name", None)
    if map_name is not None:
        return map_name(name)
    mapped = mapper.apply_list([name])
    return mapped[0] if mapped else None


def tower_prefixes(model_class) -> List[str]:
    """The vision tower's module prefixes, from the model class's multimodal mapping."""
    get_mapping = getattr(model_class, "get_mm_mapping", None)
    try:
        towers = get_mapping(None).tower_model if get_mapping else None
    except Exception:
        towers = None
    if isinstance(towers, str):
        towers = [towers]
    prefixes = [str(t) if str(t).endswith(".") else f"{t}." for t in towers or []]
    return prefixes or list(VISION_PREFIXES)


def legacy_vision_rule(quant_config) -> bool:
    """Whether the tag's get_quant_method leaves 'vision_tower'/'vision_model' prefixes
    unquantized whatever the exclusions say (older ModelOpt exports rely on it)."""
    try:
        source = inspect.getsource(type(quant_config).get_quant_method)
    except (OSError, TypeError):
        return False
    return '"vision_tower" in prefix' in source


def layer_excluded(quant_config, prefix: str, legacy_rule: bool) -> bool:
    """Whether the tag leaves the layer `prefix` unquantized under this config."""
    if legacy_rule and ("vision_tower" in prefix or "vision_model" in prefix):
        return True
    decide = getattr(quant_config, "is_layer_excluded", None)
    if decide is not None:
        return bool(decide(prefix))
    # Tags before is_layer_excluded: exact names and ModelOpt's wildcards.
    patterns = [str(p) for p in getattr(quant_config, "exclude_modules", None) or []]
    return any(prefix == p or fnmatch.fnmatch(prefix, p) for p in patterns)


def vllm_facts(path: str) -> Dict[str, Any]:
    """What the installed vLLM makes of the checkpoint at `path`, loading no weight."""
    import vllm

    facts: Dict[str, Any] = {
        "path": path,
        "vllm_version": str(getattr(vllm, "__version__", "unknown")),
        "architectures": [],
        "unsupported_architectures": [],
        "quantization": None,
        "quant_config": None,
        "min_capability": None,
        "exclude_modules": None,
        "mapping": None,
        "tower_prefixes": [],
        "vision_layers": {},
        "language_layers": {},
        "error": None,
        "load_error": None,
        "class_error": None,
        "weights_error": None,
    }
    try:
        config = read_json_file(os.path.join(path, "config.json")) or {}
    except (OSError, ValueError) as exc:
        facts["error"] = f"config.json: {exc}"
        return facts
    facts["architectures"] = [str(a) for a in config.get("architectures") or []]
    from vllm.model_executor.models import ModelRegistry

    supported = set(ModelRegistry.get_supported_archs())
    facts["unsupported_architectures"] = [a for a in facts["architectures"] if a not in supported]
    if facts["unsupported_architectures"] or not facts["architectures"]:
        return facts
    try:
        model_config = model_config_of(path)
    except Exception as exc:
        # vLLM inspects the model class while it builds the config; a class that does not
        # import (a missing dependency) surfaces here as "failed to be inspected".
        inspected = "failed to be inspected" in str(exc)
        facts["class_error" if inspected else "error"] = error_line(exc)
        return facts
    quantization = getattr(model_config, "quantization", None)
    facts["quantization"] = str(quantization) if quantization else None
    if not quantization:
        return facts
    try:
        quant_config = quant_config_of(model_config)
    except Exception as exc:
        facts["load_error"] = error_line(exc)
        return facts
    try:
        from vllm.model_executor.model_loader.utils import get_model_architecture

        model_class = get_model_architecture(model_config)[0]
        facts["mapping"] = apply_model_mapping(quant_config, model_class)
    except Exception as exc:
        facts["class_error"] = error_line(exc)
        return facts
    facts["quant_config"] = type(quant_config).__name__
    try:
        facts["min_capability"] = int(quant_config.get_min_capability())
    except Exception:
        facts["min_capability"] = None
    exclude = getattr(quant_config, "exclude_modules", None)
    facts["exclude_modules"] = [str(e) for e in exclude] if isinstance(exclude, list) else None
    prefixes = tower_prefixes(model_class)
    facts["tower_prefixes"] = prefixes
    mapper = getattr(model_class, "hf_to_vllm_mapper", None)
    legacy_rule = legacy_vision_rule(quant_config)
    try:
        shapes = weight_shapes(path)
    except (OSError, ValueError, struct.error) as exc:
        facts["weights_error"] = error_line(exc)
        return facts
    for module in linear_modules(shapes):
        name = mapped_name(mapper, module + ".weight")
        if name is None or not name.endswith(".weight"):
            continue
        prefix = name[: -len(".weight")]
        side = "vision_layers" if is_tower(prefix, prefixes) else "language_layers"
        facts[side][prefix] = layer_excluded(quant_config, prefix, legacy_rule)
    return facts


def error_line(exc: BaseException) -> str:
    """An exception as one line: its type and the last line of its message that says
    something (pydantic ends its messages with a link)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("For further information")] or lines
    return f"{type(exc).__name__}: {lines[-1]}" if lines else type(exc).__name__


# ---------------------------------------------------------------------------------------
# Decisions (pure: facts in, refusals out).


def capability_of(text: Optional[str]) -> Optional[int]:
    """'9.0' or '90' as vLLM's integer form (90); None for none."""
    if not text:
        return None
    major, _, minor = str(text).partition(".")
    return int(major) * 10 + int(minor or 0) if minor or len(major) == 1 else int(major)


def architecture_refusals(facts: Dict[str, Any]) -> List[str]:
    """Why this vLLM cannot pick a model class for the checkpoint; empty when it can."""
    where, version = facts.get("path", "the checkpoint"), facts.get("vllm_version", "?")
    if facts.get("error"):
        return [f"{where}: vLLM {version} cannot read its config: {facts['error']}"]
    if not facts.get("architectures"):
        return [f"{where}: config.json names no architectures; vLLM cannot pick a model class"]
    if facts.get("unsupported_architectures"):
        names = ", ".join(facts["unsupported_architectures"])
        return [
            f"{where}: vLLM {version} does not know the architecture {names} (not in its "
            "ModelRegistry): set vllm_source_version to a vLLM tag that supports it and rebuild"
        ]
    if facts.get("class_error"):
        names = ", ".join(facts["architectures"])
        return [
            f"{where}: vLLM {version} cannot import the model class of {names}: "
            f"{facts['class_error']}: install what it needs into the release's venv (a "
            "vision-language model needs torchvision) or run it on a host whose release has it"
        ]
    return []


def layer_refusals(facts: Dict[str, Any]) -> List[str]:
    """Why this vLLM would not run the checkpoint's layers as it was quantized: a vision
    tower it would quantize although the checkpoint keeps it unquantized, or a language
    model with no quantized layer. Empty when the layers are as exported."""
    where, version = facts.get("path", "the checkpoint"), facts.get("vllm_version", "?")
    if facts.get("weights_error"):
        return [
            f"{where}: its safetensors headers cannot be read: {facts['weights_error']}: make "
            "the checkpoint readable by the user that runs vLLM (chmod -R a+rX)"
        ]
    problems = []
    vision = facts.get("vision_layers") or {}
    quantized_vision = sorted(name for name, excluded in vision.items() if not excluded)
    if quantized_vision:
        problems.append(
            f"{where}: vLLM {version} would quantize the vision tower, which the checkpoint "
            f"keeps unquantized: {len(quantized_vision)} of {len(vision)} vision layers are "
            f"not excluded (e.g. {quantized_vision[0]}) by exclude_modules "
            f"{facts.get('exclude_modules')} after the model's name mapping: {EXCLUSION_FIX}"
        )
    language = facts.get("language_layers") or {}
    if language and all(language.values()):
        problems.append(
            f"{where}: {facts.get('quantization')} quantizes no language-model layer (all "
            f"{len(language)} are excluded): {REEXPORT_FIX} with the language model quantized"
        )
    return problems


def refusals(
    facts: Dict[str, Any], capability: Optional[int] = None, unquantized: bool = False
) -> List[str]:
    """Why this checkpoint must not be run with this vLLM on this GPU; empty when it may.

    `capability`: the GPU's compute capability (vLLM's form, 90 for 9.0), None without GPU.
    `unquantized`: the user asked to run a checkpoint that is not quantized.
    """
    where, version = facts.get("path", "the checkpoint"), facts.get("vllm_version", "?")
    found = architecture_refusals(facts)
    if found:
        return found
    method = facts.get("quantization")
    if not method:
        if unquantized:
            return []
        return [
            f"{where}: not a ModelOpt checkpoint (vLLM {version} reads it as unquantized): "
            f"{REEXPORT_FIX}, or pass --unquantized to run it as it is"
        ]
    if not str(method).startswith("modelopt"):
        return [
            f"{where}: quantized with {method}, not ModelOpt; this command runs ModelOpt "
            f"checkpoints: {REEXPORT_FIX}"
        ]
    if facts.get("load_error"):
        return [f"{where}: vLLM {version} refuses its quantization config: {facts['load_error']}"]

    problems = []
    minimum = facts.get("min_capability")
    if capability is not None and minimum is not None and capability < minimum:
        problems.append(
            f"{where}: {method} needs compute capability {minimum // 10}.{minimum % 10} or "
            f"newer; this GPU has {capability // 10}.{capability % 10}: run it on a newer GPU "
            "or use a checkpoint quantized for this one"
        )
    return problems + layer_refusals(facts)


def summary(facts: Dict[str, Any]) -> Dict[str, Any]:
    """The facts a report shows: method, exclusions, and the vision/language layer counts."""
    vision = facts.get("vision_layers") or {}
    language = facts.get("language_layers") or {}
    return {
        "architectures": facts.get("architectures"),
        "quantization": facts.get("quantization"),
        "quant_config": facts.get("quant_config"),
        "exclude_modules": facts.get("exclude_modules"),
        "vision_layers": len(vision),
        "vision_layers_excluded": sum(1 for v in vision.values() if v),
        "language_layers": len(language),
        "language_layers_quantized": sum(1 for v in language.values() if not v),
    }


# ---------------------------------------------------------------------------------------
# Generation.


def test_pattern(size: int = 224):
    """A colour gradient image (PIL), for runs that name no image of their own."""
    from PIL import Image

    image = Image.new("RGB", (size, size))
    image.putdata(
        [(x * 255 // size, y * 255 // size, 128) for y in range(size) for x in range(size)]
    )
    return image


def data_url(image) -> str:
    """A PIL image as a PNG data: URL, the form vLLM's chat API takes from any tag."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def load_images(paths: Sequence[str]) -> List[Any]:
    from PIL import Image

    return [Image.open(p).convert("RGB") for p in paths] if paths else [test_pattern()]


def gpu_capability() -> Optional[int]:
    """The first GPU's compute capability in vLLM's form, or None without a GPU."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        major, minor = torch.cuda.get_device_capability(0)
        return major * 10 + minor
    except Exception:
        return None


def generate(path: str, method: Optional[str], images: List[Any], args) -> Dict[str, Any]:
    """Load the checkpoint in vLLM, generate once from the images and the prompt."""
    from vllm import LLM, SamplingParams

    options: Dict[str, Any] = {
        "model": path,
        "max_model_len": args.max_model_len,
        "gpu_memory_utilization": args.gpu_memory_utilization,
        "limit_mm_per_prompt": {"image": len(images)},
        "enforce_eager": True,
        "seed": 0,
    }
    if method:
        options["quantization"] = method
    started = time.monotonic()
    llm = LLM(**options)
    result: Dict[str, Any] = {"load_s": round(time.monotonic() - started, 2)}
    try:
        content = [{"type": "image_url", "image_url": {"url": data_url(i)}} for i in images]
        content.append({"type": "text", "text": args.prompt})
        params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens)
        started = time.monotonic()
        outputs = llm.chat([{"role": "user", "content": content}], params)
        seconds = time.monotonic() - started
        completion = outputs[0].outputs[0]
        result.update(
            text=completion.text or "",
            tokens=len(completion.token_ids),
            prompt_tokens=len(outputs[0].prompt_token_ids or []),
            generate_s=round(seconds, 4),
            tokens_per_s=round(len(completion.token_ids) / seconds, 1) if seconds else None,
        )
    finally:
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vllm-fleet-vl",
        description="Run a ModelOpt-quantized vision-language checkpoint with this venv's vLLM.",
    )
    p.add_argument("--model", required=True, help="local checkpoint directory")
    p.add_argument("--image", action="append", default=[], help="image file (repeatable)")
    p.add_argument("--prompt", default="Describe the picture.", help="the user's text")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.3)
    p.add_argument(
        "--unquantized", action="store_true", help="run a checkpoint that is not quantized"
    )
    p.add_argument(
        "--capability",
        help="check against this compute capability (e.g. 8.0) instead of the GPU's",
    )
    p.add_argument("--check-only", action="store_true", help="check, load no weight")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run(args) -> Dict[str, Any]:
    """Check, then (unless --check-only) generate; the report as a dict."""
    path = os.path.abspath(args.model)
    for image in args.image:
        if not os.path.isfile(image):
            return {"path": path, "refusals": [f"--image {image}: no such file"]}
    if not os.path.isfile(os.path.join(path, "config.json")):
        return {"path": path, "refusals": [f"--model {path}: no config.json there"]}
    facts = vllm_facts(path)
    capability = capability_of(args.capability) if args.capability else gpu_capability()
    report: Dict[str, Any] = {
        "path": path,
        "vllm_version": facts["vllm_version"],
        "capability": capability,
        "checks": summary(facts),
        "refusals": refusals(facts, capability, args.unquantized),
    }
    if report["refusals"] or args.check_only:
        return report
    if capability is None:
        report["refusals"] = ["no CUDA GPU visible to torch: nothing to generate on"]
        return report
    report.update(generate(path, facts["quantization"], load_images(args.image), args))
    return report


def render(report: Dict[str, Any]) -> str:
    """The report as a person reads it."""
    lines = [f"checkpoint: {report['path']}"]
    checks = report.get("checks") or {}
    if checks:
        lines.append(
            f"vLLM {report.get('vllm_version')}: {', '.join(checks.get('architectures') or [])}, "
            f"quantization {checks.get('quantization') or 'none'}; vision layers excluded "
            f"{checks.get('vision_layers_excluded')}/{checks.get('vision_layers')}, language "
            f"layers quantized {checks.get('language_layers_quantized')}/"
            f"{checks.get('language_layers')}"
        )
    for refusal in report.get("refusals") or []:
        lines.append(f"REFUSED: {refusal}")
    if "text" in report:
        lines.append(f"output: {report['text']!r}")
        lines.append(
            f"tokens: {report['tokens']} in {report['generate_s']} s "
            f"({report['tokens_per_s']} tokens/s; load {report['load_s']} s)"
        )
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    report = run(args)
    sys.stdout.write((json.dumps(report) if args.json else render(report)) + "\n")
    return 1 if report.get("refusals") else 0
