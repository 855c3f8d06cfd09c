"""input_form_errors: what is wrong with the form of the tag, commit, prefix, repository URL
and build progress interval, one message each, before the host is read or changed."""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Mapping
from urllib.parse import urlsplit

DOCUMENTATION = r"""
name: input_form_errors
short_description: The form errors of the role's tag, commit, prefix and repository URL
description:
  - >-
    Checks C(vllm_source_version) (a release tag with its C(v): C(0.30.0) is refused with the
    spelling to use, since the role passes the tag to git as it is given), C(vllm_source_commit),
    C(vllm_source_prefix) (absolute, not C(/), no whitespace, no C(..), no characters a shell or
    a systemd unit would split on) and C(vllm_source_repo_url) (not empty; a local repository
    as an absolute path or C(file:///path); credentials only in C(http(s)://) URLs, where git
    sends them; no credentials or host in a C(file://) URL) and, when given,
    C(vllm_source_build_progress_interval) (whole seconds from 5 to 600) and
    C(vllm_source_build_sample_interval) (0 to 3600).
  - Returns one message per wrong input, each naming the variable, what is wrong and the fix;
    an empty list when all are well formed. A credential is never part of a message.
options:
  _input:
    description: The inputs, by their variable names.
    type: dict
    required: true
"""

EXAMPLES = r"""
errors: "{{ {'vllm_source_version': vllm_source_version, 'vllm_source_commit': vllm_source_commit,
  'vllm_source_prefix': vllm_source_prefix, 'vllm_source_repo_url': vllm_source_repo_url}
  | input_form_errors }}"
"""

RETURN = r"""
_value:
  description: One message per wrong input, in the order above.
  type: list
  elements: str
"""

TAG = re.compile(r"^v[0-9]+\.[0-9]+\.[0-9]+((rc|\.post|\.dev)[0-9]+)?$")
COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
# Characters a shell, a systemd unit or an environment line treats specially.
PREFIX_UNSAFE = re.compile(r"""[\s"'`$\\;&|<>*?()\[\]{}#~%!,=:]""")
SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:")


def version_error(version: str) -> str:
    if TAG.match(version):
        return ""
    if TAG.match("v" + version):
        return (
            f"vllm_source_version must be the release tag as git names it, with its v: set "
            f"vllm_source_version: v{version} (got '{version}')"
        )
    return f"vllm_source_version must be a release tag such as v0.30.0 (got '{version}')"


def commit_error(commit: str) -> str:
    if commit == "" or COMMIT.match(commit):
        return ""
    return f"vllm_source_commit must be empty or 7-40 lowercase hex digits (got '{commit}')"


def prefix_error(prefix: str) -> str:
    if not prefix.startswith("/") or prefix.rstrip("/") == "":
        return f"vllm_source_prefix must be an absolute path other than / (got '{prefix}')"
    if re.search(r"\s", prefix):
        return (
            f"vllm_source_prefix {prefix!r} contains whitespace, which the build's scripts, "
            f"the venv's entry points and systemd units would split on: choose a path without "
            f"spaces, e.g. /opt/vllm"
        )
    if ".." in prefix.split("/"):
        return f"vllm_source_prefix must not contain '..' (got '{prefix}'): give the real path"
    bad = sorted(set(PREFIX_UNSAFE.findall(prefix)))
    if bad:
        return (
            f"vllm_source_prefix '{prefix}' contains {' '.join(bad)}, which shells and "
            f"systemd units treat specially: use letters, digits, '/', '.', '_', '-' and '+'"
        )
    return ""


def repo_url_error(url: str) -> str:
    if url == "":
        return "vllm_source_repo_url must not be empty; set it to vLLM's git URL or a local mirror"
    if url.startswith("/") or SCP_LIKE.match(url):
        return ""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if "@" in parts.netloc:
            return (
                "vllm_source_repo_url is a file:// URL with credentials (user@ or user:token@), "
                "which a local repository never uses and which would be written to the host's "
                "git configuration: use file:///path/to/vllm.git"
            )
        if parts.netloc not in ("", "localhost"):
            return (
                f"vllm_source_repo_url file://{parts.netloc}/... names a host; a file:// URL "
                f"reads this host's disk: use file:///path/to/vllm.git, or an ssh:// or "
                f"https:// URL for another machine"
            )
        if not parts.path.startswith("/"):
            return (
                "vllm_source_repo_url file:// URL needs an absolute path: file:///path/to/vllm.git"
            )
        return ""
    if scheme in ("http", "https"):
        return "" if parts.hostname else "vllm_source_repo_url has no host: https://host/path"
    if scheme in ("ssh", "git", "git+ssh", "ssh+git"):
        if parts.password is not None:
            return (
                f"vllm_source_repo_url is an {scheme}:// URL with a password, which git does "
                f"not send over {scheme}: use an SSH key for the service user, or https:// "
                f"with a token"
            )
        return ""
    return (
        "vllm_source_repo_url must be an https://, ssh:// or file:/// URL, an scp-like "
        "git@host:path, or an absolute path (a relative path would depend on the "
        "directory the clone runs in)"
    )


