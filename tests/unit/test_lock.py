"""The per-host lock and its stale holders: vllm_lock on the host, the vllm_controller lookup
on the controller, called as roles/vllm_source/tasks/_lock.yml calls them."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List, Optional, Tuple
from unittest.mock import patch

import pytest
import vllm_lock
from ansible.module_utils import _internal
from ansible.module_utils.common import warnings as _warnings
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.vllm_fleet_fleet import lock_content
from controller_side import controller_side

ROOT = Path(__file__).resolve().parents[2]
LOOKUPS = ROOT / "roles" / "vllm_source" / "lookup_plugins"


def load_lookup() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vllm_controller", LOOKUPS / "vllm_controller.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Loading a lookup plugin imports Ansible's controller code, which marks the process as the
# controller: other module tests would then miss their warnings. controller_side() undoes it.
with controller_side():
    ctl = load_lookup()

HOLDER_PID = 4242
HOLDER_START = 777001
NS = "pid:[4026531836]"
CTL_BOOT = "c0c0c0c0-0000-4000-8000-000000000001"
HOST_BOOT = "b0b0b0b0-0000-4000-8000-000000000002"


def stat_line(pid: int, start: int, state: str = "S", comm: str = "ansible-playboo") -> str:
    # Fields 3..22 after "(comm)": state, ppid, pgrp, session, ..., starttime is the 20th.
    rest = [state, "1", str(pid), str(pid), *["0"] * 15, str(start), "0", "0"]
    return f"{pid} ({comm}) " + " ".join(rest) + "\n"


class FakeProc:
    """A /proc tree under tmp_path: boot_id, and /proc/<pid>/{stat,ns/pid} per process."""

    def __init__(self, root: Path, boot_id: str = CTL_BOOT) -> None:
        self.root = root
        (root / "sys" / "kernel" / "random").mkdir(parents=True)
        (root / "sys" / "kernel" / "random" / "boot_id").write_text(boot_id + "\n")

    def process(self, pid: int, start: int, state: str = "S", ns: str = NS) -> None:
        (self.root / str(pid) / "ns").mkdir(parents=True, exist_ok=True)
        (self.root / str(pid) / "stat").write_text(stat_line(pid, start, state))
        link = self.root / str(pid) / "ns" / "pid"
        if not link.is_symlink():
            os.symlink(ns, link)  # dangling, like the real one: only readlink matters


@pytest.fixture
def proc(tmp_path: Path) -> FakeProc:
    return FakeProc(tmp_path / "proc")


@pytest.fixture
def me(proc: FakeProc, tmp_path: Path) -> Dict[str, Any]:
    """This controller: its ansible-playbook is pid 1000 of the fake /proc."""
    proc.process(1000, 900)
    machine_id = tmp_path / "machine-id"
    machine_id.write_text("m" * 32 + "\n")
    return ctl.identity(1000, str(proc.root), str(machine_id))


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The host: its boot id file and the prefix whose lock the tests take."""
    boot = tmp_path / "host_boot_id"
    boot.write_text(HOST_BOOT + "\n")
    monkeypatch.setattr(vllm_lock, "BOOT_ID", str(boot))
    monkeypatch.setattr(vllm_lock, "POLL_SECONDS", 0.05)
    prefix = tmp_path / "prefix"
    prefix.mkdir()
    return prefix / ".vllm-source.lock"


def run_lock(args: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> Tuple[int, Dict]:
    # A module runs in a fresh process: start without the warnings earlier runs left.
    _warnings._global_warnings.clear()
    # Loading the lookup plugin marks this process as the controller, whose warnings go to
    # the display; the module runs on the host, where they go into the result.
    on_host = patch.object(_internal, "is_controller", False)
    with patch_module_args(args), on_host, pytest.raises(SystemExit) as exc:
        vllm_lock.main()
    return int(exc.value.code or 0), json.loads(capsys.readouterr().out)


def warnings_of(out: Dict[str, Any]) -> List[str]:
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in out.get("warnings", [])]


def holder_record(
    me: Dict[str, Any], run_id: str = "A", host_boot_id: str = HOST_BOOT, **controller: Any
) -> str:
    """A lock that run `run_id` of this controller took, its ansible-playbook HOLDER_PID."""
    recorded = {**me, "pid": HOLDER_PID, "pid_start": HOLDER_START, **controller}
    return vllm_lock.lock_record(
        run_id, "alice@ctl", socket.gethostname(), host_boot_id, 31337, "2025-01-01T00:00:00Z",
        recorded,
    )  # fmt: skip


