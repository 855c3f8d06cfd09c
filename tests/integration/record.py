"""Outcomes of reliability tests, written where tools/reliability_table.py reads them.

Each bad-input and fault test records what it observed; docs/reliability.md is rendered
from the records of one test run, so its table is that run's outcome, not prose.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Dict

from .podman_host import REPO_ROOT

RECORD_DIR = Path(os.environ.get("VLLM_FLEET_RECORD_DIR", REPO_ROOT / ".cache" / "reliability"))
MESSAGE_RE = re.compile(r"(?:msg|fail_msg|Error|ERROR)[^\n]*?:\s*(.+)")


def message_excerpt(output: str, needle: str, width: int = 240) -> str:
    """Return the failure message around `needle`, whitespace folded, at most `width` chars."""
    text = " ".join(output.split()).replace("\\n", " ")
    at = text.find(needle)
    if at < 0:
        return ""
    start = max(0, text.rfind("msg:", 0, at), text.rfind("[ERROR]:", 0, at))
    excerpt = text[start : start + width].strip()
    return excerpt if len(excerpt) < width else excerpt[: width - 1] + "…"


def record(kind: str, case: str, test: str, outcome: Dict[str, Any]) -> None:
    """Write one test's observed outcome as JSON."""
    RECORD_DIR.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", f"{kind}-{case}".lower()).strip("-")
    entry = {"kind": kind, "case": case, "test": test, **outcome}
    (RECORD_DIR / f"{slug}.json").write_text(json.dumps(entry, indent=2) + "\n")
