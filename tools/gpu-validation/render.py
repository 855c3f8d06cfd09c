#!/usr/bin/env python3
"""Render docs/gpu-validation.md from the files tools/gpu-validation/run.sh wrote.

Usage: render.py RESULTS_DIR [RESULTS_DIR ...] > docs/gpu-validation.md
Every figure, JSON and text in the output is copied from those files; only headings and
labels are written here. The task results are found by the names the role's task files give
the vllm_verify and vllm_smoke tasks, read from the role itself, so a renamed task cannot
drop them silently.
"""

from __future__ import annotations

import json
import lzma
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "roles" / "vllm_source" / "tasks"
sys.path.insert(0, str(ROOT / "module_utils"))

from vllm_fleet_buildlog import read_log, summary  # noqa: E402


def _tasks(tasks: list):
    for task in tasks or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


def task_name(task_file: str, module: str) -> str:
    """Return the name of the task in the role's `task_file` that calls `module`."""
    for task in _tasks(yaml.safe_load((TASKS / task_file).read_text(encoding="utf-8"))):
        if module in task:
            return str(task["name"])
    raise LookupError(f"no task calls {module} in roles/vllm_source/tasks/{task_file}")


def task_names(task_files: List[str], module: str) -> List[str]:
    """The names of every task in the role's `task_files` that calls `module`, in order."""
    return [
        str(task["name"])
        for task_file in task_files
        for task in _tasks(yaml.safe_load((TASKS / task_file).read_text(encoding="utf-8")))
        if module in task
    ]


VERIFY_TASK = task_name("09_verify.yml", "vllm_verify")
SMOKE_TASK = task_name("09_verify.yml", "vllm_smoke")
SEAL_TASK = task_name("09_verify.yml", "vllm_release")
VL_TASK = task_name("serve_check.yml", "vllm_vl_check")
HASHED_TASKS = task_names(["06_venv.yml", "07_build.yml", "08_install.yml"], "vllm_pip_hashed")


def task_result(log: str, task: str) -> Optional[Dict[str, Any]]:
    """Return the JSON result ansible-playbook -v printed for the named task, if any."""
    start = log.find(f"TASK [vllm_source : {task}]")
    if start < 0:
        return None
    end = log.find("\nTASK [", start + 1)  # the task's own output only (a skipped one has none)
    match = re.compile(r"^(ok|changed|fatal): \[[^\]]+\]:? (?:FAILED! )?=> ", re.M).search(
        log, start, end if end > 0 else len(log)
    )
    if not match:
        return None
    result, _ = json.JSONDecoder().raw_decode(log[match.end() :])
    return result


def adhoc_result(log: str) -> Optional[Dict[str, Any]]:
    """Return the JSON result an ad-hoc `ansible -v` run printed for its host, if any."""
    match = re.compile(r"^\S+ \| (?:FAILED!|SUCCESS|CHANGED) => ", re.M).search(log)
    if not match:
        return None
    result, _ = json.JSONDecoder().raw_decode(log[match.end() :])
    return result


def recap(log: str) -> List[str]:
    """Return the PLAY RECAP host lines."""
    tail = log[log.rfind("PLAY RECAP") :] if "PLAY RECAP" in log else ""
    return [line.strip() for line in tail.splitlines()[1:] if " : ok=" in line]


def wall_time(log: str) -> Optional[str]:
    """Return bash's `time` real figure printed after the run."""
    found = re.findall(r"^real\s+(\S+)$", log, re.M)
    return found[-1] if found else None


def read(path: Path) -> str:
    if path.suffix == ".xz":
        return lzma.open(path, "rt", encoding="utf-8", errors="replace").read()
    return path.read_text(encoding="utf-8", errors="replace")


def samples(text: str) -> List[List[str]]:
    """The sampler's rows: elapsed s, used GiB, CPU busy %, [ninja step]."""
    rows = [line.split() for line in text.splitlines()]
    return [
        r
        for r in rows
        if len(r) >= 3 and r[0].isdigit() and re.match(r"^[\d.]+$", r[1]) and r[2].isdigit()
    ]


def peak_memory(text: str, jobs: Optional[int] = None) -> Optional[str]:
    """Return the highest used-memory sample (GiB), when, and per compile job."""
    rows = samples(text)
    if not rows:
        return None
    best = max(rows, key=lambda r: float(r[1]))
    step = f", ninja at {best[3]}" if len(best) > 3 else ""
    per_job = f", {float(best[1]) / jobs:.1f} GiB per compile job ({jobs} jobs)" if jobs else ""
    return f"{best[1]} GiB used at {best[0]} s{step}{per_job} ({len(rows)} samples, every 5 s)"


