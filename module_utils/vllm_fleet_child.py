"""Child processes of the venv's Python: their shared helpers and reading their report.

vllm_verify and vllm_smoke import vLLM in a child of the venv's Python (vLLM cannot be
imported inside an Ansible 2.19 module process). Each child prints one JSON object as its
last stdout line; child_report reads it.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, Optional, Tuple

# The children run as `<venv python> -I -c SCRIPT`, where module_utils cannot be imported,
# so every SCRIPT starts with this text; it is executed here too, so that last_line and
# exception_line have one definition for the module and its children.
CHILD_HELPERS = r'''
import traceback

PYDANTIC_FOOTER = "For further information visit"


def last_line(text):
    """The last meaningful line of a traceback or message (not pydantic's link footer)."""
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(PYDANTIC_FOOTER)] or lines
    return lines[-1] if lines else ""


def exception_line(exc):
    """An exception as its traceback's last line, e.g. 'ValueError: bad'."""
    return last_line("".join(traceback.format_exception_only(type(exc), exc))) or repr(exc)
'''

_HELPERS: Dict[str, Any] = {}
exec(CHILD_HELPERS, _HELPERS)
last_line: Callable[[str], str] = _HELPERS["last_line"]
exception_line: Callable[[BaseException], str] = _HELPERS["exception_line"]


def offline_environment() -> Dict[str, str]:
    """Environment that keeps transformers and huggingface_hub off the network."""
    return {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def child_report(
    what: str, rc: int, stdout: str, stderr: str
) -> Tuple[Dict[str, Any], Optional[str]]:
    """Return the child's report (its last stdout line as a JSON object), or an error naming
    `what` exited how, with its last stderr (else stdout) line."""
    text = last_line(stdout)
    if text:
        try:
            report = json.loads(text)
        except ValueError:
            report = None
        if isinstance(report, dict):
            return report, None
    detail = last_line(stderr) or last_line(stdout) or "no output"
    return {}, f"{what} exited with {rc} and no report: {detail}"
