"""Callback plugin vllm_fleet_no_hosts: a run that reaches no GPU host fails, it does not
report success having done nothing.

Ansible skips a play whose hosts the inventory and the limit leave empty ("skipping: no hosts
matched") and exits 0; a play meant for the gpu_hosts group running on nobody is a mistake
in the inventory or the -l limit. Loaded from ansible.cfg's callback_plugins without being
enabled (CALLBACK_NEEDS_ENABLED is false), so a user's own callbacks_enabled keeps it.
"""

from __future__ import annotations

import sys

from ansible.plugins.callback import CallbackBase
from ansible.utils.display import Display

DOCUMENTATION = """
name: vllm_fleet_no_hosts
type: aggregate
short_description: Fail a run whose gpu_hosts play matched no host.
description:
  - When a play whose host pattern names the gpu_hosts group matches no host (an empty or
    missing group, or a -l limit that leaves none of its hosts), prints the project's
    message naming the pattern, the limit and the fix, and ends ansible-playbook with exit
    status 2 before the next play.
  - Plays for other groups (localhost, staging) are left alone.
"""

GROUP = "gpu_hosts"
EXIT_STATUS = 2  # what ansible-playbook returns for failed hosts


def patterns_of(hosts) -> list:
    """A play's host patterns as a list of strings (a play's hosts is a string or a list)."""
    if isinstance(hosts, str):
        return [part.strip() for part in hosts.replace(",", ":").split(":") if part.strip()]
    return [str(part).strip() for part in hosts or []]


def names_gpu_hosts(hosts) -> bool:
    """Whether a play's host pattern names the gpu_hosts group (also as !/& terms)."""
    return any(pattern.lstrip("!&") == GROUP for pattern in patterns_of(hosts))


def refusal(play_name: str, hosts, limit: str, group_hosts: int) -> str:
    """The message for a gpu_hosts play that matched no host; group_hosts is how many hosts
    the inventory lists under gpu_hosts (-1 when unknown)."""
    pattern = hosts if isinstance(hosts, str) else ":".join(patterns_of(hosts))
    if group_hosts == 0:
        where = f"the inventory lists no host under {GROUP}"
    elif limit:
        where = f"the limit -l {limit!r} leaves none of the {GROUP} hosts"
    else:
        where = f"the pattern leaves none of the {GROUP} hosts"
    return (
        f"The play {play_name!r} (hosts: {pattern}) matched no host: {where}, so this run "
        f"would change nothing and report success. List your hosts under {GROUP} in the "
        f"inventory given with -i (e.g. inventory/hosts.yml), or fix the -l limit so it names "
        f"hosts of {GROUP}; `ansible-inventory -i <inventory> --graph {GROUP}` shows them."
    )


def group_size(play) -> int:
    """How many hosts the inventory lists under gpu_hosts, whatever the limit (-1 if unknown)."""
    try:
        group = play.get_variable_manager()._inventory.groups.get(GROUP)
    except AttributeError:  # another ansible-core's internals: the message says less
        return -1
    return 0 if group is None else len(group.get_hosts())


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "vllm_fleet_no_hosts"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self) -> None:
        super().__init__()
        self._play = None

    def v2_playbook_on_play_start(self, play) -> None:
        self._play = play

    def v2_playbook_on_no_hosts_matched(self) -> None:
        play = self._play
        if play is None or not names_gpu_hosts(play.hosts):
            return
        from ansible import context

        limit = context.CLIARGS.get("subset") or ""
        Display().error(refusal(play.get_name(), play.hosts, limit, group_size(play)))
        # A callback cannot fail a play, and errors it raises are shown as warnings; the
        # run has nothing left to do for the GPU hosts, so it ends here, as failed.
        sys.exit(EXIT_STATUS)
