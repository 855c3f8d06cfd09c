"""local_repo_path: the path on the host of a repository URL that names the host's own disk."""

from __future__ import annotations

from typing import Any, Callable, Dict
from urllib.parse import unquote, urlsplit

DOCUMENTATION = r"""
name: local_repo_path
short_description: The host path of a local repository URL, or an empty string
description:
  - >-
    An absolute path gives itself; C(file:///path) and C(file://localhost/path) give C(/path)
    (percent-escapes decoded). Any other URL (https, ssh, scp-like) gives C("").
  - Used for the C(safe.directory) entry of the service user's git configuration and for the
    preflight's check that the service user can read the repository; the URL's form is checked
    first (input_form_errors refuses credentials or a host in a file:// URL).
options:
  _input:
    description: C(vllm_source_repo_url).
    type: str
    required: true
"""

EXAMPLES = r"""
path: "{{ vllm_source_repo_url | local_repo_path }}"
"""

RETURN = r"""
_value:
  description: The path, or empty.
  type: str
"""


def local_repo_path(url: str) -> str:
    """The host path of a local repository URL, else ""."""
    if url.startswith("/"):
        return url
    parts = urlsplit(url)
    if parts.scheme.lower() == "file" and parts.netloc in ("", "localhost"):
        return unquote(parts.path)
    return ""


class FilterModule:
    """Repository URLs that name the host's disk."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"local_repo_path": local_repo_path}
