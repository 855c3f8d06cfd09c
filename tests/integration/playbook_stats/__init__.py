"""Run ansible-playbook and get its PLAY RECAP as data, with its output as text.

The counts come from ansible-core's own stats (AggregateStats, what the PLAY RECAP prints),
written by the recap_json callback in this directory when the run ends; nothing parses the
recap's text. stdout stays the default callback's human-readable output, which tests assert
messages on, and is echoed so that pytest shows it under a failing test.

Used by tests/integration/test_stage_sources.py (``from .playbook_stats import``) and by
molecule/fleet/tests/test_fleet.py (``from tests.integration.playbook_stats import``, with the
repository root on sys.path).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Sequence

PLUGIN_DIR = Path(__file__).resolve().parent
# ansible.cfg's callback_plugins, which ANSIBLE_CALLBACK_PLUGINS replaces: vllm_fleet_no_hosts.
PROJECT_CALLBACKS = PLUGIN_DIR.parents[2] / "callback_plugins"
CALLBACK = "recap_json"
RECAP_FILE_ENV = "VLLM_FLEET_RECAP_JSON"  # recap_json's `path` option

Recap = Dict[str, Dict[str, int]]


@dataclass(frozen=True)
class PlaybookRun:
    """One ansible-playbook run: exit status, output, and the PLAY RECAP per host.

    stats maps each host of the PLAY RECAP to its counts under the recap's labels (ok,
    changed, unreachable, failed, skipped, rescued, ignored); it is empty when the run
    stopped before the recap (a syntax error, an inventory that did not parse).
    """

    command: List[str]
    returncode: int
    stdout: str
    stderr: str
    stats: Recap

    def counts(self, host: str) -> Dict[str, int]:
        """The PLAY RECAP's counts of `host`; fails the test if the recap has no such host."""
        assert host in self.stats, (
            f"{host} is not in the PLAY RECAP of `{shlex.join(self.command)}` (exit "
            f"{self.returncode}, recap hosts: {sorted(self.stats)}); its output is above"
        )
        return self.stats[host]


def stats_env(env: Mapping[str, str], recap_file: Path) -> Dict[str, str]:
    """`env` plus what makes ansible-playbook write its recap to `recap_file`.

    Callback directories and enabled callbacks already in `env` are kept. The two variables
    take the place of ansible.cfg's callback_plugins (whose directory is kept too) and
    callbacks_enabled, which the project's ansible.cfg does not set.
    """
    out = dict(env)
    given = out.get("ANSIBLE_CALLBACK_PLUGINS", "")
    dirs = [str(PLUGIN_DIR), *filter(None, [given]), str(PROJECT_CALLBACKS)]
    out["ANSIBLE_CALLBACK_PLUGINS"] = os.pathsep.join(dirs)
    enabled = [name.strip() for name in out.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",")]
    out["ANSIBLE_CALLBACKS_ENABLED"] = ",".join([*filter(None, enabled), CALLBACK])
    out[RECAP_FILE_ENV] = str(recap_file)
    return out


def run_playbook(command: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> PlaybookRun:
    """Run `command` (ansible-playbook and its arguments) in `cwd` with `env`."""
    with tempfile.TemporaryDirectory(prefix="playbook-stats-") as tmp:
        recap_file = Path(tmp) / "recap.json"
        done = subprocess.run(
            list(command),
            cwd=cwd,
            env=stats_env(env, recap_file),
            capture_output=True,
            text=True,
            check=False,
        )
        stats = json.loads(recap_file.read_text(encoding="utf-8")) if recap_file.is_file() else {}
    print(f"$ {shlex.join(command)}  # exit {done.returncode}\n{done.stdout}")
    if done.stderr:
        print(done.stderr, file=sys.stderr)
    return PlaybookRun(list(command), done.returncode, done.stdout, done.stderr, stats)
