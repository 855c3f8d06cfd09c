"""Read pyproject.toml: with tomllib, or with a small TOML subset where Python lacks it.

The subset covers what vllm_source_facts reads ([build-system].requires,
[project].requires-python); tests/unit/test_toml.py checks that it agrees with tomllib on the
pyproject.toml files of real vLLM tags.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List

try:
    import tomllib
except ImportError:  # tomllib is Python 3.11+; managed hosts run the OS's python3, 3.8+
    tomllib = None  # type: ignore[assignment]


def parse_pyproject(text: str) -> Dict[str, Any]:
    """Parse pyproject.toml with tomllib, or with parse_toml_subset on Python < 3.11."""
    if tomllib is not None:
        return tomllib.loads(text)
    return parse_toml_subset(text)


def _strip_toml_comment(line: str) -> str:
    """Drop a `#` comment that is outside double or single quotes."""
    quote = ""
    for pos, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "#":
            return line[:pos]
    return line


def _toml_strings(text: str) -> List[str]:
    """The quoted strings in `text` ('...' literal, "..." basic with simple escapes)."""
    values = []
    for match in re.finditer(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'', text):
        if match.group(1) is not None:
            values.append(re.sub(r"\\(.)", r"\1", match.group(1)))
        else:
            values.append(match.group(2))
    return values


def parse_toml_subset(text: str) -> Dict[str, Any]:
    """Parse the part of TOML pyproject files use for what we read.

    Handles `[table]` headers and `key = "string"` / `key = [ "strings", ... ]` (arrays may
    span lines). Other values are skipped. Enough for [build-system].requires and
    [project].requires-python on hosts without tomllib.
    """
    data: Dict[str, Any] = {}
    table: Dict[str, Any] = data
    lines = text.splitlines()
    pos = 0
    while pos < len(lines):
        line = _strip_toml_comment(lines[pos]).strip()
        pos += 1
        header = re.match(r"^\[([^\[\]]+)\]$", line)
        if header:
            table = data
            for part in header.group(1).split("."):
                table = table.setdefault(part.strip().strip("\"'"), {})
            continue
        pair = re.match(r"^([A-Za-z0-9_.\"'-]+)\s*=\s*(.*)$", line)
        if not pair:
            continue
        key, value = pair.group(1).strip("\"'"), pair.group(2).strip()
        if value.startswith("["):
            chunk = value
            while chunk.count("[") > chunk.count("]") and pos < len(lines):
                chunk += " " + _strip_toml_comment(lines[pos]).strip()
                pos += 1
            table[key] = _toml_strings(chunk)
        elif value[:1] in "\"'":
            strings = _toml_strings(value)
            table[key] = strings[0] if strings else ""
    return data
