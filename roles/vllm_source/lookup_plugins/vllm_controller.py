"""vllm_controller: the controller process that runs the play, and whether a lock's holder
(a run of the same controller) is provably gone. Runs on the controller, as lookups do."""

from __future__ import annotations

import multiprocessing
import os
import socket
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: vllm_controller
short_description: This controller's ansible-playbook process, and whether a lock's holder is gone
description:
  - Without O(holder), returns the identity of the ansible-playbook process that runs the play
    (the parent of the worker that templates the task, as Ansible's own ansible_playbook_pid) as
    C(hostname), C(machine_id) (/etc/machine-id), C(boot_id)
    (/proc/sys/kernel/random/boot_id), C(pid_ns) (its PID namespace), C(pid) and C(pid_start)
    (field 22 of /proc/<pid>/stat, its start in clock ticks after boot, which tells a reused
    pid from the process). vllm_lock records it in the host's lock.
  - With O(holder) (a lock's holder as vllm_lock returns it), returns C({run_id, reason}) when
    that run is provably gone from this controller, else C({}). Gone means it ran on this
    controller and either (same host name, boot and PID namespace) its pid is not running, is
    a zombie or is another process (another start time), or (same host name and machine id,
    another boot id) the controller booted since. A run of another controller, or a lock
    without these fields, is never provably gone.
options:
  holder:
    description: The lock's holder (vllm_lock's C(holder)); C({}) returns C({}).
    type: dict
"""

EXAMPLES = r"""
controller: "{{ lookup('vllm_controller') }}"
stale: "{{ lookup('vllm_controller', holder=found.holder | default({})) }}"
"""

RETURN = r"""
_raw:
  description: The identity, or the verdict about O(holder).
  type: list
  elements: dict
"""

PROC = "/proc"
MACHINE_ID = "/etc/machine-id"


def read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def process_stat(pid: int, proc: str = PROC) -> Optional[Tuple[str, int]]:
    """(state, start time in clock ticks after boot) of a process, None when there is none.

    The command name (field 2) is in parentheses and may hold spaces or parentheses: the
    fields are counted after its last ")", where field 3 (the state) starts.
    """
    text = read_text(f"{proc}/{pid}/stat")
    fields = text.rpartition(")")[2].split()
    if len(fields) < 20 or not fields[19].isdigit():
        return None
    return fields[0], int(fields[19])


def playbook_pid() -> int:
    """The ansible-playbook process: the parent of the worker process that runs the lookup
    (recorded when the worker started, so it holds even if that parent died), or this
    process where the lookup runs in ansible-playbook itself."""
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None and parent.pid else os.getpid()


def identity(pid: int, proc: str = PROC, machine_id: str = MACHINE_ID) -> Dict[str, Any]:
    """What a lock records of the controller process `pid`; "" or None where unreadable."""
    stat = process_stat(pid, proc)
    try:
        pid_ns = os.readlink(f"{proc}/{pid}/ns/pid")
    except OSError:
        pid_ns = ""
    return {
        "hostname": socket.gethostname(),
        "machine_id": read_text(machine_id),
        "boot_id": read_text(f"{proc}/sys/kernel/random/boot_id"),
        "pid_ns": pid_ns,
        "pid": pid,
        "pid_start": stat[1] if stat else None,
    }


def is_count(value: Any) -> bool:
    """An int, not a bool (Ansible hands plugins tagged subclasses of int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def gone_reason(holder: Mapping[str, Any], me: Mapping[str, Any], proc: str = PROC) -> str:
    """Why the run that holds a lock is provably gone from this controller (`me`), or ""."""
    theirs = holder.get("controller")
    if not isinstance(theirs, Mapping) or "unreadable" in holder:
        return ""  # an older lock, or not a lock: nothing to prove it with
    host = me.get("hostname")
    if not host or theirs.get("hostname") != host:
        return ""  # another controller: only it can see its processes
    if not me.get("boot_id") or not theirs.get("boot_id"):
        return ""
    if theirs["boot_id"] != me["boot_id"]:
        # Another boot of this machine, or another machine of the same name: the machine id
        # tells them apart, where both have one.
        if not me.get("machine_id") or theirs.get("machine_id") != me["machine_id"]:
            return ""
        return "controller {} booted since its run took the lock (boot id {} then, {} now)".format(
            host, theirs["boot_id"], me["boot_id"]
        )
    pid, start = theirs.get("pid"), theirs.get("pid_start")
    if not me.get("pid_ns") or theirs.get("pid_ns") != me["pid_ns"]:
        return ""  # another PID namespace (a container) of this boot: its pids are not ours
    if not (is_count(pid) and pid > 0 and is_count(start)):
        return ""
    stat = process_stat(pid, proc)
    if stat is None:
        return f"its ansible-playbook (pid {pid} on {host}) is no longer running"
    if stat[0] in ("Z", "X"):
        return f"its ansible-playbook (pid {pid} on {host}) has exited"
    if stat[1] != start:
        return (
            f"pid {pid} on {host} is another process now (started {stat[1]} clock ticks "
            f"after boot, its ansible-playbook started {start})"
        )
    return ""


def verdict(holder: Mapping[str, Any], me: Mapping[str, Any], proc: str = PROC) -> Dict[str, str]:
    """{run_id, reason} for vllm_lock's `stale` when the holder is provably gone, else {}."""
    reason = gone_reason(holder, me, proc) if holder else ""
    return {"run_id": str(holder.get("run_id", "")), "reason": reason} if reason else {}


class LookupModule(LookupBase):
    def run(self, terms: List[Any], variables: Any = None, **kwargs: Any) -> List[Dict[str, Any]]:
        self.set_options(var_options=variables, direct=kwargs)
        me = identity(playbook_pid())
        holder = self.get_option("holder")
        return [me if holder is None else verdict(holder, me)]