def busy_share(text: str) -> Optional[str]:
    """Return the mean CPU busy share over the samples taken while ninja ran."""
    rows = [r for r in samples(text) if len(r) > 3]
    if not rows:
        return None
    mean = sum(int(r[2]) for r in rows) / len(rows)
    return f"{mean:.0f} % of all CPUs busy on average over {len(rows)} samples while ninja ran"


def fenced(text: str, lang: str = "") -> str:
    return f"```{lang}\n{text.rstrip()}\n```\n"


def smoke_section(smoke: Dict[str, Any]) -> List[str]:
    keys = ("name", "resolved_quantization", "tokens", "tokens_per_s", "load_s", "agreement")
    table = ["| " + " | ".join(keys) + " | expect matched |", "|" + " --- |" * (len(keys) + 1)]
    for run in smoke.get("runs", []):
        cells = [str(run.get(k)) for k in keys] + [str(run.get("expect_matched"))]
        table.append("| " + " | ".join(cells) + " |")
    return [
        "Smoke test (`vllm_smoke`), one line per run:\n",
        fenced("\n".join(smoke.get("summary", []))),
        "\n".join(table) + "\n",
        "Runs as returned:\n",
        fenced(json.dumps(smoke.get("runs", []), indent=2), "json"),
    ]


def hardening_section(log: str) -> List[str]:
    """The hash-checked installs that ran (wheels installed, each by its recorded sha256) and
    the seal of the release (entries handed to root), as the run printed them."""
    lines = []
    for task in HASHED_TASKS:
        result = task_result(log, task)
        if result is not None:
            wheels = result.get("installed") or []
            lines.append(
                f"- {task} changed={str(result.get('changed')).lower()}: {len(wheels)} wheels "
                f"installed with --require-hashes from {result.get('requirements_file', '?')}"
            )
    seal = task_result(log, SEAL_TASK)
    if seal is not None:
        lines.append(
            f"- {SEAL_TASK} changed={str(seal.get('changed')).lower()}: "
            f"{seal.get('changed_entries', '?')} entries of {seal.get('release_dir', '?')} "
            "handed to root"
        )
    if not lines:
        return []
    return ["Hash-checked installs and the sealed release:\n", "\n".join(lines) + "\n"]


def run_section(files: Dict[str, Path], n: int, title: str) -> List[str]:
    log = read(files[f"run{n}.log"])
    out = [f"## {title}\n"]
    if f"run{n}-command.txt" in files:
        out.append(fenced(read(files[f"run{n}-command.txt"]), "sh"))
    out.append(fenced("\n".join(recap(log)) + f"\nwall time: {wall_time(log)}"))
    verify = task_result(log, VERIFY_TASK)
    if verify:
        out += [
            "Verify module result (`vllm_verify`):\n",
            fenced(json.dumps(verify, indent=2), "json"),
        ]
    out += hardening_section(log)
    smoke = task_result(log, SMOKE_TASK)
    out += smoke_section(smoke) if smoke else ["Smoke test: not reached in this run.\n"]
    if f"gpu-after-run{n}.txt" in files:
        out += [
            f"GPU and vLLM processes after run {n}:\n",
            fenced(read(files[f"gpu-after-run{n}.txt"])),
        ]
    return out


def full_build_section(files: Dict[str, Path]) -> List[str]:
    out = ["## Full CUDA build (as far as it got)\n"]
    if "full-command.txt" in files:
        out.append(fenced(read(files["full-command.txt"]), "sh"))
    figures = summary(read_log(read(files["full-build.log.xz"]).splitlines()))
    out += [
        "`bench/build_time` figures of its build log:\n",
        fenced(json.dumps(figures, indent=2), "json"),
    ]
    if figures["status"] == "running":
        out.append(
            f"The log ends mid-build, after {figures['elapsed_s']} s: the build was stopped "
            f"there with {figures['steps_done']} of {figures['steps_total']} ninja steps "
            "done.\n"
        )
    if "full-samples.txt" in files:
        text = read(files["full-samples.txt"])
        jobs = int(figures["max_jobs"]) if figures.get("max_jobs") else None
        out.append(
            f"Peak memory in use on the machine during the build: {peak_memory(text, jobs)}\n"
        )
        out.append(f"CPU: {busy_share(text)}\n\n")
    if "full-run.log" in files:
        lines = [
            line
            for line in read(files["full-run.log"]).splitlines()
            if line.startswith(("TASK [", "ok:", "changed:", "fatal:", "PLAY RECAP"))
        ]
        lines = [line if len(line) < 240 else line[:239] + "…" for line in lines[-8:]]
        out += ["Last role steps of that run:\n", fenced("\n".join(lines))]
    return out


