"""What a run of the role is doing on each host, folded from ansible-runner's events.

`Fleet.apply(event)` takes one event as ansible-runner hands it to an event handler (or as it
stores it under artifacts/<ident>/job_events/) and returns the notices it gives rise to: a
host entering a phase, a build's progress, a host's failure, a host's result. The phase is
the role's task file the task comes from (roles/vllm_source/tasks/NN_<phase>.yml: main.yml's
table of contents); the facts the report needs are the results of the role's own modules.
Pure: no I/O, no clock (times are the events' own).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any, Dict, List, Optional

import yaml

# A task file of a role's journey: NN_<phase>.yml under .../tasks/.
_PHASE_FILE = re.compile(r"(\d\d)_(\w+)\.yml")
# The role's other entry points, each a phase of its own.
ENTRY_PHASES = {
    "rollback.yml": "rollback",
    "status.yml": "status",
    "check_checkpoint.yml": "check",
    "serve_check.yml": "serve",
}
# user:password@ in a URL, as the role masks it (vars/main.yml's url credentials regex).
_URL_CREDENTIALS = re.compile(r"//[^/@\s]+@")


def mask(text: str) -> str:
    """The text with the credentials of every URL in it replaced by ***."""
    return _URL_CREDENTIALS.sub("//***@", text)


def phase_of(task_path: Optional[str], action: str = "") -> Optional[str]:
    """The phase a task belongs to: its tasks file's name without the number (07_build.yml:
    build), an entry point's name, "facts" for fact gathering; None for a file that is part
    of several phases (_lock.yml, _failed_safely.yml): the host stays in its phase."""
    if action.rsplit(".", 1)[-1] in ("gather_facts", "setup"):
        return "facts"
    if not task_path:
        return None
    path = PurePosixPath(task_path.rsplit(":", 1)[0])
    if path.parent.name != "tasks":
        return None
    match = _PHASE_FILE.fullmatch(path.name)
    if match:
        return match.group(2)
    return ENTRY_PHASES.get(path.name)


def phase_titles(main_yml: str) -> Dict[str, str]:
    """Phase -> the name main.yml gives its include ("venv": "Create the release's venv
    with the PyTorch the tag pins."): the host's journey in the role's own words."""
    titles: Dict[str, str] = {}

    def walk(tasks: Any) -> None:
        for task in tasks or []:
            if not isinstance(task, dict):
                continue
            target = task.get("ansible.builtin.include_tasks") or task.get("include_tasks")
            phase = phase_of(f"/tasks/{target}:1") if isinstance(target, str) else None
            if phase and task.get("name"):
                titles[phase] = str(task["name"])
            for key in ("block", "rescue", "always"):
                walk(task.get(key))

    walk(yaml.safe_load(main_yml))
    return titles


def event_time(event: Dict[str, Any]) -> Optional[float]:
    """The event's creation time in seconds since the epoch (runner writes naive UTC)."""
    created = event.get("created")
    if not created:
        return None
    stamp = datetime.fromisoformat(str(created))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


def _action(data: Dict[str, Any]) -> str:
    return str(data.get("resolved_action") or data.get("task_action") or "").rsplit(".", 1)[-1]


def failure_reason(res: Dict[str, Any]) -> str:
    """A failed task's reason, one line at most 400 characters, credentials masked."""
    text = str(res.get("msg") or res.get("stderr") or res.get("reason") or "failed")
    if res.get("censored"):
        text = "failed (its output is hidden by no_log)"
    return mask(" ".join(text.split()))[:400]


@dataclass
class HostState:
    """One host's run so far."""

    name: str
    phase: str = "waiting"
    task: str = ""
    started: Optional[float] = None
    last_seen: Optional[float] = None
    progress: Optional[Dict[str, Any]] = None
    progress_at: Optional[float] = None
    result: str = "running"  # then ok, changed, failed or unreachable
    reason: str = ""
    # When its last task failed; cleared when it runs another task (a rescue): Ansible runs
    # nothing more on a host whose failure nothing rescues.
    failed_at: Optional[float] = None
    facts: Dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> Optional[float]:
        if self.started is None or self.last_seen is None:
            return None
        return self.last_seen - self.started


class Fleet:
    """The hosts of one run, updated event by event."""

    def __init__(self, titles: Optional[Dict[str, str]] = None) -> None:
        self.titles = titles or {}  # phase -> what it does (phase_titles)
        self.hosts: Dict[str, HostState] = {}
        self.builders: set = set()
        self.playbook: str = ""
        self.started: Optional[float] = None
        self.ended: Optional[float] = None

    def host(self, name: str) -> HostState:
        if name not in self.hosts:
            self.hosts[name] = HostState(name)
        return self.hosts[name]

    def apply(self, event: Dict[str, Any]) -> List[Dict[str, Any]]:
        """Fold one runner event in; return the notices it gives rise to."""
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        at = event_time(event)
        if at is not None:
            self.started = at if self.started is None else self.started
            self.ended = at
        if kind == "playbook_on_start":
            self.playbook = str(data.get("playbook") or "")
            return []
        if kind == "playbook_on_stats":
            return self._stats(data)
        name = data.get("host")
        if not name or not kind.startswith("runner_"):
            return []
        state = self.host(str(name))
        if at is not None:
            state.started = at if state.started is None else state.started
            state.last_seen = at
        res = data.get("res") if isinstance(data.get("res"), dict) else {}
        notices: List[Dict[str, Any]] = []
        if kind == "runner_on_start":
            state.task = str(data.get("task") or "")
            state.failed_at = None
            phase = phase_of(data.get("task_path"), _action(data))
            if phase and phase != state.phase:
                state.phase = phase
                state.progress = None
                notices.append(
                    self._notice(
                        "phase",
                        state,
                        at,
                        phase=phase,
                        task=state.task,
                        title=self.titles.get(phase, ""),
                    )
                )
        elif kind in ("runner_retry", "runner_on_ok") and isinstance(res.get("progress"), dict):
            state.progress, state.progress_at = res["progress"], at
            notices.append(self._notice("progress", state, at, **res["progress"]))
        if kind == "runner_on_ok":
            self._harvest(state, _action(data), res)
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            state.reason = failure_reason(res)
            state.failed_at = at
            notices.append(
                self._notice(
                    "failed", state, at, task=str(data.get("task") or ""), reason=state.reason
                )
            )
        elif kind == "runner_on_unreachable":
            state.result, state.reason = "unreachable", failure_reason(res)
            notices.append(self._notice("unreachable", state, at, reason=state.reason))
        return notices

    @staticmethod
    def _notice(kind: str, state: HostState, at: Optional[float], **values: Any) -> Dict:
        return {"type": kind, "host": state.name, "at": at, **values}

    def _harvest(self, state: HostState, action: str, res: Dict[str, Any]) -> None:
        """Keep what the report shows from the role's own modules' results."""
        facts = state.facts
        if action == "nvidia_driver_facts" and isinstance(res.get("nvidia_driver"), dict):
            facts["driver"] = res["nvidia_driver"]
        elif action == "cuda_toolkit_facts" and isinstance(res.get("cuda_toolkit"), dict):
            facts["toolkit"] = res["cuda_toolkit"]
        elif action == "vllm_build_key" and res.get("build_key"):
            facts["key"] = res["build_key"]
            facts["inputs"] = res.get("build_inputs") or {}
            facts["needs_install"] = bool(res.get("needs_install"))
        elif action == "vllm_builders":
            self.builders.update(res.get("builds") or [])
        elif action == "vllm_verify" and res.get("vllm_version"):
            facts["verify"] = {
                k: res.get(k)
                for k in (
                    "vllm_version",
                    "vllm_commit",
                    "torch_version",
                    "torch_cuda_version",
                    "modelopt_methods",
                    "checkpoints",
                )
            }
        elif action == "vllm_vl_check":
            facts["serve"] = {"summary": res.get("summary"), "report": res.get("report") or {}}
        elif action == "vllm_release":
            args = (res.get("invocation") or {}).get("module_args") or {}
            if "switched_from" in res:
                facts["current"] = args.get("key") or facts.get("current")
                facts["switched"] = bool(res.get("changed"))
            elif args.get("state") == "info" and not args.get("key"):
                facts["current"] = res.get("current") or ""
                facts["stamp"] = res.get("stamp") or {}

    def _stats(self, data: Dict[str, Any]) -> List[Dict[str, Any]]:
        notices = []
        names = set()
        for group in ("ok", "changed", "failures", "dark", "skipped", "rescued", "processed"):
            names.update((data.get(group) or {}).keys())
        for name in sorted(names):
            state = self.host(name)
            if (data.get("dark") or {}).get(name):
                state.result = "unreachable"
            elif (data.get("failures") or {}).get(name):
                state.result = "failed"
            elif (data.get("changed") or {}).get(name):
                state.result = "changed"
            else:
                state.result = "ok"
            if state.result in ("ok", "changed"):
                state.reason = ""
            state.phase = "done" if state.result in ("ok", "changed") else state.phase
            notices.append(
                self._notice("result", state, self.ended, result=state.result, reason=state.reason)
            )
        return notices
