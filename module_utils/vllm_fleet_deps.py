"""Check that the sources a vLLM CUDA build fetches are staged for an offline build.

Pure code for the `vllm_deps_check` module and playbooks/stage_sources.yml. Runs on
Python 3.8+ hosts.

Layout of a deps dir (written by playbooks/stage_sources.yml):

    <deps_dir>/<name>/                        one folder per FetchContent pin, named by the
                                              pin's `name` (cutlass, vllm-flash-attn, ...):
                                              the project's tree at the pinned commit, with
                                              its submodules filled, without .git
    <deps_dir>/<name>/.vllm-fleet-source.json the manifest: {"name", "repository", "tag",
                                              "commit"} (repository and tag as pinned,
                                              commit the full SHA that was checked out)

A git checkout in `<deps_dir>/<name>/` without the manifest is accepted too, when its
HEAD is the pinned commit or carries the pinned tag.

Each `*_SRC_DIR` variable points at the project root, except TRITON_KERNELS_SRC_DIR:
vLLM's triton_kernels.cmake expects it "directly set to the triton_kernels python
directory", python/triton_kernels/triton_kernels of the triton repository, whose .py
files it installs.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible.module_utils.vllm_fleet_versions import is_commit

MANIFEST_NAME = ".vllm-fleet-source.json"
MANIFEST_KEYS = ("name", "repository", "tag", "commit")
STAGE_HINT = (
    "stage it with playbooks/stage_sources.yml (or set vllm_source_deps_dir to a directory "
    "that has it)"
)
# Where inside a project's tree each override must point, when not at its root.
SRC_SUBDIRS = {"TRITON_KERNELS_SRC_DIR": "python/triton_kernels/triton_kernels"}

# (rc, stdout, stderr) of an argv list, like AnsibleModule.run_command.
Runner = Callable[[List[str]], Tuple[int, str, str]]


def normalize_pin(pin: Dict[str, Any]) -> Dict[str, str]:
    """The pin with every key `fetchcontent_pins` writes, as a string ("" when absent)."""
    keys = ("name", "repository", "tag", "src_dir_env", "file")
    return {key: "" if pin.get(key) is None else str(pin[key]) for key in keys}


def commits_match(have: str, pin: str) -> bool:
    """Whether the full SHA `have` is the commit `pin` names (which may be abbreviated)."""
    have, pin = have.strip().lower(), pin.strip().lower()
    return bool(have) and bool(pin) and have.startswith(pin)


def src_subdir(src_dir_env: str) -> str:
    """The path inside the project tree that `src_dir_env` must point at ("" = the root)."""
    return SRC_SUBDIRS.get(src_dir_env, "")


def override_path(deps_dir: str, name: str, src_dir_env: str) -> str:
    """The absolute path to pass as `src_dir_env` for the project staged as `name`."""
    path = os.path.join(os.path.abspath(deps_dir), name, src_dir_env and src_subdir(src_dir_env))
    return os.path.normpath(path)


def pin_label(pin: Dict[str, str]) -> str:
    """`name (repository at tag)`, how messages name a pin."""
    return f"{pin['name']} ({pin['repository']} at {pin['tag']})"


def read_manifest(project_dir: str) -> Optional[Dict[str, str]]:
    """The manifest of a staged project, or None when it has none.

    Raises ValueError when the file is there but is not a JSON object with string values
    for name, repository, tag and commit.
    """
    path = os.path.join(project_dir, MANIFEST_NAME)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not readable JSON ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in MANIFEST_KEYS):
        raise ValueError(f"{path} lacks one of {', '.join(MANIFEST_KEYS)}")
    return {key: data[key] for key in MANIFEST_KEYS}


def manifest_matches(manifest: Dict[str, str], pin: Dict[str, str]) -> bool:
    """Whether a manifest records the pinned commit (SHA pins) or the pinned tag."""
    if is_commit(pin["tag"]):
        return commits_match(manifest["commit"], pin["tag"])
    return manifest["tag"] == pin["tag"]


def git_head(project_dir: str, run: Runner) -> Tuple[str, List[str]]:
    """HEAD's commit and the tags pointing at it in a git checkout ("" and [] if none)."""
    git = ["git", "-c", "safe.directory=*", "-C", project_dir]
    rc, out, _ = run([*git, "rev-parse", "HEAD"])
    if rc != 0 or not out.strip():
        return "", []
    tags: List[str] = []
    rc, tag_out, _ = run([*git, "tag", "--points-at", "HEAD"])
    if rc == 0:
        tags = [line.strip() for line in tag_out.splitlines() if line.strip()]
    return out.strip(), tags


def checkout_matches(head: str, tags: List[str], pin: Dict[str, str]) -> bool:
    """Whether a checkout at `head` with `tags` is what the pin asks for."""
    if is_commit(pin["tag"]):
        return commits_match(head, pin["tag"])
    return pin["tag"] in tags


def _project(pin: Dict[str, str], path: str, status: str, verified_by: str, message: str) -> Dict:
    return {
        "name": pin["name"],
        "src_dir_env": pin["src_dir_env"],
        "path": path,
        "tag": pin["tag"],
        "status": status,
        "verified_by": verified_by,
        "message": message,
    }


