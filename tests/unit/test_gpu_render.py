"""tools/gpu-validation/render.py copies figures out of the run's own output."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location(
    "render", ROOT / "tools" / "gpu-validation" / "render.py"
)
render = importlib.util.module_from_spec(spec)
assert spec.loader is not None
spec.loader.exec_module(render)

LOG = """\
TASK [vllm_source : VERIFY_TASK] ***
ok: [gpu-validation] => {"changed": false, "vllm_version": "0.22.0",
    "modelopt_methods": {"modelopt": "ModelOptFp8Config"}}

TASK [vllm_source : SMOKE_TASK] ***
ok: [gpu-validation] => {
    "changed": false,
    "summary": ["small-llama tp=1 unquantized: 16 tokens in 0.1 s"],
    "runs": [{"name": "small-llama", "tokens": 16, "agreement": 1.0, "expect_matched": true}],
    "tokens_total": 16
}

PLAY RECAP *********************************************************************
gpu-validation             : ok=70   changed=18   unreachable=0    failed=0    skipped=9

real\t4m2.113s
"""
LOG = LOG.replace("VERIFY_TASK", render.VERIFY_TASK).replace("SMOKE_TASK", render.SMOKE_TASK)


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


def test_peak_memory_and_cpu_share_come_from_the_samples() -> None:
    samples = "5 3.1 40\n10 40.5 90 [120/393]\n15 12.0 100 [125/393]\nnoise\n"
    assert render.peak_memory(samples, 8) == (
        "40.5 GiB used at 10 s, ninja at [120/393], 5.1 GiB per compile job (8 jobs) "
        "(3 samples, every 5 s)"
    )
    assert render.busy_share(samples) == (
        "95 % of all CPUs busy on average over 2 samples while ninja ran"
    )


def test_task_names_are_the_roles_own() -> None:
    # The verify task was renamed once and the page silently lost its JSON: the names are
    # now read from the role's task files.
    phase = (ROOT / "roles/vllm_source/tasks/09_verify.yml").read_text()
    assert f"- name: {render.VERIFY_TASK}\n  vllm_verify:" in phase
    assert f"- name: {render.SMOKE_TASK}\n      vllm_smoke:" in phase


def test_render_uses_only_the_files(tmp_path: Path) -> None:
    (tmp_path / "machine.txt").write_text("## nvidia-smi -L\nGPU 0: NVIDIA H100 80GB HBM3\n")
    (tmp_path / "run1.log").write_text(LOG)
    (tmp_path / "gpu-after-run1.txt").write_text("## vLLM processes\nnone\n")
    text = render.render([tmp_path])
    assert "GPU 0: NVIDIA H100 80GB HBM3" in text
    assert "small-llama tp=1 unquantized: 16 tokens in 0.1 s" in text
    assert "wall time: 4m2.113s" in text
    assert '"modelopt": "ModelOptFp8Config"' in text  # the verify JSON
    assert "| small-llama | None | 16 | None | None | 1.0 | True |" in text
    assert "GPU and vLLM processes after run 1:" in text


def test_adhoc_results_are_read() -> None:
    log = 'Using x\ngpu-validation | FAILED! => {\n  "engine": {"state": "failed"},\n'
    log += '  "msg": "m"\n}\n'
    assert render.adhoc_result(log) == {"engine": {"state": "failed"}, "msg": "m"}
    assert render.adhoc_result("nothing") is None


def test_the_hash_checked_installs_and_the_seal_are_copied_from_the_log() -> None:
    hashed = render.HASHED_TASKS[0]
    log = (
        f"TASK [vllm_source : {hashed}] ***\n"
        'changed: [h] => {"changed": true, "installed": [{"name": "a"}, {"name": "b"}], '
        '"requirements_file": "/r/build.txt"}\n\n'
        f"TASK [vllm_source : {render.HASHED_TASKS[1]}] ***\n"
        'skipping: [h] => {"changed": false}\n\n'
        f"TASK [vllm_source : {render.SEAL_TASK}] ***\n"
        'ok: [h] => {"changed": false, "changed_entries": 0, "release_dir": "/r/k"}\n'
    )
    lines = render.hardening_section(log)[1].splitlines()
    assert lines == [
        f"- {hashed} changed=true: 2 wheels installed with --require-hashes from /r/build.txt",
        f"- {render.SEAL_TASK} changed=false: 0 entries of /r/k handed to root",
    ]
    assert render.hardening_section("TASK [vllm_source : Other.] ***\nok: [h] => {}\n") == []


def test_the_compiler_cache_section_is_copied_from_what_the_bench_printed():
    recorded = ROOT / "docs" / "gpu-validation" / "h200x1-2026-12-03-compiler-cache"
    text = render.render([recorded])
    printed = [
        json.loads(line)
        for line in (recorded / "compiler_cache.txt").read_text().splitlines()
        if line.startswith("{")
    ]
    phases = [p for p in printed if "phase" in p]
    assert [p["phase"] for p in phases] == ["cold", "warm, same paths", "warm, other paths"]
    for p in phases:
        row = (
            f"| {p['phase']} | {p['units']} | {p['compiled']} | {p['wall_s']} "
            f"| {p['cpu_busy_pct']} % | {p['cache']['hits']} | {p['cache']['misses']} |"
        )
        assert row in text
    for ratio in (p for p in printed if "warm" in p):
        assert f"wall {ratio['warm_to_cold_wall_ratio']} of the cold one" in text
    assert "bench/compiler_cache --src" in text


def test_the_full_build_cache_section_is_copied_from_what_the_bench_printed():
    recorded = ROOT / "docs" / "gpu-validation" / "h200x1-2026-12-03-full-build-cache"
    text = render.render([recorded])
    for tool in ("ccache", "sccache"):
        printed = [
            json.loads(line)
            for line in (recorded / f"{tool}.jsonl").read_text().splitlines()
            if line.startswith("{")
        ]
        launcher = printed[0]["launcher"]
        phases = [p for p in printed if "phase" in p]
        assert [p["phase"] for p in phases] == ["cold", "warm, build tree removed"]
        for p in phases:
            row = (
                f"| {launcher} | {p['phase']} | {p['configure_s']} "
                f"| {p['steps_finished']} of {p['steps_total']} | {p['wall_s']} |"
            )
            assert row in text
        ratio = printed[-1]
        assert f"- {launcher}: warm wall {ratio['warm_to_cold_wall_ratio']} of the cold one" in text
    assert "bench/full_build_cache --src" in text