def compiler_cache_section(files: Dict[str, Path]) -> List[str]:
    """bench/compiler_cache's phases as a table, from the JSON lines it printed."""
    out = ["## Compiler cache: vLLM's CUDA units cold, then warm (`bench/compiler_cache`)\n"]
    if "command.txt" in files:
        out.append(fenced(read(files["command.txt"]), "sh"))
    rows = ["| phase | units | compiled | wall s | CPUs busy | hits | misses |", "| --- " * 7 + "|"]
    ratios = []
    for line in read(files["compiler_cache.txt"]).splitlines():
        if not line.startswith("{"):
            continue
        data = json.loads(line)
        if "phase" in data:
            cache = data.get("cache") or {}
            hits, misses = cache.get("hits", ""), cache.get("misses", "")
            rows.append(
                f"| {data['phase']} | {data['units']} | {data['compiled']} | {data['wall_s']} "
                f"| {data['cpu_busy_pct']} % | {hits} | {misses} |"
            )
        elif "warm" in data:
            ratios.append(
                f"- warm, {data['warm']}: wall {data['warm_to_cold_wall_ratio']} of the cold "
                f"one, {data['warm_hit_rate_pct']} % hits ({data['units_timed']} units)"
            )
    out += ["\n".join(rows) + "\n", "\n".join(ratios) + "\n"]
    out += ["What it printed:\n", fenced(read(files["compiler_cache.txt"]))]
    return out


def full_build_cache_section(files: Dict[str, Path]) -> List[str]:
    """bench/full_build_cache's runs (one JSON-lines file per tool) as a table."""
    out = ["## Compiler cache on the full CUDA build: cold, then warm (`bench/full_build_cache`)\n"]
    rows = [
        "| tool | phase | configure s | ninja steps | wall s | steps/min | CPUs busy "
        "| peak GiB in use | GiB per job | hits | misses |",
        "| --- " * 11 + "|",
    ]
    ratios, printed = [], []
    for name in sorted(n for n in files if n.endswith(".jsonl")):
        tool = name[: -len(".jsonl")]
        text = read(files[name])
        printed.append(f"{name}:\n{text.strip()}")
        for line in text.splitlines():
            data = json.loads(line) if line.startswith("{") else {}
            if "launcher" in data:
                tool = data["launcher"]
            elif "phase" in data:
                cache = data.get("cache") or {}
                busy = "" if data["cpu_busy_pct"] is None else f"{data['cpu_busy_pct']} %"
                rows.append(
                    f"| {tool} | {data['phase']} | {data['configure_s']} "
                    f"| {data['steps_finished']} of {data['steps_total']} | {data['wall_s']} "
                    f"| {data['steps_per_min']} | {busy} | {data['peak_used_gib']} "
                    f"| {data['peak_per_job_gib']} | {cache.get('hits', '')} "
                    f"| {cache.get('misses', '')} |"
                )
            elif "warm_to_cold_wall_ratio" in data:
                ratios.append(
                    f"- {tool}: warm wall {data['warm_to_cold_wall_ratio']} of the cold one "
                    f"({data['warm_to_cold_ratio_with_configure']} with configure), "
                    f"{data['warm_hit_rate_pct']} % hits, {data['objects_rebuilt']} objects"
                )
    out += ["\n".join(rows) + "\n", "\n".join(ratios) + "\n"]
    out += ["What it printed:\n", fenced("\n\n".join(printed))]
    return out


VL_RUNS = {
    "unquantized": "the tiny Qwen2.5-VL, unquantized (`vllm_source_serve_check_unquantized`)",
    "fp8": "its ModelOpt FP8 export (language model FP8, vision tower excluded)",
    "refused": "a config shape without the vision exclusion (must be refused)",
}


