"""vllm_deps_check and its checks, on deps dirs staged for the real vLLM 0.22.0/0.30.0 pins."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
import vllm_deps_check
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.vllm_fleet_deps import (
    MANIFEST_NAME,
    STAGE_HINT,
    check_deps,
    checkout_matches,
    commits_match,
    failure_message,
    git_head,
    is_commit,
    override_path,
    read_manifest,
)
from ansible.module_utils.vllm_fleet_pins import fetchcontent_pins

DATA = Path(__file__).resolve().parents[1] / "data" / "vllm-src"
TRITON_SUBDIR = "python/triton_kernels/triton_kernels"
# A commit no pin names, for tag pins and wrong commits.
OTHER_COMMIT = "0123456789abcdef0123456789abcdef01234567"

Pin = Dict[str, str]


def pins_of(version: str) -> List[Pin]:
    """The FetchContent pins of the real CMake files of a vLLM version."""
    root = DATA / version

    def read(relpath: str) -> Optional[str]:
        path = root / relpath
        return path.read_text(encoding="utf-8") if path.is_file() else None

    return fetchcontent_pins(read)


def pin_named(pins: List[Pin], name: str) -> Pin:
    return next(pin for pin in pins if pin["name"] == name)


def write_manifest(project: Path, pin: Pin, commit: str = "", tag: str = "") -> None:
    commit = commit or (pin["tag"] if is_commit(pin["tag"]) else OTHER_COMMIT)
    manifest = {
        "name": pin["name"],
        "repository": pin["repository"],
        "tag": tag or pin["tag"],
        "commit": commit,
    }
    (project / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")


def stage(deps: Path, pins: List[Pin]) -> Path:
    """What playbooks/stage_sources.yml leaves: a tree and a manifest per pin."""
    for pin in pins:
        project = deps / pin["name"]
        project.mkdir(parents=True, exist_ok=True)
        (project / "CMakeLists.txt").write_text("# staged\n", encoding="utf-8")
        if pin["name"] == "triton_kernels":
            (project / TRITON_SUBDIR).mkdir(parents=True)
            (project / TRITON_SUBDIR / "__init__.py").write_text("", encoding="utf-8")
        write_manifest(project, pin)
    return deps


def no_git(argv: List[str]) -> Tuple[int, str, str]:
    raise AssertionError(f"git must not run for manifest-staged projects: {argv}")


def real_git(argv: List[str]) -> Tuple[int, str, str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    done = subprocess.run(
        ["git", *identity, "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def git_checkout(path: Path, tag: str = "") -> str:
    """A one-commit git repository at path, HEAD tagged `tag` when given; returns HEAD."""
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "README").write_text("x\n", encoding="utf-8")
    git(path, "add", "README")
    git(path, "commit", "-q", "-m", "initial")
    if tag:
        git(path, "tag", tag)
    return git(path, "rev-parse", "HEAD")


def by_name(vllm_deps: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {project["name"]: project for project in vllm_deps["projects"]}


def run_main(args: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> Tuple[int, Dict]:
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        vllm_deps_check.main()
    return int(exc.value.code or 0), json.loads(capsys.readouterr().out)


# --- a complete deps dir ---------------------------------------------------------------


def test_complete_0_30_0_yields_every_override(tmp_path: Path) -> None:
    deps = stage(tmp_path / "v0.30.0", pins_of("0.30.0"))
    vllm_deps, problems = check_deps(pins_of("0.30.0"), str(deps), {}, no_git)
    assert problems == []
    assert vllm_deps["env"] == {
        "VLLM_CUTLASS_SRC_DIR": f"{deps}/cutlass",
        "TRITON_KERNELS_SRC_DIR": f"{deps}/triton_kernels/{TRITON_SUBDIR}",
        "DEEPGEMM_SRC_DIR": f"{deps}/deepgemm",
        "DEEPSELECT_SRC_DIR": f"{deps}/deepselect",
        "FMHA_SM100_SRC_DIR": f"{deps}/fmha_sm100",
        "FLASH_MLA_SRC_DIR": f"{deps}/flashmla",
        "FLASH_KDA_SRC_DIR": f"{deps}/flashkda",
        "QUTLASS_SRC_DIR": f"{deps}/qutlass",
        "TML_FA4_SRC_DIR": f"{deps}/tml_fa4",
        "VLLM_FLASH_ATTN_SRC_DIR": f"{deps}/vllm-flash-attn",
    }
    statuses = {
        p["name"]: (p["status"], p["verified_by"], p["message"]) for p in vllm_deps["projects"]
    }
    assert set(statuses.values()) == {("ok", "manifest", "")}
    assert [p["name"] for p in vllm_deps["projects"]] == [p["name"] for p in pins_of("0.30.0")]


def test_complete_0_22_0_yields_its_six_overrides(tmp_path: Path) -> None:
    deps = stage(tmp_path / "v0.22.0", pins_of("0.22.0"))
    vllm_deps, problems = check_deps(pins_of("0.22.0"), str(deps), {}, no_git)
    assert problems == []
    assert vllm_deps["env"] == {
        "VLLM_CUTLASS_SRC_DIR": f"{deps}/cutlass",
        "TRITON_KERNELS_SRC_DIR": f"{deps}/triton_kernels/{TRITON_SUBDIR}",
        "DEEPGEMM_SRC_DIR": f"{deps}/deepgemm",
        "FLASH_MLA_SRC_DIR": f"{deps}/flashmla",
        "QUTLASS_SRC_DIR": f"{deps}/qutlass",
        "VLLM_FLASH_ATTN_SRC_DIR": f"{deps}/vllm-flash-attn",
    }
    deepgemm = by_name(vllm_deps)["deepgemm"]
    assert deepgemm == {
        "name": "deepgemm",
        "src_dir_env": "DEEPGEMM_SRC_DIR",
        "path": f"{deps}/deepgemm",
        "tag": "891d57b4db1071624b5c8fa0d1e51cb317fa709f",
        "status": "ok",
        "verified_by": "manifest",
        "message": "",
    }


def test_relative_deps_dir_gives_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage(tmp_path / "deps", pins_of("0.22.0"))
    monkeypatch.chdir(tmp_path)
    vllm_deps, problems = check_deps(pins_of("0.22.0"), "deps", {}, no_git)
    assert problems == []
    assert vllm_deps["env"]["QUTLASS_SRC_DIR"] == f"{tmp_path}/deps/qutlass"
    assert all(Path(path).is_absolute() for path in vllm_deps["env"].values())


# --- failures ----------------------------------------------------------------------------


def test_missing_project_names_it_its_repository_and_pin(tmp_path: Path) -> None:
    pins = pins_of("0.30.0")
    deps = stage(tmp_path / "deps", [p for p in pins if p["name"] != "flashkda"])
    vllm_deps, problems = check_deps(pins, str(deps), {}, no_git)
    assert problems == [
        f"flashkda: {deps}/flashkda does not exist; this vLLM version pins "
        "https://github.com/vllm-project/FlashKDA.git at "
        "b59532f1f464fbd536272780e30df5bf6a2ccc02 (for FLASH_KDA_SRC_DIR): stage it with "
        "playbooks/stage_sources.yml (or set vllm_source_deps_dir to a directory that has it)."
    ]
    assert by_name(vllm_deps)["flashkda"]["status"] == "missing"
    assert "FLASH_KDA_SRC_DIR" not in vllm_deps["env"]
    assert len(vllm_deps["env"]) == 9


def test_deps_of_0_22_0_against_0_30_0_pins_lists_every_problem(tmp_path: Path) -> None:
    deps = stage(tmp_path / "deps", pins_of("0.22.0"))
    vllm_deps, problems = check_deps(pins_of("0.30.0"), str(deps), {}, no_git)
    status = {p["name"]: p["status"] for p in vllm_deps["projects"]}
    assert status == {
        "cutlass": "wrong_commit",
        "triton_kernels": "ok",  # both versions pin v3.5.1
        "deepgemm": "wrong_commit",
        "deepselect": "missing",
        "fmha_sm100": "missing",
        "flashmla": "wrong_commit",
        "flashkda": "missing",
        "qutlass": "wrong_commit",
        "tml_fa4": "missing",
        "vllm-flash-attn": "wrong_commit",
    }
    assert list(vllm_deps["env"]) == ["TRITON_KERNELS_SRC_DIR"]
    assert len(problems) == 9
    cutlass = by_name(vllm_deps)["cutlass"]["message"]
    assert cutlass == (
        f"cutlass: {deps}/cutlass holds commit {OTHER_COMMIT} (v4.4.2) of "
        "https://github.com/nvidia/cutlass.git, but this vLLM version pins v4.7.1: restage it "
        "with playbooks/stage_sources.yml (or set vllm_source_deps_dir to a directory that "
        "has it)."
    )
    deepgemm = by_name(vllm_deps)["deepgemm"]["message"]
    assert "holds commit 891d57b4db1071624b5c8fa0d1e51cb317fa709f" in deepgemm
    assert "pins e1f418c2a4f20818221f6b0e578b4c2f634d4c3f" in deepgemm
    message = failure_message(str(deps), problems)
    assert message.startswith(
        "The sources this vLLM version's CUDA build fetches with CMake FetchContent are not "
        f"ready for an offline build from {deps} (vllm_source_deps_dir): 9 problems:\n- "
    )
    assert message.count("\n- ") == 9
    assert all(problem in message for problem in problems)


def test_wrong_commit_in_manifest_names_both_commits(tmp_path: Path) -> None:
    pins = pins_of("0.30.0")
    deps = stage(tmp_path / "deps", pins)
    write_manifest(deps / "qutlass", pin_named(pins, "qutlass"), commit=OTHER_COMMIT)
    vllm_deps, problems = check_deps(pins, str(deps), {}, no_git)
    assert problems == [
        f"qutlass: {deps}/qutlass holds commit {OTHER_COMMIT} of "
        "https://github.com/IST-DASLab/qutlass.git, but this vLLM version pins "
        "e74319e3405ce6d71965732880f5dc1f52371f64: restage it with playbooks/stage_sources.yml "
        "(or set vllm_source_deps_dir to a directory that has it)."
    ]
    assert by_name(vllm_deps)["qutlass"]["status"] == "wrong_commit"
    assert by_name(vllm_deps)["qutlass"]["verified_by"] == "manifest"


def test_pin_without_override_cannot_be_built_offline(tmp_path: Path) -> None:
    pins = pins_of("0.30.0")
    deps = stage(tmp_path / "deps", pins)
    tml = pin_named(pins, "tml_fa4")
    tml["src_dir_env"] = ""  # what fetchcontent_pins gives a Declare outside any SRC_DIR if()
    vllm_deps, problems = check_deps(pins, str(deps), {}, no_git)
    assert problems == [
        "tml_fa4 (https://github.com/vllm-project/tml-fa4.git at "
        "75765e76a9c2c012c1f6ecd64577eb646eb4d303), declared in "
        "cmake/external_projects/tml_fa4.cmake, has no *_SRC_DIR override in this vLLM "
        "version, so CMake downloads it during the build: this vLLM version cannot be built "
        "offline. Build on a host that reaches https://github.com/vllm-project/tml-fa4.git, "
        "or pick another vllm_source_version."
    ]
    project = by_name(vllm_deps)["tml_fa4"]
    assert (project["status"], project["path"]) == ("no_override", "")
    assert "" not in vllm_deps["env"]


def test_relative_src_dir_in_build_env_fails_naming_the_key(tmp_path: Path) -> None:
    pins = pins_of("0.30.0")
    deps = stage(tmp_path / "deps", pins)
    build_env = {"DEEPGEMM_SRC_DIR": "stage/deepgemm", "MAX_JOBS": "4", "FOO_SRC_DIR": ""}
    _, problems = check_deps(pins, str(deps), build_env, no_git)
    assert problems == [
        "vllm_source_build_env sets DEEPGEMM_SRC_DIR to 'stage/deepgemm', which is not an "
        "absolute path (CMake would resolve it against its build directory): set "
        "vllm_source_build_env.DEEPGEMM_SRC_DIR to an absolute path, or remove it to use the "
        "staged copy.",
        "vllm_source_build_env sets FOO_SRC_DIR to '', which is not an absolute path (CMake "
        "would resolve it against its build directory): set vllm_source_build_env.FOO_SRC_DIR "
        "to an absolute path, or remove it to use the staged copy.",
    ]


def test_absolute_src_dir_in_build_env_overrides_the_staged_path(tmp_path: Path) -> None:
    pins = pins_of("0.30.0")
    deps = stage(tmp_path / "deps", [p for p in pins if p["name"] != "deepgemm"])
    own = tmp_path / "my-deepgemm"
    own.mkdir()
    vllm_deps, problems = check_deps(pins, str(deps), {"DEEPGEMM_SRC_DIR": str(own)}, no_git)
    assert problems == []
    assert vllm_deps["env"]["DEEPGEMM_SRC_DIR"] == str(own)
    project = by_name(vllm_deps)["deepgemm"]
    assert (project["status"], project["verified_by"]) == ("ok", "vllm_source_build_env")


def test_absolute_src_dir_in_build_env_must_exist(tmp_path: Path) -> None:
    pins = pins_of("0.22.0")
    deps = stage(tmp_path / "deps", pins)
    gone = tmp_path / "nowhere"
    _, problems = check_deps(pins, str(deps), {"FLASH_MLA_SRC_DIR": str(gone)}, no_git)
    assert problems == [
        f"flashmla: vllm_source_build_env sets FLASH_MLA_SRC_DIR to {gone}, which is not a "
        "directory: fix vllm_source_build_env.FLASH_MLA_SRC_DIR, or remove it to use the "
        "staged copy."
    ]


def test_triton_without_the_kernels_package_is_missing(tmp_path: Path) -> None:
    pins = pins_of("0.30.0")
    deps = stage(tmp_path / "deps", pins)
    (deps / "triton_kernels" / TRITON_SUBDIR / "__init__.py").unlink()
    (deps / "triton_kernels" / TRITON_SUBDIR).rmdir()
    vllm_deps, problems = check_deps(pins, str(deps), {}, no_git)
    assert problems == [
        f"triton_kernels: {deps}/triton_kernels lacks {TRITON_SUBDIR}, where "
        "TRITON_KERNELS_SRC_DIR must point; this vLLM version pins "
        "https://github.com/triton-lang/triton.git at v3.5.1 (for TRITON_KERNELS_SRC_DIR): "
        f"{STAGE_HINT}."
    ]
    assert by_name(vllm_deps)["triton_kernels"]["status"] == "missing"


def test_unreadable_manifest_is_missing(tmp_path: Path) -> None:
    pins = pins_of("0.30.0")
    deps = stage(tmp_path / "deps", pins)
    (deps / "cutlass" / MANIFEST_NAME).write_text('{"name": "cutlass"}', encoding="utf-8")
    (deps / "flashmla" / MANIFEST_NAME).write_text("{not json", encoding="utf-8")
    vllm_deps, problems = check_deps(pins, str(deps), {}, no_git)
    assert len(problems) == 2
    assert problems[0].startswith(
        f"cutlass: {deps}/cutlass/{MANIFEST_NAME} lacks one of name, repository, tag, commit; "
    )
    assert problems[1].startswith(f"flashmla: {deps}/flashmla/{MANIFEST_NAME} is not readable JSON")
    assert by_name(vllm_deps)["flashmla"]["status"] == "missing"


# --- git checkouts without a manifest ------------------------------------------------------


def test_git_checkout_at_the_pinned_tag_is_accepted(tmp_path: Path) -> None:
    pins = pins_of("0.30.0")
    deps = stage(tmp_path / "deps", [p for p in pins if p["name"] != "cutlass"])
    head = git_checkout(deps / "cutlass", tag="v4.7.1")
    assert git_head(str(deps / "cutlass"), real_git) == (head, ["v4.7.1"])
    vllm_deps, problems = check_deps(pins, str(deps), {}, real_git)
    assert problems == []
    project = by_name(vllm_deps)["cutlass"]
    assert (project["status"], project["verified_by"]) == ("ok", "git")
    assert vllm_deps["env"]["VLLM_CUTLASS_SRC_DIR"] == f"{deps}/cutlass"


def test_git_checkout_at_another_commit_names_both(tmp_path: Path) -> None:
    pins = pins_of("0.30.0")
    deps = stage(tmp_path / "deps", [p for p in pins if p["name"] not in ("flashmla", "cutlass")])
    head = git_checkout(deps / "flashmla")
    git_checkout(deps / "cutlass", tag="v4.4.2")
    vllm_deps, problems = check_deps(pins, str(deps), {}, real_git)
    assert by_name(vllm_deps)["flashmla"]["status"] == "wrong_commit"
    assert problems == [
        f"cutlass: {deps}/cutlass holds commit {git_head(str(deps / 'cutlass'), real_git)[0]} "
        "(v4.4.2) of https://github.com/nvidia/cutlass.git, but this vLLM version pins "
        "v4.7.1: restage it with playbooks/stage_sources.yml (or set vllm_source_deps_dir to "
        "a directory that has it).",
        f"flashmla: {deps}/flashmla holds commit {head} of "
        "https://github.com/vllm-project/FlashMLA, but this vLLM version pins "
        "0eee43b12f034b657133cf2afca6a72ebb6efccf: restage it with playbooks/stage_sources.yml "
        "(or set vllm_source_deps_dir to a directory that has it).",
    ]


def test_plain_folder_without_manifest_or_git_is_missing(tmp_path: Path) -> None:
    pins = pins_of("0.22.0")
    deps = stage(tmp_path / "deps", pins)
    (deps / "qutlass" / MANIFEST_NAME).unlink()
    _, problems = check_deps(pins, str(deps), {}, real_git)
    assert problems == [
        f"qutlass: {deps}/qutlass has neither {MANIFEST_NAME} nor a git checkout; this vLLM "
        "version pins https://github.com/IST-DASLab/qutlass.git at "
        "830d2c4537c7396e14a02a46fbddd18b5d107c65 (for QUTLASS_SRC_DIR): "
        f"{STAGE_HINT}."
    ]


# --- small pieces -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "commit"),
    [
        ("v4.7.1", False),
        ("v3.5.1", False),
        ("main", False),
        ("e1f418c2", True),
        ("0eee43b12f034b657133cf2afca6a72ebb6efccf", True),
        ("abc", False),
    ],
)
def test_is_commit(tag: str, commit: bool) -> None:
    assert is_commit(tag) is commit


def test_commits_match_accepts_abbreviated_pins_only() -> None:
    full = "0eee43b12f034b657133cf2afca6a72ebb6efccf"
    assert commits_match(full, "0eee43b1")
    assert commits_match(full.upper(), full)
    assert not commits_match("0eee43b1", full)
    assert not commits_match("", "0eee43b1")


def test_checkout_matches_by_commit_or_tag() -> None:
    pin = {"name": "cutlass", "tag": "v4.7.1"}
    assert checkout_matches(OTHER_COMMIT, ["v4.7.1", "latest"], pin)
    assert not checkout_matches(OTHER_COMMIT, ["v4.7.10"], pin)
    assert checkout_matches(OTHER_COMMIT, [], {"name": "x", "tag": OTHER_COMMIT[:8]})


def test_override_path_points_triton_at_its_python_package(tmp_path: Path) -> None:
    assert override_path(str(tmp_path), "triton_kernels", "TRITON_KERNELS_SRC_DIR") == (
        f"{tmp_path}/triton_kernels/{TRITON_SUBDIR}"
    )
    assert override_path(str(tmp_path), "cutlass", "VLLM_CUTLASS_SRC_DIR") == f"{tmp_path}/cutlass"


def test_read_manifest_keeps_the_four_keys(tmp_path: Path) -> None:
    assert read_manifest(str(tmp_path)) is None
    pin = pin_named(pins_of("0.30.0"), "cutlass")
    write_manifest(tmp_path, pin)
    assert read_manifest(str(tmp_path)) == {
        "name": "cutlass",
        "repository": "https://github.com/nvidia/cutlass.git",
        "tag": "v4.7.1",
        "commit": OTHER_COMMIT,
    }


# --- the module ------------------------------------------------------------------------------


def test_main_returns_the_env_in_check_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pins = pins_of("0.30.0")
    deps = stage(tmp_path / "deps", [p for p in pins if p["name"] != "cutlass"])
    git_checkout(deps / "cutlass", tag="v4.7.1")  # through module.run_command
    args = {"pins": pins, "deps_dir": str(deps), "_ansible_check_mode": True}
    rc, result = run_main(args, capsys)
    assert rc == 0
    assert result["changed"] is False
    assert len(result["vllm_deps"]["env"]) == 10
    assert result["vllm_deps"]["env"]["VLLM_CUTLASS_SRC_DIR"] == f"{deps}/cutlass"
    assert by_name(result["vllm_deps"])["cutlass"]["verified_by"] == "git"


def test_main_fails_with_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pins = pins_of("0.22.0")
    deps = stage(tmp_path / "deps", [p for p in pins if p["name"] != "vllm-flash-attn"])
    args = {"pins": pins, "deps_dir": str(deps), "build_env": {"QUTLASS_SRC_DIR": "qutlass"}}
    rc, result = run_main(args, capsys)
    assert rc == 1
    assert result["failed"] is True
    assert result["msg"].startswith("The sources this vLLM version's CUDA build fetches")
    assert "2 problems:" in result["msg"]
    assert "vllm_source_build_env sets QUTLASS_SRC_DIR to 'qutlass'" in result["msg"]
    assert (
        "vllm-flash-attn: " + f"{deps}/vllm-flash-attn does not exist; this vLLM version pins "
        "https://github.com/vllm-project/flash-attention.git at "
        "bce29425653ec0fbc579d329883030e832d15ada"
    ) in result["msg"]
    assert by_name(result["vllm_deps"])["vllm-flash-attn"]["status"] == "missing"


def test_main_refuses_a_pin_without_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, result = run_main({"pins": [{"tag": "v1"}], "deps_dir": str(tmp_path)}, capsys)
    assert rc == 1
    assert result["msg"] == (
        "pins[0] has no name: pass the vllm_source.fetchcontent list that vllm_source_facts "
        "returns."
    )
