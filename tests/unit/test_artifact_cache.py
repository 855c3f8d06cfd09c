"""The controller's artifact cache hands out only wheels that are the files their builders
recorded: a corrupt one (bytes changed, truncated, no .sha256, not a zip) is moved aside,
reported, and its key built again - before anything is copied to a host."""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from pathlib import Path
from typing import Any, Dict

import pytest
import vllm_artifact
import vllm_builders
from ansible.module_utils import vllm_fleet_fleet
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.vllm_fleet_fleet import cached_wheel, describe_discarded

KEY = "0123456789abcdef"
NAME = "vllm-0.30.0+cu128-cp311-cp311-linux_x86_64.whl"
NOW = 1_796_205_600.0  # 2026-12-02T10:00:00Z
STAMP = "20261202T100000Z"


@pytest.fixture(autouse=True)
def fresh_module_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """module.warn() collects into a process-wide dict; give each test its own."""
    from ansible.module_utils.common import warnings

    monkeypatch.setattr(warnings, "_global_warnings", {})


def run(module: Any, args: Dict[str, Any], capsys: pytest.CaptureFixture) -> Dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_wheel(cache: Path, key: str = KEY, record: bool = True) -> Path:
    """A real wheel (a zip with a .dist-info, 64 KiB of incompressible bytes in it) and its
    .sha256, written as 07_build.yml writes them: the wheel first, then its checksum."""
    wheel = cache / key / NAME
    wheel.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("vllm/__init__.py", "__version__ = '0.30.0+cu128'\n")
        archive.writestr("vllm/_C.abi3.so", os.urandom(1 << 16))
        archive.writestr("vllm-0.30.0+cu128.dist-info/WHEEL", "Wheel-Version: 1.0\n")
        archive.writestr("vllm-0.30.0+cu128.dist-info/RECORD", "")
    if record:
        Path(f"{wheel}.sha256").write_text(f"{sha256(wheel)}  {wheel.name}\n")
    return wheel


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def assert_moved_aside(wheel: Path, found: Any, discarded: list, reason: str) -> None:
    """Not a cache hit; the wheel and its .sha256 renamed to <name>.corrupt-<UTC time>."""
    assert found is None
    assert len(discarded) == 1, discarded
    item = discarded[0]
    assert (item["key"], item["wheel"]) == (KEY, str(wheel))
    assert reason in item["reason"], item["reason"]
    assert not wheel.exists() and not Path(f"{wheel}.sha256").exists()
    assert not Path(f"{wheel}.verified").exists()
    assert item["moved_to"][0] == f"{wheel}.corrupt-{STAMP}"
    assert all(Path(p).is_file() for p in item["moved_to"])
    # The next lookup finds nothing: the key is built again, and the new wheel lands in place.
    assert cached_wheel(str(wheel.parent.parent), KEY, now=NOW) == (None, [])


def test_a_wheel_that_is_the_recorded_file_is_a_hit_and_its_verdict_is_kept(tmp_path) -> None:
    wheel = build_wheel(tmp_path)
    found, discarded = cached_wheel(str(tmp_path), KEY, now=NOW)
    assert (found, discarded) == ((str(wheel), sha256(wheel)), [])
    verdict = json.loads(Path(f"{wheel}.verified").read_text())
    assert verdict["sha256"] == sha256(wheel) and verdict["size"] == wheel.stat().st_size


