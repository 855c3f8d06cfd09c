#!/usr/bin/python
"""Ansible module vllm_runtime_requirements: vLLM's runtime requirements less the excluded."""

from __future__ import annotations

from typing import List

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_requirements import (
    EXCLUDE_VARIABLE,
    select_requirements,
    unknown_exclusions,
)

DOCUMENTATION = r"""
module: vllm_runtime_requirements
short_description: List the installed vLLM's runtime requirements, less the ones excluded
description:
  - Runs with the venv's Python (set ansible_python_interpreter to it) after the vLLM wheel
    was installed without dependencies. Reads the wheel's Requires-Dist, drops requirements
    whose environment marker does not apply (extras included) and those named in I(exclude),
    and returns the rest for pip.
  - An excluded name that vLLM does not require is reported as a warning (a typo, or a
    requirement of another tag).
options:
  exclude:
    description: Distribution names not to install (vllm_source_runtime_deps_exclude).
    type: list
    elements: str
    default: []
  distribution:
    description: The installed distribution to read.
    type: str
    default: vllm
"""

EXAMPLES = r"""
- name: List vLLM's runtime requirements less the excluded ones.
  vllm_runtime_requirements:
    exclude: [flashinfer-cubin, tilelang]
  vars:
    ansible_python_interpreter: /opt/vllm/venv/bin/python
"""

RETURN = r"""
requirements:
  description: Requirement strings to install, markers removed.
  returned: success
  type: list
  elements: str
  sample: ["regex", "transformers>=4.56.0"]
excluded:
  description: Requirements left out because their name was excluded.
  returned: success
  type: list
  elements: str
"""


def marker_evaluator():
    """Return a function that evaluates a PEP 508 marker for this interpreter, no extras."""
    try:
        from packaging.markers import Marker
    except ImportError:  # pip vendors packaging; every venv has pip
        from pip._vendor.packaging.markers import Marker  # type: ignore[no-redef]

    def applies(marker: str) -> bool:
        return bool(Marker(marker).evaluate({"extra": ""}))

    return applies


def installed_requires(distribution: str) -> List[str]:
    """Return the Requires-Dist of an installed distribution."""
    from importlib.metadata import requires

    return list(requires(distribution) or [])


def run_module() -> None:
    module = AnsibleModule(
        argument_spec={
            "exclude": {"type": "list", "elements": "str", "default": []},
            "distribution": {"type": "str", "default": "vllm"},
        },
        supports_check_mode=True,
    )
    name = module.params["distribution"]
    exclude = module.params["exclude"]
    try:
        requires = installed_requires(name)
    except Exception as exc:  # PackageNotFoundError and broken metadata alike
        module.fail_json(
            msg=f"{name} is not installed for this Python ({exc}): install the wheel first"
        )
    install, excluded = select_requirements(requires, exclude, marker_evaluator())
    for unknown in unknown_exclusions(requires, exclude):
        module.warn(f"{EXCLUDE_VARIABLE} names '{unknown}', which {name} does not require")
    module.exit_json(changed=False, requirements=install, excluded=excluded)


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
