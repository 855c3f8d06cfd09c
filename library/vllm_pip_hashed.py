#!/usr/bin/python
"""Ansible module vllm_pip_hashed: install from an offline wheelhouse with every wheel
hash-checked against the wheelhouse's manifest."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Sequence

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_hashes import (
    SHA256_RE,
    HashedInstallError,
    ManifestError,
    Mismatch,
    Pinned,
    dry_run_argv,
    hash_mismatches,
    install_argv,
    manifest_message,
    mismatch_message,
    parse_report,
    parse_uv_dry_run,
    pin_hashes,
    pin_uv_hashes,
    pip_environment,
    read_manifest,
    requirements_text,
    uv_changed,
    uv_dry_run_argv,
    uv_environment,
    uv_hash_mismatches,
    uv_install_argv,
    uv_mismatch_message,
    uv_requirements_text,
    wheelhouse_origin,
)

DOCUMENTATION = r"""
---
module: vllm_pip_hashed
short_description: Install Python packages from an offline wheelhouse, every wheel hash-checked
description:
  - >-
    Asks the venv's pip what it would install from the wheelhouse alone
    (C(pip install --dry-run --report FILE --no-index --find-links WHEELHOUSE ...), pip 22.2 or
    newer), looks up each chosen wheel's sha256 in the wheelhouse's C(wheelhouse.json) (written
    on the controller by C(python -m vllm_fleet.wheelhouse build) or C(hash)), writes those as
    C(name==version --hash=sha256:...) lines to I(requirements_file), then installs exactly
    them with C(pip install --require-hashes --no-deps --no-index -r requirements_file).
  - >-
    Fails before installing anything, naming the file and the fix, when the wheelhouse has no
    usable manifest, when pip would take a wheel the manifest does not list, a source
    distribution, or a file from outside the wheelhouse. A wheel whose bytes differ from the
    manifest is refused by pip's hash check; the message names the file.
  - >-
    Files outside the wheelhouse (vLLM's own wheel) are installed when I(file_hashes) gives
    their sha256, as C(name @ file://... --hash=sha256:...).
  - >-
    With I(installer=uv) the same is done by uv (C(uv pip install --python PYTHON)): it has no
    report, so its dry run's C(+ name==version) lines are pinned with the manifest's sha256 of
    every wheel of that name and version in the wheelhouse, and C(uv pip install
    --require-hashes --no-deps --offline --no-index --link-mode copy -r requirements_file)
    installs them; uv checks the file it picks against those.
  - >-
    pip's configuration files and PIP_* variables (uv's files and UV_* variables with uv) do
    not apply, so only the wheelhouse is a source. Run it as the venv's owner (become_user).
    Changed only when something was installed; in check mode it asks the installer and
    reports what it would install.
options:
  python:
    description: The venv's Python; the module runs C(python -m pip), or uv for it.
    type: path
    required: true
  installer:
    description: Which installer resolves and installs, the venv's pip or uv (I(uv)).
    type: str
    choices: [pip, uv]
    default: pip
  uv:
    description: The uv binary, for I(installer=uv).
    type: path
    default: ""
  cache_dir:
    description: uv's cache directory (C(--cache-dir)); empty for uv's default.
    type: path
    default: ""
  requirements:
    description: Requirement specifiers or paths of wheel files, as pip install takes them.
    type: list
    elements: str
    required: true
  wheelhouse:
    description: >-
      The wheelhouse directory on the host, whose wheelhouse.json records every wheel's sha256;
      empty for none (then only files of I(file_hashes) can be installed).
    type: path
    default: ""
  controller_wheelhouse:
    description: >-
      The controller's directory that I(wheelhouse) is a copy of
      (vllm_source_controller_wheelhouse), for the messages; empty when the host's own.
    type: str
    default: ""
  file_hashes:
    description: >-
      sha256 of files outside the wheelhouse, by path (the vLLM wheel and the sha256 its build
      recorded).
    type: dict
    default: {}
  requirements_file:
    description: >-
      Where the hashed requirements go (written only when something is installed; a
      directory that does not exist is created).
    type: path
    required: true
  deps:
    description: Whether pip installs the requirements' dependencies too (false is --no-deps).
    type: bool
    default: true
  force_reinstall:
    description: Reinstall the requirements even when installed already (--force-reinstall).
    type: bool
    default: false
  extra_args:
    description: More options of the install, such as C(--no-compile).
    type: list
    elements: str
    default: []
author: vllm-fleet
"""

EXAMPLES = r"""
- name: Install the PyTorch version the tag pins from the wheelhouse, hash-checked.
  vllm_pip_hashed:
    python: /opt/vllm/releases/KEY/venv/bin/python
    requirements: [torch==2.9.0]
    wheelhouse: /srv/wheelhouse
    requirements_file: /opt/vllm/releases/KEY/hashed-requirements/torch.txt
  become: true
  become_user: vllm

- name: Install the vLLM wheel with the sha256 its build recorded.
  vllm_pip_hashed:
    python: /opt/vllm/releases/KEY/venv/bin/python
    requirements: [/opt/vllm/releases/KEY/wheel/vllm-0.30.0-cp38-abi3-linux_x86_64.whl]
    file_hashes:
      /opt/vllm/releases/KEY/wheel/vllm-0.30.0-cp38-abi3-linux_x86_64.whl: 0f3c...
    deps: false
    force_reinstall: true
    requirements_file: /opt/vllm/releases/KEY/hashed-requirements/vllm.txt
  become: true
  become_user: vllm
"""

RETURN = r"""
installed:
  description: >-
    What pip installed (in check mode, would install), each with the file and the sha256 it
    was checked against.
  type: list
  elements: dict
  returned: always
  sample:
    - name: torch
      version: 2.9.0+cu128
      file: /srv/wheelhouse/torch-2.9.0+cu128-cp312-cp312-manylinux_2_28_x86_64.whl
      sha256: 5b1f...
requirements_file:
  description: The requirements file with hashes; empty when nothing was installed.
  type: str
  returned: always
cmd:
  description: The last pip (or uv) command run.
  type: list
  elements: str
  returned: when pip ran
stdout:
  description: pip's standard output of the last command.
  type: str
  returned: when pip ran
stderr:
  description: pip's standard error of the last command.
  type: str
  returned: when pip ran
"""


def write_requirements(path: str, text: str) -> None:
    """The hashed requirements, written whole (a temporary file renamed over the old one)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(partial, 0o644)
    os.replace(partial, path)


def isolate_pip() -> None:
    """This process's environment as pip gets it: no PIP_* variable, no configuration file."""
    wanted = pip_environment(os.environ)
    for key in [k for k in os.environ if k not in wanted]:
        del os.environ[key]
    os.environ.update(wanted)


def isolate_uv() -> None:
    """This process's environment as uv gets it: no UV_* (nor PIP_*) variable."""
    wanted = uv_environment(os.environ)
    for key in [k for k in os.environ if k not in wanted]:
        del os.environ[key]
    os.environ.update(wanted)


@dataclass(frozen=True)
class Installer:
    """What differs between pip and uv; install_hashed runs the steps they share."""

    name: str  # "pip" or "uv", for the messages
    command: str  # its install command, for the messages
    dry_run_argv: List[str]  # asks what it would install; changes nothing
    # (stdout, stderr) of the dry run -> the pins with the manifest's sha256 (or a refusal:
    # HashedInstallError)
    pinned: Callable[[str, str], List[Pinned]]
    requirements_text: Callable[[Sequence[Pinned]], str]
    install_argv: List[str]  # installs exactly the requirements file, hash-checked
    mismatches: Callable[[str], List[Mismatch]]  # the files its hash check refused
    mismatch_message: Callable[..., str]
    changed: Callable[[str, str], bool]  # (stdout, stderr) of the install -> changed
    # stderr of a failed dry run -> the message of a failure it recognises, else ""
    dry_run_refusal: Callable[[str], str] = lambda _err: ""


def pip_installer(
    module: AnsibleModule, manifest: Dict[str, str], files: Dict[str, str]
) -> Installer:
    """The venv's pip: its dry run's report gives what it chose."""
    p = module.params
    python, wheelhouse, controller = p["python"], p["wheelhouse"] or "", p["controller_wheelhouse"]
    isolate_pip()
    report = os.path.join(module.tmpdir, "pip-report.json")

    def pinned(_out: str, _err: str) -> List[Pinned]:
        try:
            with open(report, encoding="utf-8") as handle:
                chosen = parse_report(handle.read())
        except (OSError, ValueError) as exc:
            raise HashedInstallError(
                f"cannot read pip's report {report} (pip 22.2+?): {exc}"
            ) from exc
        return pin_hashes(chosen, wheelhouse, manifest, files, controller)

    def refusal(err: str) -> str:
        if "no such option: --report" not in err:
            return ""
        return (
            f"{python}'s pip has no `install --dry-run --report` (pip 22.2 or newer has; "
            "Debian bookworm's venvs get 23.0.1): create the venv with a newer Python or pip"
        )

    return Installer(
        name="pip",
        command="pip install",
        dry_run_argv=dry_run_argv(
            python, wheelhouse, p["requirements"], report, p["deps"], p["force_reinstall"]
        ),
        pinned=pinned,
        requirements_text=requirements_text,
        install_argv=install_argv(
            python, wheelhouse, p["requirements_file"], p["force_reinstall"], p["extra_args"]
        ),
        mismatches=hash_mismatches,
        mismatch_message=mismatch_message,
        changed=lambda _out, _err: True,
        dry_run_refusal=refusal,
    )


def uv_installer(
    module: AnsibleModule, manifest: Dict[str, str], files: Dict[str, str]
) -> Installer:
    """uv for the venv: it has no report, its dry run's ` + ` lines give what it chose."""
    p = module.params
    python, wheelhouse, controller = p["python"], p["wheelhouse"] or "", p["controller_wheelhouse"]
    uv, cache = p["uv"], p["cache_dir"] or ""
    if not uv or not os.path.exists(uv):
        module.fail_json(
            msg=f"installer uv needs the uv binary, and {uv or 'none'} is not there: "
            "install uv first (the role puts it into <prefix>/tools)",
            installed=[],
            requirements_file="",
        )
    isolate_uv()

    def pinned(out: str, err: str) -> List[Pinned]:
        return pin_uv_hashes(
            parse_uv_dry_run(f"{out}\n{err}"), wheelhouse, manifest, files, controller
        )

    return Installer(
        name="uv",
        command="uv pip install",
        dry_run_argv=uv_dry_run_argv(
            uv, python, cache, wheelhouse, p["requirements"], p["deps"], p["force_reinstall"]
        ),
        pinned=pinned,
        requirements_text=uv_requirements_text,
        install_argv=uv_install_argv(
            uv,
            python,
            cache,
            wheelhouse,
            p["requirements_file"],
            p["force_reinstall"],
            p["extra_args"],
        ),
        mismatches=uv_hash_mismatches,
        mismatch_message=uv_mismatch_message,
        changed=lambda out, err: uv_changed(f"{out}\n{err}"),
    )


def install_hashed(
    module: AnsibleModule, installer: Installer, file_hashes: Dict[str, str]
) -> None:
    """The steps pip and uv share: the dry run, the pins with their hashes written to the
    requirements file, the hash-checked install, and the refused files named."""
    p = module.params
    wheelhouse, controller = p["wheelhouse"] or "", p["controller_wheelhouse"]
    name = installer.name
    result: Dict[str, Any] = {"installed": [], "requirements_file": ""}
    argv = installer.dry_run_argv
    rc, out, err = module.run_command(argv)
    result.update(cmd=argv, stdout=out, stderr=err)
    if rc != 0:
        module.fail_json(
            msg=installer.dry_run_refusal(err)
            or f"{name} cannot install {' '.join(p['requirements'])} from "
            f"{wheelhouse or 'the given files'} alone ({name}'s message below): add the missing "
            "wheels to the wheelhouse on the controller (python -m vllm_fleet.wheelhouse build "
            "and check say which), then record them with `python -m vllm_fleet.wheelhouse hash`",
            **result,
        )
    try:
        pinned = installer.pinned(out, err)
    except HashedInstallError as exc:
        module.fail_json(msg=str(exc), **result)
    result["installed"] = [item.returned() for item in pinned]
    if not pinned or module.check_mode:
        module.exit_json(changed=bool(pinned), **result)

    write_requirements(p["requirements_file"], installer.requirements_text(pinned))
    result["requirements_file"] = p["requirements_file"]
    argv = installer.install_argv
    rc, out, err = module.run_command(argv)
    result.update(cmd=argv, stdout=out, stderr=err)
    if rc != 0:
        mismatches = installer.mismatches(f"{err}\n{out}")
        module.fail_json(
            msg=installer.mismatch_message(mismatches, wheelhouse, controller, list(file_hashes))
            if mismatches
            else f"{installer.command} -r {p['requirements_file']} failed ({name}'s message below)",
            **result,
        )
    module.exit_json(changed=installer.changed(out, err), **result)


def run_module() -> None:
    module = AnsibleModule(
        argument_spec={
            "python": {"type": "path", "required": True},
            "installer": {"type": "str", "choices": ["pip", "uv"], "default": "pip"},
            "uv": {"type": "path", "default": ""},
            "cache_dir": {"type": "path", "default": ""},
            "requirements": {"type": "list", "elements": "str", "required": True},
            "wheelhouse": {"type": "path", "default": ""},
            "controller_wheelhouse": {"type": "str", "default": ""},
            "file_hashes": {"type": "dict", "default": {}},
            "requirements_file": {"type": "path", "required": True},
            "deps": {"type": "bool", "default": True},
            "force_reinstall": {"type": "bool", "default": False},
            "extra_args": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    p = module.params
    python, wheelhouse, controller = p["python"], p["wheelhouse"] or "", p["controller_wheelhouse"]
    result: Dict[str, Any] = {"installed": [], "requirements_file": ""}
    if not p["requirements"]:
        module.exit_json(changed=False, **result)
    file_hashes = {path: str(digest).lower() for path, digest in p["file_hashes"].items()}
    bad = {path: v for path, v in file_hashes.items() if not SHA256_RE.fullmatch(v)}
    if bad:
        module.fail_json(msg=f"file_hashes needs a sha256 (64 hex digits) per file, got {bad}")
    paths = (python, wheelhouse, *file_hashes)
    missing = [path for path in paths if path and not os.path.exists(path)]
    if missing and module.check_mode:  # a run creates them (the venv, the copies) before this
        module.exit_json(
            changed=True,
            msg=f"{' and '.join(missing)} do not exist yet: the run creates them, then installs",
            **result,
        )
    if not os.path.exists(python):
        module.fail_json(msg=f"{python} does not exist: create the venv first", **result)
    manifest: Dict[str, str] = {}
    if wheelhouse and not os.path.isdir(wheelhouse):
        module.fail_json(
            msg=f"The wheelhouse {wheelhouse_origin(wheelhouse, controller)} is not a directory "
            "on this host: set vllm_source_wheelhouse to the host's wheelhouse, or "
            "vllm_source_controller_wheelhouse to one on the controller that the role copies",
            **result,
        )
    if wheelhouse:
        try:
            manifest = read_manifest(wheelhouse)
        except ManifestError as exc:
            module.fail_json(msg=manifest_message(str(exc), wheelhouse, controller), **result)

    choose = uv_installer if p["installer"] == "uv" else pip_installer
    install_hashed(module, choose(module, manifest, file_hashes), file_hashes)


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