def test_one_flipped_byte_is_never_handed_out(tmp_path) -> None:
    wheel = build_wheel(tmp_path)
    size = wheel.stat().st_size
    flip_byte(wheel, size // 2)  # inside the stored .so: still a valid zip, same size
    assert zipfile.is_zipfile(wheel) and wheel.stat().st_size == size
    found, discarded = cached_wheel(str(tmp_path), KEY, now=NOW)
    assert_moved_aside(wheel, found, discarded, "is not the recorded")
    assert f"({size} bytes)" in discarded[0]["reason"]


def test_a_truncated_wheel_is_never_handed_out(tmp_path) -> None:
    wheel = build_wheel(tmp_path)
    with open(wheel, "r+b") as handle:
        handle.truncate(wheel.stat().st_size // 3)
    found, discarded = cached_wheel(str(tmp_path), KEY, now=NOW)
    assert_moved_aside(wheel, found, discarded, "is not a valid zip")


def test_a_wheel_without_its_sha256_is_moved_aside(tmp_path) -> None:
    # The builder's copy was killed between the fetch and the .sha256.
    wheel = build_wheel(tmp_path, record=False)
    found, discarded = cached_wheel(str(tmp_path), KEY, now=NOW)
    assert found is None and discarded[0]["reason"].startswith(f"no {NAME}.sha256 records")
    assert discarded[0]["moved_to"] == [f"{wheel}.corrupt-{STAMP}"]
    assert not wheel.exists()


def test_a_file_that_is_no_zip_is_never_handed_out_even_with_its_sha256(tmp_path) -> None:
    wheel = tmp_path / KEY / NAME
    wheel.parent.mkdir()
    wheel.write_bytes(b"<html>502 Bad Gateway</html>\n")
    Path(f"{wheel}.sha256").write_text(f"{sha256(wheel)}  {NAME}\n")
    found, discarded = cached_wheel(str(tmp_path), KEY, now=NOW)
    assert_moved_aside(wheel, found, discarded, "is not a valid zip")


def test_a_zip_that_is_no_wheel_is_never_handed_out(tmp_path) -> None:
    wheel = tmp_path / KEY / NAME
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("README", "not a wheel")
    Path(f"{wheel}.sha256").write_text(f"{sha256(wheel)}  {NAME}\n")
    found, discarded = cached_wheel(str(tmp_path), KEY, now=NOW)
    assert_moved_aside(wheel, found, discarded, "without a .dist-info/WHEEL")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "holds no sha256"),
        ("not-a-digest  x.whl\n", "holds no sha256"),
        (f"{'ab' * 32}  other-1.0-py3-none-any.whl\n", "another file, other-1.0-py3-none-any"),
    ],
)
def test_a_sha256_file_that_records_no_usable_sha256_is_no_hit(tmp_path, content, reason) -> None:
    wheel = build_wheel(tmp_path)
    Path(f"{wheel}.sha256").write_text(content)
    found, discarded = cached_wheel(str(tmp_path), KEY, now=NOW)
    assert_moved_aside(wheel, found, discarded, reason)


def test_a_sha256_without_its_wheel_is_moved_aside(tmp_path) -> None:
    wheel = build_wheel(tmp_path)
    wheel.unlink()
    found, discarded = cached_wheel(str(tmp_path), KEY, now=NOW)
    assert found is None and "the wheel is missing" in discarded[0]["reason"]
    assert discarded[0]["moved_to"] == [f"{wheel}.sha256.corrupt-{STAMP}"]