# vllm_source_build_progress_interval: how often the build wait reports, in seconds.
PROGRESS_INTERVAL = (5, 600)


def _whole_seconds(value: Any, low: int, high: int) -> bool:
    try:
        return low <= int(str(value)) <= high
    except ValueError:
        return False


def progress_interval_error(value: Any) -> str:
    low, high = PROGRESS_INTERVAL
    if _whole_seconds(value, low, high):
        return ""
    return (
        f"vllm_source_build_progress_interval must be whole seconds from {low} to {high} "
        f"(got '{value}'): the build reports its progress that often"
    )


def sample_interval_error(value: Any) -> str:
    if _whole_seconds(value, 0, 3600):
        return ""
    return (
        f"vllm_source_build_sample_interval must be whole seconds from 0 (no samples) to 3600 "
        f"(got '{value}')"
    )


CACHE_SIZE = re.compile(r"[1-9][0-9]*(\.[0-9]+)?[KMGT]")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What the role sets itself for the cache (filter_plugins/compiler_cache_env.py) and the build.
CACHE_ENV_OWN = ("SCCACHE_BASEDIRS", "SCCACHE_SERVER_UDS", "SCCACHE_SERVER_PORT", "PATH")


def cache_size_error(value: Any) -> str:
    if CACHE_SIZE.fullmatch(str(value)):
        return ""
    return (
        f"vllm_source_compiler_cache_size must be a size such as 50G (a number, then K, M, G "
        f"or T; got '{value}')"
    )


# Each tool's own variables: a backend set for one tool is never used by the other.
CACHE_ENV_PREFIXES = {"sccache": "SCCACHE_", "ccache": "CCACHE_"}


def cache_env_error(names: Any, tool: str = "") -> str:
    """Only the names of vllm_source_compiler_cache_env are checked: its values may be
    secrets, and never reach a message. `tool` is vllm_source_compiler_cache."""
    bad = sorted(str(n) for n in names if not ENV_NAME.fullmatch(str(n)))
    if bad:
        return (
            f"vllm_source_compiler_cache_env holds {', '.join(repr(n) for n in bad)}, which "
            f"cannot be an environment variable's name: use the tool's own variables, such as "
            f"SCCACHE_REDIS_ENDPOINT"
        )
    own = sorted(str(n) for n in names if str(n) in CACHE_ENV_OWN)
    if own:
        return (
            f"vllm_source_compiler_cache_env sets {', '.join(own)}, which the role sets for "
            f"the cache's server and its hits across releases: leave them out"
        )
    others = {t: p for t, p in CACHE_ENV_PREFIXES.items() if t != tool}
    for other, prefix in others.items():
        foreign = sorted(str(n) for n in names if str(n).startswith(prefix))
        if foreign:
            return (
                f"vllm_source_compiler_cache_env sets {', '.join(foreign)}, {other}'s settings, "
                f"but vllm_source_compiler_cache is {tool or 'unset'}: set "
                f"vllm_source_compiler_cache: {other} to use that backend"
            )
    return ""


def input_form_errors(inputs: Mapping[str, Any]) -> List[str]:
    """One message per wrong input; [] when all are well formed."""
    checks = [
        version_error(str(inputs.get("vllm_source_version", ""))),
        commit_error(str(inputs.get("vllm_source_commit", ""))),
        prefix_error(str(inputs.get("vllm_source_prefix", ""))),
        repo_url_error(str(inputs.get("vllm_source_repo_url", ""))),
    ]
    if "vllm_source_build_progress_interval" in inputs:
        checks.append(progress_interval_error(inputs["vllm_source_build_progress_interval"]))
    if "vllm_source_build_sample_interval" in inputs:
        checks.append(sample_interval_error(inputs["vllm_source_build_sample_interval"]))
    if "vllm_source_compiler_cache_size" in inputs:
        checks.append(cache_size_error(inputs["vllm_source_compiler_cache_size"]))
    if "vllm_source_compiler_cache_env" in inputs:
        # The names only (a dict's keys): the values may be secrets.
        checks.append(
            cache_env_error(
                list(inputs["vllm_source_compiler_cache_env"]),
                str(inputs.get("vllm_source_compiler_cache", "")),
            )
        )
    return [message for message in checks if message]


class FilterModule:
    """The form of the role's inputs."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"input_form_errors": input_form_errors}
