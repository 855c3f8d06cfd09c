"""Run one of the project's playbooks through ansible-runner, handing each event over.

ansible-runner is what AWX and Ansible Automation Platform run playbooks with: what runs
here runs there. Its artifacts (stdout, every event) go to the cache, one folder per run
(<cache>/runs/<ident>/), never into the repository. Extra variables go to ansible-playbook
in a file that lives only while it runs, so a credential given with -e stays off the disk.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import ansible_runner

REPO = Path(__file__).resolve().parents[2]
# The run folders kept (ansible-runner deletes older ones).
KEEP_RUNS = 30


def cache_dir() -> Path:
    """$VLLM_FLEET_CACHE, else $XDG_CACHE_HOME/vllm-fleet, else ~/.cache/vllm-fleet."""
    if os.environ.get("VLLM_FLEET_CACHE"):
        return Path(os.environ["VLLM_FLEET_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vllm-fleet"


def runs_dir() -> Path:
    path = cache_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


@dataclass
class RunResult:
    status: str  # successful, failed, canceled, timeout
    rc: int
    artifact_dir: Path
    stdout_tail: str


def _environment() -> Dict[str, str]:
    """The variables ansible-playbook needs to read the project as the README's set-up does."""
    bin_dir = str(Path(sys.executable).parent)
    env = {
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        # ansible-runner adds its own callback dir to this variable, which overrides
        # ansible.cfg's callback_plugins: ours go first.
        "ANSIBLE_CALLBACK_PLUGINS": str(REPO / "callback_plugins"),
        "ANSIBLE_NOCOLOR": "1",
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
    }
    if "ANSIBLE_COLLECTIONS_PATH" not in os.environ:
        env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / ".cache" / "collections")
    return env


def forget_environment(status: Dict[str, Any], runner_config: Any) -> None:
    """ansible-runner records the whole environment of ansible-playbook in the run's
    `command` file, written just before the process starts: once it runs, keep only the
    variables' names there (an operator's environment may hold credentials)."""
    if status.get("status") != "running":
        return
    path = Path(runner_config.artifact_dir) / "command"
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    recorded["env"] = sorted(recorded.get("env") or {})
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(recorded, f)
    os.replace(tmp, path)


def run_playbook(
    playbook: str,
    *,
    name: str,
    inventories: Sequence[str] = (),
    limit: Optional[str] = None,
    extravars: Optional[Dict[str, Any]] = None,
    on_event: Callable[[Dict[str, Any]], None],
    on_tick: Callable[[], None] = lambda: None,
    cancel: Optional[threading.Event] = None,
) -> RunResult:
    """Run REPO/<playbook>; call on_event(event) for each event, in this thread, and
    on_tick() at least four times a second while the run goes."""
    cancel = cancel or threading.Event()
    ident = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{name}-{uuid.uuid4().hex[:6]}"
    runs = runs_dir()
    events: queue.Queue[Dict[str, Any]] = queue.Queue()
    cmdline: List[str] = []
    for inventory in inventories:
        cmdline += ["-i", str(Path(inventory).expanduser().resolve())]
    with tempfile.TemporaryDirectory(prefix="vllm-fleet-") as private:
        vars_file = None
        if extravars:
            vars_file = Path(private) / "extravars.json"
            fd = os.open(vars_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(extravars, f)

        def handle(event: Dict[str, Any]) -> bool:
            events.put(event)
            return True  # kept under artifacts/<ident>/job_events

        thread, runner = ansible_runner.run_async(
            private_data_dir=private,
            project_dir=str(REPO),
            playbook=str(REPO / playbook),
            artifact_dir=str(runs),
            ident=ident,
            rotate_artifacts=KEEP_RUNS,
            cmdline=shlex.join(cmdline) if cmdline else None,
            limit=limit,
            extravars=str(vars_file) if vars_file else None,
            envvars=_environment(),
            suppress_env_files=True,
            quiet=True,
            event_handler=handle,
            status_handler=forget_environment,
            cancel_callback=cancel.is_set,
        )
        while thread.is_alive() or not events.empty():
            try:
                on_event(events.get(timeout=0.25))
            except queue.Empty:
                pass
            except KeyboardInterrupt:  # ansible-runner stops ansible-playbook; events drain
                cancel.set()
            on_tick()
        thread.join()
    artifact_dir = runs / ident
    stdout = (
        (artifact_dir / "stdout").read_text(encoding="utf-8", errors="replace")
        if (artifact_dir / "stdout").is_file()
        else ""
    )
    return RunResult(str(runner.status), int(runner.rc or 0), artifact_dir, stdout[-3000:])


def read_events(artifact_dir: Path) -> List[Dict[str, Any]]:
    """A past run's events, in order (artifacts/<ident>/job_events/<counter>-<uuid>.json)."""
    events = []
    for path in (artifact_dir / "job_events").glob("*.json"):
        try:
            events.append(json.loads(path.read_text(encoding="utf-8")))
        except ValueError:
            continue  # being written
    return sorted(events, key=lambda e: e.get("counter", 0))
