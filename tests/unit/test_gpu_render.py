"""tools/gpu-validation/render.py copies figures out of the run's own output."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location(
    "render", ROOT / "tools" / "gpu-validation" / "render.py"
)
render = importlib.util.module_from_spec(spec)
assert spec.loader is not None
spec.loader.exec_module(render)

LOG = """\
TASK [vllm_source : Import vLLM in the venv and check its version, commit and ModelOpt methods.] ***
ok: [gpu-validation] => {"changed": false, "vllm_version": "0.22.0",
    "modelopt_methods": {"modelopt": "ModelOptFp8Config"}}

TASK [vllm_source : Generate tokens on the GPUs from every smoke-test model.] ***
ok: [gpu-validation] => {
    "changed": false,
    "summary": ["small-llama tp=1 unquantized: 16 tokens in 0.1 s"],
    "tokens_total": 16
}

PLAY RECAP *********************************************************************
gpu-validation             : ok=70   changed=18   unreachable=0    failed=0    skipped=9

real\t4m2.113s
"""


def test_task_results_are_read_from_verbose_output() -> None:
    verify = render.task_result(LOG, render.VERIFY_TASK)
    assert verify["modelopt_methods"] == {"modelopt": "ModelOptFp8Config"}
    smoke = render.task_result(LOG, render.SMOKE_TASK)
    assert smoke["tokens_total"] == 16
    assert render.task_result(LOG, "A task that did not run.") is None


def test_recap_and_wall_time() -> None:
    assert render.recap(LOG) == [
        "gpu-validation             : ok=70   changed=18   unreachable=0    failed=0    skipped=9"
    ]
    assert render.wall_time(LOG) == "4m2.113s"


def test_peak_memory_names_the_highest_sample() -> None:
    samples = "5 3.1 [10/393]\n10 40.5 [120/393]\n15 12.0 [125/393]\nnoise\n"
    assert render.peak_memory(samples) == (
        "40.5 GiB used at 10 s, ninja at [120/393] (3 samples, every 5 s)"
    )


def test_render_uses_only_the_files(tmp_path: Path) -> None:
    (tmp_path / "machine.txt").write_text("## nvidia-smi -L\nGPU 0: NVIDIA H100 80GB HBM3\n")
    (tmp_path / "precompiled-run.log").write_text(LOG)
    text = render.render([tmp_path])
    assert "GPU 0: NVIDIA H100 80GB HBM3" in text
    assert "small-llama tp=1 unquantized: 16 tokens in 0.1 s" in text
    assert "wall time: 4m2.113s" in text