def take(
    lock: Path,
    me: Dict[str, Any],
    proc: FakeProc,
    capsys: pytest.CaptureFixture[str],
    run_id: str = "B",
    timeout: int = 0,
) -> Tuple[int, Dict]:
    """Take the lock as _lock.yml does: a call that does not wait, the controller's verdict
    on the holder it names, then the call that takes over or waits."""
    base = {"path": str(lock), "run_id": run_id, "owner": "bob@ctl", "controller": me}
    rc, found = run_lock({**base, "wait": False}, capsys)
    if rc or found["acquired"]:
        return rc, found
    stale = ctl.verdict(found.get("holder", {}), me, str(proc.root))
    return run_lock({**base, "stale": stale, "timeout": timeout}, capsys)


def lock_run_id(lock: Path) -> str:
    return json.loads(lock.read_text())["run_id"]


# --- the controller's identity ---------------------------------------------------------


def test_the_identity_records_the_process_start_boot_and_namespace(me) -> None:
    assert me["pid"] == 1000 and me["pid_start"] == 900
    assert me["boot_id"] == CTL_BOOT and me["pid_ns"] == NS and me["machine_id"] == "m" * 32
    assert me["hostname"] == socket.gethostname()


def test_a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields(proc) -> None:
    (proc.root / "7").mkdir()
    (proc.root / "7" / "stat").write_text(stat_line(7, 4321, comm="a) (b c"))
    assert ctl.process_stat(7, str(proc.root)) == ("S", 4321)
    assert ctl.process_stat(8, str(proc.root)) is None


def test_the_real_proc_gives_this_process_its_start_time() -> None:
    me = ctl.identity(os.getpid())
    assert isinstance(me["pid_start"], int) and me["pid_start"] > 0
    assert me["boot_id"] and me["pid_ns"].startswith("pid:[")


def report_playbook_pid(results: Any) -> None:
    results.put(ctl.playbook_pid())


def test_a_worker_names_its_parent_as_the_playbook_process() -> None:
    # Ansible forks its workers with multiprocessing; the lookup runs in one of them.
    assert ctl.playbook_pid() == os.getpid()  # run in the playbook process itself
    mp = multiprocessing.get_context("fork")
    results = mp.Queue()
    worker = mp.Process(target=report_playbook_pid, args=(results,))
    worker.start()
    worker.join()
    assert results.get() == os.getpid()


def ansible_env() -> Dict[str, str]:
    return dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_LOOKUP_PLUGINS=str(LOOKUPS),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
    )


def test_through_ansible_the_lookup_names_the_ansible_process_and_judges_a_holder() -> None:
    holder = {"run_id": "A", "controller": {**ctl.identity(os.getpid()), "pid_start": 1}}
    expr = "{{ {'me': lookup('vllm_controller'), 'stale': lookup('vllm_controller', holder=h)} }}"
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible")),
            "localhost", "-i", "localhost,", "-c", "local", "-m", "ansible.builtin.debug",
            "-a", f"msg={expr}", "-e", json.dumps({"h": holder}),
        ],
        capture_output=True, text=True, env=ansible_env(), cwd=ROOT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    msg = json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]
    # The ansible process that this test started, not the worker that templated the task.
    status = Path(f"/proc/{msg['me']['pid']}/status")
    assert not status.exists() or f"PPid:\t{os.getpid()}\n" in status.read_text()
    assert msg["me"]["boot_id"] == ctl.identity(os.getpid())["boot_id"]
    # This pytest process is alive, but started at another tick than the holder recorded.
    assert msg["stale"]["run_id"] == "A" and "another process" in msg["stale"]["reason"]


def test_ansible_doc_renders_the_lookup() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-doc")), "-t", "lookup", "--json",
         "vllm_controller"],
        capture_output=True, text=True, env=ansible_env(), cwd=ROOT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)["vllm_controller"]
    assert doc["doc"]["short_description"] and doc["examples"] and doc["doc"]["options"]


# --- taking the lock -------------------------------------------------------------------


