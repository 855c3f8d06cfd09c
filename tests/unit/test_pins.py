"""vllm_source_facts and its parsers, against files of the real vLLM 0.10.1/0.22.0/0.30.0 sdists."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import ansible.module_utils.vllm_fleet_specifiers as specifiers
import pytest
import vllm_source_facts
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.vllm_fleet_cmake import (
    cmake_commands,
    cuda_supported_archs,
    fetchcontent_pins,
)
from ansible.module_utils.vllm_fleet_pins import (
    PinError,
    python_outside_message,
    setup_py_python_requires,
    setup_py_uses_setuptools_rust,
    source_facts,
    suggest_python,
    torch_pin,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "vllm-src"
VERSIONS = ("0.10.1", "0.22.0", "0.30.0")


def reader(root: Path):
    def read(relpath: str) -> Optional[str]:
        path = root / relpath
        return path.read_text(encoding="utf-8") if path.is_file() else None

    return read


def facts_of(root: Path) -> Dict[str, Any]:
    return source_facts(reader(root), lambda rel: (root / rel).is_file())


def run_main(args: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> Tuple[int, Dict]:
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        vllm_source_facts.main()
    return int(exc.value.code or 0), json.loads(capsys.readouterr().out)


def copy_version(version: str, tmp_path: Path) -> Path:
    root = tmp_path / "vllm"
    shutil.copytree(DATA / version, root)
    return root


def strip_torch_pin(root: Path) -> None:
    """What `python use_existing_torch.py` does to pyproject.toml."""
    path = root / "pyproject.toml"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(line for line in lines if not line.strip().startswith('"torch ==')))


# --- pyproject.toml ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "pin", "requires_python"),
    [
        ("0.10.1", "2.7.1", ">=3.9,<3.13"),
        ("0.22.0", "2.11.0", ">=3.10,<3.15"),
        ("0.30.0", "2.13.0", ">=3.10,<3.15"),
    ],
)
def test_torch_pin_and_requires_python(version: str, pin: str, requires_python: str) -> None:
    facts = facts_of(DATA / version)
    assert facts["torch_pin"] == pin
    assert facts["torch_pin_source"] == "pyproject.toml"
    assert facts["requires_python"] == requires_python
    assert f"torch == {pin}" in facts["build_requires"]
    assert facts["use_existing_torch_script"] == "use_existing_torch.py"


@pytest.mark.parametrize(
    ("version", "rust"), [("0.10.1", False), ("0.22.0", True), ("0.30.0", True)]
)
def test_rust_frontend_and_build_requires(version: str, rust: bool) -> None:
    facts = facts_of(DATA / version)
    assert facts["rust_frontend"] is rust
    assert ("setuptools-rust>=1.9.0" in facts["build_requires"]) is rust
    assert facts["build_requires"][:2] == ["cmake>=3.26.1", "ninja"]


def test_setuptools_bound_differs_between_tags() -> None:
    assert "setuptools>=77.0.3,<80.0.0" in facts_of(DATA / "0.10.1")["build_requires"]
    assert "setuptools>=77.0.3,<81.0.0" in facts_of(DATA / "0.30.0")["build_requires"]


def test_torch_pin_needs_an_exact_pin() -> None:
    assert torch_pin(["ninja", "torch == 2.13.0"]) == "2.13.0"
    assert torch_pin(["torch==2.7.1; platform_system == 'Linux'"]) == "2.7.1"
    assert torch_pin(["torch >= 2.7"]) is None
    assert torch_pin(["torchvision == 0.26.0"]) is None


def test_setup_py_helpers_on_real_files() -> None:
    assert setup_py_uses_setuptools_rust((DATA / "0.22.0" / "setup.py").read_text())
    assert not setup_py_uses_setuptools_rust((DATA / "0.10.1" / "setup.py").read_text())
    assert not setup_py_uses_setuptools_rust("# from setuptools_rust import x\n")
    assert setup_py_python_requires('setup(\n    python_requires=">=3.8",\n)') == ">=3.8"
    assert setup_py_python_requires("setup()") == ""


def test_python_outside_message_and_suggestion() -> None:
    assert python_outside_message("3.9.2", ">=3.10,<3.15") == (
        "Python 3.9.2 (vllm_source_python) is outside what vLLM needs (requires-python "
        ">=3.10,<3.15): set vllm_source_python to an interpreter that satisfies it, "
        "e.g. python3.11"
    )
    assert suggest_python(">=3.12") == "python3.12"
    assert suggest_python(">=4") == "python3"


# --- CMake ------------------------------------------------------------------------------

# /work/shared/VLLM.md's table, read from the same sdists.
EXPECTED_FETCHCONTENT = {
    "0.10.1": {
        "cutlass": ("https://github.com/nvidia/cutlass.git", "v4.0.0", "VLLM_CUTLASS_SRC_DIR"),
        "flashmla": (
            "https://github.com/vllm-project/FlashMLA.git",
            "0e43e774",
            "FLASH_MLA_SRC_DIR",
        ),
        "vllm-flash-attn": (
            "https://github.com/vllm-project/flash-attention.git",
            "57b4e68b",
            "VLLM_FLASH_ATTN_SRC_DIR",
        ),
    },
    "0.22.0": {
        "cutlass": ("https://github.com/nvidia/cutlass.git", "v4.4.2", "VLLM_CUTLASS_SRC_DIR"),
        "triton_kernels": (
            "https://github.com/triton-lang/triton.git",
            "v3.5.1",
            "TRITON_KERNELS_SRC_DIR",
        ),
        "deepgemm": ("https://github.com/deepseek-ai/DeepGEMM.git", "891d57b4", "DEEPGEMM_SRC_DIR"),
        "flashmla": ("https://github.com/vllm-project/FlashMLA", "a6ec2ba7", "FLASH_MLA_SRC_DIR"),
        "qutlass": ("https://github.com/IST-DASLab/qutlass.git", "830d2c45", "QUTLASS_SRC_DIR"),
        "vllm-flash-attn": (
            "https://github.com/vllm-project/flash-attention.git",
            "bce29425",
            "VLLM_FLASH_ATTN_SRC_DIR",
        ),
    },
    "0.30.0": {
        "cutlass": ("https://github.com/nvidia/cutlass.git", "v4.7.1", "VLLM_CUTLASS_SRC_DIR"),
        "triton_kernels": (
            "https://github.com/triton-lang/triton.git",
            "v3.5.1",
            "TRITON_KERNELS_SRC_DIR",
        ),
        "deepgemm": (
            "https://github.com/vllm-project/DeepGEMM.git",
            "e1f418c2",
            "DEEPGEMM_SRC_DIR",
        ),
        "deepselect": (
            "https://github.com/vllm-project/DeepSelect.git",
            "d96d33af",
            "DEEPSELECT_SRC_DIR",
        ),
        "fmha_sm100": ("https://github.com/vllm-project/MSA.git", "f355c37e", "FMHA_SM100_SRC_DIR"),
        "flashmla": ("https://github.com/vllm-project/FlashMLA", "0eee43b1", "FLASH_MLA_SRC_DIR"),
        "flashkda": (
            "https://github.com/vllm-project/FlashKDA.git",
            "b59532f1",
            "FLASH_KDA_SRC_DIR",
        ),
        "qutlass": ("https://github.com/IST-DASLab/qutlass.git", "e74319e3", "QUTLASS_SRC_DIR"),
        "tml_fa4": ("https://github.com/vllm-project/tml-fa4.git", "75765e76", "TML_FA4_SRC_DIR"),
        "vllm-flash-attn": (
            "https://github.com/vllm-project/flash-attention.git",
            "506341a1",
            "VLLM_FLASH_ATTN_SRC_DIR",
        ),
    },
}


@pytest.mark.parametrize("version", VERSIONS)
def test_fetchcontent_pins_match_the_table(version: str) -> None:
    pins = facts_of(DATA / version)["fetchcontent"]
    expected = EXPECTED_FETCHCONTENT[version]
    assert [pin["name"] for pin in pins] == list(expected)  # include order, no duplicates
    for pin in pins:
        repository, tag, env = expected[pin["name"]]
        assert pin["repository"] == repository
        assert pin["tag"].startswith(tag)
        assert pin["tag"] == tag or len(pin["tag"]) == 40  # short names in the table, full SHAs
        assert pin["src_dir_env"] == env
        assert (DATA / version / pin["file"]).is_file()


def test_cutlass_revision_resolves_through_a_cache_variable() -> None:
    # 0.10.1: set(CUTLASS_REVISION "v4.0.0" CACHE STRING ...) then GIT_TAG ${CUTLASS_REVISION}
    pins = facts_of(DATA / "0.10.1")["fetchcontent"]
    assert pins[0] == {
        "name": "cutlass",
        "repository": "https://github.com/nvidia/cutlass.git",
        "tag": "v4.0.0",
        "src_dir_env": "VLLM_CUTLASS_SRC_DIR",
        "file": "CMakeLists.txt",
    }


def test_rocm_branch_of_triton_kernels_is_skipped() -> None:
    # 0.30.0 sets TRITON_GIT to ROCm/triton inside if(VLLM_TARGET_DEVICE STREQUAL "rocm").
    text = (DATA / "0.30.0" / "cmake/external_projects/triton_kernels.cmake").read_text()
    assert "https://github.com/ROCm/triton.git" in text
    pins = facts_of(DATA / "0.30.0")["fetchcontent"]
    triton = next(pin for pin in pins if pin["name"] == "triton_kernels")
    assert triton["repository"] == "https://github.com/triton-lang/triton.git"


def test_only_included_external_projects_count(tmp_path: Path) -> None:
    root = copy_version("0.22.0", tmp_path)
    (root / "cmake/external_projects/leftover.cmake").write_text(
        "FetchContent_Declare(leftover GIT_REPOSITORY https://example.invalid/x.git GIT_TAG v1)\n"
    )
    names = [pin["name"] for pin in facts_of(root)["fetchcontent"]]
    assert "leftover" not in names
    assert "qutlass" in names


def test_scanner_on_synthetic_cmake() -> None:
    files = {
        "CMakeLists.txt": (
            "#[[ FetchContent_Declare(commented GIT_REPOSITORY nope GIT_TAG x) ]]\n"
            'set(REPO "https://example.invalid/a.git")  # a comment with ) paren\n'
            "function(helper)\n"
            '  set(REPO "https://example.invalid/function-scope.git")\n'
            "endfunction()\n"
            "if(DEFINED ENV{A_SRC_DIR})\n"
            "  set(A_SRC_DIR $ENV{A_SRC_DIR})\n"
            "endif()\n"
            "if(A_SRC_DIR)\n"
            "  FetchContent_Declare(a SOURCE_DIR ${A_SRC_DIR})\n"
            'elseif(VLLM_GPU_LANG STREQUAL "HIP")\n'
            "  FetchContent_Declare(a GIT_REPOSITORY https://example.invalid/hip.git GIT_TAG h)\n"
            "else()\n"
            '  FetchContent_Declare(a GIT_REPOSITORY "${REPO}" GIT_TAG "v1.2")\n'
            "endif()\n"
            "include(${CMAKE_CURRENT_LIST_DIR}/cmake/external_projects/b.cmake)\n"
        ),
        "cmake/external_projects/b.cmake": (
            "FetchContent_Declare(b GIT_REPOSITORY https://example.invalid/b.git\n"
            "  GIT_TAG ${UNKNOWN})\n"
        ),
    }
    pins = fetchcontent_pins(files.get)
    assert pins == [
        {
            "name": "a",
            "repository": "https://example.invalid/a.git",
            "tag": "v1.2",
            "src_dir_env": "A_SRC_DIR",
            "file": "CMakeLists.txt",
        },
        {
            "name": "b",
            "repository": "https://example.invalid/b.git",
            "tag": "${UNKNOWN}",  # left visible rather than guessed
            "src_dir_env": "",
            "file": "cmake/external_projects/b.cmake",
        },
    ]


def test_cmake_commands_tokenizes_quotes_parens_and_comments() -> None:
    commands = cmake_commands(
        'if((A OR B) AND NOT "x)y" STREQUAL "z") # trailing )\n'
        '  message(STATUS "hi # not a comment")\n'
        "endif()\n"
    )
    assert commands == [
        ("if", ["(", "A", "OR", "B", ")", "AND", "NOT", "x)y", "STREQUAL", "z"]),
        ("message", ["STATUS", "hi # not a comment"]),
        ("endif", []),
    ]


@pytest.mark.parametrize(
    ("version", "archs"),
    [
        ("0.10.1", "7.0;7.2;7.5;8.0;8.6;8.7;8.9;9.0;10.0;10.1;12.0"),
        ("0.22.0", "7.0;7.5;8.0;8.6;8.7;8.9;9.0;10.0;10.1;10.3;11.0;12.0;12.1"),
        ("0.30.0", "7.0;7.5;8.0;8.6;8.7;8.9;9.0;10.0;10.1;10.3;10.7;11.0;12.0;12.1"),
    ],
)
def test_cuda_supported_archs(version: str, archs: str) -> None:
    text = (DATA / version / "CMakeLists.txt").read_text()
    assert ";".join(cuda_supported_archs(text)) == archs
    assert facts_of(DATA / version)["cuda_supported_archs"] == archs.split(";")


def test_plan_default_archs_are_the_0_30_0_union() -> None:
    from ansible.module_utils.vllm_fleet_plan import VLLM_CUDA_ARCHS

    text = (DATA / "0.30.0" / "CMakeLists.txt").read_text()
    assert list(VLLM_CUDA_ARCHS) == cuda_supported_archs(text)


# --- whole checkouts ---------------------------------------------------------------------


def test_tools_use_existing_torch_layout(tmp_path: Path) -> None:
    # 0.33 moved the script to tools/.
    root = copy_version("0.30.0", tmp_path)
    (root / "tools").mkdir()
    (root / "use_existing_torch.py").rename(root / "tools" / "use_existing_torch.py")
    assert facts_of(root)["use_existing_torch_script"] == "tools/use_existing_torch.py"
    (root / "tools" / "use_existing_torch.py").unlink()
    assert facts_of(root)["use_existing_torch_script"] == ""


def test_requires_python_falls_back_to_setup_py(tmp_path: Path) -> None:
    root = tmp_path / "old"
    root.mkdir()
    (root / "pyproject.toml").write_text('[build-system]\nrequires = ["torch == 2.1.2"]\n')
    (root / "setup.py").write_text('setup(name="vllm", python_requires=">=3.8")\n')
    facts = facts_of(root)
    assert facts["requires_python"] == ">=3.8"
    assert facts["torch_pin"] == "2.1.2"
    assert facts["fetchcontent"] == []
    assert facts["rust_frontend"] is False


def test_stripped_pin_reads_the_committed_file(tmp_path: Path) -> None:
    root = copy_version("0.30.0", tmp_path)
    committed = (root / "pyproject.toml").read_text()
    strip_torch_pin(root)
    with pytest.raises(PinError) as exc:
        facts_of(root)
    assert "pyproject.toml has no exact 'torch == X'" in str(exc.value)
    assert "git checkout -- pyproject.toml" in str(exc.value)
    facts = source_facts(reader(root), lambda rel: (root / rel).is_file(), lambda: committed)
    assert facts["torch_pin"] == "2.13.0"
    assert facts["torch_pin_source"] == "git HEAD:pyproject.toml"


def test_missing_pyproject_raises(tmp_path: Path) -> None:
    with pytest.raises(PinError, match=r"pyproject\.toml is missing"):
        facts_of(tmp_path)


# --- the module ----------------------------------------------------------------------------


def test_main_reads_0_30_0(capsys: pytest.CaptureFixture[str]) -> None:
    rc, result = run_main(
        {"path": str(DATA / "0.30.0"), "python_version": "3.11.2", "_ansible_check_mode": True},
        capsys,
    )
    assert rc == 0
    assert result["changed"] is False
    facts = result["vllm_source"]
    assert facts["torch_pin"] == "2.13.0"
    assert facts["requires_python"] == ">=3.10,<3.15"
    assert facts["use_existing_torch_script"] == "use_existing_torch.py"
    assert facts["rust_frontend"] is True
    assert {p["name"]: p["tag"] for p in facts["fetchcontent"]}["cutlass"] == "v4.7.1"


@pytest.fixture(params=["packaging", "fallback"])
def specifier_decider(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Check requires-python with packaging, then with the subset hosts without it use."""
    if request.param == "fallback":
        monkeypatch.setattr(specifiers, "SpecifierSet", None)


