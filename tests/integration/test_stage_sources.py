"""playbooks/stage_sources.yml against a local "upstream": git repositories made on the spot.

The vLLM repository is the real 0.30.0 CMakeLists.txt, cmake/external_projects/ and
pyproject.toml, tagged v0.30.0, with four pins kept: cutlass and triton_kernels (tags,
reached through vllm_source_stage_url_map), DeepGEMM (a commit, with a submodule) and
FlashMLA (a commit that is not its branch tip), both rewritten to point at local
repositories. Needs git and ansible only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from ansible.module_utils.vllm_fleet_deps import MANIFEST_NAME
from ansible.module_utils.vllm_fleet_pins import fetchcontent_pins

from .playbook_stats import PlaybookRun, run_playbook

REPO_ROOT = Path(__file__).resolve().parents[2]
VLLM_030 = REPO_ROOT / "tests" / "data" / "vllm-src" / "0.30.0"
BIN = Path(sys.executable).parent
TRITON_SUBDIR = "python/triton_kernels/triton_kernels"
# Pins the test drops from the CMake files (each would need its own upstream).
DROPPED = ("deepselect", "fmha_sm100", "flashkda", "qutlass", "tml_fa4", "vllm_flash_attn")
KEPT = {"cutlass", "triton_kernels", "deepgemm", "flashmla"}


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=upstream", "-c", "user.email=upstream@example.com"]
    allow = ["-c", "protocol.file.allow=always"]  # the submodule is a local path
    done = subprocess.run(
        ["git", *identity, *allow, "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def make_repo(path: Path, files: Dict[str, str], tag: str = "") -> str:
    """A git repository at path with one commit of `files`; returns the commit."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    for relpath, text in files.items():
        (path / relpath).parent.mkdir(parents=True, exist_ok=True)
        (path / relpath).write_text(text, encoding="utf-8")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "release")
    if tag:
        git(path, "tag", "-a", "-m", tag, tag)
    return git(path, "rev-parse", "HEAD")


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} should occur once"
    return text.replace(old, new)


def write_vllm(path: Path, upstream: Path, commits: Dict[str, str]) -> None:
    """The real 0.30.0 CMake files with deepgemm and flashmla pointed at local commits."""
    shutil.copytree(VLLM_030 / "cmake", path / "cmake")
    shutil.copy(VLLM_030 / "pyproject.toml", path / "pyproject.toml")
    cmakelists = (VLLM_030 / "CMakeLists.txt").read_text(encoding="utf-8")
    for name in DROPPED:
        cmakelists = replace_once(cmakelists, f"include(cmake/external_projects/{name}.cmake)", "")
        (path / "cmake" / "external_projects" / f"{name}.cmake").unlink()
    (path / "CMakeLists.txt").write_text(cmakelists, encoding="utf-8")
    external = path / "cmake" / "external_projects"
    deepgemm = (external / "deepgemm.cmake").read_text(encoding="utf-8")
    deepgemm = replace_once(
        deepgemm, "https://github.com/vllm-project/DeepGEMM.git", str(upstream / "DeepGEMM")
    )
    deepgemm = replace_once(
        deepgemm, "e1f418c2a4f20818221f6b0e578b4c2f634d4c3f", commits["deepgemm"]
    )
    (external / "deepgemm.cmake").write_text(deepgemm, encoding="utf-8")
    flashmla = (external / "flashmla.cmake").read_text(encoding="utf-8")
    flashmla = replace_once(
        flashmla, "https://github.com/vllm-project/FlashMLA\n", f"{upstream / 'FlashMLA'}\n"
    )
    flashmla = replace_once(
        flashmla, "0eee43b12f034b657133cf2afca6a72ebb6efccf", commits["flashmla"]
    )
    (external / "flashmla.cmake").write_text(flashmla, encoding="utf-8")


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    root = tmp_path_factory.mktemp("upstream")
    commits: Dict[str, str] = {}
    fmt = make_repo(root / "fmt", {"include/fmt/core.h": "// fmt\n"})
    commits["cutlass"] = make_repo(
        root / "nvidia" / "cutlass.git", {"include/cutlass/cutlass.h": "// cutlass\n"}, "v4.7.1"
    )
    commits["triton_kernels"] = make_repo(
        root / "triton-lang" / "triton.git",
        {
            f"{TRITON_SUBDIR}/__init__.py": "# triton_kernels\n",
            f"{TRITON_SUBDIR}/matmul.py": "def matmul(): ...\n",
            "lib/Dialect/big.cpp": "// not needed by vLLM\n",
        },
        "v3.5.1",
    )
    deepgemm = root / "DeepGEMM"
    make_repo(deepgemm, {"csrc/python_api.cpp": "// deepgemm\n"})
    git(deepgemm, "submodule", "add", "-q", str(root / "fmt"), "third-party/fmt")
    git(deepgemm, "commit", "-q", "-m", "add fmt")
    commits["deepgemm"] = git(deepgemm, "rev-parse", "HEAD")
    commits["flashmla"] = make_repo(root / "FlashMLA", {"csrc/api/api.cpp": "// pinned\n"})
    (root / "FlashMLA" / "csrc" / "api" / "api.cpp").write_text("// newer\n", encoding="utf-8")
    git(root / "FlashMLA", "commit", "-q", "-am", "past the pin")  # the pin is not the tip

    vllm = root / "vllm"
    vllm.mkdir()
    write_vllm(vllm, root, commits)
    git(vllm, "init", "-q", "-b", "main")
    git(vllm, "add", "-A")
    git(vllm, "commit", "-q", "-m", "vLLM 0.30.0 with local pins")
    git(vllm, "tag", "-a", "-m", "v0.30.0", "v0.30.0")
    return {"root": root, "vllm": vllm, "commits": commits, "fmt": fmt}


