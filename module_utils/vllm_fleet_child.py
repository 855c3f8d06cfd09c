"""Reading the report of a child process that prints one JSON object as its last line.

vllm_verify and vllm_smoke import vLLM in a child of the venv's Python (vLLM cannot be
imported inside an Ansible 2.19 module process); both read the child's report this way.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional, Tuple

PYDANTIC_FOOTER = "For further information visit"


def last_line(text: str) -> str:
    """Return the last meaningful line of a traceback or message (not pydantic's link footer)."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(PYDANTIC_FOOTER)] or lines
    return lines[-1] if lines else ""


def child_report(
    what: str, rc: int, stdout: str, stderr: str
) -> Tuple[Dict[str, Any], Optional[str]]:
    """Return the child's report (its last stdout line as a JSON object), or an error naming
    `what` exited how, with its last stderr (else stdout) line."""
    text = stdout.strip()
    if text:
        try:
            report = json.loads(text.splitlines()[-1])
        except ValueError:
            report = None
        if isinstance(report, dict):
            return report, None
    detail = last_line(stderr) or last_line(stdout) or "no output"
    return {}, f"{what} exited with {rc} and no report: {detail}"