@pytest.mark.usefixtures("specifier_decider")
def test_main_refuses_a_python_the_tag_does_not_support(capsys: pytest.CaptureFixture[str]) -> None:
    rc, result = run_main({"path": str(DATA / "0.22.0"), "python_version": "3.9.2"}, capsys)
    assert rc == 1
    assert result["failed"] is True
    assert result["msg"] == (
        "Python 3.9.2 (vllm_source_python) is outside what vLLM needs (requires-python "
        ">=3.10,<3.15): set vllm_source_python to an interpreter that satisfies it, "
        "e.g. python3.11"
    )


@pytest.mark.usefixtures("specifier_decider")
def test_main_names_a_requires_python_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "odd"
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["torch == 2.1.2"]\n[project]\nrequires-python = ">=three"\n'
    )
    rc, result = run_main({"path": str(root), "python_version": "3.11.2"}, capsys)
    assert rc == 1
    assert result["msg"] == f"{root}: Cannot read the version specifier '>=three'"


@pytest.mark.usefixtures("specifier_decider")
def test_main_accepts_python_3_9_for_0_10_1(capsys: pytest.CaptureFixture[str]) -> None:
    rc, result = run_main({"path": str(DATA / "0.10.1"), "python_version": "3.9.2"}, capsys)
    assert rc == 0
    assert result["vllm_source"]["torch_pin"] == "2.7.1"


