"""The tiny Qwen2.5-VL's ModelOpt quantization configs in every shape vllm-fleet-vl decides on.

write_vl_shapes(fp8_export, dest) writes dest/<name> per shape: the FP8 export's config files
with the shape's quantization config, and its weights as a symlink (vLLM's config path and
vllm-fleet-vl's layer list read only the safetensors header). SHAPES says what each shape is and
REFUSAL what vllm-fleet-vl must say of it (a substring of the refusal; None: it may run), on a
vLLM with the wildcard remapping of PR #30164 (0.13 and later: 0.22.0 and 0.30.0 both).

  - fp8-flat: the export as nvidia-modelopt 0.47 wrote it (config.json's quantization_config,
    and hf_quant_config.json), exclude_modules lm_head, model.embed_tokens, visual*.
  - fp8-nested: only hf_quant_config.json (producer modelopt), as ModelOpt 0.29 wrote it.
  - fp8-model-visual: the exclusion as `model.visual*`, the form of exports whose weights say
    `model.visual.` (transformers 5's layout); vLLM before the fix mapped it to
    `language_model.model.visual*` and quantized the tower (vLLM issue #28072).
  - fp8-vision-quantized: no vision exclusion at all: this vLLM would quantize the tower.
  - nvfp4-flat, nvfp4-nested: the NVFP4 config (group_size 16) in the two forms, tower excluded.
  - nvfp4-vision-quantized: NVFP4 without the vision exclusion.
  - unknown-arch: an architecture no vLLM registers.
  - unquantized: the base model's config (no quantization): not ModelOpt.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional

PRODUCER = {"name": "modelopt", "version": "0.47.0"}
WEIGHTS = "model.safetensors"
COPIED = (
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "processor_config.json",
    "preprocessor_config.json",
    "generation_config.json",
)
NOT_EXCLUDED = "would quantize the vision tower"
REFUSAL: Dict[str, Optional[str]] = {
    "fp8-flat": None,
    "fp8-nested": None,
    "fp8-model-visual": None,
    "fp8-vision-quantized": NOT_EXCLUDED,
    "nvfp4-flat": None,
    "nvfp4-nested": None,
    "nvfp4-vision-quantized": NOT_EXCLUDED,
    "unknown-arch": "does not know the architecture",
    "unquantized": "not a ModelOpt checkpoint",
}
EXPECTED_METHOD: Dict[str, Optional[str]] = {
    "fp8-flat": "modelopt",
    "fp8-nested": "modelopt",
    "fp8-model-visual": "modelopt",
    "fp8-vision-quantized": "modelopt",
    "nvfp4-flat": "modelopt_fp4",
    "nvfp4-nested": "modelopt_fp4",
    "nvfp4-vision-quantized": "modelopt_fp4",
    "unknown-arch": None,
    "unquantized": None,
}


def _excluding(excludes, vision: Optional[str]):
    kept = [e for e in excludes if "visual" not in e]
    return [*kept, vision] if vision else kept


def _flat(config: Dict[str, Any], algo: str, vision: Optional[str]) -> Dict[str, Any]:
    quant = copy.deepcopy(config["quantization_config"])
    quant["quant_algo"] = algo
    quant["ignore"] = _excluding(quant.get("ignore", []), vision)
    if algo == "NVFP4":
        quant["group_size"] = 16
        quant["config_groups"]["group_0"]["weights"].update(num_bits=4, group_size=16)
        quant["config_groups"]["group_0"]["input_activations"].update(num_bits=4, group_size=16)
    return quant


def _nested(hf_quant: Dict[str, Any], algo: str, vision: Optional[str]) -> Dict[str, Any]:
    nested = copy.deepcopy(hf_quant)
    nested["producer"] = dict(PRODUCER)
    block = nested["quantization"]
    block["quant_algo"] = algo
    block["exclude_modules"] = _excluding(block.get("exclude_modules", []), vision)
    if algo == "NVFP4":
        block["group_size"] = 16
    return nested


def shape_writers(config: Dict[str, Any], hf_quant: Dict[str, Any]) -> Dict[str, Callable]:
    """name -> writer(directory) of config.json (and hf_quant_config.json where the shape has
    one), made from the FP8 export's two files."""

    def files(conf: Optional[Dict[str, Any]], nested: Optional[Dict[str, Any]]):
        def writer(directory: Path) -> None:
            (directory / "config.json").write_text(json.dumps(conf, indent=2) + "\n")
            if nested is not None:
                (directory / "hf_quant_config.json").write_text(json.dumps(nested, indent=2) + "\n")

        return writer

    def with_quant(quant: Optional[Dict[str, Any]], **changes: Any) -> Dict[str, Any]:
        conf = copy.deepcopy(config)
        conf.pop("quantization_config", None)
        if quant is not None:
            conf["quantization_config"] = quant
        conf.update(changes)
        return conf

    flat8 = _flat(config, "FP8", "visual*")
    return {
        "fp8-flat": files(with_quant(flat8), _nested(hf_quant, "FP8", "visual*")),
        "fp8-nested": files(with_quant(None), _nested(hf_quant, "FP8", "visual*")),
        "fp8-model-visual": files(
            with_quant(_flat(config, "FP8", "model.visual*")),
            _nested(hf_quant, "FP8", "model.visual*"),
        ),
        "fp8-vision-quantized": files(
            with_quant(_flat(config, "FP8", None)), _nested(hf_quant, "FP8", None)
        ),
        "nvfp4-flat": files(with_quant(_flat(config, "NVFP4", "visual*")), None),
        "nvfp4-nested": files(with_quant(None), _nested(hf_quant, "NVFP4", "visual*")),
        "nvfp4-vision-quantized": files(with_quant(_flat(config, "NVFP4", None)), None),
        "unknown-arch": files(
            with_quant(flat8, architectures=["Qwen9_VLForConditionalGeneration"]), None
        ),
        "unquantized": files(with_quant(None), None),
    }


def write_vl_shapes(fp8_export: Path, dest: Path) -> Dict[str, Path]:
    """Write every shape under dest; return {name: its directory}."""
    config = json.loads((fp8_export / "config.json").read_text())
    hf_quant = json.loads((fp8_export / "hf_quant_config.json").read_text())
    written = {}
    for name, writer in shape_writers(config, hf_quant).items():
        directory = dest / name
        directory.mkdir(parents=True, exist_ok=True)
        for item in COPIED:
            if (fp8_export / item).is_file():
                (directory / item).write_bytes((fp8_export / item).read_bytes())
        weights = directory / WEIGHTS
        if not weights.exists():
            os.symlink(os.path.relpath(fp8_export / WEIGHTS, directory), weights)
        writer(directory)
        written[name] = directory
    return written
