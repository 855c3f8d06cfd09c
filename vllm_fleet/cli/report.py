"""The fleet report: one row per host, as a terminal table, JSON and Markdown.

Rows come from a Fleet (model.py): what the role's modules returned on each host during the
run (or, for `vllm-fleet status`, the stamp of the release current points at).
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from rich.table import Table

from .display import clock
from .model import Fleet, HostState

# The report's columns: key in a row, heading.
COLUMNS = (
    ("host", "Host"),
    ("gpus", "GPUs"),
    ("driver", "Driver / CUDA"),
    ("vllm", "vLLM"),
    ("commit", "Commit"),
    ("torch", "torch"),
    ("archs", "Archs"),
    ("modelopt", "ModelOpt methods"),
    ("source", "Wheel"),
    ("duration", "Duration"),
    ("result", "Result"),
    ("reason", "Reason"),
)
# `vllm-fleet status` shows the release instead of the run.
STATUS_COLUMNS = (
    ("host", "Host"),
    ("gpus", "GPUs"),
    ("driver", "Driver / CUDA"),
    ("key", "Current release"),
    ("vllm", "vLLM"),
    ("commit", "Commit"),
    ("torch", "torch"),
    ("archs", "Archs"),
    ("modelopt", "ModelOpt methods"),
    ("built", "Built"),
    ("result", "Result"),
    ("reason", "Reason"),
)


def _gpus(driver: Optional[Dict[str, Any]]) -> str:
    if not driver:
        return ""
    if not driver.get("present"):
        return "none"
    names: Dict[str, int] = {}
    for gpu in driver.get("gpus") or []:
        names[str(gpu.get("name", "GPU"))] = names.get(str(gpu.get("name", "GPU")), 0) + 1
    return ", ".join(f"{n}x {name}" for name, n in names.items()) or f"{driver.get('gpu_count')}"


def _driver(driver: Optional[Dict[str, Any]], toolkit: Optional[Dict[str, Any]]) -> str:
    parts = []
    if driver and driver.get("present"):
        parts.append(f"{driver.get('driver_version')} (max CUDA {driver.get('cuda_max_version')})")
    elif driver:
        parts.append("no driver")
    if toolkit and toolkit.get("version"):
        parts.append(f"toolkit {toolkit['version']}")
    return " / ".join(parts)


def _torch(version: Any, cuda: Any) -> str:
    if not version:
        return ""
    return f"{version}" + (f" (CUDA {cuda})" if cuda else "")


def _source(fleet: Fleet, state: HostState) -> str:
    facts = state.facts
    if state.name in fleet.builders:
        return "built here"
    if facts.get("switched") or (facts.get("needs_install") and facts.get("verify")):
        return "shared wheel"
    if facts.get("key") and not facts.get("needs_install") and facts.get("verify"):
        return "unchanged"
    return ""


def row(fleet: Fleet, state: HostState) -> Dict[str, Any]:
    """One host's row: strings for the table, plus its raw facts under `facts`."""
    facts = state.facts
    verify = facts.get("verify") or {}
    stamp = facts.get("stamp") or {}
    inputs = facts.get("inputs") or stamp.get("inputs") or {}
    methods = verify.get("modelopt_methods") or stamp.get("modelopt_methods") or {}
    # The tag's full commit the role resolved; vLLM's own record is abbreviated.
    commit = inputs.get("commit") or verify.get("vllm_commit") or stamp.get("vllm_commit") or ""
    archs = inputs.get("arch_list", "")
    built = ""
    if stamp:
        how = "here" if stamp.get("built_here") else "shared wheel"
        built = " ".join(str(x) for x in (stamp.get("built_at"), stamp.get("built_by"), how) if x)
    return {
        "host": state.name,
        "gpus": _gpus(facts.get("driver")),
        "driver": _driver(facts.get("driver"), facts.get("toolkit")),
        "key": facts.get("current") or facts.get("key") or "",
        "vllm": verify.get("vllm_version") or stamp.get("vllm_version") or "",
        "commit": str(commit)[:12],
        "torch": _torch(
            verify.get("torch_version") or stamp.get("torch_version"),
            verify.get("torch_cuda_version") or stamp.get("torch_cuda_version"),
        ),
        "archs": archs or ("none" if inputs else ""),
        "modelopt": ", ".join(sorted(methods)),
        "source": _source(fleet, state),
        "checkpoints": "; ".join(
            f"{c.get('path')}: {c.get('quantization') or 'not quantized'}"
            + (
                f" ({c.get('load_error') or c.get('error')})"
                if c.get("load_error") or c.get("error")
                else ""
            )
            for c in verify.get("checkpoints") or []
        ),
        "serve": (facts.get("serve") or {}).get("summary") or "",
        "built": built,
        "duration": clock(None if state.duration is None else round(state.duration)),
        "duration_s": None if state.duration is None else round(state.duration, 1),
        "result": state.result,
        "reason": state.reason,
        "facts": {k: v for k, v in facts.items() if k != "inputs"} | {"inputs": inputs},
    }


def rows(fleet: Fleet) -> List[Dict[str, Any]]:
    return [row(fleet, state) for _, state in sorted(fleet.hosts.items())]


def failed(report_rows: List[Dict[str, Any]]) -> List[str]:
    """The hosts that failed or were unreachable (or never finished)."""
    return [r["host"] for r in report_rows if r["result"] not in ("ok", "changed")]


def as_json(report: Dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"


_RESULT_STYLE = {"ok": "green", "changed": "yellow", "failed": "bold red", "unreachable": "red"}


def shown_columns(report_rows: List[Dict[str, Any]], columns=COLUMNS) -> tuple:
    """The columns with a value in some row (host and result always)."""
    return tuple(
        (key, heading)
        for key, heading in columns
        if key in ("host", "result") or any(str(r.get(key, "")) for r in report_rows)
    )


def table(report_rows: List[Dict[str, Any]], columns=COLUMNS, title: str = "") -> Table:
    """The report as a rich table, without the columns no host has a value in."""
    columns = shown_columns(report_rows, columns)
    out = Table(title=title or None, show_lines=False, expand=False)
    for key, heading in columns:
        out.add_column(heading, overflow="fold", max_width=60 if key == "reason" else None)
    for r in report_rows:
        cells = [str(r.get(key, "")) for key, _ in columns]
        out.add_row(*cells, style=_RESULT_STYLE.get(r["result"], ""))
    return out


def markdown(report_rows: List[Dict[str, Any]], columns=COLUMNS) -> str:
    """The report as a GitHub Markdown table."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(h for _, h in columns) + " |"]
    lines.append("|" + "---|" * len(columns))
    for r in report_rows:
        lines.append("| " + " | ".join(cell(r.get(k, "")) for k, _ in columns) + " |")
    return "\n".join(lines) + "\n"