def vl_section(files: Dict[str, Path]) -> List[str]:
    """playbooks/serve_check.yml's runs, the user's script, and vllm-fleet-vl's facts of every
    config shape with what vllm_fleet.vl.refusals decides on them."""
    sys.path.insert(0, str(ROOT))
    from vllm_fleet.vl import refusals

    out = ["## A vision-language checkpoint: `playbooks/serve_check.yml` (vllm-fleet-vl)\n"]
    rows = [
        "| run | exit | quantization | vision layers excluded | prompt tokens | tokens "
        "| tokens/s | load s | output or refusal |",
        "| --- " * 9 + "|",
    ]
    details = []
    for name, title in VL_RUNS.items():
        if f"vl-{name}.log" not in files:
            continue
        log = read(files[f"vl-{name}.log"])
        result = task_result(log, VL_TASK) or {}
        report = result.get("report") or {}
        checks = report.get("checks") or {}
        said = report.get("text") if "text" in report else (report.get("refusals") or [""])[0]
        rows.append(
            f"| {name} | {read(files[f'vl-{name}.rc']).strip()} "
            f"| {checks.get('quantization') or 'none'} "
            f"| {checks.get('vision_layers_excluded')}/{checks.get('vision_layers')} "
            f"| {report.get('prompt_tokens', '')} | {report.get('tokens', '')} "
            f"| {report.get('tokens_per_s', '')} | {report.get('load_s', '')} | {said!r} |"
        )
        details += [f"### {name}: {title}\n"]
        if f"vl-{name}-command.txt" in files:
            details.append(fenced(read(files[f"vl-{name}-command.txt"]), "sh"))
        details += [
            fenced("\n".join(recap(log)) + f"\nwall time: {wall_time(log)}"),
            "The task's result:\n",
            fenced(json.dumps(result, indent=2), "json"),
        ]
        if f"gpu-after-vl-{name}.txt" in files:
            details += [
                "GPU and vLLM processes after it:\n",
                fenced(read(files[f"gpu-after-vl-{name}.txt"])),
            ]
    out += ["\n".join(rows) + "\n", *details]
    if "vl-script.log" in files:
        out += [
            "### The user's script with the release's Python\n",
            fenced(read(files["vl-script-command.txt"]), "sh"),
            f"Exit status {read(files['vl-script.rc']).strip()}; its last lines:\n",
            fenced("\n".join(read(files["vl-script.log"]).strip().splitlines()[-4:])),
        ]
    if "vl-facts.json" in files:
        facts = json.loads(read(files["vl-facts.json"]))
        table = [
            "| shape | method | min capability | exclude_modules after mapping "
            "| vision layers excluded | refusal on a 9.0 GPU |",
            "| --- " * 6 + "|",
        ]
        for name, fact in facts.items():
            vision = fact.get("vision_layers") or {}
            refused = refusals(fact, 90)
            table.append(
                f"| {name} | {fact.get('quantization')} | {fact.get('min_capability')} "
                f"| {fact.get('exclude_modules')} | {sum(vision.values())}/{len(vision)} "
                f"| {refused[0] if refused else 'none'} |"
            )
        out += [
            "### Every config shape as this vLLM reads it (`tests/fixtures/vl_facts.py`)\n",
            "The facts are what the run printed; the last column is what "
            "`vllm_fleet.vl.refusals` decides on them.\n",
            "\n".join(table) + "\n",
        ]
    return out


def render(dirs: List[Path]) -> str:
    files = {p.name: p for d in dirs for p in sorted(d.iterdir()) if p.is_file()}
    sources = ", ".join(f"`{d.name}`" for d in dirs)
    out = [
        "# GPU validation\n",
        f"Generated by `tools/gpu-validation/render.py` from {sources}; everything below is "
        "copied from what the run printed.\n",
    ]
    if "machine.txt" in files:
        out += ["## Machine\n", fenced(read(files["machine.txt"]))]
    if "wheelhouse-check.txt" in files:
        out += [
            "## The wheelhouse, proved complete on the controller before it was carried\n",
            fenced(read(files["wheelhouse-check.txt"])),
        ]
    if "gpu-before.txt" in files:
        out += ["## GPU before the first run\n", fenced(read(files["gpu-before.txt"]))]
    titles = {
        1: "First run: bare prefix, precompiled build, verify, smoke test",
        2: "Second run, the same command",
    }
    for n, title in titles.items():
        if f"run{n}.log" in files:
            out += run_section(files, n, title)
    if "engine-without-env.log" in files:
        result = adhoc_result(read(files["engine-without-env.log"])) or {}
        out += [
            "## The engine check without `vllm_source_runtime_env`\n",
            fenced(
                read(files.get("engine-without-env-command.txt", files["engine-without-env.log"])),
                "sh",
            ),
            "Its `engine` result and message:\n",
            fenced(
                json.dumps({"engine": result.get("engine"), "msg": result.get("msg")}, indent=2),
                "json",
            ),
        ]
    for name, path in files.items():
        if name.startswith("build-") and ".log" in name:
            out += [
                f"## Build log of the precompiled build ({name})\n",
                fenced(json.dumps(summary(read_log(read(path).splitlines())), indent=2), "json"),
            ]
    if "full-build.log.xz" in files:
        out += full_build_section(files)
    if "compiler_cache.txt" in files:
        out += compiler_cache_section(files)
    if any(name.endswith(".jsonl") for name in files):
        out += full_build_cache_section(files)
    if any(name.startswith("vl-") for name in files):
        out += vl_section(files)
    if "cleanup.txt" in files:
        out += [
            "## Processes of the validation, ended before the machine went back\n",
            fenced(read(files["cleanup.txt"])),
        ]
    if "gpu-final.txt" in files:
        out += ["GPU at the end:\n", fenced(read(files["gpu-final.txt"]))]
    return "\n".join(out)


def main(argv: List[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    sys.stdout.write(render([Path(a) for a in argv[1:]]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
