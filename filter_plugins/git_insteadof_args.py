"""git_insteadof_args: the git -c options of a url.<new>.insteadOf=<old> rewrite map."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Sequence

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: git_insteadof_args
short_description: git -c options that rewrite URL prefixes, from a map of old to new prefix
description:
  - >-
    Turns a map of old URL prefix to new prefix into C(-c url.<new>.insteadOf=<old>) pairs,
    in the map's order, to put after C(git) in an argv (see the example). Git then fetches
    every URL that starts with an old prefix from the new one, submodules included.
  - An empty map gives no options.
options:
  _input:
    description: Old URL prefix -> new URL prefix.
    type: dict
    required: true
"""

EXAMPLES = r"""
# ['git', '-c', 'url.https://mirror.example/.insteadOf=https://github.com/', 'clone', url]
argv: >-
  {{ ['git'] + ({'https://github.com/': 'https://mirror.example/'} | git_insteadof_args)
     + ['clone', url] }}
"""

RETURN = r"""
_value:
  description: Pairs of C(-c) and C(url.<new>.insteadOf=<old>), flat.
  type: list
  elements: str
"""


def git_insteadof_args(url_map: Mapping[str, Any]) -> List[str]:
    """['-c', 'url.<new>.insteadOf=<old>', ...] for each old -> new prefix, in the map's order."""
    if not isinstance(url_map, Mapping):
        kind = (
            "a string"
            if isinstance(url_map, str)
            else "a list"
            if isinstance(url_map, Sequence)
            else type(url_map).__name__
        )
        raise AnsibleFilterError(
            f"git_insteadof_args takes a mapping of old URL prefix -> new prefix, got {kind}: "
            "set the URL map as a dict, e.g. "
            "{'https://github.com/': 'https://mirror.example/'}"
        )
    args: List[str] = []
    for old, new in url_map.items():
        args += ["-c", f"url.{new}.insteadOf={old}"]
    return args


class FilterModule:
    """Filters for git command lines."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"git_insteadof_args": git_insteadof_args}
