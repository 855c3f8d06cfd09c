"""Callback plugin vllm_fleet_progress: a build's progress at every poll of vllm_build_wait.

The role waits for the vLLM wheel's build with vllm_build_wait in an until/retries loop; each
call returns after a while with the build's progress read from its log (its stage, ninja's
step count, the time left and a summary line, module_utils/vllm_fleet_buildlog.py). Ansible's
default output shows only "FAILED - RETRYING: ... (N retries left)" for each; this prints the
summary under it, so a plain ansible-playbook run shows how far the build got. Loaded from
ansible.cfg's callback_plugins without being enabled (CALLBACK_NEEDS_ENABLED is false).
"""

from __future__ import annotations

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: vllm_fleet_progress
type: notification
short_description: Print a vLLM build's progress at every retry of its wait.
description:
  - >-
    When a task retries (until/retries) and its result carries a C(progress) dict with a
    C(summary), as vllm_build_wait's results do, prints C([<host>] <summary>) after Ansible's
    own retry line, such as "[gpu1] build 0ddf074ce686cbc9 (full): compiling 167/393
    (42.5%), 15.9 steps/min, about 14 min left, 11 min 36 s in".
  - Other tasks' retries are left alone.
"""


def progress_line(host: str, result: object) -> str:
    """The line to print for a retry's result, '' when it carries no progress summary."""
    progress = result.get("progress") if isinstance(result, dict) else None
    summary = progress.get("summary") if isinstance(progress, dict) else None
    if not summary or not isinstance(summary, str):
        return ""
    return f"[{host}] {summary}"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "vllm_fleet_progress"
    CALLBACK_NEEDS_ENABLED = False

    def v2_runner_retry(self, result) -> None:
        line = progress_line(result._host.get_name(), result._result)
        if line:
            self._display.display(line)
