#!/usr/bin/python
"""Take or release the per-host lock that lets one vllm_source run at a time change a prefix."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import tempfile
import time
from datetime import datetime, timezone
from typing import Any, Dict, Mapping, Optional, Tuple

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_fleet import parse_lock
from ansible.module_utils.vllm_fleet_lock import (
    describe,
    host_reboot_reason,
    lock_record,
    stale_matches,
    why_not_gone,
)

DOCUMENTATION = r"""
---
module: vllm_lock
short_description: One vllm_source run at a time per host
description:
  - C(state=present) creates the lock file with C(O_CREAT|O_EXCL), recording the run id, the
    owner, the host's name and boot id, the module's pid, the time and the run's controller
    process (O(controller)). When another run holds it, waits up to C(timeout) seconds for it
    to go, then fails naming the holder.
  - A lock whose holder is provably gone is taken over at once, reported in C(took_over) and
    in a warning that names the holder and why it is gone. Provably gone is either decided
    here, when this host booted since the holder took the lock (its recorded boot id differs;
    a reboot ends everything the run started on the host), or by the controller, when it
    finds the holder's ansible-playbook gone (the role's vllm_controller lookup) and names it
    in O(stale). Anything else (a run of another controller, a lock without these records,
    an unreadable lock) is waited for, then refused.
  - Taking over is atomic against other runs doing the same; they serialize on an
    C(flock) of C(<path>.takeover), and each replaces the lock (by C(rename)) only while it
    still holds the very record that was found stale.
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
  controller:
    description:
      - This run's controller process, as the role's C(lookup('vllm_controller')) returns it;
        recorded in the lock so that a later run of the same controller can tell whether
        this one is gone. Without it, the lock can never be proved stale by the controller.
    type: dict
    default: {}
    suboptions:
      hostname:
        description: The controller's host name.
        type: str
      machine_id:
        description: The controller's /etc/machine-id.
        type: str
      boot_id:
        description: The controller's /proc/sys/kernel/random/boot_id.
        type: str
      pid_ns:
        description: The PID namespace of its ansible-playbook, C(pid:[4026531836]) say.
        type: str
      pid:
        description: The pid of the run's ansible-playbook process.
        type: int
      pid_start:
        description: Field 22 of that process's /proc/<pid>/stat (start, clock ticks after boot).
        type: int
  stale:
    description:
      - The holder that the controller found gone, C({run_id, reason}) as
        C(lookup('vllm_controller', holder=...)) returns it, or C({}). The lock is taken over
        only while that very run holds it.
    type: dict
    default: {}
    suboptions:
      run_id:
        description: The run that holds the lock and is gone.
        type: str
      reason:
        description: Why it is gone, for the warning and C(took_over).
        type: str
  state:
    description: C(present) takes the lock, C(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  wait:
    description:
      - With C(false), return at once with C(acquired=false) and the C(holder) when a run
        that is not provably gone holds the lock, instead of waiting and failing; the role
        then asks the controller about that holder.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for another run's lock (vllm_source_lock_timeout).
    type: int
    default: 600
author: vllm-fleet
"""

EXAMPLES = r"""
- name: Take the prefix's lock if it is free; else name its holder.
  vllm_lock:
    path: /opt/vllm/.vllm-source.lock
    run_id: "20250101T000000Z-12345"
    owner: root@ctl
    controller: "{{ lookup('vllm_controller') }}"
    wait: false
  register: found

- name: Take the prefix's lock, taking over from a run the controller proves gone.
  vllm_lock:
    path: /opt/vllm/.vllm-source.lock
    run_id: "20250101T000000Z-12345"
    owner: root@ctl
    controller: "{{ lookup('vllm_controller') }}"
    stale: "{{ lookup('vllm_controller', holder=found.holder | default({})) }}"
    timeout: 600

- name: Release the prefix's lock.
  vllm_lock:
    path: /opt/vllm/.vllm-source.lock
    run_id: "20250101T000000Z-12345"
    state: absent
"""

RETURN = r"""
acquired:
  description: Whether this run holds the lock now (never in check mode).
  type: bool
  returned: when state is present
waited:
  description: Seconds spent waiting for another run's lock.
  type: float
  returned: when state is present
holder:
  description: What the lock file recorded when this run found or released it.
  type: dict
  returned: when the lock file existed
took_over:
  description: The stale holder this run took the lock from, and why it is gone.
  type: dict
  returned: when this run took over a stale lock
  contains:
    run_id:
      description: The run that held the lock.
      type: str
    reason:
      description: Why that run is provably gone.
      type: str
"""

POLL_SECONDS = 1.0
BOOT_ID = "/proc/sys/kernel/random/boot_id"


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


def read_lock(path: str) -> Tuple[Optional[str], Dict[str, Any]]:
    """(text, holder) of the lock file; (None, {}) when there is none."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None, {}
    return text, parse_lock(text)


def read_holder(path: str) -> Dict[str, Any]:
    return read_lock(path)[1]


def boot_id() -> str:
    """This host's boot id (BOOT_ID), "" where there is none to read."""
    try:
        with open(BOOT_ID, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def take_over(path: str, found: str, content: str) -> bool:
    """Replace the lock with `content` if it still holds `found`; True when this call did.

    Runs that take over at once serialize on an flock of <path>.takeover (the kernel drops
    it when its process dies, so it never goes stale), and the first one replaces the lock
    by rename: the others then find another record than the one they judged, and wait.
    """
    with open(path + ".takeover", "a", encoding="utf-8") as guard:
        fcntl.flock(guard.fileno(), fcntl.LOCK_EX)
        try:
            if read_lock(path)[0] != found:
                return False
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".vllm-source-lock.")
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(content + "\n")
                os.chmod(tmp, 0o644)
                os.rename(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
            return True
        finally:
            fcntl.flock(guard.fileno(), fcntl.LOCK_UN)


def refusal(
    path: str, holder: Mapping[str, Any], controller: Mapping[str, Any], timeout: int
) -> str:
    host = socket.gethostname()
    return (
        f"{path} is held by {describe(holder)}; waited {timeout} s (vllm_source_lock_timeout). "
        f"It is not provably gone: {why_not_gone(holder, controller)}. Another vllm_source run "
        "may be changing this host: wait for it, or raise vllm_source_lock_timeout. Only if "
        "you are sure that run is gone (its ansible-playbook and everything it started on "
        f"{host} stopped), remove it with `rm {path}` on {host}."
    )


def acquire(module: AnsibleModule) -> None:
    params = module.params
    path, run_id, timeout = params["path"], params["run_id"], params["timeout"]
    if module.check_mode:  # nothing will change: report the holder, if any
        holder = read_holder(path)
        module.exit_json(
            changed=False, acquired=False, waited=0.0, **({"holder": holder} if holder else {})
        )
    if not os.path.isdir(os.path.dirname(path)):
        module.fail_json(msg=f"the lock's directory {os.path.dirname(path)} does not exist")
    host, host_boot_id = socket.gethostname(), boot_id()
    content = lock_record(
        run_id,
        params["owner"],
        host,
        host_boot_id,
        os.getpid(),
        datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        params["controller"] or {},
    )
    start = time.monotonic()
    holder: Dict[str, Any] = {}
    while True:
        if try_create(path, content):
            waited = round(time.monotonic() - start, 1)
            module.exit_json(changed=False, acquired=True, waited=waited)
        found, holder = read_lock(path)
        if found is None:
            continue  # released between the two calls: try again at once
        if holder.get("run_id") == run_id:  # taken already
            module.exit_json(changed=False, acquired=True, waited=0.0, holder=holder)
        reason = host_reboot_reason(holder, host, host_boot_id) or stale_matches(
            holder, params["stale"] or {}
        )
        if reason and take_over(path, found, content):
            module.warn(f"took over {path} from {describe(holder)}: that run is gone, {reason}")
            module.exit_json(
                changed=False,
                acquired=True,
                waited=round(time.monotonic() - start, 1),
                holder=holder,
                took_over={"run_id": str(holder.get("run_id", "")), "reason": reason},
            )
        if reason:
            continue  # another run took it over first: judge the new holder
        if not params["wait"]:
            module.exit_json(changed=False, acquired=False, waited=0.0, holder=holder)
        if time.monotonic() - start >= timeout:
            break
        time.sleep(POLL_SECONDS)
    module.fail_json(msg=refusal(path, holder, params["controller"] or {}, timeout), holder=holder)


def release(module: AnsibleModule) -> None:
    path, run_id = module.params["path"], module.params["run_id"]
    holder = read_holder(path)
    if holder and holder.get("run_id") == run_id and not module.check_mode:
        os.unlink(path)
    module.exit_json(changed=False, **({"holder": holder} if holder else {}))


def main() -> None:
    controller = {
        "hostname": {"type": "str"},
        "machine_id": {"type": "str"},
        "boot_id": {"type": "str"},
        "pid_ns": {"type": "str"},
        "pid": {"type": "int"},
        "pid_start": {"type": "int"},
    }
    stale = {"run_id": {"type": "str"}, "reason": {"type": "str"}}
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "run_id": {"type": "str", "required": True},
            "owner": {"type": "str", "default": ""},
            "controller": {"type": "dict", "default": {}, "options": controller},
            "stale": {"type": "dict", "default": {}, "options": stale},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "wait": {"type": "bool", "default": True},
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
