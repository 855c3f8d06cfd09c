"""Read a vllm_source build log: how far the build got and how fast.

The role's build script prefixes every line with the seconds since the build started
("[+   12.3s] "); ninja prints "[step/total] ..." for each compile step. Pure functions,
used by bench/build_time and its unit tests.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Optional, Tuple

STAMP_RE = re.compile(r"^\[\+\s*(\d+(?:\.\d+)?)s\] ?(.*)$")
STEP_RE = re.compile(r"^\s*\[(\d+)/(\d+)\] (.*)$")
STARTED_RE = re.compile(r"^== vllm_source build (\S+) started (\S+) on (\d+) CPUs")
MODE_RE = re.compile(r"^== build mode (\S+): (.*)$")
ENDED_RE = re.compile(r"^== vllm_source build \S+ (finished in|FAILED after) (\d+) s")


def parse_line(line: str) -> Tuple[Optional[float], str]:
    """Split a log line into its elapsed-seconds stamp (None if unstamped) and its text."""
    match = STAMP_RE.match(line.rstrip("\n"))
    if match:
        return float(match.group(1)), match.group(2)
    return None, line.rstrip("\n")


def read_log(lines: Iterable[str]) -> Dict[str, Any]:
    """Collect the facts of one build log."""
    facts: Dict[str, Any] = {
        "key": None,
        "started": None,
        "cpus": None,
        "mode": None,
        "env": {},
        "steps": [],  # (elapsed, step, total)
        "cuda_objects": 0,
        "status": "running",
        "duration_s": None,
        "last_elapsed_s": 0.0,
    }
    for raw in lines:
        elapsed, text = parse_line(raw)
        if elapsed is not None:
            facts["last_elapsed_s"] = elapsed
        started = STARTED_RE.match(text)
        if started:
            facts["key"], facts["started"], facts["cpus"] = (
                started.group(1),
                started.group(2),
                int(started.group(3)),
            )
            continue
        mode = MODE_RE.match(text)
        if mode:
            facts["mode"] = mode.group(1)
            facts["env"] = dict(item.split("=", 1) for item in mode.group(2).split() if "=" in item)
            continue
        ended = ENDED_RE.match(text)
        if ended:
            facts["status"] = "finished" if ended.group(1) == "finished in" else "failed"
            facts["duration_s"] = int(ended.group(2))
            continue
        step = STEP_RE.match(text)
        if step:
            facts["steps"].append((elapsed, int(step.group(1)), int(step.group(2))))
            if "Building CUDA object" in step.group(3):
                facts["cuda_objects"] += 1
    return facts


def time_to_fraction(
    steps: List[Tuple[Optional[float], int, int]], fraction: float
) -> Optional[float]:
    """Return the elapsed seconds at which `fraction` of the steps were done, if reached."""
    for elapsed, step, total in steps:
        if elapsed is not None and total and step >= fraction * total:
            return elapsed
    return None


def summary(facts: Dict[str, Any]) -> Dict[str, Any]:
    """Return the figures bench/build_time prints."""
    steps = facts["steps"]
    done, total = (max(s[1] for s in steps), steps[-1][2]) if steps else (0, 0)
    first = next((s[0] for s in steps if s[0] is not None), None)
    elapsed = facts["duration_s"] if facts["duration_s"] is not None else facts["last_elapsed_s"]
    rate = None
    if first is not None and elapsed and elapsed > first and done:
        rate = round(done / ((elapsed - first) / 60.0), 1)
    return {
        "status": facts["status"],
        "mode": facts["mode"],
        "cpus": facts["cpus"],
        "max_jobs": facts["env"].get("MAX_JOBS"),
        "nvcc_threads": facts["env"].get("NVCC_THREADS"),
        "arch_list": facts["env"].get("TORCH_CUDA_ARCH_LIST"),
        "elapsed_s": round(float(elapsed), 1),
        "first_step_at_s": first,
        "steps_done": done,
        "steps_total": total,
        "cuda_objects_compiled": facts["cuda_objects"],
        "steps_per_min": rate,
        "quarter_times_s": {
            f"{int(f * 100)}%": time_to_fraction(steps, f) for f in (0.25, 0.5, 0.75, 1.0)
        },
    }
