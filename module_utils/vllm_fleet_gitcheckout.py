"""Check out a tag with git, an http(s) URL's user:token kept off the disk.

git writes the URL it clones or fetches into the checkout's .git/config. So git is given the
URL without credentials, and the credentials reach it through the environment of its own
process (set by the module, on no command line): git's configuration from the environment
(GIT_CONFIG_COUNT, git 2.31 or later) defines a credential helper that answers from two
variables, after an empty helper that clears those of the system and user configuration (a
`store` helper there would write the token to ~/.git-credentials).
"""

from __future__ import annotations

import os
from typing import Callable, Dict, List, Optional, Tuple

from ansible.module_utils.vllm_fleet_gitrefs import classify_url, url_secrets

# git runs a helper whose value starts with "!" as shell code, the action appended: answer
# "get" from the environment, ignore "store" and "erase".
CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || return 0; '
    'printf "username=%s\\npassword=%s\\n" '
    '"$VLLM_FLEET_GIT_USERNAME" "$VLLM_FLEET_GIT_PASSWORD"; }; f'
)

Runner = Callable[[List[str], Optional[str]], Tuple[int, str, str]]


class CheckoutError(Exception):
    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg


def git_url(url: str) -> str:
    """The URL git may write to disk: an http(s) URL without user[:password]; others as
    they are (an scp-like git@host:path names a login, no secret)."""
    target = classify_url(url)
    return target.location if target.kind == "http" else url


def credential_env(url: str) -> Dict[str, str]:
    """The environment under which git answers the URL's credentials from memory, prompts
    off; without credentials, just prompts off (a run must never wait on a terminal)."""
    env = {"GIT_TERMINAL_PROMPT": "0"}
    target = classify_url(url)
    if target.kind != "http" or target.username is None:
        return env
    env.update(
        GIT_CONFIG_COUNT="2",
        GIT_CONFIG_KEY_0="credential.helper",
        GIT_CONFIG_VALUE_0="",
        GIT_CONFIG_KEY_1="credential.helper",
        GIT_CONFIG_VALUE_1=CREDENTIAL_HELPER,
        VLLM_FLEET_GIT_USERNAME=target.username,
        VLLM_FLEET_GIT_PASSWORD=target.password or "",
    )
    return env


def scrub(text: str, url: str) -> str:
    """Text with the URL's credential strings masked (git may quote the URL it was given)."""
    for secret in sorted(url_secrets(url), key=len, reverse=True):
        text = text.replace(secret, "********")
    return text


def checkout(run: Runner, url: str, dest: str, tag: str, depth: int = 0) -> Dict[str, object]:
    """Clone `url` at `tag` into `dest`, or move an existing checkout there (its origin set to
    the URL, the tag fetched, checked out detached). Refuses a checkout with local changes to
    tracked files. Returns before (None for a new clone), after and changed (a new commit,
    or the origin URL corrected)."""
    shown = git_url(url)
    deep = ["--depth", str(depth)] if depth > 0 else []

    def git(*args: str, cwd: Optional[str] = dest) -> str:
        rc, out, err = run(["git", *args], cwd)
        if rc != 0:
            raise CheckoutError(
                scrub(f"git {' '.join(args[:2])} of {shown} failed ({rc}): {err.strip()}", url)
            )
        return out.strip()

    if not os.path.isdir(os.path.join(dest, ".git")):
        git("clone", "--quiet", *deep, "--branch", tag, "--", shown, dest, cwd=None)
        return {"before": None, "after": git("rev-parse", "HEAD"), "changed": True}
    before = git("rev-parse", "HEAD")
    if git("status", "--porcelain", "--untracked-files=no"):
        raise CheckoutError(
            f"{dest} has local changes to tracked files: commit or drop them, or remove {dest}"
        )
    rc, current, _ = run(["git", "remote", "get-url", "origin"], dest)
    moved = rc != 0 or current.strip() != shown
    if rc != 0:
        git("remote", "add", "origin", shown)
    elif moved:  # also drops the credentials an older run left in the URL
        git("remote", "set-url", "origin", shown)
    git("fetch", "--quiet", *deep, "--force", "origin", f"+refs/tags/{tag}:refs/tags/{tag}")
    git("checkout", "--quiet", "--detach", f"refs/tags/{tag}^{{commit}}")
    after = git("rev-parse", "HEAD")
    return {"before": before, "after": after, "changed": moved or after != before}
