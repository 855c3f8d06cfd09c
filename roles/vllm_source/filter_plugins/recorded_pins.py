"""recorded_pins: the pins a release's stamp recorded, when they are this commit's and ABI's."""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping

DOCUMENTATION = r"""
name: recorded_pins
short_description: The pins a release stamp recorded, if they belong to this commit and Python ABI
description:
  - A stamp records the pins vllm_source_facts read from its commit for its Python ABI. A host
    without the checkout reuses them instead of cloning the tag again, but only for the same
    commit and ABI; anything else (no stamp, another commit or ABI) gives C({}).
options:
  _input:
    description: The stamp (vllm_release state=info's C(stamp)), or C({}).
    type: dict
    required: true
  commit:
    description: The commit the tag resolves to.
    type: str
    required: true
  python_abi:
    description: The venv Python's ABI, C(cp312) say.
    type: str
    required: true
"""

EXAMPLES = r"""
pins: "{{ current.stamp | default({}) | recorded_pins(resolved_commit, 'cp312') }}"
"""

RETURN = r"""
_value:
  description: The recorded pins, or an empty dict.
  type: dict
"""


def recorded_pins(stamp: Mapping[str, Any], commit: str, python_abi: str) -> Dict[str, Any]:
    """stamp["pins"] when the stamp's inputs name this commit and ABI, else {}."""
    inputs = stamp.get("inputs") if isinstance(stamp, Mapping) else None
    pins = stamp.get("pins") if isinstance(stamp, Mapping) else None
    if not isinstance(inputs, Mapping) or not isinstance(pins, Mapping):
        return {}
    if inputs.get("commit") != commit or inputs.get("python_abi") != python_abi:
        return {}
    return dict(pins)


class FilterModule:
    """Reading release stamps."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"recorded_pins": recorded_pins}
