"""The fleet after converge (v0.29.0), then a tag bump, a no-op, a rollback, a failing batch
and a held lock. Every fact is read from the hosts themselves (podman exec).

The staging is explicit: a test that reads the fleet at one stage (converged, bumped, rolled
back) starts with at_stage(...), which reads the stage from f1-f3's releases and fails naming
the test that brings the fleet there when it is elsewhere; the release keys come from the
hosts' stamps, not from an earlier test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO_ROOT))
from tests.integration.playbook_stats import PlaybookRun, run_playbook  # noqa: E402
from tests.integration.record import message_excerpt, record  # noqa: E402  (after the path)

PREFIX = "/opt/vllm"
SAME_KEY = ["vllm-fleet-f1", "vllm-fleet-f2", "vllm-fleet-f3"]
OTHER_KEY = "vllm-fleet-f4"
BUILDER = "vllm-fleet-f2"  # the one of f1-f3 in the vllm_builders group
LIMIT = ",".join(SAME_KEY)


def sh(host: str, script: str, check: bool = True) -> str:
    proc = subprocess.run(
        ["podman", "exec", host, "bash", "-c", script], capture_output=True, text=True, check=False
    )
    assert not check or proc.returncode == 0, f"{host}: {script}: {proc.stderr}"
    return proc.stdout.strip()


def build_logs(host: str) -> List[str]:
    out = sh(host, f"ls {PREFIX}/logs/build-*.log 2>/dev/null || true")
    return out.split()


def current_key(host: str) -> str:
    return sh(host, f"readlink {PREFIX}/current").removeprefix("releases/")


def stamp(host: str) -> Dict:
    return json.loads(sh(host, f"cat {PREFIX}/current/venv/vllm-source-stamp.json"))


def wheel_sha256(host: str) -> str:
    return sh(host, f"sha256sum {PREFIX}/current/wheel/vllm-*.whl").split()[0]


def vllm_version(host: str) -> str:
    code = "import importlib.metadata as m; print(m.version('vllm'))"
    return sh(host, f'runuser -u vllm -- {PREFIX}/current/venv/bin/python -c "{code}"')


RELEASE_VERSIONS = (
    "import glob, json, sys; print(json.dumps({p.split('/')[-3]: json.load(open(p))['inputs']"
    "['version'] for p in glob.glob(sys.argv[1] + '/releases/*/venv/vllm-source-stamp.json')}))"
)


def release_versions(host: str) -> Dict[str, str]:
    """Release key -> the tag its stamp records, for every stamped release of the host."""
    return json.loads(sh(host, f'python3 -c "{RELEASE_VERSIONS}" {PREFIX}'))


# stage -> (the tag f1-f3 are on, whether the v0.30.0 release exists, the test that gets there)
STAGES = {
    "converged": ("v0.29.0", False, "molecule converge"),
    "bumped": ("v0.30.0", True, "test_tag_bump_builds_once_and_switches_every_host"),
    "rolled back": (
        "v0.29.0",
        True,
        "test_rollback_returns_every_host_to_the_previous_release_and_verifies_it",
    ),
}


def at_stage(stage: str) -> Dict[str, str]:
    """The keys of v0.29.0 ("old") and v0.30.0 ("new") on f1-f3; fails unless at `stage`."""
    tag, bumped, reached_by = STAGES[stage]
    keys: Dict[str, str] = {}
    for host in SAME_KEY:
        versions = release_versions(host)
        by_tag = {v: k for k, v in versions.items()}
        on = versions.get(current_key(host))
        if on != tag or ("v0.30.0" in by_tag) != bumped:
            pytest.fail(f"{host} is on {on} with releases {versions}: this test reads the fleet "
                        f"{stage} ({tag}), which {reached_by} leaves")  # fmt: skip
        keys = {"old": by_tag["v0.29.0"], **({"new": by_tag["v0.30.0"]} if bumped else {})}
    return keys


def tree(host: str) -> str:
    """Every path under the prefix with size, mtime, owner and mode: what a run would change."""
    fmt = "'%p %s %T@ %u %m\\n'"
    return sh(host, f"find {PREFIX} -path '*/__pycache__' -prune -o -printf {fmt} | sort")


def playbook(
    name: str, *extra: str, inventory: Optional[Path] = None, **extra_vars: object
) -> PlaybookRun:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env["ANSIBLE_FORCE_COLOR"] = "0"
    args = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"]]
    if inventory:
        args += ["-i", str(inventory)]
    if extra_vars:
        args += ["-e", json.dumps(extra_vars)]
    args += [str(REPO_ROOT / "playbooks" / name), *extra]
    return run_playbook(args, cwd=REPO_ROOT, env=env)


# --- after converge: v0.29.0 on all four ------------------------------------------------


def test_one_build_for_the_three_hosts_with_the_same_key():
    at_stage("converged")
    logs = {h: build_logs(h) for h in SAME_KEY}
    assert sum(len(v) for v in logs.values()) == 1, logs
    assert len(logs[BUILDER]) == 1, f"the vllm_builders host must build: {logs}"
    keys = {current_key(h) for h in SAME_KEY}
    assert len(keys) == 1, keys
    assert logs[BUILDER][0] == f"{PREFIX}/logs/build-{keys.pop()}.log"


def test_a_host_with_another_key_built_its_own():
    at_stage("converged")
    assert current_key(OTHER_KEY) != current_key(SAME_KEY[0])
    assert build_logs(OTHER_KEY) == [f"{PREFIX}/logs/build-{current_key(OTHER_KEY)}.log"]


def test_every_host_of_a_key_installed_the_same_wheel():
    at_stage("converged")
    shas = {h: wheel_sha256(h) for h in SAME_KEY}
    assert len(set(shas.values())) == 1, shas
    for host in SAME_KEY:
        assert stamp(host)["wheel_sha256"] == shas[host]
        assert stamp(host)["built_here"] is (host == BUILDER)
        assert stamp(host)["built_on"] == BUILDER  # the host that built it, in every stamp
    cache = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "artifacts"
    recorded = next((cache / current_key(BUILDER)).glob("*.whl.sha256")).read_text().split()[0]
    assert recorded == shas[BUILDER], "the controller's cache records the wheel's sha256"


def test_vllm_runs_from_the_current_release():
    at_stage("converged")
    for host in [*SAME_KEY, OTHER_KEY]:
        assert vllm_version(host) == "0.29.0+empty"
        assert stamp(host)["inputs"]["version"] == "v0.29.0"


def test_non_builders_have_no_checkout():
    at_stage("converged")
    for host in ["vllm-fleet-f1", "vllm-fleet-f3"]:
        assert sh(host, f"test -e {PREFIX}/extern/vllm && echo yes || echo no") == "no"


def unsealed_entries(host: str, release: str) -> str:
    """Entries of a release that are not sealed: not root's, or group/other-writable or
    setuid/setgid (symlinks aside, whose mode means nothing); "" when it is read-only."""
    return sh(
        host,
        f"find {release} \\( ! -user root -o ! -group root -o \\( ! -type l -perm /6022 \\) \\) "
        "-printf '%u:%g %m %p\\n' | head -20",
    )


def assert_read_only_to_the_service_user(host: str, release: str) -> None:
    """The release is root's, and the service user can neither add nor change a file in it."""
    assert unsealed_entries(host, release) == "", (host, release)
    site = sh(host, f"readlink -f {release}/venv/lib/python3*/site-packages")
    for script in (f"touch {site}/vllm/x.py", f"echo x >> {site}/vllm/__init__.py",
                   f"mv {release}/venv {release}/venv-moved"):  # fmt: skip
        tried = sh(host, f"su -s /bin/sh vllm -c '{script}' 2>&1 && echo allowed", check=False)
        assert "allowed" not in tried, (host, script, tried)
    assert sh(host, f"test -e {site}/vllm/x.py && echo yes || echo no") == "no"