def _missing_message(pin: Dict[str, str], why: str) -> str:
    return (
        f"{pin['name']}: {why}; this vLLM version pins {pin['repository']} at {pin['tag']} "
        f"(for {pin['src_dir_env']}): {STAGE_HINT}."
    )


def _wrong_commit_message(pin: Dict[str, str], project_dir: str, commit: str, tag: str) -> str:
    staged = f"commit {commit}" + (f" ({tag})" if tag and not is_commit(tag) else "")
    return (
        f"{pin['name']}: {project_dir} holds {staged} of {pin['repository']}, but this vLLM "
        f"version pins {pin['tag']}: {STAGE_HINT.replace('stage it', 'restage it', 1)}."
    )


def check_staged(pin: Dict[str, str], deps_dir: str, run: Runner) -> Dict[str, Any]:
    """Check the staged copy of one pin that has an override; returns its project entry."""
    project_dir = os.path.join(os.path.abspath(deps_dir), pin["name"])
    path = override_path(deps_dir, pin["name"], pin["src_dir_env"])
    if not os.path.isdir(project_dir):
        why = f"{project_dir} does not exist"
        return _project(pin, path, "missing", "", _missing_message(pin, why))
    try:
        manifest = read_manifest(project_dir)
    except ValueError as exc:
        return _project(pin, path, "missing", "", _missing_message(pin, str(exc)))
    if manifest is not None:
        if not manifest_matches(manifest, pin):
            message = _wrong_commit_message(pin, project_dir, manifest["commit"], manifest["tag"])
            return _project(pin, path, "wrong_commit", "manifest", message)
        verified_by = "manifest"
    else:
        head, tags = git_head(project_dir, run)
        if not head:
            why = f"{project_dir} has neither {MANIFEST_NAME} nor a git checkout"
            return _project(pin, path, "missing", "", _missing_message(pin, why))
        if not checkout_matches(head, tags, pin):
            message = _wrong_commit_message(pin, project_dir, head, ", ".join(tags))
            return _project(pin, path, "wrong_commit", "git", message)
        verified_by = "git"
    if not os.path.isdir(path):
        env = pin["src_dir_env"]
        why = f"{project_dir} lacks {src_subdir(env)}, where {env} must point"
        return _project(pin, path, "missing", "", _missing_message(pin, why))
    return _project(pin, path, "ok", verified_by, "")


def build_env_problems(build_env: Dict[str, Any]) -> List[str]:
    """Messages for `*_SRC_DIR` keys of vllm_source_build_env that are not absolute paths."""
    problems = []
    for key in sorted(build_env):
        value = "" if build_env[key] is None else str(build_env[key])
        if key.endswith("_SRC_DIR") and not os.path.isabs(value):
            problems.append(
                f"vllm_source_build_env sets {key} to {value!r}, which is not an absolute "
                f"path (CMake would resolve it against its build directory): set "
                f"vllm_source_build_env.{key} to an absolute path, or remove it to use the "
                f"staged copy."
            )
    return problems


def check_pin(
    pin: Dict[str, str], deps_dir: str, build_env: Dict[str, Any], run: Runner
) -> Dict[str, Any]:
    """The project entry of one pin: overridden by build_env, staged, or not overridable."""
    env = pin["src_dir_env"]
    if not env:
        message = (
            f"{pin_label(pin)}, declared in {pin['file']}, has no "
            f"*_SRC_DIR override in this vLLM version, so CMake downloads it during the build: "
            f"this vLLM version cannot be built offline. Build on a host that reaches "
            f"{pin['repository']}, or pick another vllm_source_version."
        )
        return _project(pin, "", "no_override", "", message)
    override = build_env.get(env)
    if override is not None and os.path.isabs(str(override)):
        path = str(override)
        if not os.path.isdir(path):
            message = (
                f"{pin['name']}: vllm_source_build_env sets {env} to {path}, which is not a "
                f"directory: fix vllm_source_build_env.{env}, or remove it to use the staged copy."
            )
            return _project(pin, path, "missing", "", message)
        return _project(pin, path, "ok", "vllm_source_build_env", "")
    return check_staged(pin, deps_dir, run)


def check_deps(
    pins: List[Dict[str, str]], deps_dir: str, build_env: Dict[str, Any], run: Runner
) -> Tuple[Dict[str, Any], List[str]]:
    """Check every pin; returns `vllm_deps` ({env, projects}) and the list of problems.

    `env` maps each override variable of a project whose status is ok to the absolute path
    to pass to the build.
    """
    problems = build_env_problems(build_env)
    projects = [check_pin(normalize_pin(pin), deps_dir, build_env, run) for pin in pins]
    problems.extend(p["message"] for p in projects if p["status"] != "ok")
    env = {p["src_dir_env"]: p["path"] for p in projects if p["status"] == "ok"}
    return {"env": env, "projects": projects}, problems


def failure_message(deps_dir: str, problems: List[str]) -> str:
    """One message listing every problem, for fail_json."""
    count = len(problems)
    head = (
        f"The sources this vLLM version's CUDA build fetches with CMake FetchContent are not "
        f"ready for an offline build from {deps_dir} (vllm_source_deps_dir): {count} "
        f"problem{'s' if count != 1 else ''}:"
    )
    return "\n- ".join([head, *problems])