def test_main_rejects_a_garbled_python_version(capsys: pytest.CaptureFixture[str]) -> None:
    rc, result = run_main({"path": str(DATA / "0.30.0"), "python_version": "Python"}, capsys)
    assert rc == 1
    assert "vllm_source_python" in result["msg"]


def test_main_missing_checkout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, result = run_main({"path": str(tmp_path / "nope")}, capsys)
    assert rc == 1
    assert "does not exist" in result["msg"]
    assert "vllm_source_version" in result["msg"]


def test_main_names_the_file_without_a_pin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_version("0.22.0", tmp_path)
    strip_torch_pin(root)
    rc, result = run_main({"path": str(root)}, capsys)
    assert rc == 1
    assert result["msg"].startswith(f"{root}: pyproject.toml has no exact 'torch == X'")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_main_reads_the_pin_from_git_head_after_use_existing_torch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_version("0.22.0", tmp_path)
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "v0.22.0"], check=True)
    strip_torch_pin(root)
    rc, result = run_main({"path": str(root), "python_version": "3.12.3"}, capsys)
    assert rc == 0
    assert result["vllm_source"]["torch_pin"] == "2.11.0"
    assert result["vllm_source"]["torch_pin_source"] == "git HEAD:pyproject.toml"


def test_parse_pyproject_without_tomllib(monkeypatch: pytest.MonkeyPatch) -> None:
    # Python 3.8-3.10 hosts have no tomllib: the subset parser must give the same facts.
    import ansible.module_utils.vllm_fleet_toml as toml
    import tomllib

    monkeypatch.setattr(toml, "tomllib", None)
    for version, pin in (("0.10.1", "2.7.1"), ("0.22.0", "2.11.0"), ("0.30.0", "2.13.0")):
        text = (DATA / version / "pyproject.toml").read_text()
        facts = facts_of(DATA / version)
        assert facts["torch_pin"] == pin
        assert facts["build_requires"] == tomllib.loads(text)["build-system"]["requires"]
        assert facts["requires_python"] == tomllib.loads(text)["project"]["requires-python"]
