"""dpkg_missing: which required Debian packages dpkg-query does not list as installed."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence

DOCUMENTATION = r"""
name: dpkg_missing
short_description: The required packages C(dpkg-query) does not report installed
description:
  - Reads C(dpkg-query --show --showformat='${Package} ${db:Status-Status}\n' P...) lines and
    returns the required packages, in their order, that no line reports as C(installed).
options:
  _input:
    description: The packages the host needs.
    type: list
    elements: str
    required: true
  lines:
    description: dpkg-query's stdout lines.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
missing: "{{ ['git', 'acl'] | dpkg_missing(dpkg.stdout_lines | default([])) }}"
"""

RETURN = r"""
_value:
  description: The packages to install.
  type: list
  elements: str
"""


def dpkg_missing(required: Sequence[str], lines: Sequence[str]) -> List[str]:
    """The required packages without a "<name> installed" line."""
    installed = {
        parts[0] for parts in (line.split() for line in lines) if parts[1:] == ["installed"]
    }
    return [name for name in required if name not in installed]


class FilterModule:
    """Reading dpkg's output."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"dpkg_missing": dpkg_missing}
