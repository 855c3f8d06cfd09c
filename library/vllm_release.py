#!/usr/bin/python
"""List, switch, prune and seal the releases of a vllm_source prefix."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
from typing import List, Optional, Tuple

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_fleet import (
    Release,
    is_partial,
    previous_release,
    releases_to_prune,
)
from ansible.module_utils.vllm_fleet_release import (
    INTEGRITY_MODES,
    RELEASES_DIR,
    build_pid_path,
    check_venv,
    host_boot_id,
    live_build,
    read_stamp,
    release_dir,
    seal_release,
    stamp_path,
    unseal_release,
    venv_dir,
)

DOCUMENTATION = r"""
---
module: vllm_release
short_description: List, switch, prune and seal the releases under a vllm_source prefix
description:
  - A prefix holds C(releases/<key>/) (each with its own venv and wheel) and the symlink
    C(current) -> C(releases/<key>). A release is verified when its stamp file exists (the
    role writes it only after vllm_verify and, with the smoke test on, vllm_smoke passed).
  - C(state=info) changes nothing and reports the releases, current and previous, and of
    release C(key) (or of current) its directory, its stamp and whether its venv is damaged.
    Every file that a C(*.dist-info/RECORD) of its site-packages lists must exist with its
    recorded size (C(integrity=size), the default, which also hashes the files of vllm's own
    distribution), or also with its recorded sha256 (C(integrity=hash), every file hashed).
    Entries without a hash (the RECORD itself, compiled C(.pyc)) are skipped as pip does; a
    file several distributions install is sound when it matches any of their entries. The
    venv must also hold a vllm distribution, C(pyvenv.cfg) and C(bin/python). Only a
    verified release (one with a stamp) is checked, any other has to be installed anyway.
    A release with C(damaged_count) above 0 needs reinstalling.
  - C(state=current) points C(current) at C(releases/<key>) atomically (a new symlink renamed
    over the old one) and refuses a release that is not verified.
  - C(state=pruned) deletes every release but current and the C(keep) newest verified ones.
  - >-
    C(state=discarded) deletes C(releases/<key>) when it is partial, with no stamp (a run
    failed or was killed before it verified) and not current. A verified or current release
    is left as it is, and so is a partial one whose build still runs (the build script's pid
    file C(<prefix>/wheels/<key>.pid) names a live process of this boot, as after a dropped
    connection); the next build of the key waits for that one and takes its wheel.
  - >-
    C(state=sealed) hands the code of C(releases/<key>) to root, read-only to the service user
    that runs vLLM: every file, directory and symlink in it (the venv, the wheel, anything
    else) owned by root:root, without a write bit for group or other and without setuid or
    setgid; read and execute bits stay. Symlinks are changed themselves, never followed out of
    the release. Changed only when some entry was not sealed yet; a missing release fails.
  - >-
    C(state=unsealed) gives C(releases/<key>) back to C(owner):C(group) (owners only, modes
    as they are), for a run that installs into that release again (a repair, or a partial
    release a previous run left); the role seals it again once it verified. A missing release
    is unchanged. Files with more than one hard link stay root's.
  - Both need root, and change nothing in check mode (they report what they would change).
options:
  prefix:
    description: The install prefix (vllm_source_prefix).
    type: path
    required: true
  state:
    description: C(info), C(current), C(pruned), C(discarded), C(sealed) or C(unsealed).
    type: str
    choices: [info, current, pruned, discarded, sealed, unsealed]
    default: info
  key:
    description: >-
      The release to make current (state=current; empty means the previous one), to discard
      (state=discarded), or to seal or unseal (required there).
    type: str
    default: ""
  owner:
    description: The service user that gets the release back (state=unsealed; required there).
    type: str
  group:
    description: The service user's group (state=unsealed; required there).
    type: str
  keep:
    description: Verified releases to keep besides current (vllm_source_keep_releases).
    type: int
    default: 2
  integrity:
    description: >-
      How state=info checks the venv of release C(key) (or of current) against its RECORD
      files: C(size) (every file's existence and size, and the sha256 of vllm's own files),
      C(hash) (every file's sha256 too; slow on a venv with torch), or C(none) (no check, for
      a task that only reads the stamp).
    type: str
    choices: [none, size, hash]
    default: size
author: vllm-fleet
"""

EXAMPLES = r"""
- name: Switch current to the verified release.
  vllm_release:
    prefix: /opt/vllm
    state: current
    key: 0123456789abcdef

- name: Delete all but current and the two newest releases.
  vllm_release:
    prefix: /opt/vllm
    state: pruned
    keep: 2

- name: Hand the verified release's code to root, read-only to the service user.
  vllm_release:
    prefix: /opt/vllm
    state: sealed
    key: 0123456789abcdef

- name: Give the release back to the service user to repair it.
  vllm_release:
    prefix: /opt/vllm
    state: unsealed
    key: 0123456789abcdef
    owner: vllm
    group: vllm
