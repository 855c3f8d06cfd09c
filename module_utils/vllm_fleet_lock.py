"""The per-host lock's record and the host's side of deciding whether its holder is gone.

Pure functions, so the unit tests call them with plain data; library/vllm_lock.py does the
I/O around them. Whether a holder's ansible-playbook process is alive can only be seen on
the controller that runs it: the role's vllm_controller lookup decides that and hands the
verdict to vllm_lock (its `stale` option).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from ansible.module_utils.vllm_fleet_fleet import describe_holder

# What the role's vllm_controller lookup reads about the controller process that runs the play.
CONTROLLER_FIELDS = ("hostname", "machine_id", "boot_id", "pid_ns", "pid", "pid_start")


def lock_record(
    run_id: str,
    owner: str,
    host: str,
    host_boot_id: str,
    pid: int,
    started: str,
    controller: Mapping[str, Any],
) -> str:
    """What the lock file holds: the run, the host as it was when the run took the lock, and
    the controller process the run is (its ansible-playbook: host name, boot, pid, start)."""
    return json.dumps(
        {
            "run_id": run_id,
            "owner": owner,
            "host": host,
            "host_boot_id": host_boot_id,
            "pid": pid,  # the module's, on the host: shown, never checked (it exits at once)
            "started": started,
            "controller": {k: controller.get(k) for k in CONTROLLER_FIELDS},
        },
        sort_keys=True,
    )


def describe(holder: Mapping[str, Any]) -> str:
    """One line naming the run that holds the lock and, when recorded, its controller process."""
    line = describe_holder(holder)
    controller = holder.get("controller")
    if isinstance(controller, dict) and controller.get("pid"):
        line += ", ansible-playbook pid {} on controller {}".format(
            controller.get("pid"), controller.get("hostname") or "?"
        )
    return line


def host_reboot_reason(holder: Mapping[str, Any], host: str, host_boot_id: str) -> str:
    """Why the holder is provably gone because this host booted since it took the lock, or "".

    A reboot ends everything the run started on the host, and Ansible never resumes a host
    once it became unreachable. The recorded host name must be this host's: a prefix on a
    shared file system holds locks that other hosts took, with their boot ids.
    """
    recorded = holder.get("host_boot_id")
    if not (isinstance(recorded, str) and recorded and host_boot_id):
        return ""
    if holder.get("host") != host or recorded == host_boot_id:
        return ""
    return f"{host} booted since the lock was taken (boot id {recorded} then, {host_boot_id} now)"


def why_not_gone(holder: Mapping[str, Any], controller: Mapping[str, Any]) -> str:
    """Why this run cannot prove the holder gone (for the message that refuses the lock).

    `controller` is this run's controller process (the vllm_controller lookup's identity).
    """
    if "unreadable" in holder:
        return "the lock file is not a lock this module wrote, so nothing proves its run gone"
    recorded = holder.get("controller")
    if not (isinstance(recorded, dict) and recorded.get("hostname") and recorded.get("pid")):
        return (
            "the lock does not record its run's controller process (an older vllm_lock took "
            "it), so nothing proves that run gone"
        )
    mine = controller.get("hostname") or "?"
    theirs = recorded["hostname"]
    if theirs != mine:
        return (
            f"that run's ansible-playbook ran on controller {theirs}, not on this one ({mine}), "
            "which cannot see whether it is alive"
        )
    if not (recorded.get("boot_id") and controller.get("boot_id")):
        return f"controller {mine} has no boot id to compare (no /proc)"
    if recorded["boot_id"] != controller["boot_id"]:
        return (
            f"it ran on a controller named {mine} in another boot, and no machine id "
            "(/etc/machine-id) shows that it was this machine"
        )
    if recorded.get("pid_ns") != controller.get("pid_ns"):
        return f"it ran in another PID namespace of {mine} (a container), whose pids are not ours"
    return "controller {} finds its ansible-playbook (pid {}) still running".format(
        mine, recorded.get("pid")
    ) + ("" if recorded.get("pid_start") else ", and no start time to tell a reused pid by")


def stale_matches(holder: Mapping[str, Any], stale: Mapping[str, Any]) -> str:
    """The controller's reason for taking over `holder`, when `stale` names exactly it, or ""."""
    run_id = (stale or {}).get("run_id")
    if not run_id or "unreadable" in holder or holder.get("run_id") != run_id:
        return ""
    return str(stale.get("reason") or "the controller found its ansible-playbook gone")
