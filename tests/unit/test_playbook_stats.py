"""tests/integration/playbook_stats: a real local playbook's PLAY RECAP, read as data."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from integration.playbook_stats import (
    PLUGIN_DIR,
    PROJECT_CALLBACKS,
    PlaybookRun,
    run_playbook,
    stats_env,
)

BIN = Path(sys.executable).parent
PLAY = """\
- name: A play on the controller with one task of each outcome.
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Report a change.
      ansible.builtin.command: "true"
      changed_when: true
    - name: Report nothing changed.
      ansible.builtin.debug:
        msg: nothing to do here
    - name: Skip this one.
      ansible.builtin.debug:
        msg: never shown
      when: false
    - name: Fail and carry on.
      ansible.builtin.fail:
        msg: an ignored failure
      ignore_errors: true
    - name: Fail and rescue.
      block:
        - name: Fail inside the block.
          ansible.builtin.fail:
            msg: a rescued failure
      rescue:
        - name: Rescue the block.
          ansible.builtin.debug:
            msg: rescued
"""


def play(tmp_path: Path, text: str = PLAY, *args: str) -> PlaybookRun:
    (tmp_path / "ansible.cfg").write_text("[defaults]\nstdout_callback = ansible.builtin.default\n")
    (tmp_path / "play.yml").write_text(text, encoding="utf-8")
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
    }
    command = [str(BIN / "ansible-playbook"), "-i", "localhost,", "play.yml", *args]
    return run_playbook(command, cwd=tmp_path, env=env)


def recap_line(host: str, counts: dict) -> str:
    """The PLAY RECAP line the default callback prints for these counts, spaces folded."""
    return f"{host} : " + " ".join(f"{label}={n}" for label, n in counts.items())


def test_the_counts_are_the_play_recaps(tmp_path: Path) -> None:
    run = play(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stats == {
        "localhost": {
            "ok": 4,
            "changed": 1,
            "unreachable": 0,
            "failed": 0,
            "skipped": 1,
            "rescued": 1,
            "ignored": 1,
        }
    }
    assert run.counts("localhost") == run.stats["localhost"]
    printed = [" ".join(line.split()) for line in run.stdout.splitlines()]
    assert recap_line("localhost", run.stats["localhost"]) in printed, run.stdout


def test_stdout_stays_the_human_readable_output(tmp_path: Path, capsys) -> None:
    run = play(tmp_path)
    assert "TASK [Report nothing changed.]" in run.stdout
    assert '"msg": "nothing to do here"' in run.stdout
    assert "PLAY RECAP" in run.stdout
    shown = capsys.readouterr().out  # what pytest prints under a failing test
    assert "ansible-playbook -i localhost, play.yml  # exit 0" in shown
    assert "TASK [Report a change.]" in shown


def test_a_failure_that_stops_the_host_counts_as_failed(tmp_path: Path) -> None:
    failing = PLAY.replace("      ignore_errors: true\n", "")
    run = play(tmp_path, failing, "--check")
    assert run.returncode == 2
    counts = run.counts("localhost")
    assert counts["failed"] == 1 and counts["ignored"] == 0 and counts["rescued"] == 0
    assert "an ignored failure" in run.stdout
    printed = [" ".join(line.split()) for line in run.stdout.splitlines()]
    assert recap_line("localhost", counts) in printed, run.stdout


def test_a_run_that_never_reaches_the_recap_has_no_stats(tmp_path: Path) -> None:
    run = play(tmp_path, "- name: Not a play\n  hosts: [localhost\n")
    assert run.returncode == 4 and run.stats == {}
    assert "YAML parsing failed" in run.stderr
    with pytest.raises(AssertionError, match=r"localhost is not in the PLAY RECAP of .*exit 4"):
        run.counts("localhost")


def test_callbacks_already_in_the_environment_are_kept(tmp_path: Path) -> None:
    env = stats_env(
        {"ANSIBLE_CALLBACK_PLUGINS": "/srv/callbacks", "ANSIBLE_CALLBACKS_ENABLED": "timer, "},
        tmp_path / "recap.json",
    )
    # ansible.cfg's callback_plugins (the project's guard) stays on the path the env replaces.
    assert env["ANSIBLE_CALLBACK_PLUGINS"] == f"{PLUGIN_DIR}:/srv/callbacks:{PROJECT_CALLBACKS}"
    assert env["ANSIBLE_CALLBACKS_ENABLED"] == "timer,recap_json"
    assert env["VLLM_FLEET_RECAP_JSON"] == str(tmp_path / "recap.json")
    assert stats_env({}, tmp_path / "r.json")["ANSIBLE_CALLBACKS_ENABLED"] == "recap_json"
