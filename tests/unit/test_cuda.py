"""cuda_toolkit_facts: version parsers, toolkit selection with fake toolkits, main() paths."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import cuda_toolkit_facts
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.vllm_fleet_cuda import (
    CUDA_MIN_LINUX_DRIVER,
    CudaProbeError,
    Toolkit,
    candidate_homes,
    discover_toolkits,
    is_newer_than_driver,
    min_driver_version,
    parse_nvcc_version,
    parse_version_json,
    parse_version_txt,
    probe_toolkit,
    select_toolkit,
    toolkit_env,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "cuda"
NVCC = {
    "13.0": "nvcc-13.0-recorded.txt",
    "12.8": "nvcc-12.8.txt",
    "12.4": "nvcc-12.4.txt",
    "11.8": "nvcc-11.8.txt",
}


@pytest.fixture(autouse=True)
def fresh_module_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """module.warn() collects into a process-wide dict; give each test its own."""
    from ansible.module_utils.common import warnings

    monkeypatch.setattr(warnings, "_global_warnings", {})


def read(name: str) -> str:
    return (DATA / name).read_text()


def run(argv: List[str]) -> Tuple[int, str, str]:
    """What module.run_command does, for the pure functions."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def make_toolkit(
    root: Path,
    name: str,
    release: Optional[str] = None,
    nvcc_rc: int = 0,
    version_json: Optional[str] = None,
    version_txt: Optional[str] = None,
) -> Path:
    """A toolkit folder whose bin/nvcc prints the recorded --version text of `release`."""
    home = root / name
    (home / "bin").mkdir(parents=True)
    output = home / "nvcc.out"
    output.write_text(read(NVCC[release]) if release else "nvcc: cannot run\n")
    nvcc = home / "bin" / "nvcc"
    nvcc.write_text(f'#!/bin/sh\ncat "{output}"\nexit {nvcc_rc}\n')
    nvcc.chmod(nvcc.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    if version_json is not None:
        (home / "version.json").write_text(read(version_json))
    if version_txt is not None:
        (home / "version.txt").write_text(read(version_txt))
    return home


def tk(version: str, full: str, default: bool = False) -> Toolkit:
    home = f"/usr/local/cuda-{version}"
    return Toolkit(home, version, full, f"{home}/bin/nvcc", default)


def run_main(args: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> Tuple[int, Dict]:
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        cuda_toolkit_facts.main()
    return int(exc.value.code or 0), json.loads(capsys.readouterr().out)


# --- parsers ---------------------------------------------------------------------------------


def test_parse_recorded_nvcc_13() -> None:
    assert parse_nvcc_version(read("nvcc-13.0-recorded.txt")) == ("13.0", "13.0.88")


@pytest.mark.parametrize(
    ("release", "expected"),
    [("12.8", ("12.8", "12.8.93")), ("12.4", ("12.4", "12.4.131")), ("11.8", ("11.8", "11.8.89"))],
)
def test_parse_nvcc_12_and_11(release: str, expected: Tuple[str, str]) -> None:
    assert parse_nvcc_version(read(NVCC[release])) == expected


def test_parse_nvcc_rejects_other_text() -> None:
    with pytest.raises(CudaProbeError, match=r"release X\.Y"):
        parse_nvcc_version("gcc (Ubuntu 13.3.0-6ubuntu2~24.04.1) 13.3.0\n")


def test_parse_version_json_prefers_the_nvcc_entry() -> None:
    assert parse_version_json(read("version-13.0.json")) == ("13.0", "13.0.88")
    assert parse_version_json(read("version-11.8.json")) == ("11.8", "11.8.89")


def test_parse_version_json_without_nvcc_entry_uses_the_release() -> None:
    assert parse_version_json('{"cuda": {"version": "12.6.3"}}') == ("12.6", "12.6.3")


def test_parse_version_json_rejects_garbage() -> None:
    with pytest.raises(CudaProbeError, match=r"cuda\.version"):
        parse_version_json('{"nvidia_driver": {"version": "580.95.05"}}')


def test_parse_version_txt() -> None:
    assert parse_version_txt(read("version-10.2.txt")) == ("10.2", "10.2.89")


def test_recorded_machine_layout_has_the_toolkit_folders() -> None:
    """/usr/local/cuda and cuda-13 are links to cuda-13.0 there, as candidate_homes expects."""
    listing = read("usr-local-cuda-ls.txt")
    assert "cuda -> /etc/alternatives/cuda" in listing
    assert "cuda-13.0" in listing
    assert {"bin", "lib64"} <= set(read("usr-local-cuda-contents.txt").split())


# --- driver table and comparison ------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "driver"),
    [
        ("11.8", "520.61.05"),
        ("12.0", "525.60.13"),
        ("12.1", "530.30.02"),
        ("12.2", "535.54.03"),
        ("12.3", "545.23.06"),
        ("12.4", "550.54.14"),
        ("12.5", "555.42.02"),
        ("12.6", "560.28.03"),
        ("12.8", "570.26"),
        ("12.9", "575.51.03"),
        ("13.0", "580.65.06"),
    ],
)
def test_minimum_driver_table(version: str, driver: str) -> None:
    assert CUDA_MIN_LINUX_DRIVER[version] == driver
    assert min_driver_version(f"{version}.1") == driver


def test_minimum_driver_unknown_release_is_empty() -> None:
    assert min_driver_version("12.7") == ""
    assert min_driver_version("99.0") == ""


@pytest.mark.parametrize(
    ("toolkit", "driver", "newer"),
    [
        ("13.0", "12.4", True),
        ("12.8", "12.4", True),
        ("12.4", "12.4", False),
        ("12.8", "13.0", False),
        ("12.10", "12.9", True),
        ("13.0", "", False),
    ],
)
def test_is_newer_than_driver(toolkit: str, driver: str, newer: bool) -> None:
    assert is_newer_than_driver(toolkit, driver) is newer


# --- finding and selecting toolkits ---------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> Path:
    """A fake /usr/local with 11.8, 12.4, 12.8 and 13.0 toolkits and the links of the GPU host."""
    root = tmp_path / "local"
    root.mkdir()
    make_toolkit(root, "cuda-11.8", "11.8")
    make_toolkit(root, "cuda-12.4", "12.4")
    make_toolkit(root, "cuda-12.8", "12.8")
    make_toolkit(root, "cuda-13.0", "13.0")
    (root / "cuda-13").symlink_to(root / "cuda-13.0")
    (root / "cuda-12.0-docs-only").mkdir()
    return root


def test_candidate_homes_skip_folders_without_nvcc_and_duplicate_links(local: Path) -> None:
    found = candidate_homes([str(local / "cuda"), str(local / "cuda-*")])
    assert found == [
        (str(local / "cuda-11.8"), False),
        (str(local / "cuda-12.4"), False),
        (str(local / "cuda-12.8"), False),
        (str(local / "cuda-13.0"), False),
    ]


def test_candidate_homes_put_the_literal_default_first(local: Path) -> None:
    (local / "cuda").symlink_to(local / "cuda-12.8")
    found = candidate_homes([str(local / "cuda"), str(local / "cuda-*")])
    assert found[0] == (str(local / "cuda"), True)
    assert (str(local / "cuda-12.8"), False) not in found
    assert len(found) == 4


def test_discover_reads_each_version_with_nvcc(local: Path) -> None:
    toolkits, problems = discover_toolkits([str(local / "cuda-*")], run)
    assert problems == []
    assert [(t.version, t.version_full) for t in toolkits] == [
        ("11.8", "11.8.89"),
        ("12.4", "12.4.131"),
        ("12.8", "12.8.93"),
        ("13.0", "13.0.88"),
    ]
    assert toolkits[0].nvcc == str(local / "cuda-11.8" / "bin" / "nvcc")


def test_default_location_wins_even_when_newer_than_driver(local: Path) -> None:
    (local / "cuda").symlink_to(local / "cuda-13.0")
    toolkits, _ = discover_toolkits([str(local / "cuda"), str(local / "cuda-*")], run)
    chosen = select_toolkit(toolkits, "12.4")
    assert chosen is not None
    assert chosen.home == str(local / "cuda")
    assert chosen.version == "13.0"


@pytest.mark.parametrize(
    ("driver", "expected"),
    [("12.4", "12.4"), ("12.9", "12.8"), ("13.0", "13.0"), ("11.0", "13.0"), ("", "13.0")],
)
def test_without_default_pick_the_newest_the_driver_runs(
    local: Path, driver: str, expected: str
) -> None:
    toolkits, _ = discover_toolkits([str(local / "cuda"), str(local / "cuda-*")], run)
    chosen = select_toolkit(toolkits, driver)
    assert chosen is not None
    assert chosen.version == expected
    assert chosen.home == str(local / f"cuda-{expected}")


def test_select_compares_full_versions_within_a_release() -> None:
    chosen = select_toolkit([tk("12.4", "12.4.99"), tk("12.4", "12.4.131")], "12.4")
    assert chosen is not None
    assert chosen.version_full == "12.4.131"


def test_select_nothing() -> None:
    assert select_toolkit([], "13.0") is None


def test_version_json_when_nvcc_cannot_run(tmp_path: Path) -> None:
    home = make_toolkit(tmp_path, "cuda-13.0", None, nvcc_rc=127, version_json="version-13.0.json")
    toolkit = probe_toolkit(str(home), run)
    assert (toolkit.version, toolkit.version_full) == ("13.0", "13.0.88")


def test_version_txt_for_old_toolkits(tmp_path: Path) -> None:
    home = make_toolkit(tmp_path, "cuda-10.2", None, nvcc_rc=1, version_txt="version-10.2.txt")
    assert probe_toolkit(str(home), run).version == "10.2"


def test_unreadable_toolkit_is_reported_not_selected(tmp_path: Path) -> None:
    make_toolkit(tmp_path, "cuda-12.4", "12.4")
    make_toolkit(tmp_path, "cuda-99.9", None, nvcc_rc=1)
    toolkits, problems = discover_toolkits([str(tmp_path / "cuda-*")], run)
    assert [t.version for t in toolkits] == ["12.4"]
    assert len(problems) == 1
    assert "cuda-99.9" in problems[0]
    assert "rc 1" in problems[0]


def test_toolkit_env() -> None:
    assert toolkit_env("/usr/local/cuda") == {
        "CUDA_HOME": "/usr/local/cuda",
        "PATH": "/usr/local/cuda/bin",
        "LD_LIBRARY_PATH": "/usr/local/cuda/lib64",
    }


# --- main() ----------------------------------------------------------------------------------


def test_main_explicit_home_in_check_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = make_toolkit(tmp_path, "cuda-13.0", "13.0")
    rc, result = run_main(
        {"cuda_home": str(home), "driver_cuda_version": "13.0", "_ansible_check_mode": True},
        capsys,
    )
    assert rc == 0
    assert result["changed"] is False
    assert result["cuda_toolkit"] == {
        "found": True,
        "home": str(home),
        "version": "13.0",
        "version_full": "13.0.88",
        "nvcc": str(home / "bin" / "nvcc"),
        "newer_than_driver": False,
        "min_driver_version": "580.65.06",
        "env": {
            "CUDA_HOME": str(home),
            "PATH": str(home / "bin"),
            "LD_LIBRARY_PATH": str(home / "lib64"),
        },
    }
    assert "warnings" not in result


def test_main_explicit_home_without_nvcc_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, result = run_main({"cuda_home": str(tmp_path), "required": False}, capsys)
    assert rc == 1
    assert "vllm_source_cuda_home" in result["msg"]
    assert os.path.join(str(tmp_path), "bin", "nvcc") in result["msg"]


def test_main_auto_search(local: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, result = run_main(
        {
            "search_paths": [str(local / "cuda"), str(local / "cuda-*")],
            "driver_cuda_version": "12.9",
        },
        capsys,
    )
    assert rc == 0
    assert result["cuda_toolkit"]["home"] == str(local / "cuda-12.8")
    assert result["cuda_toolkit"]["newer_than_driver"] is False


def test_main_warns_when_toolkit_is_newer_than_driver(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = make_toolkit(tmp_path, "cuda", "13.0")
    rc, result = run_main({"cuda_home": str(home), "driver_cuda_version": "12.4"}, capsys)
    assert rc == 0
    facts = result["cuda_toolkit"]
    assert facts["newer_than_driver"] is True
    assert facts["min_driver_version"] == "580.65.06"
    warnings = json.dumps(result["warnings"])
    assert "driver >= 580.65.06" in warnings
    assert "driver maximum CUDA 12.4" in warnings
    assert "vllm_source_cuda_home" in warnings


def test_main_strict_fails_when_toolkit_is_newer_than_driver(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = make_toolkit(tmp_path, "cuda", "12.8")
    rc, result = run_main(
        {"cuda_home": str(home), "driver_cuda_version": "12.4", "policy": "strict"}, capsys
    )
    assert rc == 1
    assert "CUDA 12.8 needs NVIDIA driver >= 570.26" in result["msg"]
    assert "vllm_source_cuda_home at an older toolkit" in result["msg"]
    assert "Set vllm_source_cuda_policy: warn to proceed" in result["msg"]
    assert result["cuda_toolkit"]["newer_than_driver"] is True


def test_main_strict_passes_when_driver_is_new_enough(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = make_toolkit(tmp_path, "cuda", "12.8")
    rc, result = run_main(
        {"cuda_home": str(home), "driver_cuda_version": "13.0", "policy": "strict"}, capsys
    )
    assert rc == 0
    assert result["cuda_toolkit"]["version"] == "12.8"


def test_main_not_found_and_required_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, result = run_main({"search_paths": [str(tmp_path / "cuda-*")]}, capsys)
    assert rc == 1
    assert "No CUDA toolkit found" in result["msg"]
    assert "vllm_source_cuda_home" in result["msg"]
    assert "vllm_source_target_device: empty" in result["msg"]


def test_main_not_found_and_not_required(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, result = run_main(
        {
            "search_paths": [str(tmp_path / "cuda")],
            "required": False,
            "driver_cuda_version": "13.0",
        },
        capsys,
    )
    assert rc == 0
    assert result["cuda_toolkit"]["found"] is False
    assert result["cuda_toolkit"]["env"] == {}


def test_main_rejects_a_bad_driver_cuda_version(capsys: pytest.CaptureFixture[str]) -> None:
    rc, result = run_main({"driver_cuda_version": "N/A"}, capsys)
    assert rc == 1
    assert "not a CUDA version" in result["msg"]