def test_a_verified_wheel_is_not_hashed_again_until_it_changes(tmp_path, monkeypatch) -> None:
    wheel = build_wheel(tmp_path)
    assert cached_wheel(str(tmp_path), KEY, now=NOW)[0]
    hashed = []
    real = vllm_fleet_fleet.file_sha256
    monkeypatch.setattr(vllm_fleet_fleet, "file_sha256", lambda p: hashed.append(p) or real(p))
    assert cached_wheel(str(tmp_path), KEY, now=NOW)[0] == (str(wheel), sha256(wheel))
    assert hashed == []  # the kept verdict fits: no 400 MB read per key per run
    # The bytes change and mtime is set back to what it was: ctime still moves (no utime call
    # can set it), so the wheel is hashed again and refused.
    before = wheel.stat()
    time.sleep(0.05)  # past the file system's timestamp granularity
    flip_byte(wheel, before.st_size // 2)
    os.utime(wheel, ns=(before.st_atime_ns, before.st_mtime_ns))
    found, discarded = cached_wheel(str(tmp_path), KEY, now=NOW)
    assert hashed == [str(wheel)]
    assert_moved_aside(wheel, found, discarded, "is not the recorded")


def test_a_verdict_for_another_recorded_sha256_is_not_reused(tmp_path) -> None:
    wheel = build_wheel(tmp_path)
    assert cached_wheel(str(tmp_path), KEY, now=NOW)[0]
    Path(f"{wheel}.sha256").write_text(f"{'ab' * 32}  {NAME}\n")
    found, discarded = cached_wheel(str(tmp_path), KEY, now=NOW)
    assert_moved_aside(wheel, found, discarded, f"is not the recorded {'ab' * 32}")


def test_a_bad_wheel_before_a_good_one_is_discarded_and_the_good_one_used(tmp_path) -> None:
    good = build_wheel(tmp_path)
    bad = good.with_name("vllm-0.30.0+cu128-cp311-cp311-linux_aarch64.whl")  # sorts first
    bad.write_bytes(b"partial")
    found, discarded = cached_wheel(str(tmp_path), KEY, now=NOW)
    assert found == (str(good), sha256(good))
    assert [d["wheel"] for d in discarded] == [str(bad)]


def test_dry_run_moves_nothing_and_records_no_verdict(tmp_path) -> None:
    wheel = build_wheel(tmp_path)
    assert cached_wheel(str(tmp_path), KEY, dry_run=True)[0]
    assert not Path(f"{wheel}.verified").exists()
    flip_byte(wheel, wheel.stat().st_size // 2)
    found, discarded = cached_wheel(str(tmp_path), KEY, dry_run=True)
    assert found is None and discarded[0]["moved_to"] == [] and wheel.exists()
    assert "left in place" in describe_discarded(discarded[0])


def test_builders_build_a_key_whose_cached_wheel_is_corrupt(tmp_path, capsys) -> None:
    good = build_wheel(tmp_path, key="aaa")
    bad = build_wheel(tmp_path, key="bbb")
    flip_byte(bad, bad.stat().st_size // 2)
    args = {
        "hosts": ["f1", "f2"],
        "keys": ["aaa", "bbb"],
        "needs_install": [True, True],
        "artifact_cache": str(tmp_path),
    }
    out = run(vllm_builders, args, capsys)
    assert (out["cached"], out["builders"], out["builds"]) == (["aaa"], {"bbb": "f2"}, ["f2"])
    assert out["changed"] is True
    assert [(d["key"], d["wheel"]) for d in out["discarded"]] == [("bbb", str(bad))]
    warnings = json.dumps(out["warnings"])
    assert f"wheel {bad} for build key bbb cannot be trusted" in warnings
    assert good.exists() and not bad.exists()
    # The second lookup of the run, in 08_install.yml, reuses aaa's verdict.
    again = run(vllm_builders, args, capsys)
    assert (again["changed"], again["discarded"]) == (False, [])


def test_builders_in_check_mode_report_but_move_nothing(tmp_path, capsys) -> None:
    bad = build_wheel(tmp_path, key="aaa")
    flip_byte(bad, bad.stat().st_size // 2)
    args = {
        "hosts": ["f1"],
        "keys": ["aaa"],
        "needs_install": [True],
        "artifact_cache": str(tmp_path),
        "_ansible_check_mode": True,
    }
    out = run(vllm_builders, args, capsys)
    assert out["builds"] == ["f1"] and out["discarded"][0]["moved_to"] == []
    assert bad.exists()


def test_artifact_module_refuses_a_corrupt_wheel_before_any_copy(tmp_path, capsys) -> None:
    wheel = build_wheel(tmp_path)
    with open(wheel, "r+b") as handle:
        handle.truncate(100)
    args = {"artifact_cache": str(tmp_path), "key": KEY, "builder": "f1"}
    out = run(vllm_artifact, args, capsys)
    assert out["failed"] and out["changed"]
    assert "could not be trusted (it is not a valid zip" in out["msg"]
    assert "re-run, and the key is built again" in out["msg"]
    assert out["discarded"][0]["moved_to"][0].startswith(f"{wheel}.corrupt-")
    assert "cannot be trusted" in json.dumps(out["warnings"])
    assert "wheel" not in out and not wheel.exists()


def test_artifact_module_hands_out_a_good_wheel_and_its_sha256(tmp_path, capsys) -> None:
    wheel = build_wheel(tmp_path)
    out = run(vllm_artifact, {"artifact_cache": str(tmp_path), "key": KEY}, capsys)
    assert (out["wheel"], out["sha256"], out["discarded"]) == (str(wheel), sha256(wheel), [])
    assert out["changed"] is False and "warnings" not in out
