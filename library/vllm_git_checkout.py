#!/usr/bin/python
"""Check out a tag of the vLLM repository with git, credentials kept off the disk."""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_gitcheckout import (
    CheckoutError,
    checkout,
    credential_env,
    git_url,
)
from ansible.module_utils.vllm_fleet_gitrefs import url_secrets

DOCUMENTATION = r"""
---
module: vllm_git_checkout
short_description: Check out a tag with git, an http(s) URL's credentials never on disk
description:
  - Clones I(repo) at I(version) into I(dest), or moves an existing checkout there (origin
    set to the URL, the tag fetched, checked out detached, as C(ansible.builtin.git) does).
  - >-
    git writes the URL it is given into C(.git/config). An C(http(s)://user:token@) URL is
    therefore given to git without C(user:token@); the credentials reach git in the
    environment of its own process only, answered by a credential helper defined there
    (git's configuration from the environment, git 2.31 or later), after an empty helper
    that clears the system's and the user's helpers, so no C(store) helper writes them.
    An origin URL with credentials that an older run left is replaced.
  - Terminal prompts are off; failures mask the credentials.
  - Refuses a checkout with local changes to tracked files.
options:
  repo:
    description: The repository (vllm_source_repo_url), credentials included where it has them.
    type: str
    required: true
  dest:
    description: The checkout's directory.
    type: path
    required: true
  version:
    description: The tag to check out, such as C(v0.30.0).
    type: str
    required: true
  depth:
    description: History to fetch, in commits; C(0) fetches all of it.
    type: int
    default: 0
author: vllm-fleet
"""

EXAMPLES = r"""
- name: Check out vLLM at the requested tag.
  vllm_git_checkout:
    repo: "{{ vllm_source_repo_url }}"
    dest: /opt/vllm/extern/vllm
    version: v0.30.0
    depth: 1
  become: true
  become_user: vllm
"""

RETURN = r"""
before:
  description: The commit checked out before; null for a new clone.
  type: str
  returned: success
after:
  description: The commit checked out now.
  type: str
  returned: success
  sample: 5a4f3c2b1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a
url_shown:
  description: The URL as git has it, without credentials.
  type: str
  returned: always
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "repo": {"type": "str", "required": True, "no_log": True},
            "dest": {"type": "path", "required": True},
            "version": {"type": "str", "required": True},
            "depth": {"type": "int", "default": 0},
        },
        supports_check_mode=True,
    )
    p = module.params
    if not url_secrets(p["repo"]):
        module.no_log_values.discard(p["repo"])
    shown = git_url(p["repo"])
    if module.check_mode:
        module.exit_json(changed=True, before=None, after=None, url_shown=shown)
    env = credential_env(p["repo"])

    def run(argv, cwd):
        return module.run_command(argv, cwd=cwd, environ_update=env)

    try:
        result = checkout(run, p["repo"], p["dest"], p["version"], p["depth"])
    except CheckoutError as exc:
        module.fail_json(msg=exc.msg, url_shown=shown)
    module.exit_json(url_shown=shown, **result)


if __name__ == "__main__":
    main()