def test_a_free_lock_is_taken_and_records_the_run_and_its_controller(host, me, proc, capsys):
    rc, out = take(host, me, proc, capsys)
    assert rc == 0 and out["acquired"] and out["changed"] is False and "took_over" not in out
    record = json.loads(host.read_text())
    assert record["run_id"] == "B" and record["owner"] == "bob@ctl"
    assert record["host"] == socket.gethostname() and record["host_boot_id"] == HOST_BOOT
    assert record["controller"] == me
    rc, out = run_lock({"path": str(host), "run_id": "B", "state": "absent"}, capsys)
    assert rc == 0 and not host.exists()


def test_a_live_holder_on_this_controller_is_waited_for_then_named(host, me, proc, capsys):
    proc.process(HOLDER_PID, HOLDER_START)  # its ansible-playbook still runs
    host.write_text(holder_record(me))
    start = time.monotonic()
    rc, out = take(host, me, proc, capsys, timeout=1)
    assert time.monotonic() - start >= 1
    assert rc == 1 and out["failed"]
    msg = out["msg"]
    assert f"{host} is held by run A of alice@ctl (pid 31337 on {socket.gethostname()}" in msg
    assert f"ansible-playbook pid {HOLDER_PID} on controller {me['hostname']}" in msg
    assert (
        "vllm_source_lock_timeout" in msg
        and "finds its ansible-playbook (pid 4242) still running" in msg
    )
    assert "Only if you are sure that run is gone" in msg and f"`rm {host}`" in msg
    assert lock_run_id(host) == "A", "the holder's lock must stay"


def test_a_dead_holder_on_this_controller_is_taken_over(host, me, proc, capsys):
    host.write_text(holder_record(me))  # no /proc/4242: its ansible-playbook was killed
    rc, out = take(host, me, proc, capsys)
    assert rc == 0 and out["acquired"]
    assert out["took_over"]["run_id"] == "A"
    assert "is no longer running" in out["took_over"]["reason"]
    assert any("took over" in w and "run A of alice@ctl" in w for w in warnings_of(out))
    assert lock_run_id(host) == "B"


def test_a_zombie_holder_is_gone(host, me, proc, capsys):
    proc.process(HOLDER_PID, HOLDER_START, state="Z")
    host.write_text(holder_record(me))
    rc, out = take(host, me, proc, capsys)
    assert rc == 0 and "has exited" in out["took_over"]["reason"]


def test_a_reused_pid_is_not_the_holder(host, me, proc, capsys):
    proc.process(HOLDER_PID, HOLDER_START + 5)  # another process got pid 4242 since
    host.write_text(holder_record(me))
    rc, out = take(host, me, proc, capsys)
    assert rc == 0 and out["took_over"]["run_id"] == "A"
    assert "is another process now" in out["took_over"]["reason"]
    assert lock_run_id(host) == "B"


def test_a_holder_of_an_earlier_boot_of_this_controller_is_gone(host, me, proc, capsys):
    host.write_text(holder_record(me, boot_id="an-earlier-boot"))
    rc, out = take(host, me, proc, capsys)
    assert rc == 0 and "controller" in out["took_over"]["reason"]
    assert "booted since" in out["took_over"]["reason"]


@pytest.mark.parametrize(
    ("controller", "why"),
    [
        ({"hostname": "other-ctl"}, "ran on controller other-ctl, not on this one"),
        # Same name, another boot, another machine id: another machine of the same name.
        ({"boot_id": "an-earlier-boot", "machine_id": "x" * 32}, "in another boot"),
        ({"boot_id": "an-earlier-boot", "machine_id": ""}, "in another boot"),
        ({"boot_id": ""}, "no boot id to compare"),  # a controller without /proc
        ({"pid_ns": "pid:[4026532999]"}, "another PID namespace"),  # a container
        ({"pid_start": None}, "no start time to tell a reused pid by"),
    ],
)
def test_a_holder_this_controller_cannot_see_is_refused(host, me, proc, capsys, controller, why):
    host.write_text(holder_record(me, **controller))  # no /proc/4242 here, yet not provable
    rc, out = take(host, me, proc, capsys)
    assert rc == 1 and why in out["msg"] and f"`rm {host}`" in out["msg"]
    assert lock_run_id(host) == "A"


