"""Fleet decisions and the modules around them: builders, releases, the per-host lock."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
import zipfile
from pathlib import Path
from typing import Any, Dict

import pytest
import vllm_artifact
import vllm_builders
import vllm_lock
import vllm_release
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.vllm_fleet_fleet import (
    choose_builders,
    describe_holder,
    is_partial,
    lock_content,
    parse_lock,
    previous_release,
    releases_to_prune,
)


def run(module: Any, args: Dict[str, Any], capsys: pytest.CaptureFixture) -> Dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


# --- builders --------------------------------------------------------------------------

HOSTS = [
    {"name": "f1", "key": "aaa"},
    {"name": "f2", "key": "aaa"},
    {"name": "f3", "key": "aaa"},
    {"name": "f4", "key": "bbb"},
]


def test_first_host_of_each_key_builds_without_a_builders_group() -> None:
    assert choose_builders(HOSTS) == {"aaa": "f1", "bbb": "f4"}


def test_a_host_in_the_builders_group_wins_for_its_key_only() -> None:
    assert choose_builders(HOSTS, ["f3"]) == {"aaa": "f3", "bbb": "f4"}
    # the first builder-group host in play order, not in group order
    assert choose_builders(HOSTS, ["f3", "f2"]) == {"aaa": "f2", "bbb": "f4"}


def test_builders_group_hosts_outside_the_play_are_ignored() -> None:
    assert choose_builders(HOSTS, ["gpu-99"]) == {"aaa": "f1", "bbb": "f4"}


def test_hosts_whose_arch_lists_differ_never_share_a_builder() -> None:
    hosts = [{"name": "a100", "key": "k80"}, {"name": "h100", "key": "k90"}]
    assert choose_builders(hosts, ["a100"]) == {"k80": "a100", "k90": "h100"}


def builders_args(cache: Path, needs=(True, True, True, True), **extra: Any) -> Dict[str, Any]:
    return {
        "hosts": [h["name"] for h in HOSTS],
        "keys": [h["key"] for h in HOSTS],
        "needs_install": list(needs),
        "artifact_cache": str(cache),
        **extra,
    }


def cache_wheel(cache: Path, key: str, digest: str = "") -> Path:
    """A real (tiny) wheel and its .sha256 in the cache, as a builder leaves them; `digest`
    records another sha256 than the wheel's."""
    wheel = cache / key / "vllm-0.30.0-cp311-cp311-linux_x86_64.whl"
    wheel.parent.mkdir(parents=True)
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("vllm/__init__.py", f"KEY = {key!r}\n")
        archive.writestr("vllm-0.30.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
    digest = digest or hashlib.sha256(wheel.read_bytes()).hexdigest()
    (cache / key / f"{wheel.name}.sha256").write_text(f"{digest}  {wheel.name}\n")
    return wheel


def test_builders_module_returns_the_choice(tmp_path, capsys) -> None:
    out = run(vllm_builders, builders_args(tmp_path, builders_group=["f2"]), capsys)
    assert out["builders"] == {"aaa": "f2", "bbb": "f4"}
    assert (out["builds"], out["cached"], out["changed"]) == (["f2", "f4"], [], False)


def test_a_key_the_artifact_cache_holds_is_built_by_nobody(tmp_path, capsys) -> None:
    cache_wheel(tmp_path, "aaa")
    out = run(vllm_builders, builders_args(tmp_path), capsys)
    assert (out["builders"], out["builds"], out["cached"]) == ({"bbb": "f4"}, ["f4"], ["aaa"])


def test_a_wheel_without_its_sha256_is_no_cache_hit(tmp_path, capsys) -> None:
    # The builder fetches the wheel, then writes its .sha256: a run killed in between left a
    # wheel nobody may trust, so the key is built again.
    wheel = cache_wheel(tmp_path, "aaa")
    Path(f"{wheel}.sha256").unlink()
    out = run(vllm_builders, builders_args(tmp_path), capsys)
    assert out["builders"] == {"aaa": "f1", "bbb": "f4"} and out["cached"] == []
    # ... and that copy is moved aside, so the new build lands where it was.
    assert [d["wheel"] for d in out["discarded"]] == [str(wheel)] and not wheel.exists()


def test_a_wheel_whose_sha256_is_not_the_recorded_one_is_built_again(tmp_path, capsys) -> None:
    wheel = cache_wheel(tmp_path, "aaa", digest="ab" * 32)
    out = run(vllm_builders, builders_args(tmp_path), capsys)
    assert (out["builders"], out["cached"], out["changed"]) == (
        {"aaa": "f1", "bbb": "f4"},
        [],
        True,
    )
    assert "is not the recorded " + "ab" * 32 in out["discarded"][0]["reason"]
    assert "cannot be trusted" in json.dumps(out["warnings"])
    assert not wheel.exists()


def test_hosts_that_need_nothing_or_have_no_key_never_build(tmp_path, capsys) -> None:
    args = builders_args(tmp_path, needs=(False, True, True, False))
    args["keys"][2] = ""  # f3 failed before it named its key
    out = run(vllm_builders, args, capsys)
    assert (out["builders"], out["builds"]) == ({"aaa": "f2"}, ["f2"])


def test_without_build_once_every_host_that_needs_a_release_builds(tmp_path, capsys) -> None:
    cache_wheel(tmp_path, "aaa")
    args = builders_args(tmp_path, needs=(True, False, True, True), build_once=False)
    out = run(vllm_builders, args, capsys)
    assert (out["builders"], out["builds"], out["cached"]) == ({}, ["f1", "f3", "f4"], [])


def test_builders_module_refuses_lists_of_different_lengths(tmp_path, capsys) -> None:
    args = {**builders_args(tmp_path), "keys": ["aaa"]}
    out = run(vllm_builders, args, capsys)
    assert out["failed"] and "must be as long" in out["msg"]


def test_artifact_module_returns_the_wheel_and_its_recorded_sha256(tmp_path, capsys) -> None:
    wheel = cache_wheel(tmp_path, "aaa")
    out = run(vllm_artifact, {"artifact_cache": str(tmp_path), "key": "aaa"}, capsys)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert (out["wheel"], out["sha256"], out["discarded"]) == (str(wheel), digest, [])
    assert out["changed"] is False


def test_artifact_module_names_the_builder_when_the_wheel_is_missing(tmp_path, capsys) -> None:
    args = {"artifact_cache": str(tmp_path), "key": "bbb", "builder": "f4"}
    out = run(vllm_artifact, args, capsys)
    assert out["failed"]
    assert "has no wheel for build key bbb: its builder f4 failed" in out["msg"]
    assert "vllm_source_build_once: false" in out["msg"]


# --- releases --------------------------------------------------------------------------


def test_prune_keeps_current_and_the_newest_verified() -> None:
    releases = [("a", 1.0, True), ("b", 2.0, True), ("c", 3.0, True), ("d", 4.0, True)]
    assert releases_to_prune(releases, "d", 2) == ["a"]
    assert releases_to_prune(releases, "a", 2) == ["b"]  # current is kept even when oldest
    assert releases_to_prune(releases, "d", 0) == ["a", "b", "c"]


def test_prune_drops_unverified_releases_but_never_current() -> None:
    releases = [("ok", 1.0, True), ("broken", 9.0, False), ("cur", 5.0, True)]
    assert releases_to_prune(releases, "cur", 2) == ["broken"]
    assert releases_to_prune([("new", 1.0, False)], "new", 2) == []


def test_previous_is_the_newest_verified_other_than_current() -> None:
    releases = [("a", 1.0, True), ("b", 2.0, True), ("c", 3.0, False)]
    assert previous_release(releases, "b") == "a"
    assert previous_release(releases, "a") == "b"
    assert previous_release([("a", 1.0, True)], "a") is None


def make_release(prefix: Path, key: str, mtime: float, verified: bool = True) -> None:
    venv = prefix / "releases" / key / "venv"
    venv.mkdir(parents=True)
    if verified:
        stamp = venv / "vllm-source-stamp.json"
        stamp.write_text("{}")
        os.utime(stamp, (mtime, mtime))


def test_release_module_switches_current_atomically_and_reports(tmp_path, capsys) -> None:
    make_release(tmp_path, "old", 100)
    make_release(tmp_path, "new", 200)
    out = run(vllm_release, {"prefix": str(tmp_path), "state": "current", "key": "new"}, capsys)
    assert out["changed"] and out["current"] == "new" and out["switched_from"] == ""
    assert os.readlink(tmp_path / "current") == "releases/new"
    assert not (tmp_path / ".current.tmp").exists()
    again = run(vllm_release, {"prefix": str(tmp_path), "state": "current", "key": "new"}, capsys)
    assert again["changed"] is False and again["previous"] == "old"
    back = run(vllm_release, {"prefix": str(tmp_path), "state": "current"}, capsys)  # rollback
    assert back["changed"] and back["current"] == "old" and back["switched_from"] == "new"
    assert os.readlink(tmp_path / "current") == "releases/old"


def test_release_module_refuses_an_unverified_release(tmp_path, capsys) -> None:
    make_release(tmp_path, "half", 100, verified=False)
    out = run(vllm_release, {"prefix": str(tmp_path), "state": "current", "key": "half"}, capsys)
    assert out["failed"] and "not a verified release" in out["msg"]
    assert "vllm_source_rollback_to" in out["msg"]
    assert not (tmp_path / "current").exists()


def test_release_module_refuses_rollback_without_previous(tmp_path, capsys) -> None:
    make_release(tmp_path, "only", 100)
    run(vllm_release, {"prefix": str(tmp_path), "state": "current", "key": "only"}, capsys)
    out = run(vllm_release, {"prefix": str(tmp_path), "state": "current"}, capsys)
    assert out["failed"] and "no verified release other than" in out["msg"]


def test_release_module_prunes_old_releases(tmp_path, capsys) -> None:
    for i, key in enumerate(["r1", "r2", "r3", "r4"]):
        make_release(tmp_path, key, 100 + i)
    run(vllm_release, {"prefix": str(tmp_path), "state": "current", "key": "r2"}, capsys)
    out = run(vllm_release, {"prefix": str(tmp_path), "state": "pruned", "keep": 2}, capsys)
    assert out["changed"] and out["pruned"] == ["r1"]
    assert sorted(p.name for p in (tmp_path / "releases").iterdir()) == ["r2", "r3", "r4"]
    again = run(vllm_release, {"prefix": str(tmp_path), "state": "pruned", "keep": 2}, capsys)
    assert again["changed"] is False and again["pruned"] == []


def test_only_an_unverified_release_other_than_current_is_partial() -> None:
    releases = [("done", 300.0, True), ("half", 200.0, False), ("live", 100.0, False)]
    assert is_partial(releases, "done", "half")
    assert not is_partial(releases, "half", "done")  # verified
    assert not is_partial(releases, "live", "live")  # current, even without a stamp
    assert not is_partial(releases, "done", "gone")  # not there


def test_release_module_discards_a_partial_release_only(tmp_path, capsys) -> None:
    make_release(tmp_path, "good", 100)
    make_release(tmp_path, "half", 200, verified=False)
    (tmp_path / "releases" / "half" / "venv" / "lib").mkdir()
    run(vllm_release, {"prefix": str(tmp_path), "state": "current", "key": "good"}, capsys)
    kept = run(vllm_release, {"prefix": str(tmp_path), "state": "discarded", "key": "good"}, capsys)
    assert kept["changed"] is False and kept["discarded"] is False
    out = run(vllm_release, {"prefix": str(tmp_path), "state": "discarded", "key": "half"}, capsys)
    assert out["changed"] and out["discarded"] and out["current"] == "good"
    assert sorted(p.name for p in (tmp_path / "releases").iterdir()) == ["good"]
    again = run(
        vllm_release, {"prefix": str(tmp_path), "state": "discarded", "key": "half"}, capsys
    )
    assert again["changed"] is False


# --- lock ------------------------------------------------------------------------------


def test_lock_content_round_trips_and_names_the_holder() -> None:
    holder = parse_lock(lock_content("run-1", 42, "f1", "2025-01-01T00:00:00Z", "root@ctl"))
    assert holder["run_id"] == "run-1" and holder["pid"] == 42
    line = describe_holder(holder)
    assert "run-1" in line and "pid 42 on f1" in line and "root@ctl" in line
    assert "unreadable" in describe_holder(parse_lock("garbage"))


def lock_args(path: Path, run_id: str, **extra: Any) -> Dict[str, Any]:
    return {"path": str(path), "run_id": run_id, "owner": "tester", **extra}


def test_lock_is_taken_released_and_reports_no_change(tmp_path, capsys) -> None:
    lock = tmp_path / ".vllm-source.lock"
    out = run(vllm_lock, lock_args(lock, "A", timeout=0), capsys)
    assert out["changed"] is False and lock.exists()
    assert json.loads(lock.read_text())["run_id"] == "A"
    out = run(vllm_lock, lock_args(lock, "B", state="absent"), capsys)  # not B's: kept
    assert lock.exists()
    out = run(vllm_lock, lock_args(lock, "A", state="absent"), capsys)
    assert out["changed"] is False and not lock.exists()


def test_a_second_run_waits_then_fails_naming_the_holder(tmp_path, capsys) -> None:
    lock = tmp_path / ".vllm-source.lock"
    run(vllm_lock, lock_args(lock, "A", timeout=0), capsys)
    start = time.monotonic()
    out = run(vllm_lock, lock_args(lock, "B", timeout=2), capsys)
    assert time.monotonic() - start >= 2
    assert out["failed"]
    assert "run A of tester" in out["msg"]
    assert "vllm_source_lock_timeout" in out["msg"]
    assert f"rm {lock}" in out["msg"], "the message must say how to clear a stale lock"
    assert json.loads(lock.read_text())["run_id"] == "A", "the holder's lock must stay"


def hold_then_release(path: str, seconds: float) -> None:
    time.sleep(seconds)
    os.unlink(path)


def test_a_waiting_run_takes_the_lock_once_it_is_released(tmp_path, capsys) -> None:
    lock = tmp_path / ".vllm-source.lock"
    run(vllm_lock, lock_args(lock, "A", timeout=0), capsys)
    proc = multiprocessing.get_context("fork").Process(
        target=hold_then_release, args=(str(lock), 1.5)
    )
    proc.start()
    out = run(vllm_lock, lock_args(lock, "B", timeout=30), capsys)
    proc.join()
    assert not out.get("failed") and out["waited"] >= 1.0
    assert json.loads(lock.read_text())["run_id"] == "B"


def race(path: str, run_id: str, results: Any) -> None:
    results.put((run_id, vllm_lock.try_create(path, run_id)))


def test_exactly_one_of_many_concurrent_runs_gets_the_lock(tmp_path) -> None:
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    lock = str(tmp_path / ".vllm-source.lock")
    procs = [ctx.Process(target=race, args=(lock, f"run-{i}", results)) for i in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    outcomes = [results.get() for _ in procs]
    winners = [run_id for run_id, won in outcomes if won]
    assert len(winners) == 1
    assert Path(lock).read_text().strip() == winners[0]


def test_lock_fails_when_the_prefix_is_missing(tmp_path, capsys) -> None:
    out = run(vllm_lock, lock_args(tmp_path / "nope" / ".vllm-source.lock", "A"), capsys)
    assert out["failed"] and "does not exist" in out["msg"]


def test_release_info_hands_the_role_a_releases_dir_and_stamp(tmp_path, capsys) -> None:
    # 03_pins.yml and rollback.yml read stamps through vllm_release instead of spelling the
    # stamp's path; a release without a readable stamp reads as {}.
    make_release(tmp_path, "old", mtime=1)
    stamp = tmp_path / "releases" / "old" / "venv" / "vllm-source-stamp.json"
    stamp.write_text(json.dumps({"inputs": {"commit": "c0ffee"}, "pins": {"torch_pin": "2.13.0"}}))
    make_release(tmp_path, "half", mtime=2, verified=False)
    run(vllm_release, {"prefix": str(tmp_path), "state": "current", "key": "old"}, capsys)
    current = run(vllm_release, {"prefix": str(tmp_path), "state": "info"}, capsys)
    assert current["release_dir"] == str(tmp_path / "releases" / "old")
    assert current["stamp"]["pins"] == {"torch_pin": "2.13.0"}
    half = run(vllm_release, {"prefix": str(tmp_path), "state": "info", "key": "half"}, capsys)
    assert (half["release_dir"], half["stamp"]) == (str(tmp_path / "releases" / "half"), {})
    bare = run(vllm_release, {"prefix": str(tmp_path / "none"), "state": "info"}, capsys)
    assert (bare["current"], bare["release_dir"], bare["stamp"]) == ("", "", {})
    # Only a verified release is checked for damage (tests/unit/test_release_integrity.py).
    assert (half["integrity"], half["damaged_count"]) == ("", 0)
    assert (bare["integrity"], bare["damaged"], bare["damaged_count"]) == ("", [], 0)
    assert current["integrity"] == "size" and current["damaged_count"] > 0  # an empty venv