def test_releases_are_roots_and_read_only_to_the_service_user():
    at_stage("converged")
    for host in SAME_KEY:
        key = current_key(host)
        release = f"{PREFIX}/releases/{key}"
        owner, mode = sh(host, f"stat -c '%U %a' {PREFIX}/releases").split()
        assert owner == "vllm" and int(mode, 8) & 0o022 == 0, (host, owner, mode)
        for path in [release, f"{release}/venv", f"{release}/wheel"]:
            owner, mode = sh(host, f"stat -c '%U %a' {path}").split()
            assert owner == "root" and int(mode, 8) & 0o022 == 0, (host, path, owner, mode)
        assert_read_only_to_the_service_user(host, release)
        profile = sh(host, "cat /etc/profile.d/vllm-source.sh")
        assert f'VLLM_SOURCE_VENV="{PREFIX}/current/venv"' in profile
        assert sh(host, f"test -e {PREFIX}/.vllm-source.lock && echo held || echo free") == "free"


# --- tag bump v0.29.0 -> v0.30.0 on f1-f3 --------------------------------------------------


def test_tag_bump_builds_once_and_switches_every_host():
    old_key = at_stage("converged")["old"]
    before = {h: current_key(h) for h in SAME_KEY}
    run = playbook("vllm_source.yml", "-l", LIMIT, vllm_source_version="v0.30.0")
    assert run.returncode == 0, run.stdout[-4000:]
    new = {h: current_key(h) for h in SAME_KEY}
    assert len(set(new.values())) == 1 and set(new.values()) != set(before.values()), new
    new_key = at_stage("bumped")["new"]
    assert set(new.values()) == {new_key}
    logs = {h: build_logs(h) for h in SAME_KEY}
    assert sum(len(v) for v in logs.values()) == 2, logs  # one per key, both on the builder
    assert f"{PREFIX}/logs/build-{new_key}.log" in logs[BUILDER]
    assert len({wheel_sha256(h) for h in SAME_KEY}) == 1
    for host in SAME_KEY:
        assert vllm_version(host) == "0.30.0+empty"
        releases = sh(host, f"ls {PREFIX}/releases").split()
        assert sorted(releases) == sorted([old_key, new_key])


