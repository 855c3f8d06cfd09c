#!/usr/bin/python
"""Resolve a tag of the vLLM repository to its commit without git, before git is installed."""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_gitrefs import (
    GitRefsError,
    resolve_tag,
    shown_url,
    url_secrets,
)

DOCUMENTATION = r"""
---
module: vllm_git_refs
short_description: Resolve a tag of a git repository to its commit without git
description:
  - Reads C(refs/tags/<tag>) and peels it to the commit it points at (through annotated tags
    and tags of tags), the way C(git ls-remote) shows it, without running git, so that a
    bad tag is refused before any system package is installed.
  - A local repository (C(file:///path) or an absolute path; C(<path>/.git), C(<path>),
    C(<path>.git) as git tries them; bare or not) is read from its loose refs and
    C(packed-refs); a tag object is read from loose objects or from packs (deltas applied).
  - An C(http://) or C(https://) URL is read from
    C(<url>/info/refs?service=git-upload-pack), smart (protocol v0/v1) or dumb; a
    C(user:password@) in it is sent as HTTP Basic auth and never shown. Proxies come from
    C(https_proxy), C(http_proxy) and C(no_proxy); certificates are verified.
  - Other URL forms (C(ssh://), C(git@host:path), C(git://), relative paths) and repository
    features it does not read (SHA-256 objects, reftable, a tag of a tree) give
    I(supported=false) and a I(reason); then git, once installed, decides.
  - A tag that does not exist is no failure (I(found=false)). Failures name
    vllm_source_repo_url and the fix; I(retryable) says whether it was a network error.
  - Changes nothing; works in check mode.
options:
  url:
    description:
      - The repository (vllm_source_repo_url). It may hold credentials; only the credential
        part is kept out of the output.
    type: str
    required: true
  tag:
    description: The tag (vllm_source_version), such as C(v0.30.0).
    type: str
    required: true
  timeout:
    description: Seconds an HTTP(S) request may take.
    type: int
    default: 30
author: vllm-fleet
"""

EXAMPLES = r"""
- name: Resolve the requested tag before any system package is installed.
  vllm_git_refs:
    url: "{{ vllm_source_repo_url }}"
    tag: "{{ vllm_source_version }}"
  register: __vllm_source_reg_git_refs
  retries: "{{ vllm_source_network_retries }}"
  delay: "{{ vllm_source_network_retry_delay }}"
  # A missing repository or refused credentials fail at once; network errors are retried.
  until: >-
    __vllm_source_reg_git_refs is succeeded
    or not __vllm_source_reg_git_refs.retryable | default(true)
"""

RETURN = r"""
commit:
  description: The 40-hex commit the tag points at, peeled; empty when not found or not supported.
  type: str
  returned: always
  sample: 5a4f3c2b1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a
found:
  description: Whether the repository has the tag (false also when not supported).
  type: bool
  returned: always
supported:
  description: Whether this module could read the URL; false means ask git.
  type: bool
  returned: always
source:
  description: How the tag was read, C(local) or C(http); empty when the URL form is not supported.
  type: str
  returned: always
  sample: http
url_shown:
  description: The URL with any user:password replaced by C(***@).
  type: str
  returned: always
  sample: https://***@git.example/vllm-project/vllm.git
reason:
  description: Why supported is false, else empty.
  type: str
  returned: always
  sample: ssh:// URLs are read by git
retryable:
  description: On failure, whether it was a network error that a retry may cure.
  type: bool
  returned: failure
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "required": True, "no_log": True},
            "tag": {"type": "str", "required": True},
            "timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    p = module.params
    if not url_secrets(p["url"]):
        # Without credentials nothing in the URL is secret: let url_shown and the messages
        # that name the path show it instead of ********.
        module.no_log_values.discard(p["url"])
    shown = shown_url(p["url"])
    try:
        result = resolve_tag(p["url"], p["tag"], p["timeout"])
    except GitRefsError as exc:
        module.fail_json(msg=exc.msg, retryable=exc.retryable, url_shown=shown)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
