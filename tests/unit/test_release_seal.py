"""A verified release is sealed: its code is root's and read-only to the service user that
runs vLLM (vllm_release state=sealed), and goes back to that user only for a run that
installs into it again (state=unsealed). Nothing outside the release changes: no symlink is
followed out of it."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import vllm_release
import yaml
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.vllm_fleet_release import (
    check_venv,
    own_tree,
    release_dir,
    seal_release,
    sealed_mode,
    unseal_release,
)
from test_release_integrity import KEY, SITE, make_release

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "roles" / "vllm_source" / "tasks"
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(
    not IS_ROOT, reason="changing owners to root and back needs root (the role runs it as root)"
)
# The stand-in for the service user: nobody, present on every Debian-like host.
SERVICE_UID = 65534
SERVICE_GID = 65534


def run(args: Dict[str, Any], capsys: pytest.CaptureFixture) -> Dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        vllm_release.main()
    return json.loads(capsys.readouterr().out)


def entries(top: Path) -> Iterator[Tuple[Path, os.stat_result]]:
    """Every path of the tree, itself included, with its lstat; symlinks not followed."""
    yield top, top.lstat()
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            yield path, path.lstat()


def unsealed(top: Path) -> List[str]:
    """The entries of a tree that are not sealed: not root's, group/other-writable, setuid."""
    bad = []
    for path, st in entries(top):
        if (st.st_uid, st.st_gid) != (0, 0):
            bad.append(f"{path} owned by {st.st_uid}:{st.st_gid}")
        elif not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o6022:
            bad.append(f"{path} mode {stat.S_IMODE(st.st_mode):o}")
    return bad


def make_tree(top: Path) -> Dict[str, Path]:
    """A release-like tree: group-writable files and dirs, an executable, a setuid file."""
    (top / "venv" / "bin").mkdir(parents=True)
    (top / "wheel").mkdir()
    files = {
        "script": top / "venv" / "bin" / "vllm",
        "module": top / "venv" / "mod.py",
        "setuid": top / "venv" / "bin" / "helper",
        "wheel": top / "wheel" / "vllm-0.30.0-cp38-abi3-linux_x86_64.whl",
    }
    for path in files.values():
        path.write_text("#!/bin/sh\n")
    for directory in (top, top / "venv", top / "venv" / "bin"):
        os.chmod(directory, 0o755)
    os.chmod(files["script"], 0o775)
    os.chmod(files["module"], 0o664)
    os.chmod(files["setuid"], 0o4775)
    os.chmod(files["wheel"], 0o666)
    os.chmod(top / "wheel", 0o2777)
    return files


@pytest.mark.parametrize(
    ("mode", "sealed"),
    [
        (0o644, 0o644),
        (0o664, 0o644),
        (0o666, 0o644),
        (0o755, 0o755),
        (0o775, 0o755),  # the exec bits stay
        (0o700, 0o700),
        (0o4775, 0o755),  # no setuid file of root's from a file the service user made
        (0o2775, 0o755),
        (0o1777, 0o1755),
        (stat.S_IFREG | 0o664, 0o644),
    ],
)
def test_sealed_mode_drops_group_and_other_write_and_setuid_only(mode: int, sealed: int) -> None:
    assert sealed_mode(mode) == sealed


def test_the_modes_of_a_tree_are_sealed_once(tmp_path: Path) -> None:
    # As the current user (root or not): the mode logic, owners left as they are.
    top = tmp_path / "release"
    files = make_tree(top)
    uid, gid = os.getuid(), os.getgid()
    assert own_tree(str(top), uid, gid, sealed_mode, dry_run=True) == 5
    assert stat.S_IMODE(files["module"].stat().st_mode) == 0o664, "a dry run changes nothing"
    assert own_tree(str(top), uid, gid, sealed_mode) == 5  # 4 files and the wheel dir
    modes = {name: stat.S_IMODE(p.stat().st_mode) for name, p in files.items()}
    assert modes == {"script": 0o755, "module": 0o644, "setuid": 0o755, "wheel": 0o644}
    assert stat.S_IMODE((top / "wheel").stat().st_mode) == 0o755
    assert os.access(files["script"], os.X_OK)
    assert own_tree(str(top), uid, gid, sealed_mode) == 0, "a sealed tree is unchanged"