def test_second_run_after_the_bump_changes_nothing():
    at_stage("bumped")
    start = time.monotonic()
    run = playbook("vllm_source.yml", "-l", LIMIT, vllm_source_version="v0.30.0")
    wall = time.monotonic() - start
    assert run.returncode == 0, run.stdout[-4000:]
    counts = run.stats
    assert set(counts) == set(SAME_KEY), counts
    assert all(c["changed"] == 0 for c in counts.values()), counts
    print(f"no-op run of 3 hosts: {wall:.1f} s")


# --- rollback -------------------------------------------------------------------------


def test_rollback_returns_every_host_to_the_previous_release_and_verifies_it():
    keys = at_stage("bumped")
    # On f1 the target is as a release made before releases were sealed: the service user's.
    # The rollback seals it before its verify (test_the_release_rolled_back_to_is_read_only...).
    sh("vllm-fleet-f1", f"chown -R -h vllm:vllm {PREFIX}/releases/{keys['old']}")
    run = playbook("rollback.yml", "-l", LIMIT)
    assert run.returncode == 0, run.stdout[-4000:]
    assert run.stdout.count("; verified.") == 3
    for host in SAME_KEY:
        assert current_key(host) == keys["old"]
        assert vllm_version(host) == "0.29.0+empty"
    assert run.stats and all(c["failed"] == 0 for c in run.stats.values()), run.stats


def test_the_release_rolled_back_to_is_read_only_to_the_service_user():
    keys = at_stage("rolled back")
    for host in SAME_KEY:
        for key in (keys["old"], keys["new"]):  # current, and the one it left
            assert_read_only_to_the_service_user(host, f"{PREFIX}/releases/{key}")
        assert vllm_version(host) == "0.29.0+empty", "vLLM still runs from the sealed release"


def test_rollback_to_a_named_key_goes_forward_again_and_back(tmp_path):
    keys = at_stage("rolled back")
    run = playbook("rollback.yml", "-l", "vllm-fleet-f1", vllm_source_rollback_to=keys["new"])
    assert run.returncode == 0, run.stdout[-4000:]
    assert current_key("vllm-fleet-f1") == keys["new"]
    run = playbook("rollback.yml", "-l", "vllm-fleet-f1", vllm_source_rollback_to="nosuchkey")
    assert run.returncode != 0 and "Set vllm_source_rollback_to to one of them" in run.stdout
    assert current_key("vllm-fleet-f1") == keys["new"]
    run = playbook("rollback.yml", "-l", "vllm-fleet-f1")
    assert run.returncode == 0 and current_key("vllm-fleet-f1") == keys["old"]


# --- a failing first batch ------------------------------------------------------------


