"""vllm-fleet-vl (vllm_fleet/vl.py), the vllm_vl_check module, and verify's vision checks.

The decisions are tested on facts the real vLLMs printed for the tiny Qwen2.5-VL's config
shapes (tests/vl_shapes.py), recorded by tests/fixtures/vl_facts.py:
  - docs/gpu-validation/h200x1-2026-12-03-qwen-vl/vl-facts.json: vLLM 0.22.0 precompiled, the
    role's release on the H200 (the GPU run of 2026-12-03);
  - tests/data/vllm-vl/facts-vllm-0.30.0-cpu.json: vLLM 0.30.0 (VLLM_TARGET_DEVICE=empty)
    with torch 2.14.1 and torchvision 0.29.1 on this CPU. The test hosts' empty releases cannot
    load Qwen2.5-VL's model class: vLLM's qwen2_vl module imports torchvision, which does not
    import beside the CPU torch 2.13.0 that vLLM 0.30.0 pins.
The config files in tests/data/vllm-vl/tiny-qwen2_5-vl-modelopt-fp8 are the ones
nvidia-modelopt 0.47.0 wrote for the FP8 export (tests/fixtures/make_qwen_vl.py).
"""

from __future__ import annotations

import copy
import json
import struct
import sys
from pathlib import Path
from typing import Any, Dict

import pytest
import vllm_vl_check as module
from ansible.module_utils.vllm_fleet_modelopt import checkpoint_entries
from ansible.module_utils.vllm_fleet_probe import PROBE_SCRIPT

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from vl_shapes import EXPECTED_METHOD, REFUSAL, write_vl_shapes  # noqa: E402

from vllm_fleet import vl  # noqa: E402

EXPORT = ROOT / "tests" / "data" / "vllm-vl" / "tiny-qwen2_5-vl-modelopt-fp8"
GPU_RUN = ROOT / "docs" / "gpu-validation" / "h200x1-2026-12-03-qwen-vl"
RECORDED = {
    "0.22.0": GPU_RUN / "vl-facts.json",
    "0.30.0": ROOT / "tests" / "data" / "vllm-vl" / "facts-vllm-0.30.0-cpu.json",
}


def recorded(version: str) -> Dict[str, Dict[str, Any]]:
    return json.loads(RECORDED[version].read_text())


def shapes_of_the_export(tmp_path: Path):
    """The FP8 export's recorded config files, an empty weights file, and every shape."""
    export = tmp_path / "export"
    export.mkdir()
    for name in ("config.json", "hf_quant_config.json"):
        (export / name).write_text((EXPORT / name).read_text())
    (export / "model.safetensors").write_bytes(b"")
    return export, write_vl_shapes(export, tmp_path / "shapes")