@needs_root
def test_a_release_is_sealed_to_root_and_a_second_seal_changes_nothing(tmp_path, capsys) -> None:
    venv = make_release(tmp_path)
    top = Path(release_dir(str(tmp_path), KEY))
    make_tree(top / "extra")
    assert unseal_release(str(top), SERVICE_UID, SERVICE_GID) > 0  # as the build leaves it
    assert unsealed(top)
    args = {"prefix": str(tmp_path), "state": "sealed", "key": KEY}
    checked = run({**args, "_ansible_check_mode": True}, capsys)
    assert checked["changed"] and checked["changed_entries"] > 0
    assert (venv / "pyvenv.cfg").stat().st_uid == SERVICE_UID, "check mode changes nothing"
    first = run(args, capsys)
    assert first["changed"] and first["changed_entries"] == checked["changed_entries"]
    assert first["release_dir"] == str(top)
    assert unsealed(top) == []
    second = run(args, capsys)
    assert (second["changed"], second["changed_entries"]) == (False, 0)


@needs_root
def test_symlinks_are_owned_themselves_and_never_followed_out_of_the_release(tmp_path) -> None:
    top = tmp_path / "releases" / KEY
    make_tree(top)
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    target = outside / "file"
    target.write_text("not the release's\n")
    (outside / "dir" / "inner").write_text("nor this\n")
    for path in (outside, outside / "dir", target, outside / "dir" / "inner"):
        os.chmod(path, 0o777 if path.is_dir() else 0o666)
        os.chown(path, SERVICE_UID, SERVICE_GID)
    links = {
        "file": top / "venv" / "file-link",
        "dir": top / "venv" / "dir-link",
        "dangling": top / "venv" / "dangling",
        "python": top / "venv" / "bin" / "python",
    }
    links["file"].symlink_to(target)
    links["dir"].symlink_to(outside / "dir")
    links["dangling"].symlink_to(tmp_path / "nowhere")
    links["python"].symlink_to(sys.executable)
    python_before = os.stat(sys.executable)
    own_tree(str(top), SERVICE_UID, SERVICE_GID)  # the tree as the service user left it

    assert seal_release(str(top)) > 0
    assert unsealed(top) == []
    for link in links.values():
        assert link.is_symlink() and link.lstat().st_uid == 0, link
    for path in (outside / "dir", target, outside / "dir" / "inner"):
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == (SERVICE_UID, SERVICE_GID), path
        assert stat.S_IMODE(st.st_mode) in (0o777, 0o666), path
    after = os.stat(sys.executable)
    assert (after.st_uid, after.st_mode) == (python_before.st_uid, python_before.st_mode)


def test_a_release_that_is_a_symlink_is_refused(tmp_path, capsys) -> None:
    elsewhere = tmp_path / "elsewhere"
    make_tree(elsewhere)
    (tmp_path / "releases").mkdir()
    Path(release_dir(str(tmp_path), KEY)).symlink_to(elsewhere)
    with pytest.raises(OSError):
        own_tree(release_dir(str(tmp_path), KEY), os.getuid(), os.getgid(), sealed_mode)
    args = {"prefix": str(tmp_path), "state": "sealed", "key": KEY}
    with patch_module_args(args), pytest.raises(SystemExit):
        vllm_release.main()
    out = json.loads(capsys.readouterr().out)
    assert out["failed"] and "is no release directory" in out["msg"]
    assert stat.S_IMODE((elsewhere / "venv" / "mod.py").stat().st_mode) == 0o664


