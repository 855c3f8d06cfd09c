"""Whether a PyTorch is the tag's pin in the planned variant: in a venv, or as a wheel file.

Pure functions, shared by library/vllm_torch_facts.py, library/vllm_wheelhouse_check.py and
their unit tests. A variant is `cpu` or `cu` and the CUDA version without its dot (cu128).
"""

from __future__ import annotations

import fnmatch
from typing import Dict, Iterable, List, Optional, Sequence, Union

from ansible.module_utils.vllm_fleet_versions import cuda_variant, split_version

# What the probe prints: torch.__version__, then torch.version.cuda (or cpu).
PROBE = "import torch; print(torch.__version__); print(torch.version.cuda or 'cpu')"
NOT_IMPORTABLE = "not importable"


def probe_argv(python: str) -> List[str]:
    """The probe, run by `python` (-B: no .pyc files written into the venv)."""
    return [python, "-B", "-c", PROBE]


def probe_lines(rc: int, stdout: str) -> List[str]:
    """The probe's output lines, as the command module gave them (trailing newlines dropped);
    none when the probe failed."""
    return stdout.rstrip("\r\n").splitlines() if rc == 0 else []


def variant_of_cuda(cuda: str) -> Optional[str]:
    """The wheel variant of what torch.version.cuda reported: 12.8 -> cu128, cpu -> cpu."""
    return "cpu" if cuda == "cpu" else cuda_variant(cuda)


def torch_matches(lines: Sequence[str], torch_pin: str, torch_variant: str) -> bool:
    """Whether the probe's lines show torch `torch_pin` (any local +suffix) in `torch_variant`."""
    if len(lines) < 2:
        return False
    return split_version(lines[0])[0] == torch_pin and variant_of_cuda(lines[1]) == torch_variant


def torch_facts(
    rc: int, stdout: str, torch_pin: str, torch_variant: str
) -> Dict[str, Union[str, bool]]:
    """version, cuda, found (the lines joined by ", CUDA ", or "not importable") and matches."""
    lines = probe_lines(rc, stdout)
    return {
        "version": lines[0] if lines else "",
        "cuda": lines[1] if len(lines) > 1 else "",
        "found": ", CUDA ".join(lines) or NOT_IMPORTABLE,
        "matches": torch_matches(lines, torch_pin, torch_variant),
    }


def torch_wheel_patterns(torch_pin: str, torch_variant: str) -> List[str]:
    """File name patterns of the pin's wheel: in the variant, or with no local version at all
    (whose CUDA variant is only known once installed)."""
    return [f"torch-{torch_pin}+{torch_variant}-*.whl", f"torch-{torch_pin}-*.whl"]


def torch_wheels(names: Iterable[str], torch_pin: str, torch_variant: str) -> List[str]:
    """The names among `names` that are the pin's wheel (see torch_wheel_patterns), sorted."""
    patterns = torch_wheel_patterns(torch_pin, torch_variant)
    return sorted(n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns))


def missing_torch_wheel_message(
    wheelhouse: str,
    torch_pin: str,
    torch_variant: str,
    vllm_version: str,
    wheelhouse_variable: str,
    controller_wheelhouse_variable: str,
) -> str:
    """What an offline install without the pin's torch wheel is told to do."""
    return (
        f"vllm_source_pip_offline is true but the wheelhouse ({wheelhouse or 'none set'}) has no "
        f"torch {torch_pin} wheel for the {torch_variant} variant, which vLLM {vllm_version} "
        f"pins: add torch-{torch_pin}+{torch_variant}-*.whl to {wheelhouse_variable} "
        f"(or {controller_wheelhouse_variable}), or set vllm_source_use_existing_torch with a "
        "matching torch."
    )
