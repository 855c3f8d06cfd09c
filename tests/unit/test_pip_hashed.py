"""vllm_pip_hashed: offline installs from a wheelhouse, every wheel checked against its manifest.

Real pip (this interpreter's, shared with throwaway venvs through a .pth file) installs tiny
real wheels, offline (--no-index); the manifest is the one `python -m vllm_fleet.wheelhouse
hash` writes. The pure functions are tested on pip's recorded output.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence

import pip
import pytest
import vllm_pip_hashed
import yaml
from ansible.module_utils import vllm_fleet_hashes as hashes
from ansible.module_utils.testing import patch_module_args

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # the package lives at the repository root
    sys.path.insert(0, str(REPO_ROOT))
wheelhouse_cli = importlib.import_module("vllm_fleet.wheelhouse")

HASH_FIX = "python -m vllm_fleet.wheelhouse hash --dest"


def make_wheel(
    directory: Path, name: str, version: str, requires: Sequence[str] = (), body: str = ""
) -> Path:
    """An installable wheel: a module, METADATA (with Requires-Dist), WHEEL, RECORD."""
    stem = f"{name}-{version}"
    info = f"{stem}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    wheel = "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    path = directory / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}/__init__.py", body)
        archive.writestr(f"{info}/METADATA", metadata)
        archive.writestr(f"{info}/WHEEL", wheel)
        records = [f"{name}/__init__.py", f"{info}/METADATA", f"{info}/WHEEL", f"{info}/RECORD"]
        archive.writestr(f"{info}/RECORD", "".join(f"{r},,\n" for r in records))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def pip_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The module drops PIP_* from its own environment, here the test process's: every one it
    drops or sets is put back after the test."""
    names = {k for k in os.environ if k.startswith("PIP_")}
    names |= set(hashes.pip_environment({})) - {k for k in os.environ}
    for name in names:
        monkeypatch.setenv(name, os.environ.get(name, ""))


@pytest.fixture(scope="module")
def pip_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding this interpreter's pip and nothing else."""
    home = tmp_path_factory.mktemp("pip-home")
    source = Path(pip.__file__).parent
    shutil.copytree(source, home / "pip")
    for info in source.parent.glob(f"pip-{pip.__version__}.dist-info"):
        shutil.copytree(info, home / info.name)
    return home


@pytest.fixture
def venv(tmp_path: Path, pip_home: Path) -> Path:
    """A fresh venv's Python, its pip the shared one (venv's own pip takes seconds to install)."""
    path = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    site = next(path.glob("lib/python*/site-packages"))
    (site / "pip-home.pth").write_text(f"{pip_home}\n")
    return path / "bin" / "python"


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    """app 1.0 (needs lib>=1), lib 1.0 and 2.0, and the manifest `hash` writes for them."""
    path = tmp_path / "wheelhouse"
    path.mkdir()
    make_wheel(path, "app", "1.0", ["lib>=1"])
    make_wheel(path, "lib", "1.0")
    make_wheel(path, "lib", "2.0")
    wheelhouse_cli.hash_wheelhouse(path, f"{HASH_FIX} {path}")
    return path


@pytest.fixture
def vllm_wheel(tmp_path: Path) -> Path:
    """The release's wheel: outside the wheelhouse, its sha256 recorded by its build."""
    (tmp_path / "release").mkdir()
    return make_wheel(tmp_path / "release", "vllm", "0.0.1", ["app"])


def installed(python: Path) -> Dict[str, str]:
    """{name: version} the venv has (pip's is elsewhere), from its *.dist-info directories."""
    site = next(python.parent.parent.glob("lib/python*/site-packages"))
    return dict(p.name[: -len(".dist-info")].split("-", 1) for p in site.glob("*.dist-info"))


