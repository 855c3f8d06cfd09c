"""Read what a vLLM checkout pins: torch, Python, build requirements and CMake sources.

source_facts, the `vllm_source_facts` module's return value, from pyproject.toml (read by
vllm_fleet_toml), setup.py and the CMake files (read by vllm_fleet_cmake). Runs on Python 3.8+
hosts.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Optional

from ansible.module_utils.vllm_fleet_cmake import cuda_supported_archs, fetchcontent_pins
from ansible.module_utils.vllm_fleet_specifiers import version_satisfies
from ansible.module_utils.vllm_fleet_toml import parse_pyproject

# Where vLLM keeps the script that strips the torch pins (moved to tools/ in 0.33).
USE_EXISTING_TORCH_SCRIPTS = ("use_existing_torch.py", "tools/use_existing_torch.py")

_TORCH_PIN = re.compile(r"^\s*torch\s*===?\s*([0-9][0-9A-Za-z.+!_-]*)\s*(?:;.*)?$")
_PYTHON_REQUIRES = re.compile(r"""python_requires\s*=\s*["']([^"']+)["']""")
_SETUPTOOLS_RUST = re.compile(
    r"^\s*(?:from\s+setuptools_rust[\s.]|import\s+setuptools_rust\b)", re.M
)


class PinError(ValueError):
    """A checkout lacks something the build depends on; the message says what to do."""


# --- pyproject.toml and setup.py ---------------------------------------------------------


def torch_pin(requires: List[str]) -> Optional[str]:
    """The X of an exact `torch == X` in a requirements list, or None."""
    for requirement in requires:
        match = _TORCH_PIN.match(requirement)
        if match:
            return match.group(1)
    return None


def setup_py_python_requires(text: str) -> str:
    """The `python_requires="..."` of a setup.py (older vLLM tags), or ""."""
    match = _PYTHON_REQUIRES.search(text)
    return match.group(1).strip() if match else ""


def setup_py_uses_setuptools_rust(text: str) -> bool:
    """Whether setup.py imports setuptools_rust (vLLM 0.22+: the optional Rust frontend)."""
    return bool(_SETUPTOOLS_RUST.search(text))


# --- the whole checkout ---------------------------------------------------------------


def source_facts(
    read: Callable[[str], Optional[str]],
    exists: Callable[[str], bool],
    fallback_pyproject: Optional[Callable[[], Optional[str]]] = None,
) -> Dict[str, Any]:
    """Collect the `vllm_source` facts of a checkout.

    `read(relpath)` gives a file's text or None, `exists(relpath)` whether a file exists.
    `fallback_pyproject()` may return the committed pyproject.toml (git HEAD) for a working
    tree whose torch pin `use_existing_torch.py` already stripped. Raises PinError.
    """
    pyproject_text = read("pyproject.toml")
    if pyproject_text is None:
        raise PinError(
            "pyproject.toml is missing: this is not a vLLM checkout, or a tag too old for "
            "this role; check vllm_source_version."
        )
    pyproject = parse_pyproject(pyproject_text)
    requires = list(pyproject.get("build-system", {}).get("requires", []))
    pin = torch_pin(requires)
    pin_source = "pyproject.toml"
    if pin is None and fallback_pyproject is not None:
        committed = fallback_pyproject()
        if committed:
            committed_requires = parse_pyproject(committed).get("build-system", {})
            requires = list(committed_requires.get("requires", []))
            pin = torch_pin(requires)
            pin_source = "git HEAD:pyproject.toml"
    if pin is None:
        raise PinError(
            "pyproject.toml has no exact 'torch == X' in [build-system].requires, and neither "
            "has the committed copy: use_existing_torch.py strips it, so restore the file "
            "(git checkout -- pyproject.toml), or check that vllm_source_version names a vLLM "
            "release tag."
        )
    setup_text = read("setup.py") or ""
    requires_python = str(pyproject.get("project", {}).get("requires-python", "")).strip()
    if not requires_python:
        requires_python = setup_py_python_requires(setup_text)
    script = next((s for s in USE_EXISTING_TORCH_SCRIPTS if exists(s)), "")
    cmakelists = read("CMakeLists.txt") or ""
    return {
        "torch_pin": pin,
        "torch_pin_source": pin_source,
        "requires_python": requires_python,
        "build_requires": requires,
        "use_existing_torch_script": script,
        "rust_frontend": setup_py_uses_setuptools_rust(setup_text),
        "fetchcontent": fetchcontent_pins(read),
        "cuda_supported_archs": cuda_supported_archs(cmakelists),
    }


def python_outside_message(python_version: str, requires_python: str) -> str:
    """The fail message for a venv interpreter the tag does not support."""
    return (
        f"Python {python_version} (vllm_source_python) is outside what vLLM needs "
        f"(requires-python {requires_python}): set vllm_source_python to an interpreter "
        f"that satisfies it, e.g. {suggest_python(requires_python)}"
    )


def suggest_python(requires_python: str) -> str:
    """A python3.X that satisfies the specifier (prefers 3.11/3.12, common on distros)."""
    for minor in (11, 12, 10, 13, 14, 9, 8):
        if version_satisfies(f"3.{minor}", requires_python):
            return f"python3.{minor}"
    return "python3"