"""

RETURN = r"""
current:
  description: Key that current points at after the module ran (empty when none).
  type: str
  returned: always
previous:
  description: The newest verified release other than current (the rollback target), or empty.
  type: str
  returned: always
switched_from:
  description: Key current pointed at before (state=current), empty when none.
  type: str
  returned: when state is current
releases:
  description: Every release, newest first, with key, mtime and verified.
  type: list
  elements: dict
  returned: always
release_dir:
  description: >-
    The directory of release C(key), or of current when C(key) is empty (state=info); empty
    when neither.
  type: str
  returned: when state is info
stamp:
  description: >-
    The stamp of release C(key), or of current when C(key) is empty (state=info): its key, build
    inputs, pins, wheel and vLLM version; empty when that release has no readable stamp.
  type: dict
  returned: when state is info
damaged:
  description: >-
    The first 20 files of release C(key) (or of current) that are not as pip installed them,
    each with C(path) (absolute), C(problem) - C(missing), C(size) (another size than its
    RECORD's), C(hash) (another sha256) or C(unreadable) - and C(distribution) (the normalized
    name of the distribution whose RECORD lists it; absent for C(pyvenv.cfg) and
    C(bin/python)). Empty when the release named is not verified, or with integrity=none.
  type: list
  elements: dict
  returned: when state is info
damaged_count:
  description: >-
    How many files of that release are damaged, all of them (C(damaged) shows 20). Above 0
    means the release needs reinstalling.
  type: int
  returned: when state is info
damaged_distributions:
  description: >-
    C(name==version) of each distribution with a damaged file (its name alone when its
    dist-info names no version), sorted; what C(pip install --force-reinstall --no-deps)
    needs, besides the release's own vllm wheel.
  type: list
  elements: str
  returned: when state is info
integrity:
  description: >-
    The check state=info ran on the release (C(none), C(size) or C(hash)); empty when the
    release named is not verified (has no stamp) or none is, and so was not checked.
  type: str
  returned: when state is info
building:
  description: The pid of the build that still runs in the partial release, which was kept.
  type: str
  returned: when state is discarded and a build of the key runs
discarded:
  description: Whether the partial release C(key) was deleted (state=discarded).
  type: bool
  returned: when state is discarded
pruned:
  description: Keys of the releases deleted (state=pruned).
  type: list
  elements: str
  returned: when state is pruned
changed_entries:
  description: >-
    How many files, directories and symlinks of the release got another owner or mode
    (state=sealed, state=unsealed; in check mode, would have); 0 when it was as asked.
  type: int
  returned: when state is sealed or unsealed
"""


def list_releases(prefix: str) -> List[Release]:
    root = os.path.join(prefix, RELEASES_DIR)
    if not os.path.isdir(root):
        return []
    found: List[Release] = []
    for key in os.listdir(root):
        path = release_dir(prefix, key)
        if key.startswith(".") or not os.path.isdir(path) or os.path.islink(path):
            continue
        stamp = stamp_path(prefix, key)
        verified = os.path.isfile(stamp)
        found.append((key, os.stat(stamp if verified else path).st_mtime, verified))
    return sorted(found, key=lambda r: -r[1])


def current_key(prefix: str) -> str:
    link = os.path.join(prefix, "current")
    if not os.path.islink(link):
        return ""
    return os.path.basename(os.path.normpath(os.readlink(link)))


def switch(prefix: str, key: str) -> None:
    """Point prefix/current at releases/key: a temporary symlink renamed over the old one."""
    tmp = os.path.join(prefix, ".current.tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.path.join(RELEASES_DIR, key), tmp)
    os.replace(tmp, os.path.join(prefix, "current"))


def report(releases: List[Release], current: str) -> dict:
    return {
        "current": current,
        "previous": previous_release(releases, current) or "",
        "releases": [{"key": k, "mtime": m, "verified": v} for k, m, v in releases],
    }


def make_current(module: AnsibleModule, releases: List[Release], before: str) -> None:
    prefix = module.params["prefix"]
    key: Optional[str] = module.params["key"] or previous_release(releases, before)
    if not key:
        module.fail_json(
            msg=f"{prefix} has no verified release other than {before!r} to switch to; set "
            f"vllm_source_rollback_to to a key under {prefix}/releases",
            **report(releases, before),
        )
    verified = ", ".join(r[0] for r in releases if r[2])
    if key not in {r[0] for r in releases if r[2]}:
        module.fail_json(
            msg=f"release {key} is not a verified release under {prefix}/releases "
            f"(verified: {verified or 'none'}); set vllm_source_rollback_to to one of them",
            **report(releases, before),
        )
    link = os.path.join(prefix, "current")
    if os.path.lexists(link) and not os.path.islink(link):
        module.fail_json(msg=f"{link} exists and is not a symlink: move it away")
    changed = key != before
    if changed and not module.check_mode:
        switch(prefix, key)
    after = key if changed else before
    module.exit_json(changed=changed, switched_from=before, **report(releases, after))


def prune(module: AnsibleModule, releases: List[Release], current: str) -> None:
    doomed = releases_to_prune(releases, current, module.params["keep"])
    if doomed and not module.check_mode:
        for key in doomed:
            shutil.rmtree(release_dir(module.params["prefix"], key))
    left = [r for r in releases if r[0] not in doomed]
    module.exit_json(changed=bool(doomed), pruned=doomed, **report(left, current))


def discard(module: AnsibleModule, releases: List[Release], current: str) -> None:
    key = module.params["key"]
    if not key:
        module.fail_json(msg="state=discarded needs the key of the release to delete")
    doomed = is_partial(releases, current, key)
    pid_file = build_pid_path(module.params["prefix"], key)
    building = live_build(pid_file, host_boot_id()) if doomed else ""
    if building:
        # A run whose connection dropped left its build running in this release's venv: the
        # new run keeps the release and its build script waits for that build's wheel.
        module.exit_json(
            changed=False, discarded=False, building=building, **report(releases, current)
        )
    if doomed and not module.check_mode:
        shutil.rmtree(release_dir(module.params["prefix"], key))
    left = [r for r in releases if not (doomed and r[0] == key)]
    module.exit_json(changed=doomed, discarded=doomed, **report(left, current))


def plain_key(module: AnsibleModule) -> str:
    """The key of state=sealed/unsealed: a release's own directory name, nothing above it."""
    key = module.params["key"]
    if not key or key in (".", "..") or os.path.basename(key) != key:
        module.fail_json(
            msg=f"state={module.params['state']} needs the key of one release under "
            f"{module.params['prefix']}/releases, got {key!r}"
        )
    return key