def run_main(args: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> Dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        vllm_pip_hashed.main()
    return json.loads(capsys.readouterr().out)


def module_args(python: Path, tmp_path: Path, requirements: List[str], **extra: Any) -> Dict:
    return {
        "python": str(python),
        "requirements": requirements,
        "requirements_file": str(tmp_path / "release" / "hashed-requirements" / "x.txt"),
        **extra,
    }


# --- the module, with real pip --------------------------------------------------------------


def test_installs_what_pip_chooses_each_wheel_with_the_manifests_sha256(
    venv: Path, wheelhouse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = module_args(
        venv, tmp_path, ["app"], wheelhouse=str(wheelhouse), extra_args=["--no-compile"]
    )
    out = run_main(args, capsys)
    assert "failed" not in out, out.get("msg")
    assert out["changed"] is True
    app, lib = wheelhouse / "app-1.0-py3-none-any.whl", wheelhouse / "lib-2.0-py3-none-any.whl"
    assert out["installed"] == [
        {"name": "app", "version": "1.0", "file": str(app), "sha256": sha256(app)},
        {"name": "lib", "version": "2.0", "file": str(lib), "sha256": sha256(lib)},
    ]
    assert Path(out["requirements_file"]).read_text().splitlines()[-2:] == [
        f"app==1.0 --hash=sha256:{sha256(app)}",
        f"lib==2.0 --hash=sha256:{sha256(lib)}",
    ]
    assert out["cmd"][3:] == [
        "install", "--require-hashes", "--no-index", "--find-links", str(wheelhouse),
        "--no-deps", "--no-compile", "-r", out["requirements_file"],
    ]  # fmt: skip
    assert installed(venv) == {"app": "1.0", "lib": "2.0"}
    again = run_main(args, capsys)  # idempotent: nothing left to install
    assert again["changed"] is False and again["installed"] == []


def test_check_mode_says_what_it_would_install_and_installs_nothing(
    venv: Path, wheelhouse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = module_args(venv, tmp_path, ["app"], wheelhouse=str(wheelhouse))
    out = run_main({**args, "_ansible_check_mode": True}, capsys)
    assert out["changed"] is True
    assert [i["name"] for i in out["installed"]] == ["app", "lib"]
    assert installed(venv) == {}
    assert not Path(args["requirements_file"]).exists()
    missing = {**args, "python": str(tmp_path / "nope" / "bin" / "python")}
    out = run_main({**missing, "_ansible_check_mode": True}, capsys)  # the venv comes later
    assert out["changed"] is True and "do not exist yet" in out["msg"]


@pytest.mark.parametrize("controller", ["", "/srv/controller-wheelhouse"])
def test_a_wheelhouse_without_its_manifest_is_refused_with_the_fix(
    controller: str,
    venv: Path,
    wheelhouse: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (wheelhouse / "wheelhouse.json").unlink()
    args = module_args(
        venv, tmp_path, ["app"], wheelhouse=str(wheelhouse), controller_wheelhouse=controller
    )
    out = run_main(args, capsys)
    assert out["failed"] is True
    assert f"The wheelhouse {wheelhouse} (" in out["msg"]
    assert "has no wheelhouse.json, so its wheels cannot be installed hash-checked" in out["msg"]
    if controller:
        assert f"a copy of vllm_source_controller_wheelhouse {controller}" in out["msg"]
        assert f"run `{HASH_FIX} {controller}` on the controller" in out["msg"]
    else:
        assert "(vllm_source_wheelhouse)" in out["msg"]
        assert f"run `{HASH_FIX} DIR` on the controller" in out["msg"]
    assert installed(venv) == {}


def test_a_wheelhouse_that_is_not_there_is_named(
    venv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = tmp_path / "gone"
    out = run_main(module_args(venv, tmp_path, ["app"], wheelhouse=str(gone)), capsys)
    assert out["failed"] is True
    assert f"The wheelhouse {gone} (vllm_source_wheelhouse) is not a directory" in out["msg"]


def test_a_wheel_the_manifest_does_not_list_is_refused_before_any_install(
    venv: Path, wheelhouse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    newer = make_wheel(wheelhouse, "lib", "3.0")  # added after the manifest: pip prefers it
    out = run_main(module_args(venv, tmp_path, ["app"], wheelhouse=str(wheelhouse)), capsys)
    assert out["failed"] is True
    assert out["msg"].startswith("Refusing to install without hash checks: ")
    assert f"pip would install {newer} from the wheelhouse {wheelhouse}" in out["msg"]
    assert "its wheelhouse.json does not list them" in out["msg"]
    assert f"{HASH_FIX} DIR" in out["msg"] and "or delete them from the wheelhouse" in out["msg"]
    assert installed(venv) == {}


def test_a_wheel_whose_bytes_changed_is_refused_by_pips_hash_check(
    venv: Path, wheelhouse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded = sha256(wheelhouse / "lib-2.0-py3-none-any.whl")
    tampered = make_wheel(wheelhouse, "lib", "2.0", body="import os  # not what was hashed\n")
    out = run_main(module_args(venv, tmp_path, ["app"], wheelhouse=str(wheelhouse)), capsys)
    assert out["failed"] is True
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in out["stderr"]  # pip's own refusal
    assert (
        f"{tampered} (lib==2.0) does not match the wheelhouse's manifest "
        f"{wheelhouse / 'wheelhouse.json'}: it records sha256 {recorded}, the file has "
        f"{sha256(tampered)}"
    ) in out["msg"]
    assert "replace the file with the wheel the manifest was made from" in out["msg"]
    assert installed(venv) == {}  # app's wheel was fine, and is not installed either


def test_the_vllm_wheel_installs_with_the_sha256_its_build_recorded(
    venv: Path, vllm_wheel: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = module_args(
        venv,
        tmp_path,
        [str(vllm_wheel)],
        file_hashes={str(vllm_wheel): sha256(vllm_wheel)},
        deps=False,
        force_reinstall=True,
    )
    out = run_main(args, capsys)
    assert out["changed"] is True, out.get("msg")
    assert Path(out["requirements_file"]).read_text().splitlines()[-1] == (
        f"vllm @ {vllm_wheel.as_uri()} --hash=sha256:{sha256(vllm_wheel)}"
    )
    assert "--force-reinstall" in out["cmd"] and "--find-links" not in out["cmd"]
    assert installed(venv) == {"vllm": "0.0.1"}  # --no-deps: app comes with the requirements
    assert run_main(args, capsys)["changed"] is True  # replaced every time, as before

    wrong = {**args, "file_hashes": {str(vllm_wheel): "0" * 64}}
    out = run_main(wrong, capsys)
    assert out["failed"] is True
    assert (
        f"pip refused files whose bytes changed: {vllm_wheel} does not match the sha256 recorded "
        f"for it: recorded {'0' * 64}, the file has {sha256(vllm_wheel)}"
    ) in out["msg"]
    assert "run the role again" in out["msg"]


def test_the_runtime_requirements_come_from_the_installed_wheel_hash_checked(
    venv: Path,
    wheelhouse: Path,
    vllm_wheel: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    digest = {str(vllm_wheel): sha256(vllm_wheel)}
    wheel = module_args(venv, tmp_path, [str(vllm_wheel)], file_hashes=digest, deps=False)
    assert run_main(wheel, capsys)["changed"] is True
    runtime = module_args(
        venv, tmp_path, [str(vllm_wheel)], wheelhouse=str(wheelhouse), file_hashes=digest
    )
    out = run_main(runtime, capsys)
    assert [i["name"] for i in out["installed"]] == ["app", "lib"]  # vLLM is there already
    assert installed(venv) == {"vllm": "0.0.1", "app": "1.0", "lib": "2.0"}


def test_a_file_outside_the_wheelhouse_without_a_recorded_sha256_is_refused(
    venv: Path,
    wheelhouse: Path,
    vllm_wheel: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = module_args(venv, tmp_path, [str(vllm_wheel)], wheelhouse=str(wheelhouse))
    out = run_main(args, capsys)
    assert out["failed"] is True
    assert f"pip would install vllm 0.0.1 from {vllm_wheel}, outside the wheelhouse" in out["msg"]
    assert installed(venv) == {}


def test_pips_configuration_adds_no_source(
    venv: Path,
    wheelhouse: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    make_wheel(elsewhere, "lib", "9.0")
    monkeypatch.setenv("PIP_FIND_LINKS", str(elsewhere))
    out = run_main(module_args(venv, tmp_path, ["app"], wheelhouse=str(wheelhouse)), capsys)
    assert out["changed"] is True, out.get("msg")
    assert installed(venv)["lib"] == "2.0"


# --- the module with installer uv, with real uv (the control venv's, requirements-control.txt)


@pytest.fixture
def uv_args(tmp_path: Path) -> Dict[str, Any]:
    from uv import find_uv_bin  # the uv wheel's helper for its binary

    return {"installer": "uv", "uv": find_uv_bin(), "cache_dir": str(tmp_path / "uv-cache")}


def test_uv_installs_what_it_resolves_each_wheel_with_the_manifests_sha256(
    venv: Path,
    wheelhouse: Path,
    tmp_path: Path,
    uv_args: Dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = module_args(venv, tmp_path, ["app"], wheelhouse=str(wheelhouse), **uv_args)
    out = run_main(args, capsys)
    assert "failed" not in out, out.get("msg")
    assert out["changed"] is True
    app, lib = wheelhouse / "app-1.0-py3-none-any.whl", wheelhouse / "lib-2.0-py3-none-any.whl"
    assert out["installed"] == [
        {"name": "app", "version": "1.0", "file": str(app), "sha256": sha256(app)},
        {"name": "lib", "version": "2.0", "file": str(lib), "sha256": sha256(lib)},
    ]
    assert Path(out["requirements_file"]).read_text().splitlines()[-2:] == [
        f"app==1.0 --hash=sha256:{sha256(app)}",
        f"lib==2.0 --hash=sha256:{sha256(lib)}",
    ]
    assert out["cmd"] == [
        uv_args["uv"], "pip", "install", "--no-config", "--python", str(venv),
        "--link-mode", "copy", "--cache-dir", uv_args["cache_dir"], "--require-hashes",
        "--offline", "--no-index", "--find-links", str(wheelhouse), "--no-deps",
        "-r", out["requirements_file"],
    ]  # fmt: skip
    assert installed(venv) == {"app": "1.0", "lib": "2.0"}
    again = run_main(args, capsys)  # idempotent: nothing left to install
    assert again["changed"] is False and again["installed"] == []
    checked = run_main({**args, "requirements": ["lib==1.0"], "_ansible_check_mode": True}, capsys)
    assert checked["changed"] is True and [i["version"] for i in checked["installed"]] == ["1.0"]
    assert installed(venv)["lib"] == "2.0"  # check mode asked uv and installed nothing


def test_uv_refuses_a_wheel_the_manifest_does_not_list_and_one_whose_bytes_changed(
    venv: Path,
    wheelhouse: Path,
    tmp_path: Path,
    uv_args: Dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = module_args(venv, tmp_path, ["app"], wheelhouse=str(wheelhouse), **uv_args)
    newer = make_wheel(wheelhouse, "lib", "3.0")  # added after the manifest: uv prefers it
    out = run_main(args, capsys)
    assert out["failed"] is True
    assert out["msg"].startswith("Refusing to install without hash checks: ")
    assert f"uv would install {newer} from the wheelhouse {wheelhouse}" in out["msg"]
    assert "its wheelhouse.json does not list them" in out["msg"]
    newer.unlink()
    recorded = sha256(wheelhouse / "lib-2.0-py3-none-any.whl")
    tampered = make_wheel(wheelhouse, "lib", "2.0", body="import os  # not what was hashed\n")
    out = run_main(args, capsys)
    assert out["failed"] is True
    assert "Hash mismatch for `lib==2.0`" in out["stderr"]  # uv's own refusal
    assert (
        f"the wheel of lib==2.0 in {wheelhouse} does not match the wheelhouse's manifest "
        f"{wheelhouse / 'wheelhouse.json'}: it records sha256 {recorded}, the file has "
        f"{sha256(tampered)}"
    ) in out["msg"]
    assert installed(venv) == {}


def test_uv_installs_the_vllm_wheel_by_its_sha256_then_its_requirements(
    venv: Path,
    wheelhouse: Path,
    vllm_wheel: Path,
    tmp_path: Path,
    uv_args: Dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    digest = {str(vllm_wheel): sha256(vllm_wheel)}
    wheel = module_args(
        venv, tmp_path, [str(vllm_wheel)], file_hashes=digest, deps=False, force_reinstall=True,
        **uv_args,
    )  # fmt: skip
    out = run_main(wheel, capsys)
    assert out["changed"] is True, out.get("msg")
    assert Path(out["requirements_file"]).read_text().splitlines()[-1] == (
        f"vllm @ {vllm_wheel.as_uri()} --hash=sha256:{sha256(vllm_wheel)}"
    )
    assert "--reinstall" in out["cmd"] and "--find-links" not in out["cmd"]
    assert installed(venv) == {"vllm": "0.0.1"}
    # uv's settings add no source: its UV_FIND_LINKS would offer lib 9.0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    make_wheel(elsewhere, "lib", "9.0")
    monkeypatch.setenv("UV_FIND_LINKS", str(elsewhere))
    runtime = module_args(
        venv, tmp_path, [str(vllm_wheel)], wheelhouse=str(wheelhouse), file_hashes=digest,
        **uv_args,
    )  # fmt: skip
    out = run_main(runtime, capsys)
    assert [i["name"] for i in out["installed"]] == ["app", "lib"], out.get("msg")
    assert installed(venv) == {"vllm": "0.0.1", "app": "1.0", "lib": "2.0"}
    wrong = {**wheel, "file_hashes": {str(vllm_wheel): "0" * 64}}
    out = run_main(wrong, capsys)
    assert out["failed"] is True
    assert "uv refused files whose bytes changed: vllm" in out["msg"], out["msg"]


def test_uv_without_its_binary_is_refused_with_the_fix(
    venv: Path, wheelhouse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = module_args(
        venv, tmp_path, ["app"], wheelhouse=str(wheelhouse), installer="uv",
        uv=str(tmp_path / "no-uv"),
    )  # fmt: skip
    out = run_main(args, capsys)
    assert out["failed"] is True and "install uv first" in out["msg"]
    assert installed(venv) == {}


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_a_requirement_the_wheelhouse_lacks_is_refused_before_any_install_with_the_fix(
    venv: Path,
    wheelhouse: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
    installer: str,
) -> None:
    extra = request.getfixturevalue("uv_args") if installer == "uv" else {}
    args = module_args(venv, tmp_path, ["app", "absent==1.0"], wheelhouse=str(wheelhouse), **extra)
    out = run_main(args, capsys)
    assert out["failed"] is True
    assert out["msg"] == (
        f"{installer} cannot install app absent==1.0 from {wheelhouse} alone ({installer}'s "
        "message below): add the missing wheels to the wheelhouse on the controller (python -m "
        "vllm_fleet.wheelhouse build and check say which), then record them with "
        "`python -m vllm_fleet.wheelhouse hash`"
    )
    assert "absent" in out["stderr"] and "--dry-run" in out["cmd"]
    assert out["installed"] == [] and out["requirements_file"] == ""
    assert not Path(args["requirements_file"]).exists() and installed(venv) == {}


# --- pure functions, on pip's recorded output ----------------------------------------------

# `pip install --dry-run --report` of pip 23.0.1 (Debian bookworm's), trimmed.
REPORT = {
    "version": "1",
    "pip_version": "23.0.1",
    "install": [
        {
            "download_info": {
                "url": "file:///srv/wheelhouse/torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl",
                "archive_info": {},
            },
            "is_direct": False,
            "requested": True,
            "metadata": {"metadata_version": "2.1", "name": "torch", "version": "2.13.0+cpu"},
        },
        {
            "download_info": {
                "url": "file:///opt/vllm/releases/k/wheel/vllm-0.30.0-cp38-abi3-linux_x86_64.whl",
                "archive_info": {},
            },
            "is_direct": True,
            "requested": True,
            "metadata": {"metadata_version": "2.1", "name": "vllm", "version": "0.30.0"},
        },
        {
            "download_info": {"url": "file:///home/u/src/proj", "dir_info": {}},
            "is_direct": True,
            "requested": True,
            "metadata": {"metadata_version": "2.1", "name": "proj", "version": "0.1"},
        },
    ],
    "environment": {},
}
TORCH = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"


def test_the_report_gives_each_chosen_file() -> None:
    chosen = hashes.parse_report(json.dumps(REPORT))
    wheel = "/opt/vllm/releases/k/wheel/vllm-0.30.0-cp38-abi3-linux_x86_64.whl"
    assert [(c.name, c.version, c.path, c.is_dir) for c in chosen] == [
        ("torch", "2.13.0+cpu", f"/srv/wheelhouse/{TORCH}", False),
        ("vllm", "0.30.0", wheel, False),
        ("proj", "0.1", "/home/u/src/proj", True),
    ]
    assert hashes.parse_report('{"version": "1", "install": []}') == []
    with pytest.raises(ValueError, match="no `install` list"):
        hashes.parse_report('{"version": "1"}')
    with pytest.raises(ValueError, match="lacks 'download_info'"):
        hashes.parse_report('{"install": [{"metadata": {"name": "x", "version": "1"}}]}')
    assert hashes.file_url_path("https://files.example/x.whl") == ""


def test_requirement_lines_pin_the_version_or_name_the_file() -> None:
    torch, vllm, _ = hashes.parse_report(json.dumps(REPORT))
    pinned = [hashes.Pinned(torch, "a" * 64, False), hashes.Pinned(vllm, "b" * 64, True)]
    assert hashes.requirements_text(pinned).splitlines() == [
        *hashes.REQUIREMENTS_HEADER.splitlines(),
        f"torch==2.13.0+cpu --hash=sha256:{'a' * 64}",
        f"vllm @ {vllm.url} --hash=sha256:{'b' * 64}",
    ]


def test_each_chosen_file_gets_its_sha256_or_a_refusal_naming_it(tmp_path: Path) -> None:
    home = tmp_path / "wh"
    home.mkdir()
    url = (home / TORCH).as_uri()
    torch = hashes.Chosen("torch", "2.13.0+cpu", url, hashes.file_url_path(url))
    wheel = hashes.Chosen("vllm", "0.30.0", "file:///r/vllm.whl", "/r/vllm.whl")
    pinned = hashes.pin_hashes(
        [torch, wheel], str(home), {TORCH: "a" * 64}, {"/r/vllm.whl": "b" * 64}
    )
    assert [(p.chosen.name, p.sha256, p.direct) for p in pinned] == [
        ("torch", "a" * 64, False),
        ("vllm", "b" * 64, True),
    ]
    sdist = hashes.Chosen("x", "1", (home / "x-1.tar.gz").as_uri(), str(home / "x-1.tar.gz"))
    project = hashes.Chosen("proj", "0.1", "file:///src/proj", "/src/proj", is_dir=True)
    remote = hashes.Chosen("y", "2", "https://pypi.example/y-2.whl", "")
    with pytest.raises(hashes.HashedInstallError) as refused:
        hashes.pin_hashes([torch, sdist, project, remote, wheel], str(home), {}, {}, "/c/wh")
    message = str(refused.value)
    assert f"pip would build x 1 from {home / 'x-1.tar.gz'}, not a wheel" in message
    assert "pip would install proj 0.1 from file:///src/proj, which is not a wheel file" in message
    assert (
        "pip would install y 2 from https://pypi.example/y-2.whl, which is not a wheel" in message
    )
    assert "pip would install vllm 0.30.0 from /r/vllm.whl, outside the wheelhouse" in message
    assert f"pip would install {home / TORCH} from the wheelhouse {home} (a copy of" in message
    assert f"`{HASH_FIX} /c/wh` on the controller" in message


def test_the_manifest_gives_each_files_sha256_and_refuses_a_broken_one(tmp_path: Path) -> None:
    data = {
        "packages": [
            {"name": "torch", "file": TORCH, "sha256": "a" * 64},
            {"name": "numpy", "source": "provided-by-image"},
            {"name": "gone", "source": "missing"},
        ]
    }
    assert hashes.manifest_hashes(data) == {TORCH: "a" * 64}
    broken = [
        ({}, "no `packages` list"),
        ({"packages": ["x"]}, "not an object"),
        ({"packages": [{"file": "../x.whl", "sha256": "a" * 64}]}, "is not a file name"),
        ({"packages": [{"file": "x.whl", "sha256": "A" * 64}]}, "not 64 lowercase hex digits"),
        ({"packages": [{"file": "x.whl"}]}, "sha256 None"),
        (
            {"packages": [{"file": "x.whl", "sha256": c * 64} for c in "ab"]},
            "listed twice, with different sha256",
        ),
    ]
    for manifest, expected in broken:
        with pytest.raises(ValueError, match=expected):
            hashes.manifest_hashes(manifest)
    with pytest.raises(hashes.ManifestError, match=r"^has no wheelhouse\.json$"):
        hashes.read_manifest(str(tmp_path))
    (tmp_path / "wheelhouse.json").write_text("{not json")
    with pytest.raises(hashes.ManifestError, match=r"has an unusable wheelhouse\.json"):
        hashes.read_manifest(str(tmp_path))


# pip 23's refusal in hash-checking mode (the message has been the same since pip 8).
PIP_HASH_ERROR = """\
ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE. If you have updated \
the package versions, please update the hashes. Otherwise, examine the package contents \
carefully; someone may have tampered with them.
    lib==2.0 from file:///srv/wheelhouse/lib-2.0-py3-none-any.whl (from -r req.txt (line 3)):
        Expected sha256 {expected}
             Got        {got}

    vllm@ file:///r/vllm-0.30.0-py3-none-any.whl from file:///r/vllm-0.30.0-py3-none-any.whl:
        Expected sha256 {expected}
             Got        {got}
"""


def test_pips_hash_refusal_names_each_file_and_the_manifest() -> None:
    output = PIP_HASH_ERROR.format(expected="e" * 64, got="f" * 64)
    found = hashes.hash_mismatches(output)
    lib, vllm = (
        "file:///srv/wheelhouse/lib-2.0-py3-none-any.whl",
        "file:///r/vllm-0.30.0-py3-none-any.whl",
    )
    assert found == [
        hashes.Mismatch("lib==2.0", lib, "e" * 64, "f" * 64),
        hashes.Mismatch(f"vllm@ {vllm}", vllm, "e" * 64, "f" * 64),
    ]
    message = hashes.mismatch_message(found[:1], "/srv/wheelhouse", "/c/wh")
    assert message.startswith(
        "pip refused files whose bytes changed: /srv/wheelhouse/lib-2.0-py3-none-any.whl "
        "(lib==2.0) does not match the wheelhouse's manifest /srv/wheelhouse/wheelhouse.json"
    )
    assert f"`{HASH_FIX} /c/wh` on the controller" in message
    assert hashes.hash_mismatches("ERROR: No matching distribution found for lib") == []


def test_pip_runs_without_its_configuration() -> None:
    env = hashes.pip_environment(
        {
            "PATH": "/bin",
            "PIP_FIND_LINKS": "/opt/wheels",
            "PIP_INDEX_URL": "https://x",
            "HOME": "/h",
        }
    )
    assert env == {
        "PATH": "/bin",
        "HOME": "/h",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
    }


def test_the_command_lines() -> None:
    assert hashes.dry_run_argv("/v/bin/python", "/wh", ["app"], "/t/r.json") == [
        "/v/bin/python", "-m", "pip", "install", "--dry-run", "--report", "/t/r.json",
        "--no-index", "--find-links", "/wh", "app",
    ]  # fmt: skip
    assert hashes.dry_run_argv("py", "", ["w.whl"], "r", deps=False, force_reinstall=True)[7:] == [
        "--no-index", "--no-deps", "--force-reinstall", "w.whl",
    ]  # fmt: skip


# uv 0.13.9's dry run (`uv pip install --dry-run`), and its refusal in hash-checking mode.
UV_DRY_RUN = """\
Using Python 3.11.2 environment at: /opt/vllm/releases/k/venv
Resolved 4 packages in 2ms
Would download 3 packages
Would uninstall 1 package
Would install 3 packages
 - attrs==25.0.0
 + attrs==26.1.0
 + torch==2.13.0+cpu
 + vllm @ file:///opt/vllm/releases/k/wheel/vllm-0.30.0-cp38-abi3-linux_x86_64.whl
"""
UV_HASH_ERROR = """\
error: Failed to download `lib==2.0`
  cause: Hash mismatch for `lib==2.0`

         Expected:
           sha256:{expected}

         Computed:
           sha256:{got}
"""


def test_uvs_dry_run_gives_each_pin_and_the_wheelhouse_its_sha256s(tmp_path: Path) -> None:
    chosen = hashes.parse_uv_dry_run(UV_DRY_RUN)
    wheel = "/opt/vllm/releases/k/wheel/vllm-0.30.0-cp38-abi3-linux_x86_64.whl"
    assert [(c.name, c.version, c.path) for c in chosen] == [
        ("attrs", "26.1.0", ""),
        ("torch", "2.13.0+cpu", ""),
        ("vllm", "", wheel),
    ]
    home = tmp_path / "wh"
    home.mkdir()
    two = ["attrs-26.1.0-py3-none-any.whl", "attrs-26.1.0-cp311-cp311-manylinux_2_28_x86_64.whl"]
    for name in [*two, TORCH]:
        (home / name).write_bytes(b"")
    manifest = {two[0]: "a" * 64, two[1]: "c" * 64, TORCH: "d" * 64}
    pinned = hashes.pin_uv_hashes(chosen, str(home), manifest, {wheel: "b" * 64})
    assert hashes.uv_requirements_text(pinned).splitlines()[-3:] == [
        f"attrs==26.1.0 --hash=sha256:{'c' * 64} --hash=sha256:{'a' * 64}",
        f"torch==2.13.0+cpu --hash=sha256:{'d' * 64}",
        f"vllm @ file://{wheel} --hash=sha256:{'b' * 64}",
    ]
    (home / "x-1.tar.gz").write_bytes(b"")
    sdist, remote = hashes.Chosen("x", "1", "", ""), hashes.Chosen("y", "2", "", "")
    with pytest.raises(hashes.HashedInstallError) as refused:
        hashes.pin_uv_hashes([*chosen, sdist, remote], str(home), {TORCH: "d" * 64}, {}, "/c/wh")
    message = str(refused.value)
    assert f"uv would install vllm from file://{wheel}, whose sha256 is unknown" in message
    assert f"uv would build x 1 from the wheelhouse {home}, which has no wheel of it" in message
    assert f"uv would install y 2, which is no wheel of the wheelhouse {home}" in message
    assert f"uv would install {home / two[1]}, {home / two[0]} from the wheelhouse" in message
    assert f"`{HASH_FIX} /c/wh` on the controller" in message


def test_uvs_hash_refusal_names_the_pin_and_the_manifest() -> None:
    found = hashes.uv_hash_mismatches(UV_HASH_ERROR.format(expected="e" * 64, got="f" * 64))
    assert found == [hashes.Mismatch("lib==2.0", "", "e" * 64, "f" * 64)]
    message = hashes.uv_mismatch_message(found, "/srv/wheelhouse", "/c/wh")
    assert message.startswith(
        "uv refused files whose bytes changed: the wheel of lib==2.0 in /srv/wheelhouse does not "
        "match the wheelhouse's manifest /srv/wheelhouse/wheelhouse.json"
    )
    assert hashes.uv_hash_mismatches("error: No solution found") == []
    assert hashes.uv_changed(UV_DRY_RUN) and not hashes.uv_changed("Checked 3 packages in 1ms")


def test_uv_runs_without_its_settings_and_the_command_lines() -> None:
    env = hashes.uv_environment(
        {"PATH": "/bin", "UV_INDEX_URL": "https://x", "PIP_FIND_LINKS": "/w", "HOME": "/h"}
    )
    assert env == {"PATH": "/bin", "HOME": "/h", "UV_NO_PROGRESS": "1"}
    assert hashes.uv_dry_run_argv("uv", "/v/bin/python", "/c", "/wh", ["app"]) == [
        "uv", "pip", "install", "--no-config", "--python", "/v/bin/python", "--link-mode", "copy",
        "--cache-dir", "/c", "--dry-run", "--offline", "--no-index", "--find-links", "/wh", "app",
    ]  # fmt: skip
    argv = hashes.uv_install_argv("uv", "py", "", "", "r.txt", True, ["--compile-bytecode"])
    assert argv[7:] == [
        "copy", "--require-hashes", "--offline", "--no-index", "--no-deps", "--reinstall",
        "--compile-bytecode", "-r", "r.txt",
    ]  # fmt: skip


# --- the role: offline, every pip install is a hash-checked one ----------------------------

ROLE = REPO_ROOT / "roles" / "vllm_source"


def walk(tasks: List[Dict], when: Sequence[str] = ()) -> Iterator[tuple]:
    """Each task with the conditions it runs under, its blocks' included."""
    for task in tasks or []:
        conditions = [*when, *_as_list(task.get("when"))]
        yield task, conditions
        for key in ("block", "rescue", "always"):
            yield from walk(task.get(key) or [], conditions)


def _as_list(when: Any) -> List[str]:
    return [] if when is None else [str(w) for w in (when if isinstance(when, list) else [when])]


def pip_tasks() -> Iterator[tuple]:
    for path in sorted((ROLE / "tasks").glob("*.yml")):
        for task, when in walk(yaml.safe_load(path.read_text(encoding="utf-8"))):
            run = str(task.get("ansible.builtin.command", task.get("ansible.builtin.shell", "")))
            pip = "__vllm_source_pip +" in run or "pip install" in run
            if "ansible.builtin.pip" in task or pip:
                yield path.name, task["name"], when, "plain"
            elif "vllm_pip_hashed" in task:
                yield path.name, task["name"], when, "hashed"


def test_offline_every_pip_install_of_the_role_is_hash_checked() -> None:
    tasks = list(pip_tasks())
    assert any(kind == "plain" for *_, kind in tasks)  # from an index: pip's own installs
    for file, name, when, kind in tasks:
        offline = [w for w in when if "vllm_source_pip_offline" in w]
        if kind == "plain":
            assert offline and all(w.startswith("not vllm_source_pip_offline") for w in offline), (
                file,
                name,
            )
    hashed = {name for f, name, when, kind in tasks if kind == "hashed"}
    for install in ("PyTorch", "build requirements", "runtime requirements", "damaged", "wheel"):
        assert any(install in name for name in hashed), install
