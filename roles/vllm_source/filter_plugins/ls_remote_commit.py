"""ls_remote_commit: the commit a tag points at, from git ls-remote's lines."""

from __future__ import annotations

from typing import Any, Callable, Dict, Sequence

DOCUMENTATION = r"""
name: ls_remote_commit
short_description: The commit a tag points at, from the lines of C(git ls-remote)
description:
  - >-
    An annotated tag lists the tag object and, as C(refs/tags/T^{}), the commit it points at:
    that line wins. A lightweight tag lists only the commit. No line (no such tag) gives C("").
options:
  _input:
    description: The command's stdout lines, C(<sha>\trefs/tags/...).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
commit: "{{ ls_remote.stdout_lines | ls_remote_commit }}"
"""

RETURN = r"""
_value:
  description: The commit's SHA, or empty.
  type: str
"""


def ls_remote_commit(lines: Sequence[str]) -> str:
    """The peeled (^{}) line's SHA, else the first line's, else ""."""
    rows = [line.split() for line in lines if line.strip()]
    peeled = [row for row in rows if len(row) > 1 and row[1].endswith("^{}")]
    chosen = (peeled or rows or [[""]])[0]
    return chosen[0]


class FilterModule:
    """Reading git's output."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"ls_remote_commit": ls_remote_commit}