@needs_root
def test_unseal_gives_the_release_back_to_the_service_user(tmp_path, capsys) -> None:
    venv = make_release(tmp_path)
    top = Path(release_dir(str(tmp_path), KEY))
    make_tree(top / "extra")
    # A hard link to a root file outside the release must not give that file away.
    outside = tmp_path / "root-file"
    outside.write_text("root's\n")
    os.link(outside, venv / "linked")
    assert seal_release(str(top)) > 0
    modes = {p: stat.S_IMODE(st.st_mode) for p, st in entries(top)}
    args = {
        "prefix": str(tmp_path),
        "state": "unsealed",
        "key": KEY,
        "owner": pwd.getpwuid(SERVICE_UID).pw_name,
        "group": grp.getgrgid(SERVICE_GID).gr_name,
    }
    first = run(args, capsys)
    assert first["changed"] and first["changed_entries"] > 0
    for path, st in entries(top):
        if path == venv / "linked":
            continue
        assert (st.st_uid, st.st_gid) == (SERVICE_UID, SERVICE_GID), path
        assert stat.S_IMODE(st.st_mode) == modes[path], f"{path}: owners only"
    assert outside.stat().st_uid == 0 and (venv / "linked").stat().st_uid == 0
    assert run(args, capsys)["changed"] is False
    # Sealed again: what 09_verify.yml does after the repair.
    assert seal_release(str(top)) > 0 and unsealed(top) == []


def test_unseal_of_a_missing_release_changes_nothing(tmp_path, capsys) -> None:
    me = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    args = {"prefix": str(tmp_path), "state": "unsealed", "key": KEY, "owner": me, "group": group}
    out = run(args, capsys)
    assert (out["changed"], out["changed_entries"]) == (False, 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"state": "unsealed", "key": KEY}, "missing: owner, group"),
        ({"state": "sealed", "key": ""}, "needs the key of one release"),
        ({"state": "sealed", "key": "../etc"}, "needs the key of one release"),
        ({"state": "sealed", "key": KEY}, "is no release directory"),
        (
            {"state": "unsealed", "key": KEY, "owner": "no-such-user-x", "group": "root"},
            "does not exist on this host",
        ),
    ],
)
def test_bad_seal_requests_fail_naming_the_cause(tmp_path, capsys, args, message) -> None:
    (tmp_path / "releases" / KEY).mkdir(parents=True)
    if args.get("key") == KEY and args["state"] == "sealed":
        (tmp_path / "releases" / KEY).rmdir()
    with patch_module_args({"prefix": str(tmp_path), **args}), pytest.raises(SystemExit):
        vllm_release.main()
    out = json.loads(capsys.readouterr().out)
    assert out["failed"] and message in out["msg"], out["msg"]


def service_user_python() -> str:
    """A Python the service user may run (this one may live under root's 0700 home)."""
    for python in (sys.executable, "/usr/bin/python3"):
        try:
            done = subprocess.run(
                [python, "-c", "pass"], user=SERVICE_UID, group=SERVICE_GID, check=False
            )
        except OSError:  # not executable for that user
            continue
        if done.returncode == 0:
            return python
    pytest.skip("no Python that the service user (nobody) may run")