def test_a_failing_first_batch_leaves_the_later_batches_untouched(tmp_path):
    inventory = tmp_path / "bump.yml"
    inventory.write_text(
        json.dumps(
            {
                "gpu_hosts": {
                    "vars": {"vllm_source_version": "v0.30.0"},
                    "hosts": {"vllm-fleet-f1": {"vllm_source_version": "v9.9.9"}},
                }
            }
        )
    )
    keys = at_stage("rolled back")
    before = {h: tree(h) for h in SAME_KEY}
    run = playbook("vllm_source.yml", "-l", LIMIT, inventory=inventory, vllm_source_serial=1)
    assert run.returncode != 0
    assert "Tag 'v9.9.9' does not exist" in run.stdout
    assert set(run.stats) == {"vllm-fleet-f1"}, "only the first batch may have run"
    for host in SAME_KEY:
        assert tree(host) == before[host], f"{host} changed"
        assert current_key(host) == keys["old"]
    record(
        "fault",
        "a bad tag in the first batch of a rolling run",
        "molecule/fleet test_a_failing_first_batch_leaves_the_later_batches_untouched",
        {
            "input": {"vllm_source_serial": 1, "vllm-fleet-f1": "vllm_source_version v9.9.9"},
            "exit_code": run.returncode,
            "observed": "only f1's batch ran; every file under the prefix of f1-f3 unchanged, "
            "all three still on their current release",
            "message": message_excerpt(run.stdout, "Tag 'v9.9.9' does not exist"),
        },
    )


# --- one run at a time ----------------------------------------------------------------


def test_a_held_lock_stops_a_run_naming_the_holder():
    host = "vllm-fleet-f3"
    lock = f"{PREFIX}/.vllm-source.lock"
    holder = {"run_id": "held-by-test", "pid": 4242, "host": host, "started": "now", "owner": "t"}
    sh(host, f"echo '{json.dumps(holder)}' > {lock}")
    try:
        before = tree(host)
        run = playbook(
            "vllm_source.yml", "-l", host, vllm_source_version="v0.30.0", vllm_source_lock_timeout=3
        )
        assert run.returncode != 0
        assert "held by run held-by-test" in run.stdout
        assert f"remove it with `rm {lock}`" in run.stdout
        assert tree(host) == before, "a run that did not get the lock must change nothing"
        record(
            "fault",
            "another run holds the host's lock",
            "molecule/fleet test_a_held_lock_stops_a_run_naming_the_holder",
            {
                "input": {"lock": "held by run held-by-test", "vllm_source_lock_timeout": 3},
                "exit_code": run.returncode,
                "observed": "waited 3 s, failed naming the holder and the rm for a stale lock; "
                "every file under the prefix unchanged",
                "message": message_excerpt(run.stdout, "held by run held-by-test"),
            },
        )
    finally:
        sh(host, f"rm -f {lock}")


# The lock task that waits up to the timeout (_lock.yml's first vllm_lock task only takes a
# free lock), read from the role so that a renamed task cannot make this test look at nothing.
LOCK_TASK = next(
    task["name"]
    for task in yaml.safe_load((REPO_ROOT / "roles/vllm_source/tasks/_lock.yml").read_text())
    if "timeout" in (task.get("vllm_lock") or {})
)


def test_two_concurrent_runs_take_turns():
    host = "vllm-fleet-f3"
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    args = [
        "ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "-l", host,
        str(REPO_ROOT / "playbooks" / "vllm_source.yml"),
    ]  # fmt: skip
    procs = [
        subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate()[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs[0][-2000:]
    waited = []
    for out in outs:
        for play in json.loads(out)["plays"]:
            for task in play["tasks"]:
                if task["task"]["name"].endswith(LOCK_TASK):
                    waited.append(task["hosts"][host]["waited"])
    assert len(waited) == 2 and max(waited) > 0, f"one run must have waited: {waited}"
    assert sh(host, f"test -e {PREFIX}/.vllm-source.lock && echo held || echo free") == "free"
    record(
        "fault",
        "two runs at once on one host",
        "molecule/fleet test_two_concurrent_runs_take_turns",
        {
            "input": {"runs": 2, "host": host},
            "exit_code": 0,
            "observed": f"both passed; one waited {max(waited):.1f} s for the other's lock; "
            "the lock is free afterwards",
        },
    )