def load_render():
    """tools/gpu-validation/render.py, which reads the GPU run's logs."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "render", ROOT / "tools" / "gpu-validation" / "render.py"
    )
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    return render


@pytest.mark.parametrize("version", sorted(RECORDED))
@pytest.mark.parametrize("shape", sorted(REFUSAL))
def test_every_shape_is_decided_as_the_recorded_vllm_reads_it(version: str, shape: str) -> None:
    facts = recorded(version)[shape]
    assert facts["vllm_version"] == version
    assert facts["quantization"] == EXPECTED_METHOD[shape]
    found = vl.refusals(facts, capability=90)
    if REFUSAL[shape] is None:
        assert found == []
    else:
        assert len(found) == 1 and REFUSAL[shape] in found[0], found


def test_the_vision_refusal_names_a_layer_the_exclusions_and_the_fix() -> None:
    facts = recorded("0.22.0")["fp8-vision-quantized"]
    (message,) = vl.refusals(facts, capability=90)
    assert "12 of 12 vision layers are not excluded (e.g. visual.blocks.0.attn.proj)" in message
    assert "['lm_head', 'language_model.model.embed_tokens']" in message
    assert "PR #30164" in message and "vllm_source_version" in message


def test_the_mapped_wildcard_covers_the_tower_in_these_tags() -> None:
    # `model.visual*` became `visual.*` through the model's mapping (the fix of #28072):
    # every vision layer is excluded, the language model is still FP8.
    for version in RECORDED:
        facts = recorded(version)["fp8-model-visual"]
        assert "visual.*" in facts["exclude_modules"]
        assert all(facts["vision_layers"].values()) and len(facts["vision_layers"]) == 12
        assert sum(not v for v in facts["language_layers"].values()) == 14


def test_a_gpu_below_the_methods_minimum_is_refused() -> None:
    for version, minimum in (("0.22.0", "8.9"), ("0.30.0", "8.0")):
        facts = recorded(version)["fp8-flat"]
        assert vl.refusals(facts, capability=90) == []
        (message,) = vl.refusals(facts, capability=75)
        assert f"modelopt needs compute capability {minimum} or newer" in message
        assert "this GPU has 7.5" in message
    assert vl.refusals(recorded("0.22.0")["nvfp4-flat"], capability=75) == []  # its minimum


def test_a_language_model_left_unquantized_is_refused() -> None:
    facts = copy.deepcopy(recorded("0.30.0")["fp8-flat"])
    facts["language_layers"] = {name: True for name in facts["language_layers"]}
    (message,) = vl.refusals(facts, capability=90)
    assert "quantizes no language-model layer (all 16 are excluded)" in message


def test_unquantized_runs_only_when_asked() -> None:
    facts = recorded("0.22.0")["unquantized"]
    assert "not a ModelOpt checkpoint" in vl.refusals(facts)[0]
    assert "--unquantized" in vl.refusals(facts)[0]
    assert vl.refusals(facts, unquantized=True) == []


def test_a_config_vllm_cannot_read_is_refused_first() -> None:
    facts = dict(recorded("0.30.0")["fp8-flat"], error="ValueError: bad rope_scaling")
    assert vl.refusals(facts, capability=75) == [
        "SHAPES/fp8-flat: vLLM 0.30.0 cannot read its config: ValueError: bad rope_scaling"
    ]


def test_a_model_class_that_does_not_import_is_refused_with_the_fix() -> None:
    facts = dict(recorded("0.30.0")["fp8-flat"], vision_layers={}, language_layers={})
    facts["class_error"] = "ModuleNotFoundError: No module named 'torchvision'"
    (message,) = vl.refusals(facts, capability=90)
    assert "cannot import the model class of Qwen2_5_VLForConditionalGeneration" in message
    assert "torchvision" in message and "release's venv" in message
    # Also when vLLM's ModelConfig reports it (the inspection of the class), unquantized or not.
    inspected = (
        "ValidationError: Value error, Model architectures "
        "['Qwen2_5_VLForConditionalGeneration'] failed to be inspected."
    )
    facts = dict(recorded("0.30.0")["unquantized"], class_error=inspected)
    (message,) = vl.refusals(facts, unquantized=True)
    assert "cannot import the model class" in message and "failed to be inspected" in message


def test_weights_this_user_cannot_read_are_refused_with_the_fix(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\x08")  # not even a header length
    with pytest.raises(struct.error):
        vl.weight_shapes(str(tmp_path))
    facts = dict(recorded("0.30.0")["fp8-flat"], vision_layers={}, language_layers={})
    facts["weights_error"] = "PermissionError: [Errno 13] Permission denied: 'model.safetensors'"
    (message,) = vl.refusals(facts, capability=90)
    assert "safetensors headers cannot be read: PermissionError" in message
    assert "chmod -R a+rX" in message


def test_error_line_drops_pydantics_footer() -> None:
    exc = ValueError(
        "1 validation error\n  Value error, no processor\n"
        "    For further information visit https://errors.pydantic.dev/2.14/v/value_error"
    )
    assert vl.error_line(exc) == "ValueError: Value error, no processor"


def test_the_shapes_carry_the_exclusions_they_are_named_for(tmp_path: Path) -> None:
    export, shapes = shapes_of_the_export(tmp_path)
    assert sorted(shapes) == sorted(REFUSAL)

    def read(shape: str, name: str) -> Dict[str, Any]:
        path = shapes[shape] / name
        return json.loads(path.read_text()) if path.exists() else {}

    assert read("fp8-flat", "config.json")["quantization_config"]["ignore"][-1] == "visual*"
    assert "quantization_config" not in read("fp8-nested", "config.json")
    assert read("fp8-nested", "hf_quant_config.json")["producer"]["name"] == "modelopt"
    assert (
        "model.visual*" in read("fp8-model-visual", "config.json")["quantization_config"]["ignore"]
    )
    flat = read("fp8-vision-quantized", "config.json")["quantization_config"]["ignore"]
    nested = read("fp8-vision-quantized", "hf_quant_config.json")["quantization"]
    assert not [e for e in flat + nested["exclude_modules"] if "visual" in e]
    nvfp4 = read("nvfp4-flat", "config.json")["quantization_config"]
    assert (nvfp4["quant_algo"], nvfp4["group_size"]) == ("NVFP4", 16)
    assert read("nvfp4-nested", "hf_quant_config.json")["quantization"]["group_size"] == 16
    assert read("unknown-arch", "config.json")["architectures"] == [
        "Qwen9_VLForConditionalGeneration"
    ]
    assert "quantization_config" not in read("unquantized", "config.json")
    assert (shapes["fp8-flat"] / "model.safetensors").resolve() == (export / "model.safetensors")


def write_safetensors(path: Path, shapes: Dict[str, list]) -> None:
    header = {
        name: {"dtype": "BF16", "shape": s, "data_offsets": [0, 0]} for name, s in shapes.items()
    }
    header["__metadata__"] = {"format": "pt"}
    data = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(data)) + data)


def test_the_layers_are_read_from_the_safetensors_headers(tmp_path: Path) -> None:
    write_safetensors(tmp_path / "model-00001-of-00002.safetensors", {
        "visual.blocks.0.attn.qkv.weight": [768, 256],
        "visual.blocks.0.norm1.weight": [256],
        "visual.patch_embed.proj.weight": [256, 3, 2, 14, 14],
    })  # fmt: skip
    write_safetensors(tmp_path / "model-00002-of-00002.safetensors", {
        "model.layers.0.self_attn.q_proj.weight": [256, 256],
        "model.layers.0.self_attn.q_proj.weight_scale": [],
    })  # fmt: skip
    shapes = vl.weight_shapes(str(tmp_path))
    assert shapes["visual.patch_embed.proj.weight"] == [256, 3, 2, 14, 14]
    assert "__metadata__" not in shapes
    assert vl.linear_modules(shapes) == [
        "model.layers.0.self_attn.q_proj",
        "visual.blocks.0.attn.qkv",
    ]
    assert vl.is_tower("visual.blocks.0.attn.qkv", ["visual."])
    assert not vl.is_tower("language_model.model.layers.0.mlp", ["visual."])


def test_capability_forms() -> None:
    assert [vl.capability_of(t) for t in ("9.0", "8.9", "10.0", "90", None)] == [
        90,
        89,
        100,
        90,
        None,
    ]


def test_bad_paths_are_refused_before_vllm_is_imported(tmp_path: Path) -> None:
    args = vl.parser().parse_args(["--model", str(tmp_path), "--image", str(tmp_path / "no.png")])
    assert vl.run(args)["refusals"] == [f"--image {tmp_path / 'no.png'}: no such file"]
    args = vl.parser().parse_args(["--model", str(tmp_path)])
    assert vl.run(args)["refusals"] == [f"--model {tmp_path}: no config.json there"]


def test_the_module_and_the_probe_send_the_commands_own_source() -> None:
    source = (ROOT / "vllm_fleet" / "vl.py").read_text()
    assert (ROOT / "module_utils" / "vllm_fleet_vl.py").resolve() == ROOT / "vllm_fleet" / "vl.py"
    assert source in module.CHILD_SCRIPT and source in PROBE_SCRIPT
    assert "\nfrom __future__ import" not in source  # the scripts put it after other code
    compile(module.CHILD_SCRIPT, "child", "exec")
    compile(PROBE_SCRIPT, "probe", "exec")


def test_the_report_is_found_among_vllms_log_lines() -> None:
    stdout = (
        "INFO 12-03 [model.py:692] Resolved architecture\n"
        '{"refusals": [], "tokens": 3}\nINFO shutdown\n'
    )
    assert module.parse_report(0, stdout, "") == {"refusals": [], "tokens": 3}
    failed = module.parse_report(
        1, "", "Traceback (most recent call last):\nRuntimeError: CUDA OOM\n"
    )
    assert failed["error"].startswith("vllm-fleet-vl ended without a report")
    assert "CUDA OOM" in failed["error"]


def test_the_command_line_follows_the_parameters() -> None:
    params = {"model": "/m", "prompt": "Hi", "images": ["/a.png", "/b.png"], "max_tokens": 8,
              "max_model_len": 1024, "gpu_memory_utilization": 0.5, "unquantized": True,
              "check_only": False}  # fmt: skip
    argv = module.command_line(params)
    args = vl.parser().parse_args(argv)
    assert (args.model, args.prompt, args.image, args.max_tokens) == (
        "/m",
        "Hi",
        ["/a.png", "/b.png"],
        8,
    )
    assert args.json and args.unquantized and not args.check_only
    assert args.gpu_memory_utilization == 0.5 and args.max_model_len == 1024


def test_the_summary_line_of_the_gpu_runs() -> None:
    render = load_render()
    fp8 = render.task_result((GPU_RUN / "vl-fp8.log").read_text(), render.VL_TASK)
    line = module.summary_line(fp8["report"])
    assert line == fp8["summary"]
    assert "vLLM 0.22.0, modelopt, vision layers excluded 12/12: 32 tokens at" in line
    refused = render.task_result((GPU_RUN / "vl-refused.log").read_text(), render.VL_TASK)
    assert module.summary_line(refused["report"]).endswith(refused["report"]["refusals"][0])
    assert "REFUSED: " in module.summary_line(refused["report"])


def test_verify_reports_what_vllm_would_do_to_a_vision_language_checkpoint(tmp_path: Path) -> None:
    _, shapes = shapes_of_the_export(tmp_path)
    facts = recorded("0.22.0")
    probed = {
        str(shapes[name]): {"quantization": facts[name]["quantization"], "error": None,
                            "vision": dict(facts[name], path=str(shapes[name]))}
        for name in ("fp8-flat", "fp8-vision-quantized", "unknown-arch")
    }  # fmt: skip
    probed[str(shapes["unknown-arch"])]["quantization"] = "modelopt"
    entries, problems = checkpoint_entries(list(probed), probed, "0.22.0")
    assert entries[0]["vision"]["vision_layers_excluded"] == 12
    assert entries[1]["vision"]["vision_layers_excluded"] == 0
    assert len(problems) == 2
    assert problems[0].startswith(
        f"checkpoint {shapes['fp8-vision-quantized']}: vLLM 0.22.0 would quantize"
    )
    assert "does not know the architecture Qwen9_VLForConditionalGeneration" in problems[1]
    assert problems[1].endswith("or drop it from vllm_source_verify_checkpoints.")


def test_the_fleet_report_shows_what_each_host_served() -> None:
    from vllm_fleet.cli import report
    from vllm_fleet.cli.model import Fleet, phase_of

    render = load_render()
    served = render.task_result((GPU_RUN / "vl-fp8.log").read_text(), render.VL_TASK)
    refused = render.task_result((GPU_RUN / "vl-refused.log").read_text(), render.VL_TASK)
    fleet = Fleet()
    path = "/repo/roles/vllm_source/tasks/serve_check.yml:22"
    for host, kind, res in (
        ("h200-a", "runner_on_ok", served),
        ("h200-b", "runner_on_failed", refused),
    ):
        data = {
            "host": host,
            "task": render.VL_TASK,
            "task_path": path,
            "task_action": "vllm_vl_check",
            "res": res,
        }
        fleet.apply({"event": "runner_on_start", "event_data": dict(data, res={})})
        fleet.apply({"event": kind, "event_data": data})
    fleet.apply(
        {
            "event": "playbook_on_stats",
            "event_data": {"ok": {"h200-a": 3}, "failures": {"h200-b": 1}},
        }
    )
    rows = {r["host"]: r for r in report.rows(fleet)}
    assert rows["h200-a"]["serve"] == served["summary"] and rows["h200-a"]["result"] == "ok"
    assert rows["h200-b"]["result"] == "failed"
    assert rows["h200-b"]["reason"].startswith(
        "/srv/checkpoints/vl-shapes/fp8-vision-quantized: vLLM 0.22.0 would"
    )
    assert phase_of(path, "vllm_vl_check") == "serve"


def test_serve_check_command_sets_the_playbooks_variables(monkeypatch) -> None:
    from typer.testing import CliRunner

    from vllm_fleet.cli import app as cli

    calls = []
    monkeypatch.setattr(cli, "execute", lambda *a, **k: calls.append((a, k)) or 0)
    argv = ["serve-check", "/models/vl-fp8", "--image", "/d/a.png", "--image", "/d/b.png"]
    argv += ["--prompt", "What is it?", "--unquantized", "--check-only", "-l", "gpu-1"]
    argv += ["-e", "vllm_source_user=svc"]
    result = CliRunner().invoke(cli.app, argv)
    assert result.exit_code == 0, result.output
    ((args, kwargs),) = calls
    assert args == ("serve-check", "playbooks/serve_check.yml") and kwargs["limit"] == "gpu-1"
    assert kwargs["extravars"] == {
        "vllm_source_user": "svc",
        "vllm_source_serve_check_model": "/models/vl-fp8",
        "vllm_source_serve_check_images": ["/d/a.png", "/d/b.png"],
        "vllm_source_serve_check_prompt": "What is it?",
        "vllm_source_serve_check_unquantized": True,
        "vllm_source_serve_check_generate": False,
    }
    assert kwargs["columns"] == cli.SERVE_COLUMNS
