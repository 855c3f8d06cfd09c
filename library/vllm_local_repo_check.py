#!/usr/bin/python
"""Check, without writing anything, that the service user can clone a local repository."""

from __future__ import annotations

import os
import pwd

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: vllm_local_repo_check
short_description: Check that a local vLLM repository exists and the service user can read it
description:
  - >-
    For a C(vllm_source_repo_url) on the host's own disk (an absolute path or C(file:///path)),
    checks, before the host changes, what the clone needs later; the path exists, it is a git
    repository (bare, or a work tree with C(.git)), and the service user can read every file
    and enter every directory of it.
  - The reading is done by a child process running as the service user, or as C(nobody) when
    that user does not exist yet (a user the role creates has no more access than C(nobody)).
  - Fails naming the variable, the path, the first file the user cannot read and the fix; a
    missing repository is not a network error, so nothing retries it.
  - Changes nothing on the host; works in check mode. Needs root to switch users.
options:
  path:
    description: The repository's path on the host (the URL without C(file://)).
    type: path
    required: true
  user:
    description: The service user that clones (vllm_source_user).
    type: str
    required: true
author: vllm-fleet
"""

EXAMPLES = r"""
- name: Check that the service user can read the local repository.
  vllm_local_repo_check:
    path: /srv/mirror/vllm.git
    user: vllm
"""

RETURN = r"""
git_dir:
  description: The repository's git directory (the path itself when bare, else its .git).
  type: str
  returned: success
checked_as:
  description: The user whose access was checked.
  type: str
  returned: success
"""


def git_dir_of(path: str) -> str:
    """The git directory of a bare repository or a work tree, or "" when it is neither."""
    for candidate in (os.path.join(path, ".git"), path):
        if os.path.isfile(os.path.join(candidate, "HEAD")) and os.path.isdir(
            os.path.join(candidate, "objects")
        ):
            return candidate
    return ""


def first_unreadable(top: str) -> str:
    """The first path under `top` this process cannot read (or enter), or ""."""
    if not os.access(top, os.R_OK | os.X_OK):
        return top
    for folder, dirs, files in os.walk(top, onerror=lambda error: None):
        for name in dirs:
            path = os.path.join(folder, name)
            if not os.access(path, os.R_OK | os.X_OK):
                return path
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path) and not os.access(path, os.R_OK):
                return path
    return ""


def unreadable_as(user: pwd.struct_passwd, top: str) -> str:
    """first_unreadable(top) in a child process running as `user`."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to the user, walk, report, exit
        os.close(read_end)
        try:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            answer = first_unreadable(top)
        except BaseException as exc:  # reported to the parent, whatever it is
            answer = f"{top} (could not check: {exc})"
        os.write(write_end, answer.encode("utf-8", "surrogateescape"))
        os._exit(0)
    os.close(write_end)
    chunks = []
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode("utf-8", "surrogateescape")


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "user": {"type": "str", "required": True},
        },
        supports_check_mode=True,
    )
    path, user = module.params["path"], module.params["user"]
    host = os.uname()[1]
    if not os.path.exists(path):
        module.fail_json(
            msg=f"vllm_source_repo_url names {path}, but there is no such path on {host}: "
            f"this is a local repository, not a network one, so retrying will not help. Copy "
            f"or mount the vLLM mirror there (e.g. git clone --mirror), or fix the URL."
        )
    git_dir = git_dir_of(path)
    if not git_dir:
        module.fail_json(
            msg=f"vllm_source_repo_url names {path} on {host}, which is not a git repository "
            f"(no HEAD and objects/ there or in .git/): point it at a clone or a mirror of vLLM."
        )
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        account = pwd.getpwnam("nobody")
    if os.geteuid() != 0:
        module.fail_json(msg="vllm_local_repo_check needs root (become: true) to switch users")
    unreadable = unreadable_as(account, git_dir)
    if unreadable:
        who = user if account.pw_name == user else f"{user} (checked as nobody: {user} is new)"
        module.fail_json(
            msg=f"vllm_source_repo_url {path}: {who} cannot read {unreadable} on {host}, so "
            f"the clone would fail after the host changed. Make the repository readable to "
            f"other users (chmod -R o+rX {git_dir}) or give it to vllm_source_user's group."
        )
    module.exit_json(changed=False, git_dir=git_dir, checked_as=account.pw_name)


if __name__ == "__main__":
    main()
