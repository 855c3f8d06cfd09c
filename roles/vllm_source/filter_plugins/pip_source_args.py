"""pip_source_args: where pip takes packages from, as pip options, for the role's pip steps."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

DOCUMENTATION = r"""
name: pip_source_args
short_description: pip's package source options for the role (offline wheelhouse or an index)
description:
  - >-
    Offline (C(offline=true)) pip reads only the wheelhouse (C(--no-index)); otherwise the
    index (C(--index-url), when one is given), plus the wheelhouse as C(--find-links) when set.
  - >-
    With C(torch_index) set and not offline, that index (PyTorch's, per CUDA variant) replaces
    the package index: torch's wheels of a variant live only there.
options:
  _input:
    description: Whether pip works offline (vllm_source_pip_offline).
    type: bool
    required: true
  index_url:
    description: The package index (vllm_source_pip_index_url); empty for pip's default.
    type: str
    default: ""
  wheelhouse:
    description: The wheelhouse directory on the host; empty for none.
    type: str
    default: ""
  torch_index:
    description: PyTorch's index of the planned variant, for the torch install; empty otherwise.
    type: str
    default: ""
"""

EXAMPLES = r"""
# ['--index-url', 'https://download.pytorch.org/whl/cu128', '--find-links', '/srv/wheels']
torch_args: "{{ false | pip_source_args(wheelhouse='/srv/wheels',
  torch_index='https://download.pytorch.org/whl/cu128') }}"
"""

RETURN = r"""
_value:
  description: pip options, in order.
  type: list
  elements: str
"""


def pip_source_args(
    offline: bool, index_url: str = "", wheelhouse: str = "", torch_index: str = ""
) -> List[str]:
    """pip's source options: --no-index offline, else the index; the wheelhouse as --find-links."""
    if offline:
        args = ["--no-index"]
    elif torch_index:
        args = ["--index-url", torch_index]
    else:
        args = ["--index-url", index_url] if index_url else []
    return args + (["--find-links", wheelhouse] if wheelhouse else [])


class FilterModule:
    """The role's pip options."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"pip_source_args": pip_source_args}
