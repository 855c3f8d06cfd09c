"""A damaged release (a file of its venv removed or truncated) is reported by vllm_release
state=info from the RECORD files pip wrote, so a no-op run can reinstall it instead of
reporting 0 changed."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Tuple

import pytest
import vllm_release
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.vllm_fleet_release import (
    DAMAGED_SHOWN,
    check_venv,
    parse_record,
    venv_dir,
)

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = ROOT / ".cache" / "wheelhouse"
KEY = "0123456789abcdef"
SITE = "lib/python3.11/site-packages"


def run(module: Any, args: Dict[str, Any], capsys: pytest.CaptureFixture) -> Dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


def record_line(site: Path, rel: str) -> str:
    data = (site / rel).read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{rel},sha256={digest},{len(data)}"


def install(site: Path, name: str, version: str, files: Dict[str, bytes]) -> None:
    """What pip leaves for a distribution: its files, compiled .pyc, and a RECORD listing each
    with its hash and size (the .pyc and the RECORD itself without)."""
    info = f"{name}-{version}.dist-info"
    files = {
        **files,
        f"{info}/METADATA": f"Name: {name}\nVersion: {version}\n".encode(),
        f"{info}/INSTALLER": b"pip\n",
    }
    lines = []
    for rel, data in files.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        lines.append(record_line(site, rel))
        if rel.endswith(".py") and not rel.startswith(".."):
            pyc = Path(rel).parent / "__pycache__" / f"{Path(rel).stem}.cpython-311.pyc"
            (site / pyc).parent.mkdir(exist_ok=True)
            (site / pyc).write_bytes(b"\x00pyc")
            lines.append(f"{pyc},,")
    lines.append(f"{info}/RECORD,,")
    (site / info / "RECORD").write_text("\n".join(lines) + "\n")


def make_release(prefix: Path, key: str = KEY, verified: bool = True) -> Path:
    """A release venv with vllm (a kernel library and a console script in bin/), a
    torch-like distribution and two distributions sharing a namespace __init__.py."""
    venv = Path(venv_dir(str(prefix), key))
    site = venv / SITE
    site.mkdir(parents=True)
    (venv / "bin").mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "bin" / "python").symlink_to(sys.executable)
    install(
        site,
        "vllm",
        "0.30.0+cu128",
        {
            "vllm/__init__.py": b"__version__ = '0.30.0+cu128'\n",
            "vllm/_C.abi3.so": bytes(range(256)) * 64,
            "../../../bin/vllm": b"#!/opt/vllm/venv/bin/python\nimport vllm\n",
        },
    )
    install(site, "torch", "2.9.0+cu128", {"torch/__init__.py": b"# torch\n" * 50})
    install(site, "nvidia_cublas_cu12", "12.8.4.1", {"nvidia/__init__.py": b""})
    install(site, "nvidia_nccl_cu12", "2.27.3", {"nvidia/__init__.py": b""})
    if verified:
        (venv / "vllm-source-stamp.json").write_text(json.dumps({"key": key}))
    return venv


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


def problems(result: Dict[str, Any]) -> Iterable[Tuple[str, str]]:
    return [(d["path"], d["problem"]) for d in result["damaged"]]


def test_an_intact_release_reports_no_damage(tmp_path) -> None:
    venv = make_release(tmp_path)
    for mode in ("size", "hash"):
        result = check_venv(str(venv), mode, require=["vllm"])
        assert result == {"damaged": [], "damaged_count": 0, "damaged_distributions": []}


def test_record_rows_without_a_hash_are_skipped_as_pip_does() -> None:
    text = (
        "vllm/__init__.py,sha256=abc,12\n"
        "vllm/__pycache__/__init__.cpython-311.pyc,,\n"
        "vllm-0.30.0.dist-info/RECORD,,\n"
        '"odd, name.py",sha256=def,\n'
        "\n"
    )
    assert parse_record(text) == [
        ("vllm/__init__.py", "sha256", "abc", 12),
        ("odd, name.py", "sha256", "def", None),
    ]


@pytest.mark.parametrize(
    ("rel", "damage", "problem", "distribution"),
    [
        ("torch/__init__.py", os.unlink, "missing", "torch"),
        ("torch/__init__.py", truncate, "size", "torch"),
        ("vllm/_C.abi3.so", truncate, "size", "vllm"),
        ("vllm/_C.abi3.so", flip_byte, "hash", "vllm"),  # vllm's own files are hashed
        ("../../../bin/vllm", os.unlink, "missing", "vllm"),
    ],
)
def test_a_removed_or_truncated_file_is_damage(tmp_path, rel, damage, problem, distribution):
    venv = make_release(tmp_path)
    path = Path(os.path.normpath(venv / SITE / rel))
    damage(path)
    result = check_venv(str(venv), "size", require=["vllm"])
    assert result["damaged_count"] == 1
    assert result["damaged"] == [
        {"path": str(path), "problem": problem, "distribution": distribution}
    ]
    version = {"vllm": "0.30.0+cu128", "torch": "2.9.0+cu128"}[distribution]
    assert result["damaged_distributions"] == [f"{distribution}=={version}"]


def test_a_same_size_change_outside_vllm_needs_the_hash_mode(tmp_path) -> None:
    venv = make_release(tmp_path)
    flip_byte(venv / SITE / "torch" / "__init__.py")
    assert check_venv(str(venv), "size")["damaged_count"] == 0
    result = check_venv(str(venv), "hash")
    assert list(problems(result)) == [(str(venv / SITE / "torch" / "__init__.py"), "hash")]
    assert check_venv(str(venv), "none")["damaged_count"] == 0


def test_removed_pyc_files_are_no_damage(tmp_path) -> None:
    venv = make_release(tmp_path)
    shutil.rmtree(venv / SITE / "vllm" / "__pycache__")
    assert check_venv(str(venv), "hash", require=["vllm"])["damaged_count"] == 0


def test_a_file_two_distributions_install_matches_either_record(tmp_path) -> None:
    venv = make_release(tmp_path)
    # The later install rewrote the shared file: its own RECORD matches, the other does not.
    shared = venv / SITE / "nvidia" / "__init__.py"
    shared.write_bytes(b"# namespace\n")
    record = venv / SITE / "nvidia_nccl_cu12-2.27.3.dist-info" / "RECORD"
    lines = record.read_text().splitlines()
    record.write_text(
        "\n".join(
            record_line(venv / SITE, "nvidia/__init__.py")
            if line.startswith("nvidia/__init__.py,")
            else line
            for line in lines
        )
    )
    assert check_venv(str(venv), "hash")["damaged_count"] == 0
    shared.unlink()
    result = check_venv(str(venv), "size")
    assert list(problems(result)) == [(str(shared), "missing")]


def test_a_lost_record_a_lost_vllm_and_a_broken_venv_are_damage(tmp_path) -> None:
    venv = make_release(tmp_path)
    (venv / SITE / "torch-2.9.0+cu128.dist-info" / "RECORD").unlink()
    shutil.rmtree(venv / SITE / "vllm-0.30.0+cu128.dist-info")
    (venv / "bin" / "python").unlink()
    result = check_venv(str(venv), "size", require=["vllm"])
    assert sorted(d["problem"] for d in result["damaged"]) == ["missing"] * 3
    paths = [d["path"] for d in result["damaged"]]
    assert str(venv / "bin" / "python") in paths
    assert str(venv / SITE / "torch-2.9.0+cu128.dist-info" / "RECORD") in paths
    assert any(p.endswith("site-packages/vllm-*.dist-info") for p in paths)
    assert result["damaged_distributions"] == ["torch==2.9.0+cu128", "vllm"]


def test_the_damage_listed_is_capped_but_counted_in_full(tmp_path) -> None:
    venv = make_release(tmp_path)
    many = {f"torch/lib/part{i:02d}.py": b"x" * i for i in range(30)}
    install(venv / SITE, "torch_libs", "1.0", many)
    shutil.rmtree(venv / SITE / "torch" / "lib")
    result = check_venv(str(venv), "size")
    assert result["damaged_count"] == 30 and len(result["damaged"]) == DAMAGED_SHOWN == 20
    assert result["damaged_distributions"] == ["torch-libs==1.0"]


def info(prefix: Path, capsys, key: Optional[str] = None, **extra: Any) -> Dict[str, Any]:
    args = {"prefix": str(prefix), "state": "info", **({"key": key} if key else {}), **extra}
    return run(vllm_release, args, capsys)


def test_release_info_reports_the_damage_of_current(tmp_path, capsys) -> None:
    venv = make_release(tmp_path)
    run(vllm_release, {"prefix": str(tmp_path), "state": "current", "key": KEY}, capsys)
    intact = info(tmp_path, capsys)
    assert (intact["integrity"], intact["damaged_count"], intact["damaged"]) == ("size", 0, [])
    assert intact["changed"] is False
    truncate(venv / SITE / "vllm" / "_C.abi3.so")
    (venv / SITE / "torch" / "__init__.py").unlink()
    damaged = info(tmp_path, capsys)
    assert damaged["changed"] is False and damaged["damaged_count"] == 2
    assert sorted(d["problem"] for d in damaged["damaged"]) == ["missing", "size"]
    assert damaged["damaged_distributions"] == ["torch==2.9.0+cu128", "vllm==0.30.0+cu128"]
    assert info(tmp_path, capsys, integrity="none")["damaged_count"] == 0
    assert info(tmp_path, capsys, integrity="none")["integrity"] == "none"


def test_release_info_checks_only_a_verified_release(tmp_path, capsys) -> None:
    # A release without a stamp has to be installed anyway; one not there is not damaged.
    venv = make_release(tmp_path, verified=False)
    (venv / SITE / "torch" / "__init__.py").unlink()
    half = info(tmp_path, capsys, key=KEY)
    assert (half["integrity"], half["damaged_count"]) == ("", 0)
    absent = info(tmp_path, capsys, key="fedcba9876543210")
    assert (absent["integrity"], absent["damaged_count"]) == ("", 0)


def test_release_info_hash_mode_finds_a_same_size_change(tmp_path, capsys) -> None:
    venv = make_release(tmp_path)
    flip_byte(venv / SITE / "torch" / "__init__.py")
    assert info(tmp_path, capsys, key=KEY)["damaged_count"] == 0
    out = info(tmp_path, capsys, key=KEY, integrity="hash")
    assert out["integrity"] == "hash" and [d["problem"] for d in out["damaged"]] == ["hash"]


def test_a_real_venv_reports_what_was_removed_or_truncated(tmp_path) -> None:
    """A venv as `python -m venv` makes it: the pip that ensurepip installs (offline, from the
    wheel bundled with Python) wrote a real RECORD."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    assert check_venv(str(venv), "hash")["damaged_count"] == 0
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "pip" / "__main__.py").unlink()
    truncate(site / "pip" / "__init__.py")
    result = check_venv(str(venv), "size")
    assert sorted(problems(result)) == [
        (str(site / "pip" / "__init__.py"), "size"),
        (str(site / "pip" / "__main__.py"), "missing"),
    ]
    (version,) = [d.name.split("-")[1][: -len(".dist")] for d in site.glob("pip-*.dist-info")]
    assert result["damaged_distributions"] == [f"pip=={version}"]


def test_a_partial_release_whose_build_still_runs_is_kept(tmp_path, capsys) -> None:
    """After a dropped connection the build goes on in the partial release's venv: the next
    run's discard keeps it (its build waits for that one), and deletes it once it is gone."""
    partial = tmp_path / "releases" / "k2" / "venv"
    partial.mkdir(parents=True)
    (tmp_path / "wheels").mkdir()
    pid_file = tmp_path / "wheels" / "k2.pid"
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    pid_file.write_text(f"{os.getpid()} {boot}\n")  # this process stands for the build
    args = {"prefix": str(tmp_path), "state": "discarded", "key": "k2"}
    with patch_module_args(args), pytest.raises(SystemExit):
        vllm_release.main()
    out = json.loads(capsys.readouterr().out)
    assert out["building"] == str(os.getpid()) and not out["discarded"] and partial.is_dir()
    gone = subprocess.Popen(["true"])
    gone.wait()
    pid_file.write_text(f"{gone.pid} {boot}\n")
    with patch_module_args(args), pytest.raises(SystemExit):
        vllm_release.main()
    out = json.loads(capsys.readouterr().out)
    assert out["discarded"] and not partial.exists()
