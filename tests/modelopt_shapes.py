"""Crafted ModelOpt checkpoints of every shape vLLM reads, and what each vLLM makes of them.

write_shapes(base, dest, version) copies a base checkpoint's config.json (and tokenizer files,
if any; no weights: vLLM's config path reads none) once per shape into dest/<name>, adds the
shape's quantization config, and returns {name: Shape(path, method, refusal)} for that vLLM:

- method: the quantization vLLM's ModelConfig resolves (e.g. "modelopt_fp4"), or None where
  it resolves none or raises;
- refusal: a substring of the error vLLM raises for it, either when ModelConfig classifies the
  checkpoint or when the engine builds its quantization config at start
  (VllmConfig.get_quantization_config: from_config, then the dtype check); None where vLLM
  accepts it.

Two forms, as nvidia-modelopt writes them: NESTED, an hf_quant_config.json with
`producer: {name: modelopt}` and a `quantization` block (ModelOpt 0.29 and before), and FLAT,
config.json's `quantization_config` with `quant_method: modelopt` and `quant_algo`
(ModelOpt 0.31 and later). Every good shape has defective variants that vLLM refuses; CASES
says in words what each variant gets wrong.

What each vLLM expects was read from its source (vllm/transformers_utils/
model_arch_config_convertor.py, vllm/config/model.py, vllm/model_executor/layers/quantization/
modelopt.py, vllm/model_executor/model_loader/weight_utils.py) and checked against real
0.29.0 and 0.30.0 installs (tests/integration/test_verify_shapes.py):

- The NESTED form is classified by the convertor, which knows only FP8,
  FP8_PER_CHANNEL_PER_TOKEN, FP8_PB_WO and NVFP4: a nested MXFP8 or MIXED_PRECISION
  checkpoint is refused as "Unknown ModelOpt quant algo" in 0.22, 0.29 and 0.30 alike.
- Nested NVFP4 needs group_size, kv_cache_quant_algo and exclude_modules (flat NVFP4 does not).
- MXFP8 runs only with bfloat16 activations.
- MIXED_PRECISION needs a non-empty quantized_layers map, in config.json's
  quantization_config or, when that lacks it, in an hf_quant_config.json whose producer is
  modelopt.
The three versions agree on every shape here; EXPECTED is keyed by version so that a version
that differs says so in one place.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any, Dict, NamedTuple, Optional

PRODUCER = {"name": "modelopt", "version": "0.29.0"}
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "generation_config.json",
)
# Layers of the tiny Llama (2 layers), as ModelOpt names them in quantized_layers.
MIXED_LAYERS = {
    f"model.layers.{i}.{module}": algo
    for i in range(2)
    for module, algo in (
        ("self_attn.q_proj", {"quant_algo": "FP8"}),
        ("self_attn.k_proj", {"quant_algo": "FP8"}),
        ("self_attn.v_proj", {"quant_algo": "FP8"}),
        ("self_attn.o_proj", {"quant_algo": "FP8"}),
        ("mlp.gate_proj", {"quant_algo": "NVFP4", "group_size": 16}),
        ("mlp.up_proj", {"quant_algo": "NVFP4", "group_size": 16}),
        ("mlp.down_proj", {"quant_algo": "NVFP4", "group_size": 16}),
    )
}


class Shape(NamedTuple):
    path: Path
    method: Optional[str]
    refusal: Optional[str]


def nested(quantization: Dict[str, Any], producer: Optional[Dict[str, str]] = PRODUCER) -> Dict:
    """An hf_quant_config.json: the producer block (unless None) and the quantization block."""
    data: Dict[str, Any] = {"quantization": quantization}
    if producer is not None:
        data = {"producer": producer, **data}
    return data


def flat(quant_algo: Optional[str], **fields: Any) -> Dict[str, Any]:
    """A config.json quantization_config as nvidia-modelopt 0.31+ writes it."""
    data: Dict[str, Any] = {"quant_method": "modelopt", "producer": PRODUCER}
    if quant_algo is not None:
        data["quant_algo"] = quant_algo
    return {**data, "ignore": ["lm_head"], **fields}


NVFP4_NESTED = {
    "quant_algo": "NVFP4",
    "group_size": 16,
    "kv_cache_quant_algo": None,
    "exclude_modules": ["lm_head"],
}
KV_NONE_EXCLUDE = {"kv_cache_quant_algo": None, "exclude_modules": ["lm_head"]}
MIXED_NESTED = {
    "quant_algo": "MIXED_PRECISION",
    **KV_NONE_EXCLUDE,
    "quantized_layers": MIXED_LAYERS,
}


def without(data: Dict[str, Any], *keys: str) -> Dict[str, Any]:
    return {k: v for k, v in data.items() if k not in keys}


# name -> (config.json quantization_config or None, hf_quant_config.json or None,
#          config.json changes, what the variant gets wrong in words or None for a good shape)
SHAPES: Dict[str, tuple] = {
    # NESTED: hf_quant_config.json decides.
    "nested-fp8": (None, nested({"quant_algo": "FP8", **KV_NONE_EXCLUDE}), {}, None),
    "nested-fp8-pcpt": (
        None,
        nested({"quant_algo": "FP8_PER_CHANNEL_PER_TOKEN", **KV_NONE_EXCLUDE}),
        {},
        None,
    ),
    "nested-nvfp4": (None, nested(NVFP4_NESTED), {}, None),
    "nested-mxfp8": (
        None,
        nested({"quant_algo": "MXFP8", **KV_NONE_EXCLUDE}),
        {},
        "MXFP8 checkpoint with its quantization only in hf_quant_config.json",
    ),
    "nested-mixed": (
        None,
        nested(
            {"quant_algo": "MIXED_PRECISION", **KV_NONE_EXCLUDE, "quantized_layers": MIXED_LAYERS}
        ),
        {},
        "MIXED_PRECISION checkpoint with its quantization only in hf_quant_config.json",
    ),
    "nested-fp8-unknown-algo": (
        None,
        nested({"quant_algo": "INT4_AWQ", **KV_NONE_EXCLUDE}),
        {},
        "ModelOpt checkpoint with a quant_algo vLLM does not support (INT4_AWQ)",
    ),
    "nested-fp8-exclude-not-a-list": (
        None,
        nested({"quant_algo": "FP8", "kv_cache_quant_algo": None, "exclude_modules": "lm_head"}),
        {},
        "FP8 checkpoint whose exclude_modules is not a list",
    ),
    "nested-fp8-kv-not-a-string": (
        None,
        nested({"quant_algo": "FP8", "kv_cache_quant_algo": 8, "exclude_modules": ["lm_head"]}),
        {},
        "FP8 checkpoint whose kv_cache_quant_algo is not a string",
    ),
    "nested-fp8-pcpt-bad-group-size": (
        None,
        nested({"quant_algo": "FP8_PER_CHANNEL_PER_TOKEN", **KV_NONE_EXCLUDE, "group_size": "x"}),
        {},
        "FP8_PER_CHANNEL_PER_TOKEN checkpoint whose group_size is not an integer",
    ),
    "nested-nvfp4-no-group-size": (
        None,
        nested(without(NVFP4_NESTED, "group_size")),
        {},
        "NVFP4 checkpoint missing group_size",
    ),
    "nested-nvfp4-no-kv-no-exclude": (
        None,
        nested(without(NVFP4_NESTED, "kv_cache_quant_algo", "exclude_modules")),
        {},
        "NVFP4 checkpoint missing kv_cache_quant_algo and exclude_modules",
    ),
    # FLAT: config.json's quantization_config decides.
    "flat-fp8": (flat("FP8"), None, {}, None),
    "flat-fp8-pcpt": (flat("FP8_PER_CHANNEL_PER_TOKEN"), None, {}, None),
    "flat-nvfp4": (flat("NVFP4", group_size=16), None, {}, None),
    "flat-mxfp8": (flat("MXFP8"), None, {}, None),
    "flat-mixed": (flat("MIXED_PRECISION", quantized_layers=MIXED_LAYERS), None, {}, None),
    # Older MIXED_PRECISION exports: quantized_layers only in hf_quant_config.json.
    "flat-mixed-layers-in-hf-quant-config": (
        flat("MIXED_PRECISION"),
        nested(
            {"quant_algo": "MIXED_PRECISION", **KV_NONE_EXCLUDE, "quantized_layers": MIXED_LAYERS}
        ),
        {},
        None,
    ),
    "flat-fp8-unknown-algo": (
        flat("FP6"),
        None,
        {},
        "ModelOpt checkpoint with a quant_algo vLLM does not support (FP6)",
    ),
    "flat-no-quant-algo": (
        flat(None),
        None,
        {},
        "ModelOpt checkpoint without quant_algo",
    ),
    "flat-fp8-ignore-not-a-list": (
        {**flat("FP8"), "ignore": "lm_head"},
        None,
        {},
        "FP8 checkpoint whose ignore list is not a list",
    ),
    "flat-nvfp4-bad-group-size": (
        flat("NVFP4", group_size="sixteen"),
        None,
        {},
        "NVFP4 checkpoint whose group_size is not an integer",
    ),
    "flat-mxfp8-float16": (
        flat("MXFP8"),
        None,
        {"dtype": "float16", "torch_dtype": "float16"},
        "MXFP8 checkpoint in float16",
    ),
    "flat-mixed-no-quantized-layers": (
        flat("MIXED_PRECISION"),
        None,
        {},
        "MIXED_PRECISION checkpoint without quantized_layers",
    ),
    "flat-mixed-empty-quantized-layers": (
        flat("MIXED_PRECISION", quantized_layers={}),
        None,
        {},
        "MIXED_PRECISION checkpoint with empty quantized_layers",
    ),
    "flat-mixed-layers-in-hf-quant-config-no-producer": (
        flat("MIXED_PRECISION"),
        nested(
            MIXED_NESTED,
            producer=None,
        ),
        {},
        "MIXED_PRECISION checkpoint whose hf_quant_config.json names no modelopt producer",
    ),
}

# What the defective variants are refused with, word for word from vLLM's source.
NVFP4_FIELDS = "NVFP4 quantization requires the following fields in hf_quant_config.json: "
NOT_A_LIST = "exclude_modules must be a list, got <class 'str'>"
NOT_AN_INT = "group_size must be an integer, got <class 'str'>"
_EXPECTED_0_30: Dict[str, tuple] = {
    "nested-fp8": ("modelopt", None),
    "nested-fp8-pcpt": ("modelopt", None),
    "nested-nvfp4": ("modelopt_fp4", None),
    "nested-mxfp8": (None, "Unknown ModelOpt quant algo: MXFP8"),
    "nested-mixed": (None, "Unknown ModelOpt quant algo: MIXED_PRECISION"),
    "nested-fp8-unknown-algo": (None, "Unknown ModelOpt quant algo: INT4_AWQ"),
    "nested-fp8-exclude-not-a-list": (
        "modelopt",
        "exclude_modules must be a list, got <class 'str'>",
    ),
    "nested-fp8-kv-not-a-string": (
        "modelopt",
        "kv_cache_quant_algo must be a string, got <class 'int'>",
    ),
    "nested-fp8-pcpt-bad-group-size": (
        "modelopt",
        "group_size must be an integer, got <class 'str'>",
    ),
    "nested-nvfp4-no-group-size": ("modelopt_fp4", NVFP4_FIELDS + "['group_size']"),
    "nested-nvfp4-no-kv-no-exclude": (
        "modelopt_fp4",
        NVFP4_FIELDS + "['kv_cache_quant_algo', 'exclude_modules']",
    ),
    "flat-fp8": ("modelopt", None),
    "flat-fp8-pcpt": ("modelopt", None),
    "flat-nvfp4": ("modelopt_fp4", None),
    "flat-mxfp8": ("modelopt_mxfp8", None),
    "flat-mixed": ("modelopt_mixed", None),
    "flat-mixed-layers-in-hf-quant-config": ("modelopt_mixed", None),
    "flat-fp8-unknown-algo": ("modelopt", "ModelOpt currently only supports: ["),
    "flat-no-quant-algo": ("modelopt", "Missing 'quant_algo' in quantization config"),
    "flat-fp8-ignore-not-a-list": ("modelopt", NOT_A_LIST),
    "flat-nvfp4-bad-group-size": (
        "modelopt_fp4",
        "group_size must be an integer, got <class 'str'>",
    ),
    "flat-mxfp8-float16": (
        "modelopt_mxfp8",
        "torch.float16 is not supported for quantization method modelopt_mxfp8",
    ),
    "flat-mixed-no-quantized-layers": (
        "modelopt_mixed",
        "Cannot find the config file for modelopt_mixed",
    ),
    "flat-mixed-empty-quantized-layers": (
        "modelopt_mixed",
        "MIXED_PRECISION quant_algo requires a non-empty 'quantized_layers' mapping",
    ),
    "flat-mixed-layers-in-hf-quant-config-no-producer": (
        "modelopt_mixed",
        "Unsupported quantization config found for modelopt_mixed",
    ),
}
# Per vLLM minor version: (method, refusal) for every shape. 0.22 and 0.29 read every shape
# here as 0.30 does (their min capabilities differ: FP8 89 in 0.22, 80 later), so they start
# from 0.30's table; a difference would be an entry updated here.
EXPECTED: Dict[str, Dict[str, tuple]] = {
    "0.22": dict(_EXPECTED_0_30),
    "0.29": dict(_EXPECTED_0_30),
    "0.30": dict(_EXPECTED_0_30),
}
CASES: Dict[str, str] = {name: spec[3] for name, spec in SHAPES.items() if spec[3]}


def minor_of(version: str) -> str:
    """`0.30.0+empty` -> `0.30`, the key of EXPECTED; a version it lacks is an error."""
    key = ".".join(version.split("+")[0].split(".")[:2])
    if key not in EXPECTED:
        raise ValueError(f"no expectations for vLLM {version}: known {sorted(EXPECTED)}")
    return key


def write_shapes(base: Path, dest: Path, version: str = "0.30.0") -> Dict[str, Shape]:
    """Write every shape under dest from the base checkpoint; return what `version` makes of
    each: {name: Shape(path, method or None, refusal substring or None)}."""
    expected = EXPECTED[minor_of(version)]
    base_config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    base_config.pop("quantization_config", None)
    table: Dict[str, Shape] = {}
    for name, (quant_cfg, hf_quant, changes, _) in SHAPES.items():
        path = dest / name
        path.mkdir(parents=True, exist_ok=True)
        for tokenizer_file in TOKENIZER_FILES:
            if (base / tokenizer_file).is_file():
                shutil.copy2(base / tokenizer_file, path / tokenizer_file)
        config = {**copy.deepcopy(base_config), **changes}
        if quant_cfg is not None:
            config["quantization_config"] = copy.deepcopy(quant_cfg)
        (path / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        if hf_quant is not None:
            text = json.dumps(hf_quant, indent=2) + "\n"
            (path / "hf_quant_config.json").write_text(text, encoding="utf-8")
        method, refusal = expected[name]
        table[name] = Shape(path, method, refusal)
    return table