def service_ids(module: AnsibleModule) -> Tuple[int, int]:
    """The uid and gid of the owner and group that get a release back (state=unsealed)."""
    owner, group = module.params["owner"], module.params["group"]
    try:
        return pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid
    except KeyError:
        module.fail_json(
            msg=f"state=unsealed gives the release to {owner}:{group}, but that user or group "
            "does not exist on this host: create them first (05_prefix.yml does)"
        )
        raise  # unreachable: fail_json exits


def seal(module: AnsibleModule, releases: List[Release], current: str) -> None:
    key = plain_key(module)
    path = release_dir(module.params["prefix"], key)
    state = module.params["state"]
    try:
        if state == "sealed":
            if not os.path.isdir(path) or os.path.islink(path):
                module.fail_json(msg=f"{path} is no release directory: nothing to seal")
            count = seal_release(path, module.check_mode)
        else:
            uid, gid = service_ids(module)
            count = unseal_release(path, uid, gid, module.check_mode)
    except OSError as exc:
        module.fail_json(
            msg=f"could not make {path} {state} ({exc}): something changed the release while "
            "it ran (a file swapped for a symlink?); look at the release and run again"
        )
    module.exit_json(
        changed=count > 0, changed_entries=count, release_dir=path, **report(releases, current)
    )


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "prefix": {"type": "path", "required": True},
            "state": {
                "type": "str",
                "choices": ["info", "current", "pruned", "discarded", "sealed", "unsealed"],
                "default": "info",
            },
            "key": {"type": "str", "default": ""},
            "owner": {"type": "str"},
            "group": {"type": "str"},
            "keep": {"type": "int", "default": 2},
            "integrity": {"type": "str", "choices": list(INTEGRITY_MODES), "default": "size"},
        },
        required_if=[("state", "unsealed", ("owner", "group"))],
        supports_check_mode=True,
    )
    releases = list_releases(module.params["prefix"])
    current = current_key(module.params["prefix"])
    if module.params["state"] == "current":
        make_current(module, releases, current)
    elif module.params["state"] == "pruned":
        prune(module, releases, current)
    elif module.params["state"] == "discarded":
        discard(module, releases, current)
    elif module.params["state"] in ("sealed", "unsealed"):
        seal(module, releases, current)
    module.exit_json(
        changed=False,
        **info(
            module.params["prefix"], module.params["key"] or current, module.params["integrity"]
        ),
        **report(releases, current),
    )


def info(prefix: str, key: str, integrity: str = "size") -> dict:
    """The directory, the stamp and the damage of one release: what the role reads instead of
    spelling paths. Only a verified release (one with a stamp) is checked: any other still
    has to be installed anyway."""
    stamp, _ = read_stamp(stamp_path(prefix, key)) if key else (None, "")
    verified = bool(key) and os.path.isfile(stamp_path(prefix, key))
    mode = integrity if verified else "none"
    return {
        "release_dir": release_dir(prefix, key) if key else "",
        "stamp": stamp if isinstance(stamp, dict) else {},
        "integrity": mode if verified else "",
        **check_venv(venv_dir(prefix, key) if key else "", mode, require=["vllm"]),
    }


if __name__ == "__main__":
    main()