def run_env(git_protocol: str = "") -> Dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"),
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        GIT_CONFIG_COUNT="1",
        GIT_CONFIG_KEY_0="protocol.file.allow",  # DeepGEMM's submodule is a local path
        GIT_CONFIG_VALUE_0="always",
    )
    if git_protocol:
        env.update(
            GIT_CONFIG_COUNT="2",
            GIT_CONFIG_KEY_1="protocol.version",
            GIT_CONFIG_VALUE_1=git_protocol,
        )
    return env


def stage(upstream: Dict[str, Any], stage_dir: Path, git_protocol: str = "") -> PlaybookRun:
    root = upstream["root"]
    extra = {
        "vllm_source_version": "v0.30.0",
        "vllm_source_repo_url": str(upstream["vllm"]),
        "vllm_source_stage_dir": str(stage_dir),
        "vllm_source_stage_url_map": {
            "https://github.com/nvidia/": f"{root}/nvidia/",
            "https://github.com/triton-lang/": f"file://{root}/triton-lang/",
        },
    }
    done = run_playbook(
        [str(BIN / "ansible-playbook"), "playbooks/stage_sources.yml", "-e", json.dumps(extra)],
        cwd=REPO_ROOT,
        env=run_env(git_protocol),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def pins(upstream: Dict[str, Any]) -> List[Dict[str, str]]:
    vllm = upstream["vllm"]

    def read(relpath: str) -> Optional[str]:
        path = vllm / relpath
        return path.read_text(encoding="utf-8") if path.is_file() else None

    return fetchcontent_pins(read)


def deps_check(pin_list: List[Dict[str, str]], deps_dir: Path) -> subprocess.CompletedProcess:
    args = json.dumps({"pins": pin_list, "deps_dir": str(deps_dir)})
    return subprocess.run(
        [str(BIN / "ansible"), "localhost", "-m", "vllm_deps_check", "-a", args],
        cwd=REPO_ROOT,
        env=run_env(),
        capture_output=True,
        text=True,
        check=False,
    )


def module_result(done: subprocess.CompletedProcess) -> Dict[str, Any]:
    """The JSON after `localhost | SUCCESS =>` (or FAILED!) in ad-hoc output."""
    start = done.stdout.index("=> {") + 3
    return json.loads(done.stdout[start:])


def manifest(stage_dir: Path, name: str) -> Dict[str, str]:
    return json.loads((stage_dir / name / MANIFEST_NAME).read_text(encoding="utf-8"))


def assert_staged(upstream: Dict[str, Any], stage_dir: Path) -> None:
    commits = upstream["commits"]
    assert sorted(p.name for p in stage_dir.iterdir()) == sorted(KEPT)
    assert manifest(stage_dir, "cutlass") == {
        "name": "cutlass",
        "repository": "https://github.com/nvidia/cutlass.git",
        "tag": "v4.7.1",
        "commit": commits["cutlass"],
    }
    assert manifest(stage_dir, "triton_kernels") == {
        "name": "triton_kernels",
        "repository": "https://github.com/triton-lang/triton.git",
        "tag": "v3.5.1",
        "commit": commits["triton_kernels"],
    }
    for name in ("deepgemm", "flashmla"):
        assert manifest(stage_dir, name)["commit"] == commits[name]
        assert manifest(stage_dir, name)["tag"] == commits[name]
    assert manifest(stage_dir, "deepgemm")["repository"] == str(upstream["root"] / "DeepGEMM")
    assert (stage_dir / "cutlass/include/cutlass/cutlass.h").read_text() == "// cutlass\n"
    assert (stage_dir / "triton_kernels" / TRITON_SUBDIR / "matmul.py").is_file()
    assert (stage_dir / "deepgemm/csrc/python_api.cpp").is_file()
    assert (stage_dir / "deepgemm/third-party/fmt/include/fmt/core.h").read_text() == "// fmt\n"
    assert (stage_dir / "flashmla/csrc/api/api.cpp").read_text() == "// pinned\n"
    assert not [p for p in stage_dir.rglob(".git")], "git metadata should be dropped"


def test_stage_pack_rerun_and_check(upstream: Dict[str, Any], tmp_path: Path) -> None:
    stage_dir = tmp_path / "stage" / "v0.30.0"
    first = stage(upstream, stage_dir)
    assert first.counts("localhost")["changed"] > 0
    assert_staged(upstream, stage_dir)

    tarball = tmp_path / "stage" / "v0.30.0.tar.xz"
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    checksum_file = Path(f"{tarball}.sha256")
    assert checksum_file.read_text() == f"{digest}  v0.30.0.tar.xz\n"
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
    assert "v0.30.0/deepgemm/third-party/fmt/include/fmt/core.h" in names
    assert "v0.30.0/triton_kernels/.vllm-fleet-source.json" in names
    assert not any(name.endswith("/.git") for name in names)
    assert not Path(f"{tarball}.partial").exists()
    mtime = tarball.stat().st_mtime_ns

    second = stage(upstream, stage_dir)
    counts = second.counts("localhost")
    assert counts["changed"] == 0 and counts["failed"] == 0, counts
    assert tarball.stat().st_mtime_ns == mtime
    assert checksum_file.read_text() == f"{digest}  v0.30.0.tar.xz\n"

    pin_list = pins(upstream)
    assert {pin["name"] for pin in pin_list} == KEPT
    ok = deps_check(pin_list, stage_dir)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    result = module_result(ok)
    assert result["changed"] is False
    assert result["vllm_deps"]["env"] == {
        "VLLM_CUTLASS_SRC_DIR": f"{stage_dir}/cutlass",
        "TRITON_KERNELS_SRC_DIR": f"{stage_dir}/triton_kernels/{TRITON_SUBDIR}",
        "DEEPGEMM_SRC_DIR": f"{stage_dir}/deepgemm",
        "FLASH_MLA_SRC_DIR": f"{stage_dir}/flashmla",
    }

    shutil.rmtree(stage_dir / "flashmla")
    failed = deps_check(pin_list, stage_dir)
    assert failed.returncode != 0
    result = module_result(failed)
    assert result["msg"].endswith(
        f"1 problem:\n- flashmla: {stage_dir}/flashmla does not exist; this vLLM version pins "
        f"{upstream['root'] / 'FlashMLA'} at {upstream['commits']['flashmla']} (for "
        "FLASH_MLA_SRC_DIR): stage it with playbooks/stage_sources.yml (or set "
        "vllm_source_deps_dir to a directory that has it)."
    )
    assert "FLASH_MLA_SRC_DIR" not in result["vllm_deps"]["env"]

    third = stage(upstream, stage_dir)  # restages only what is missing, then repacks
    assert "Staged cutlass, triton_kernels, deepgemm, flashmla" in third.stdout
    assert "(1 fetched now)" in third.stdout
    assert_staged(upstream, stage_dir)
    assert checksum_file.read_text() == (
        f"{hashlib.sha256(tarball.read_bytes()).hexdigest()}  v0.30.0.tar.xz\n"
    )


def test_servers_that_refuse_commits_get_a_full_fetch(
    upstream: Dict[str, Any], tmp_path: Path
) -> None:
    """Git protocol v0 refuses unadvertised commits: the shallow fetch of a SHA fails."""
    stage_dir = tmp_path / "v0.30.0"
    done = stage(upstream, stage_dir, git_protocol="0")
    assert "Fetch the whole history where the server refused the shallow fetch" in done.stdout
    # DeepGEMM's pin is its branch tip, which the server advertises; FlashMLA's is not.
    assert re.search(r"changed: \[localhost\] => \(item=flashmla \(", done.stdout), done.stdout
    assert re.search(r"skipping: \[localhost\] => \(item=deepgemm\)", done.stdout), done.stdout
    assert_staged(upstream, stage_dir)