def test_a_host_that_booted_since_frees_the_lock_of_any_controller(host, me, proc, capsys):
    host.write_text(holder_record(me, host_boot_id="the-boot-before", hostname="other-ctl"))
    rc, out = run_lock(
        {"path": str(host), "run_id": "B", "controller": me, "wait": False}, capsys
    )  # the first call decides it on the host: the controller is not asked
    assert rc == 0 and out["acquired"] and out["took_over"]["run_id"] == "A"
    assert "booted since the lock was taken" in out["took_over"]["reason"]
    assert "the-boot-before" in out["took_over"]["reason"]
    assert any("took over" in w for w in warnings_of(out))
    assert lock_run_id(host) == "B"


def test_another_hosts_boot_id_on_a_shared_prefix_proves_nothing(host, me, proc, capsys):
    record = json.loads(holder_record(me, host_boot_id="its-boot", hostname="other-ctl"))
    host.write_text(json.dumps({**record, "host": "another-host"}))
    rc, out = take(host, me, proc, capsys)
    assert rc == 1 and "is held by run A" in out["msg"] and lock_run_id(host) == "A"


def test_an_old_format_lock_is_refused_naming_its_holder(host, me, proc, capsys):
    host.write_text(lock_content("A", 4242, socket.gethostname(), "2025-01-01T00:00:00Z", "al"))
    rc, out = take(host, me, proc, capsys)
    assert rc == 1 and "held by run A of al (pid 4242 on" in out["msg"]
    assert "an older vllm_lock took it" in out["msg"] and f"`rm {host}`" in out["msg"]
    assert lock_run_id(host) == "A"


def test_an_unreadable_lock_is_refused(host, me, proc, capsys):
    host.write_text("")  # a run killed between creating and writing it
    rc, out = take(host, me, proc, capsys)
    assert rc == 1 and "unreadable lock file" in out["msg"] and host.read_text() == ""


def test_stale_names_one_holder_only(host, me, proc, capsys):
    host.write_text(holder_record(me))
    args = {"path": str(host), "run_id": "B", "controller": me, "timeout": 0}
    rc, out = run_lock({**args, "stale": {"run_id": "Z", "reason": "gone"}}, capsys)
    assert rc == 1 and "is held by run A" in out["msg"] and lock_run_id(host) == "A"


def test_check_mode_takes_nothing(host, me, proc, capsys):
    host.write_text(holder_record(me))
    rc, out = run_lock(
        {"path": str(host), "run_id": "B", "_ansible_check_mode": True, "controller": me}, capsys
    )
    assert rc == 0 and out["acquired"] is False and out["holder"]["run_id"] == "A"
    assert lock_run_id(host) == "A"


# --- two runs taking over at once ------------------------------------------------------


def race_take_over(path: str, found: str, run_id: str, start: Any, results: Any) -> None:
    start.wait()
    results.put((run_id, vllm_lock.take_over(path, found, json.dumps({"run_id": run_id}))))


def test_of_runs_taking_over_one_stale_lock_at_once_exactly_one_wins(host, me) -> None:
    host.write_text(holder_record(me))
    found = host.read_text()
    mp = multiprocessing.get_context("fork")
    results, start = mp.Queue(), mp.Event()
    procs = [
        mp.Process(target=race_take_over, args=(str(host), found, f"run-{i}", start, results))
        for i in range(8)
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join()
    winners = [run_id for run_id, won in (results.get() for _ in procs) if won]
    assert len(winners) == 1
    assert lock_run_id(host) == winners[0]
    assert sorted(p.name for p in host.parent.iterdir()) == [host.name, host.name + ".takeover"]


def test_a_run_that_lost_the_takeover_waits_for_the_winner(host, me, proc, capsys):
    host.write_text(holder_record(me))
    stale: Optional[Dict[str, str]] = ctl.verdict(json.loads(host.read_text()), me, str(proc.root))
    assert stale and stale["run_id"] == "A"
    rc, out = take(host, me, proc, capsys, run_id="B")
    assert rc == 0 and out["took_over"]["run_id"] == "A"
    # C judged the same holder gone; by the time it acts, B holds the lock and is alive.
    args = {"path": str(host), "run_id": "C", "controller": me, "timeout": 0, "stale": stale}
    rc, out = run_lock(args, capsys)
    assert rc == 1 and "is held by run B of bob@ctl" in out["msg"]
    assert lock_run_id(host) == "B"