@needs_root
def test_a_sealed_release_is_read_only_to_the_service_user_who_can_still_use_it() -> None:
    python = service_user_python()
    # Under a world-traversable directory: pytest's tmp_path is root's only (0700).
    base = Path(tempfile.mkdtemp(prefix="vllm-seal-"))
    try:
        os.chmod(base, 0o755)
        shutil.copy(ROOT / "module_utils" / "vllm_fleet_release.py", base)
        venv = make_release(base)
        (venv / "bin" / "python").unlink()
        (venv / "bin" / "python").symlink_to(python)  # one the service user may run
        top = release_dir(str(base), KEY)
        assert unseal_release(top, SERVICE_UID, SERVICE_GID) > 0  # as pip left it
        assert seal_release(top) > 0
        site = venv / SITE
        # The integrity check reads a sealed release as root (04_plan.yml) ...
        assert check_venv(str(venv), "hash", require=["vllm"])["damaged_count"] == 0
        # ... and the service user reads and runs it, but writes nothing in it.
        probe = (
            "import json, os, sys\n"
            "sys.path.insert(0, sys.argv[3])\n"
            "from vllm_fleet_release import check_venv\n"
            "site, venv = sys.argv[1], sys.argv[2]\n"
            "tried = {}\n"
            "for name, do in [\n"
            "    ('create', lambda: open(os.path.join(site, 'vllm', 'x.py'), 'x')),\n"
            "    ('modify', lambda: open(os.path.join(site, 'vllm', '__init__.py'), 'a')),\n"
            "    ('remove', lambda: os.unlink(os.path.join(site, 'vllm', '__init__.py'))),\n"
            "    ('rename', lambda: os.rename(os.path.join(site, 'vllm'), site + '/v2')),\n"
            "    ('stamp', lambda: open(os.path.join(venv, 'vllm-source-stamp.json'), 'a')),\n"
            "]:\n"
            "    try:\n"
            "        do()\n"
            "        tried[name] = 'allowed'\n"
            "    except PermissionError:\n"
            "        tried[name] = 'refused'\n"
            "damage = check_venv(venv, 'hash', require=['vllm'])['damaged_count']\n"
            "print(json.dumps({'tried': tried, 'damaged': damage,\n"
            "                  'read': open(os.path.join(site, 'vllm', '__init__.py')).read()}))\n"
        )
        done = subprocess.run(
            [python, "-c", probe, str(site), str(venv), str(base)],
            user=SERVICE_UID,
            group=SERVICE_GID,
            extra_groups=[],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert set(out["tried"].values()) == {"refused"}, out["tried"]
        assert out["damaged"] == 0 and "__version__" in out["read"]
    finally:
        shutil.rmtree(base)


# --- where the role seals and unseals ---------------------------------------------------


def tasks_of(name: str) -> List[Dict[str, Any]]:
    return yaml.safe_load((TASKS / name).read_text(encoding="utf-8"))


def flat(tasks: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    out = []
    for task in tasks:
        out.append(task)
        out += flat(task.get("block", []))
    return out


def index_of(tasks: List[Dict[str, Any]], found) -> int:
    return next(i for i, t in enumerate(tasks) if found(t))


def release_state(task: Dict[str, Any]) -> str:
    return (task.get("vllm_release") or {}).get("state", "")


def test_the_role_seals_a_release_after_its_verify_and_before_its_smoke_test() -> None:
    tasks = flat(tasks_of("09_verify.yml"))
    verify = index_of(tasks, lambda t: "vllm_verify" in t)
    sealed = index_of(tasks, lambda t: release_state(t) == "sealed")
    smoke = index_of(tasks, lambda t: "vllm_smoke" in t)
    assert verify < sealed < smoke
    assert tasks[sealed].get("become") is True and "become_user" not in tasks[sealed]
    assert "when" not in tasks[sealed], "every run seals, so a no-op run finds it sealed"


def test_only_a_run_that_installs_unseals_the_release_and_only_under_the_lock() -> None:
    tasks = tasks_of("05_prefix.yml")
    lock = index_of(tasks, lambda t: t.get("ansible.builtin.include_tasks") == "_lock.yml")
    unsealed_at = [i for i, t in enumerate(tasks) if release_state(t) == "unsealed"]
    assert len(unsealed_at) == 1 and unsealed_at[0] > lock
    # Skipped where no plan ran (the prefix phase alone, as test_controller_copy.py runs it).
    assert tasks[unsealed_at[0]]["when"] == "__vllm_source_needs_install | default(false) | bool"
    others = [n for n in (p.name for p in TASKS.glob("*.yml")) if n != "05_prefix.yml"]
    assert not any(release_state(t) == "unsealed" for n in others for t in flat(tasks_of(n)))


def test_the_stamp_is_roots_and_a_rollback_target_is_sealed_before_its_verify() -> None:
    stamp = next(
        t for t in tasks_of("10_release.yml") if "stamp" in str(t.get("ansible.builtin.copy"))
    )
    assert (stamp["ansible.builtin.copy"]["owner"], stamp["ansible.builtin.copy"]["group"]) == (
        "root",
        "root",
    )
    tasks = flat(tasks_of("rollback.yml"))
    sealed = index_of(tasks, lambda t: release_state(t) == "sealed")
    assert sealed < index_of(tasks, lambda t: "vllm_verify" in t)
    assert sealed < index_of(tasks, lambda t: release_state(t) == "current")
