#!/usr/bin/python
"""Take or release the per-host lock that lets one vllm_source run at a time change a prefix."""

from __future__ import annotations

import errno
import os
import socket
import time
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_fleet import describe_holder, lock_content, parse_lock

DOCUMENTATION = r"""
---
module: vllm_lock
short_description: One vllm_source run at a time per host
description:
  - C(state=present) creates the lock file with C(O_CREAT|O_EXCL), recording the run id, the
    module's pid, the host and the time; when another run holds it, waits up to C(timeout)
    seconds for it to go, then fails naming the holder and how to clear a stale lock.
  - C(state=absent) removes the lock file when this run (C(run_id)) holds it; a lock that
    another run holds is left alone.
  - Reports C(changed=false) either way; taking and releasing the lock is bookkeeping, not a
    change of the install, so a run that changes nothing else reports nothing changed.
options:
  path:
    description: The lock file, C(<vllm_source_prefix>/.vllm-source.lock).
    type: path
    required: true
  run_id:
    description: Identifies this run; the same value releases the lock.
    type: str
    required: true
  owner:
    description: Free text that names who runs (user and controller), shown to waiting runs.
    type: str
    default: ""
  state:
    description: C(present) takes the lock, C(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  timeout:
    description: Seconds to wait for another run's lock (vllm_source_lock_timeout).
    type: int
    default: 600
author: vllm-fleet
"""

EXAMPLES = r"""
- name: Take the prefix's lock.
  vllm_lock:
    path: /opt/vllm/.vllm-source.lock
    run_id: "20250101T000000-ab12cd"
    timeout: 600

- name: Release the prefix's lock.
  vllm_lock:
    path: /opt/vllm/.vllm-source.lock
    run_id: "20250101T000000-ab12cd"
    state: absent
"""

RETURN = r"""
waited:
  description: Seconds spent waiting for another run's lock.
  type: float
  returned: when state is present
holder:
  description: What the lock file recorded when this run found or released it.
  type: dict
  returned: when the lock file existed
"""

POLL_SECONDS = 1.0


def try_create(path: str, content: str) -> bool:
    """Create `path` holding `content` unless it exists; True when this call created it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            return False
        raise
    with os.fdopen(fd, "w") as handle:
        handle.write(content + "\n")
    return True


def read_holder(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return parse_lock(handle.read())
    except FileNotFoundError:
        return {}


def acquire(module: AnsibleModule) -> None:
    path, run_id, timeout = module.params["path"], module.params["run_id"], module.params["timeout"]
    if module.check_mode:  # nothing will change: report the holder, if any
        holder = read_holder(path)
        module.exit_json(changed=False, waited=0.0, **({"holder": holder} if holder else {}))
    if not os.path.isdir(os.path.dirname(path)):
        module.fail_json(msg=f"the lock's directory {os.path.dirname(path)} does not exist")
    content = lock_content(
        run_id,
        os.getpid(),
        socket.gethostname(),
        datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        module.params["owner"],
    )
    start = time.monotonic()
    holder: dict = {}
    while True:
        if try_create(path, content):
            module.exit_json(changed=False, waited=round(time.monotonic() - start, 1))
        holder = read_holder(path) or holder
        if holder.get("run_id") == run_id:
            module.exit_json(changed=False, waited=0.0, holder=holder)  # taken already
        if time.monotonic() - start >= timeout:
            break
        time.sleep(POLL_SECONDS)
    host = socket.gethostname()
    module.fail_json(
        msg=(
            f"{path} is held by {describe_holder(holder)}; waited {timeout} s "
            "(vllm_source_lock_timeout). Another vllm_source run is changing this host: wait "
            "for it, or raise vllm_source_lock_timeout. If no such run is alive (it was "
            f"killed), the lock is stale: remove it with `rm {path}` on {host}."
        ),
        holder=holder,
    )


def release(module: AnsibleModule) -> None:
    path, run_id = module.params["path"], module.params["run_id"]
    holder = read_holder(path)
    if holder and holder.get("run_id") == run_id and not module.check_mode:
        os.unlink(path)
    module.exit_json(changed=False, **({"holder": holder} if holder else {}))


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "run_id": {"type": "str", "required": True},
            "owner": {"type": "str", "default": ""},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "timeout": {"type": "int", "default": 600},
        },
        supports_check_mode=True,
    )
    if module.params["state"] == "present":
        acquire(module)
    else:
        release(module)


if __name__ == "__main__":
    main()
