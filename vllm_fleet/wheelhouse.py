"""An offline wheelhouse for one target host, proven complete before it leaves the controller.

    python -m vllm_fleet.wheelhouse build --dest DIR --python-version 3.12 \\
        --platform manylinux_2_39_x86_64 --cuda 13.0 --image-freeze FREEZE \\
        --build-requires PYPROJECT [--compiler-cache sccache] --vllm-wheel WHEEL \\
        [--exclude NAME ...] [--requirement SPEC ...] [--installer uv]
    python -m vllm_fleet.wheelhouse check  (the same flags, no network)
    python -m vllm_fleet.wheelhouse hash --dest DIR

The target installs in two pip runs (roles/vllm_source): vLLM's build requirements, then vLLM's
runtime requirements less the excluded ones, both on top of what its image's Python already has.
`build` resolves both with uv for the target (its Python, glibc and CUDA toolkit; the image's
packages offered as metadata-only stub wheels and preferred, the way pip keeps what is
installed), writes the locks with uv's `# via` lines (DEST/wheelhouse-build.lock.txt,
DEST/wheelhouse-runtime.lock.txt) and a report of every package, provided by the image or a
file in DEST (DEST/wheelhouse.json), downloads every package the image does not provide with
pip download, then runs `check`. `check` resolves both
installs again with no index at all, from DEST and the image stubs only, and names each
missing requirement and who needs it.

DEST/wheelhouse.json is also the manifest the role's offline installs check every wheel
against (library/vllm_pip_hashed.py): it lists each wheel of DEST with its sha256, and `check`
fails on a wheel it does not list or whose sha256 differs. `hash` writes or updates it for a
wheelhouse made by other means (tools/make-wheelhouse.sh, pip wheel): it records the files as
they are, so run it where they were made, before they travel to the hosts.

Exit status: 0 the wheelhouse is complete; 1 it is not, or a step failed (the message says
what to do); 2 a bad argument (the message names the flag).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from types import ModuleType
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Tuple

import tomllib
from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

REPO_ROOT = Path(__file__).resolve().parents[1]
PYPI = "https://pypi.org/simple"
LOCK_FILES = {"build": "wheelhouse-build.lock.txt", "runtime": "wheelhouse-runtime.lock.txt"}
# The requirement files each install is compiled from, and who they stand for in messages.
INPUT_LABELS = {
    "build.in": "vLLM's build requirements",
    "vllm.in": "vllm",
    "requirement.in": "--requirement",
    "installer.in": "--installer uv",
}
# uv itself (--installer uv) goes with the runtime install: every host installs it, builder
# or not (the role puts it into a venv of its own under the prefix).
INSTALL_INPUTS = {
    "build": ("build.in",),
    "runtime": ("vllm.in", "requirement.in", "installer.in"),
}
ARCHES = ("x86_64", "aarch64")
# The glibc minors of the `<arch>-manylinux_2_N` --python-platform values uv 0.13.9 knows.
UV_GLIBC_MINORS = (17, 28, *range(31, 41))
_LEGACY_MANYLINUX = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}
_LEGACY_ALIAS = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
PLATFORM_EXAMPLE = "manylinux_2_39_x86_64 (glibc 2.39 on x86_64: Ubuntu 24.04)"
# CUDA component wheels whose versions follow the toolkit's (besides every nvidia-cuda-*).
CUDA_FOLLOWERS = ("nvidia-nvvm", "nvidia-nvjitlink", "nvidia-nvtx")
KNOWN_CUDA_COMPONENTS = (
    "nvidia-cuda-cccl",
    "nvidia-cuda-crt",
    "nvidia-cuda-culibos",
    "nvidia-cuda-cuobjdump",
    "nvidia-cuda-cupti",
    "nvidia-cuda-nvcc",
    "nvidia-cuda-nvdisasm",
    "nvidia-cuda-nvrtc",
    "nvidia-cuda-opencl",
    "nvidia-cuda-profiler-api",
    "nvidia-cuda-runtime",
    "nvidia-cuda-sanitizer-api",
    *CUDA_FOLLOWERS,
)
# pip settings that would add sources (or caps) beyond the ones uv resolved against.
_PIP_SOURCE_ENV = (
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_NO_INDEX",
    "PIP_CONSTRAINT",
)
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"


def _load_module_utils(name: str) -> ModuleType:
    """module_utils/NAME.py, the role's own code (it imports nothing of Ansible)."""
    path = REPO_ROOT / "module_utils" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


# The role's requirement-name parser, and the manifest the host's hash-checked installs read.
_requirements = _load_module_utils("vllm_fleet_requirements")
canonical_name = _requirements.canonical_name
requirement_name = _requirements.requirement_name
split_marker = _requirements.split_marker
unknown_exclusions = _requirements.unknown_exclusions
_hashes = _load_module_utils("vllm_fleet_hashes")
REPORT_FILE = _hashes.MANIFEST_FILE  # wheelhouse.json


class WheelhouseError(Exception):
    """A failure the user can act on; the message says what to do."""


class ResolutionFailed(WheelhouseError):
    """uv found no resolution for one install; stderr holds its explanation."""

    def __init__(self, install: str, stderr: str) -> None:
        super().__init__(f"uv could not resolve the {install} install for the target:\n{stderr}")
        self.install = install
        self.stderr = stderr


# --- The target: Python, platform tags, CUDA ----------------------------------------------


@dataclass(frozen=True)
class Target:
    python_version: str  # "3.12" or "3.12.3"
    platform: str  # "manylinux_2_39_x86_64"

    @property
    def python(self) -> Tuple[int, int]:
        major, minor = self.python_version.split(".")[:2]
        return int(major), int(minor)

    @property
    def abi(self) -> str:
        return "cp{}{}".format(*self.python)

    def describe(self) -> str:
        return f"CPython {self.python_version}, {self.platform}"


def python_version_arg(text: str) -> str:
    """argparse type of --python-version: X.Y or X.Y.Z of a CPython 3."""
    if not re.fullmatch(r"3\.\d{1,2}(\.\d{1,2})?", text):
        raise argparse.ArgumentTypeError(
            f"expected the target's CPython as X.Y, e.g. 3.12 (or X.Y.Z, e.g. 3.12.3), got {text!r}"
        )
    return text


def parse_platform(platform: str) -> Tuple[int, str]:
    """Return (glibc minor, machine) of a manylinux tag; ValueError says what is accepted."""
    match = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", platform)
    if match:
        minor, arch = int(match.group(1)), match.group(2)
    else:
        legacy, _, arch = platform.partition("_")
        if legacy not in _LEGACY_MANYLINUX:
            raise ValueError(
                f"expected a manylinux tag such as {PLATFORM_EXAMPLE}, got {platform!r}"
            )
        minor = _LEGACY_MANYLINUX[legacy]
    if arch not in ARCHES:
        raise ValueError(f"machine {arch!r} is not one of {', '.join(ARCHES)} in {platform!r}")
    if minor < 17:
        raise ValueError(f"{platform!r} is older than glibc 2.17, which uv and CUDA wheels need")
    return minor, arch


def platform_arg(text: str) -> str:
    """argparse type of --platform."""
    try:
        parse_platform(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def expand_platform(platform: str) -> List[str]:
    """Every manylinux tag a host of this tag's glibc runs, newest first (pip needs each)."""
    minor, arch = parse_platform(platform)
    oldest = 5 if arch == "x86_64" else 17
    tags: List[str] = []
    for glibc in range(minor, oldest - 1, -1):
        tags.append(f"manylinux_2_{glibc}_{arch}")
        if glibc in _LEGACY_ALIAS:
            tags.append(f"{_LEGACY_ALIAS[glibc]}_{arch}")
    return tags


def _uv_glibc_minor(platform: str) -> Tuple[int, str]:
    """The newest glibc minor uv knows that the target has (never newer), and the machine."""
    minor, arch = parse_platform(platform)
    return max(known for known in UV_GLIBC_MINORS if known <= minor), arch


def uv_python_platform(platform: str) -> str:
    """uv's --python-platform for a tag: manylinux_2_39_x86_64 -> x86_64-manylinux_2_39."""
    minor, arch = _uv_glibc_minor(platform)
    return f"{arch}-manylinux_2_{minor}"


def target_tags(target: Target) -> FrozenSet[Tag]:
    """The wheel tags pip on the target accepts."""
    arch = parse_platform(target.platform)[1]
    platforms = [*expand_platform(target.platform), f"linux_{arch}"]
    return frozenset(
        [
            *cpython_tags(target.python, [target.abi], platforms),
            *compatible_tags(target.python, target.abi, platforms),
        ]
    )


def wheel_fits(filename: str, tags: FrozenSet[Tag]) -> bool:
    """Whether a wheel file name carries a tag the target accepts."""
    return not parse_wheel_filename(filename)[3].isdisjoint(tags)


def cuda_arg(text: str) -> str:
    """argparse type of --cuda: the target toolkit's X.Y."""
    if not re.fullmatch(r"\d{2}\.\d{1,2}", text):
        raise argparse.ArgumentTypeError(
            f"expected the target's CUDA toolkit as X.Y (nvcc --version), e.g. 13.0, got {text!r}"
        )
    return text


def _cuda_release(cuda: str) -> Tuple[int, int]:
    major, minor = cuda.split(".")
    return int(major), int(minor)


def _cuda_base(name: str) -> Tuple[str, Optional[int]]:
    """(name without a -cuNN suffix, NN or None)."""
    name = canonical_name(name)
    match = re.fullmatch(r"(.+)-cu(\d+)", name)
    return (match.group(1), int(match.group(2))) if match else (name, None)


def is_cuda_component(name: str) -> bool:
    """Whether a package is a CUDA toolkit component whose version follows the toolkit's."""
    base = _cuda_base(name)[0]
    return base.startswith("nvidia-cuda-") or base in CUDA_FOLLOWERS


def cuda_constraints(cuda: str, names: Iterable[str]) -> List[str]:
    """Constraints pinning the CUDA components among `names` to the toolkit's X.Y."""
    major, minor = _cuda_release(cuda)
    wanted = set()
    for name in names:
        suffix = _cuda_base(name)[1]
        if is_cuda_component(name) and suffix in (None, major):
            wanted.add(canonical_name(name))
    return [f"{name}=={major}.{minor}.*" for name in sorted(wanted)]


def known_cuda_components(cuda: str) -> List[str]:
    """The component names pinned up front: plain and -cuNN-suffixed (12.x wheels are)."""
    major = _cuda_release(cuda)[0]
    return [form for name in KNOWN_CUDA_COMPONENTS for form in (name, f"{name}-cu{major}")]


def follows_cuda(version: str, cuda: str) -> bool:
    """Whether a component's version is the toolkit's X.Y."""
    try:
        return Version(version).release[:2] == _cuda_release(cuda)
    except InvalidVersion:
        return False


# --- What the target installs --------------------------------------------------------------


def build_requirements(pyproject: Mapping[str, object]) -> List[str]:
    """[build-system].requires minus torch, plus regex: what the role installs before building."""
    system = pyproject.get("build-system")
    requires = system.get("requires") if isinstance(system, dict) else None
    if not isinstance(requires, list) or not requires:
        raise WheelhouseError(
            "the pyproject.toml has no [build-system].requires: pass --build-requires the "
            "pyproject.toml of a vLLM checkout or sdist"
        )
    kept = [str(r) for r in requires if requirement_name(str(r)) != "torch"]
    if not any(requirement_name(r) == "regex" for r in kept):
        kept.append("regex")  # setup.py's helpers import it (roles/vllm_source/tasks/build.yml)
    return kept


# The role's pins of the compiler caches a full build installs (vllm_source_compiler_cache).
ROLE_VARS = Path(__file__).resolve().parents[1] / "roles" / "vllm_source" / "vars" / "main.yml"


def _role_pin(tool: str, name: str, key: Optional[str], role_vars: Path) -> str:
    """The role's variable `name` (its `key` entry when a mapping), read from its vars."""
    import yaml  # ansible-core's dependency; only the options that need a pin need it

    try:
        value = yaml.safe_load(role_vars.read_text(encoding="utf-8"))[name]
        return str(value[key] if key is not None else value)
    except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise WheelhouseError(
            f"cannot read the role's pin of {tool} from {role_vars}: {exc!r}"
        ) from None


def compiler_cache_package(tool: str, role_vars: Path = ROLE_VARS) -> str:
    """The requirement the role installs for `tool` (sccache or ccache), read from its vars."""
    return _role_pin(tool, "__vllm_source_compiler_cache_packages", tool, role_vars)


def uv_package(role_vars: Path = ROLE_VARS) -> str:
    """The uv the role installs for vllm_source_installer uv (uv==X), read from its vars."""
    return _role_pin("uv", "__vllm_source_uv_package", None, role_vars)


def read_build_requirements(path: Path) -> List[str]:
    try:
        with path.open("rb") as handle:
            return build_requirements(tomllib.load(handle))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise WheelhouseError(f"cannot read --build-requires {path}: {exc}") from None


def wheel_requires(path: Path) -> List[str]:
    """The Requires-Dist lines of a wheel's METADATA, markers included."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
            if len(names) != 1:
                raise WheelhouseError(f"{path} has no single *.dist-info/METADATA: is it a wheel?")
            text = archive.read(names[0]).decode("utf-8")
    except (OSError, zipfile.BadZipFile) as exc:
        raise WheelhouseError(f"cannot read --vllm-wheel {path}: {exc}") from None
    return HeaderParser().parsestr(text).get_all("Requires-Dist") or []


def runtime_requirements(
    requires: Sequence[str], exclude: Sequence[str]
) -> Tuple[List[str], List[str]]:
    """(Requires-Dist less the excluded names, markers kept for uv; excluded names not required).

    Unlike the role's module, markers stay: uv evaluates them for the target, not for this
    machine, and `extra == ...` requirements drop out there the same way.
    """
    unwanted = {canonical_name(name) for name in exclude}
    kept = [r for r in requires if requirement_name(split_marker(r)[0]) not in unwanted]
    return kept, unknown_exclusions(requires, exclude)


def requirement_arg(text: str) -> str:
    """argparse type of --requirement: a PEP 508 requirement."""
    try:
        Requirement(text)
    except InvalidRequirement as exc:
        raise argparse.ArgumentTypeError(
            f"not a requirement, e.g. ansible-core==2.19.14: {exc}"
        ) from None
    return text


def freeze_pin(line: str) -> Optional[Tuple[str, str]]:
    """(canonical name, version) of a `pip freeze` line, or None when it gives no version."""
    pinned = re.fullmatch(rf"({_NAME})\s*===?\s*(\S+)", line)
    url = re.fullmatch(rf"({_NAME})\s*@\s*\S*/([^/\s]+\.whl)", line)
    try:
        if pinned:
            return canonical_name(pinned.group(1)), str(Version(pinned.group(2)))
        if url:
            return canonical_name(url.group(1)), str(parse_wheel_filename(url.group(2))[1])
    except (InvalidVersion, InvalidWheelFilename):
        pass
    return None


def parse_freeze(text: str) -> Tuple[Dict[str, str], List[str]]:
    """({canonical name: version} from `pip freeze`, the lines that give no version).

    `name==version` and `name @ .../name-version-...whl` give a version; editable installs,
    VCS and source-tree URLs do not, so the target's copy of those is not counted on.
    """
    image: Dict[str, str] = {}
    skipped: List[str] = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            pin = freeze_pin(line)
            if pin:
                image[pin[0]] = pin[1]
            else:
                skipped.append(line)
    return image, skipped


def same_version(left: str, right: str) -> bool:
    try:
        return Version(left) == Version(right)
    except InvalidVersion:
        return left == right


def from_image(name: str, version: str, image: Mapping[str, str]) -> bool:
    """Whether pip on the target keeps the image's copy: the resolution chose its version."""
    have = image.get(canonical_name(name))
    return have is not None and same_version(have, version)


@dataclass(frozen=True)
class Plan:
    """The target and its two installs, as the role runs them."""

    target: Target
    cuda: Optional[str]
    image: Mapping[str, str]
    inputs: Mapping[str, Sequence[str]]  # INPUT_LABELS file -> requirement lines

    def installs(self) -> List[str]:
        """The installs that have requirements, in the order the role runs them."""
        return [
            kind for kind, files in INSTALL_INPUTS.items() if any(self.inputs[f] for f in files)
        ]


# --- Image stubs ---------------------------------------------------------------------------


def stub_tag(target: Target) -> str:
    """The tag uv ranks first for the target, so a stub outranks an index's wheel of its version."""
    minor, arch = _uv_glibc_minor(target.platform)
    return f"{target.abi}-{target.abi}-manylinux_2_{minor}_{arch}"


def write_stub_wheel(directory: Path, name: str, version: str, tag: str) -> Path:
    """A metadata-only wheel (Name, Version, no Requires-Dist) standing for an installed copy."""
    stem = f"{re.sub(r'[-_.]+', '_', name)}-{version}"
    info = f"{stem}.dist-info"
    files = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: vllm_fleet.wheelhouse\nRoot-Is-Purelib: false\n"
            f"Tag: {tag}\n"
        ),
    }
    path = directory / f"{stem}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
        archive.writestr(
            f"{info}/RECORD", "".join(f"{m},,\n" for m in files) + f"{info}/RECORD,,\n"
        )
    return path


def write_image_stubs(directory: Path, image: Mapping[str, str], target: Target) -> Path:
    """One stub per image package into `directory` (made here); returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, version in sorted(image.items()):
        write_stub_wheel(directory, name, version, stub_tag(target))
    return directory


# --- Locks: uv's requirements.txt output with `# via` lines --------------------------------


@dataclass(frozen=True)
class Locked:
    name: str  # canonical
    version: str
    needed_by: Tuple[str, ...]


def via_label(via: str) -> Optional[str]:
    """Who a `# via` entry stands for: `-r vllm.in` is vllm; a constraint file is no one."""
    if via.startswith("-c "):
        return None
    source = re.fullmatch(r"-r (\S+)", via)
    return INPUT_LABELS.get(Path(source.group(1)).name, via) if source else via


def parse_lock(text: str) -> List[Locked]:
    """The pins of a `uv pip compile` output and, from its `# via` comments, who needs each."""
    pins: List[Tuple[str, str, List[str]]] = []
    for line in text.splitlines():
        pin = re.match(rf"({_NAME})(?:\[[^\]]*\])?==([^\s;\\]+)", line)
        comment = re.fullmatch(r"\s+#\s*(?:via(?:\s+|$))?(.*)", line)
        if pin:
            pins.append((canonical_name(pin.group(1)), pin.group(2), []))
        elif pins and comment and comment.group(1).strip():
            pins[-1][2].append(comment.group(1).strip())
    return [
        Locked(name, version, tuple(w for w in map(via_label, vias) if w))
        for name, version, vias in pins
    ]


@dataclass
class Package:
    """One name==version of the union of the installs."""

    name: str
    version: str
    installs: List[str] = field(default_factory=list)
    needed_by: List[str] = field(default_factory=list)

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"


def merge_locks(locks: Mapping[str, Sequence[Locked]]) -> List[Package]:
    """The union of the installs' pins, by name and version."""
    merged: Dict[Tuple[str, str], Package] = {}
    for install, entries in locks.items():
        for entry in entries:
            package = merged.setdefault(
                (entry.name, entry.version), Package(entry.name, entry.version)
            )
            package.installs.append(install)
            package.needed_by.extend(w for w in entry.needed_by if w not in package.needed_by)
    return sorted(merged.values(), key=lambda p: (p.name, p.version))


def read_dest_locks(dest: Path) -> Dict[str, List[Locked]]:
    """The locks a build wrote into DEST ({} when it has none)."""
    return {
        install: parse_lock((dest / name).read_text(encoding="utf-8"))
        for install, name in LOCK_FILES.items()
        if (dest / name).is_file()
    }


# --- uv and pip ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    find_links: Tuple[str, ...] = ()
    no_index: bool = False
    offline: bool = False


def uv_binary() -> str:
    try:
        from uv import find_uv_bin  # the uv wheel ships its binary with this helper

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if not found:
        raise WheelhouseError(
            "uv is not installed: run .venv/bin/pip install -r requirements-control.txt "
            "(it pins uv==0.13.9)"
        )
    return found


def uv_compile_argv(
    uv: str, target: Target, inputs: Sequence[str], sources: Sources, header: str
) -> List[str]:
    """uv pip compile of `inputs` for the target into lock.txt, constrained by constraints.txt."""
    argv = [uv, "pip", "compile", "--no-config", "--python", sys.executable]
    argv += ["--python-version", target.python_version]
    argv += ["--python-platform", uv_python_platform(target.platform)]
    argv += ["--only-binary", ":all:", "--no-python-downloads", "--color", "never", "--quiet"]
    argv += ["--custom-compile-command", header, "-c", "constraints.txt", "-o", "lock.txt"]
    for link in sources.find_links:
        argv += ["--find-links", link]
    if sources.no_index:
        argv.append("--no-index")
    if sources.offline:
        argv += ["--offline", "--no-cache"]
    return [*argv, *inputs]


def compile_install(
    uv: str,
    plan: Plan,
    install: str,
    prefer: Mapping[str, str],
    constraints: Sequence[str],
    sources: Sources,
    work: Path,
    header: str,
) -> str:
    """Resolve one install; uv prefers the `prefer` versions (the -o file it starts from)."""
    folder = work / install
    folder.mkdir(parents=True, exist_ok=True)
    inputs = [name for name in INSTALL_INPUTS[install] if plan.inputs[name]]
    for name in inputs:
        (folder / name).write_text("\n".join(plan.inputs[name]) + "\n", encoding="utf-8")
    (folder / "constraints.txt").write_text("".join(f"{c}\n" for c in constraints))
    pins = "".join(f"{name}=={version}\n" for name, version in sorted(prefer.items()))
    (folder / "lock.txt").write_text(pins, encoding="utf-8")
    argv = uv_compile_argv(uv, plan.target, inputs, sources, header)
    done = subprocess.run(argv, cwd=folder, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ResolutionFailed(install, done.stderr.strip())
    return (folder / "lock.txt").read_text(encoding="utf-8")


def resolve_installs(
    uv: str, plan: Plan, sources: Sources, work: Path, constraints: Sequence[str], header: str
) -> Dict[str, str]:
    """Each install's lock text; the second prefers what the first (or the image) installed."""
    prefer = dict(plan.image)
    locks: Dict[str, str] = {}
    for install in plan.installs():
        locks[install] = compile_install(
            uv, plan, install, prefer, constraints, sources, work, header
        )
        prefer.update((e.name, e.version) for e in parse_lock(locks[install]))
    return locks


def resolve_for_build(
    uv: str, plan: Plan, sources: Sources, work: Path, header: str
) -> Dict[str, str]:
    """resolve_installs with every CUDA component pinned to --cuda, found ones included."""
    if plan.cuda is None:
        return resolve_installs(uv, plan, sources, work, [], header)
    pinned = set(known_cuda_components(plan.cuda))
    while True:
        constraints = cuda_constraints(plan.cuda, pinned)
        locks = resolve_installs(uv, plan, sources, work, constraints, header)
        found = {e.name for t in locks.values() for e in parse_lock(t) if is_cuda_component(e.name)}
        if found <= pinned or not cuda_constraints(plan.cuda, found - pinned):
            return locks
        pinned |= found


def pip_download_argv(
    target: Target, sources: Sources, dest: Path, specs: Sequence[str]
) -> List[str]:
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    argv += ["--python-version", "{}.{}".format(*target.python), "--implementation", "cp"]
    argv += ["--abi", target.abi, "--progress-bar", "off", "--disable-pip-version-check"]
    for platform in expand_platform(target.platform):
        argv += ["--platform", platform]
    argv += ["--no-index"] if sources.no_index else ["--index-url", PYPI]
    for link in sources.find_links:
        argv += ["--find-links", link]
    return [*argv, "-d", str(dest), *specs]


def pip_env() -> Dict[str, str]:
    """This environment less pip's configured sources: pip fetches from where uv resolved."""
    env = {k: v for k, v in os.environ.items() if k not in _PIP_SOURCE_ENV}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def _pip(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, env=pip_env())


def download(target: Target, sources: Sources, dest: Path, specs: Sequence[str]) -> List[str]:
    """pip download each spec into DEST; returns a line per spec that failed."""
    if not specs or _pip(pip_download_argv(target, sources, dest, specs)).returncode == 0:
        return []
    failed = []  # one at a time, to name every one that pip cannot get
    for spec in specs:
        done = _pip(pip_download_argv(target, sources, dest, [spec]))
        if done.returncode != 0:
            errors = [ln for ln in done.stderr.splitlines() if ln.startswith("ERROR")]
            failed.append(f"{spec}: {errors[0] if errors else done.stderr.strip()[-300:]}")
    return failed


# --- The wheelhouse's files ----------------------------------------------------------------


def wheel_files(dest: Path) -> Dict[Tuple[str, str], List[Path]]:
    """DEST's wheels by (canonical name, normalized version)."""
    found: Dict[Tuple[str, str], List[Path]] = {}
    for path in sorted(dest.glob("*.whl")):
        try:
            name, version, _, _ = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            continue
        found.setdefault((canonical_name(name), str(version)), []).append(path)
    return found


def _version_key(version: str) -> str:
    try:
        return str(Version(version))
    except InvalidVersion:
        return version


def fitting_wheel(
    files: Mapping[Tuple[str, str], Sequence[Path]], name: str, version: str, tags: FrozenSet[Tag]
) -> Optional[Path]:
    """DEST's wheel of name==version that the target can install, if any."""
    for path in files.get((canonical_name(name), _version_key(version)), ()):
        if wheel_fits(path.name, tags):
            return path
    return None


def misfits(dest: Path, tags: FrozenSet[Tag]) -> List[Path]:
    """DEST's wheels that pip on the target ignores: no tag of theirs fits it."""
    out = []
    for path in sorted(dest.glob("*.whl")):
        try:
            fits = wheel_fits(path.name, tags)
        except InvalidWheelFilename:
            fits = False
        if not fits:
            out.append(path)
    return out


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wheel_paths(dest: Path) -> List[Path]:
    """DEST's wheel files, sorted by name."""
    return sorted(p for p in dest.glob("*.whl") if p.is_file())


def recorded_hashes(dest: Path) -> Dict[str, str]:
    """{file: sha256} that DEST's manifest records for the wheels DEST has now ({} without a
    usable one): what build keeps, so that check still sees a wheel that changed since."""
    try:
        data = json.loads((dest / REPORT_FILE).read_text(encoding="utf-8"))
        recorded = _hashes.manifest_hashes(data)
    except (OSError, ValueError):
        return {}
    return {name: digest for name, digest in recorded.items() if (dest / name).is_file()}


def file_entry(path: Path, digest: Optional[str] = None) -> Dict[str, object]:
    """The manifest's entry of a wheel that no resolution chose: name and version from its
    file name, its sha256 (`digest` when recorded before, else computed now)."""
    try:
        name, version, _, _ = parse_wheel_filename(path.name)
        names = (canonical_name(name), str(version))
    except InvalidWheelFilename:
        names = (path.name.split("-")[0], "")
    return {
        "name": names[0],
        "version": names[1],
        "installs": [],
        "needed_by": [],
        "source": "file-in-wheelhouse",
        "file": path.name,
        "size": path.stat().st_size,
        "sha256": digest or sha256(path),
    }


def mib(paths: Iterable[Path]) -> float:
    return round(sum(p.stat().st_size for p in paths) / (1 << 20), 1)


# --- Findings: missing requirements and who needs them -------------------------------------


def missing_from_lock(
    packages: Sequence[Package],
    image: Mapping[str, str],
    files: Mapping[Tuple[str, str], Sequence[Path]],
    tags: FrozenSet[Tag],
) -> List[Tuple[str, List[str]]]:
    """(name==version, needed by) for each locked package neither the image nor DEST has."""
    return [
        (p.spec, p.needed_by)
        for p in packages
        if not from_image(p.name, p.version, image)
        and not fitting_wheel(files, p.name, p.version, tags)
    ]


def missing_from_uv(stderr: str) -> List[Tuple[str, List[str]]]:
    """(requirement, needed by) from uv's "Because X was not found ... Y depends on X" lines.

    "you require X" comes back as needed by "" (a top-level requirement); uv stops at its first
    dead end, so this names what it names.
    """
    text = " ".join(stderr.split())
    wanted: Dict[str, str] = {}
    needers: Dict[str, List[str]] = {}
    for match in re.finditer(
        rf"(?:all versions of ({_NAME})|({_NAME})==\S+|({_NAME})) depends? on ({_NAME}[^\s,]*)",
        text,
    ):
        who = next(g for g in match.groups()[:3] if g)
        spec = match.group(4)
        wanted.setdefault(requirement_name(spec), spec)
        needers.setdefault(requirement_name(spec), []).append(canonical_name(who))
    for match in re.finditer(rf"you require ({_NAME}[^\s,]*)", text):
        spec = match.group(1)
        wanted.setdefault(requirement_name(spec), spec)
        needers.setdefault(requirement_name(spec), []).append("")
    absent = [
        canonical_name(m.group(1))
        for m in re.finditer(
            rf"({_NAME}) was not found in the (?:provided package locations|package registry)", text
        )
    ]
    absent += [
        requirement_name(m.group(1) or m.group(2))
        for m in re.finditer(
            rf"there is no version of ({_NAME}[^\s,]*)|only ({_NAME}[^\s,]*) (?:is|are) available",
            text,
        )
    ]
    ordered = list(dict.fromkeys(absent))
    return [(wanted.get(name, name), needers.get(name, [])) for name in ordered]


def top_level_labels(plan: Plan, install: str, name: str) -> List[str]:
    """Who asks for `name` directly in an install's requirement files."""
    return [
        INPUT_LABELS[f]
        for f in INSTALL_INPUTS[install]
        if any(requirement_name(split_marker(r)[0]) == name for r in plan.inputs[f])
    ]


def cuda_findings(packages: Sequence[Package], plan: Plan) -> List[str]:
    """Messages for CUDA components off the image that do not follow the target's toolkit."""
    found = []
    for p in packages:
        if not is_cuda_component(p.name) or from_image(p.name, p.version, plan.image):
            continue
        who = f" (needed by {', '.join(p.needed_by)})" if p.needed_by else ""
        if plan.cuda is None:
            found.append(
                f"{p.spec}{who} must match the target's CUDA toolkit: pass --cuda X.Y "
                "(`nvcc --version` on the target, e.g. 13.0)"
            )
        elif not follows_cuda(p.version, plan.cuda):
            found.append(
                f"{p.spec}{who} does not follow the target's CUDA {plan.cuda} (--cuda): remove it "
                f"from the wheelhouse and rerun build, which pins it to {plan.cuda}.*"
            )
    return found


# --- check ---------------------------------------------------------------------------------


@dataclass
class CheckResult:
    problems: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    figures: Dict[str, object] = field(default_factory=dict)


def hash_problems(dest: Path) -> List[str]:
    """What the role's hash-checked installs refuse: no manifest, or one that does not list a
    wheel of DEST, or records another sha256 for it."""
    record = f"`{_hashes.hash_command(str(dest))}`"
    report = dest / REPORT_FILE
    if not report.is_file():
        return [
            f"{dest} has no {REPORT_FILE}: the role's offline installs refuse a wheelhouse "
            f"without one; rerun build, or run {record} to record its wheels as they are"
        ]
    try:
        recorded = _hashes.manifest_hashes(json.loads(report.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        return [f"cannot use {report} ({exc}): delete it and rerun build, or run {record}"]
    out = []
    for path in wheel_paths(dest):
        digest = recorded.get(path.name)
        if digest is None:
            out.append(
                f"{path} is not listed in {report}: the role refuses to install a wheel whose "
                f"sha256 is not recorded; run {record} to record it, or delete it"
            )
        elif sha256(path) != digest:
            out.append(
                f"{path} is not the file {REPORT_FILE} records (its sha256 differs): delete it "
                f"and rerun build, or run {record} if you trust it as it is"
            )
    return out


def uv_missing(plan: Plan, failure: ResolutionFailed) -> List[Tuple[str, List[str]]]:
    """missing_from_uv, with a top-level requirement's who named after its input."""
    return [
        (
            spec,
            [w for w in who if w]
            or top_level_labels(plan, failure.install, requirement_name(spec)),
        )
        for spec, who in missing_from_uv(failure.stderr)
    ]


def missing_requirements(
    plan: Plan,
    failure: ResolutionFailed,
    packages: Sequence[Package],
    files: Mapping[Tuple[str, str], Sequence[Path]],
    tags: FrozenSet[Tag],
) -> List[Tuple[str, List[str]]]:
    """Each missing requirement and who needs it: from DEST's lock, else from uv's message."""
    return missing_from_lock(packages, plan.image, files, tags) or uv_missing(plan, failure)


def unresolvable(plan: Plan, failure: ResolutionFailed) -> WheelhouseError:
    """build's error when the index cannot satisfy an install: who needs what, and the fix."""
    lines = [f"{failure}"]
    for spec, who in uv_missing(plan, failure):
        pinned = plan.cuda and is_cuda_component(requirement_name(spec))
        note = f", pinned to CUDA {plan.cuda}.* by --cuda" if pinned else ""
        lines.append(f"cannot get {spec} (needed by {', '.join(who) or '?'}{note})")
    lines.append(
        "fix: --exclude a requirement the target does not need (the role's "
        "vllm_source_runtime_deps_exclude), or offer its wheel with --find-links"
    )
    return WheelhouseError("\n".join(lines))


def missing_messages(
    plan: Plan,
    dest: Path,
    missing: Sequence[Tuple[str, Sequence[str]]],
    files: Mapping[Tuple[str, str], Sequence[Path]],
) -> List[str]:
    """A line per missing requirement, what DEST has of it instead, and the fix."""
    lines = [
        f"missing from {dest}: {spec} (needed by {', '.join(who) or '?'})" for spec, who in missing
    ]
    for spec, _ in missing:
        name = requirement_name(spec)
        near = [path.name for (n, _), paths in files.items() if n == name for path in paths]
        if near:
            lines.append(f"  {dest} has {', '.join(near)}: no fitting wheel of that version")
    lines.append(
        "fix: rerun `python -m vllm_fleet.wheelhouse build` with these flags on a machine that "
        f"reaches the index, or put the named wheels ({plan.target.abi} or pure Python, "
        f"{plan.target.platform} or an older manylinux tag) into {dest}"
    )
    return lines


def lock_drift(locked: Sequence[Package], resolved: Sequence[Package]) -> List[str]:
    """Where the target's resolution from DEST differs from the lock that build wrote."""
    was = {p.name: p.version for p in locked}
    now = {p.name: p.version for p in resolved}
    out = [
        f"the target installs {name}=={now[name]}, not the locked {was[name]}: DEST has other "
        "versions besides the locked ones (rerun build into an empty --dest to tidy up)"
        for name in sorted(was.keys() & now.keys())
        if not same_version(was[name], now[name])
    ]
    out += [
        f"the target needs {name}=={now[name]}, which the lock does not list"
        for name in sorted(now.keys() - was.keys())
    ]
    return out


def check_wheelhouse(uv: str, plan: Plan, dest: Path, header: str) -> CheckResult:
    """Resolve both installs offline from DEST and the image only, as pip on the target does."""
    result = CheckResult()
    tags = target_tags(plan.target)
    files = wheel_files(dest)
    for path in misfits(dest, tags):
        result.warnings.append(
            f"{path} does not fit the target ({plan.target.describe()}): pip there ignores it; "
            "delete it, or build for the right --python-version/--platform"
        )
    result.problems += hash_problems(dest)
    locked = merge_locks(read_dest_locks(dest))
    with tempfile.TemporaryDirectory(prefix="wheelhouse-check-") as tmp:
        stubs = write_image_stubs(Path(tmp) / "image", plan.image, plan.target)
        sources = Sources(find_links=(str(dest), str(stubs)), no_index=True, offline=True)
        try:
            locks = resolve_installs(uv, plan, sources, Path(tmp), [], header)
        except ResolutionFailed as failure:
            missing = missing_requirements(plan, failure, locked, files, tags)
            result.problems += (
                missing_messages(plan, dest, missing, files)
                if missing
                else [f"{failure}\nfix: make the requirements above satisfiable from {dest}"]
            )
            return result
    resolved = merge_locks({k: parse_lock(v) for k, v in locks.items()})
    result.problems += cuda_findings(resolved, plan)
    if locked:
        result.warnings += lock_drift(locked, resolved)
    off_image = [p for p in resolved if not from_image(p.name, p.version, plan.image)]
    wheels = [w for w in (fitting_wheel(files, p.name, p.version, tags) for p in off_image) if w]
    result.figures = {
        "packages resolved": len(resolved),
        "provided by the image": len(resolved) - len(off_image),
        "wheels used from the wheelhouse": len(wheels),
        "MiB of those": mib(wheels),
        "wheels not needed by this target": len(list(dest.glob("*.whl"))) - len(wheels),
    }
    return result


# --- build ---------------------------------------------------------------------------------


def report_entry(
    package: Package,
    plan: Plan,
    files: Mapping[Tuple[str, str], Sequence[Path]],
    tags: FrozenSet[Tag],
    recorded: Mapping[str, str],
) -> Dict[str, object]:
    entry: Dict[str, object] = {
        "name": package.name,
        "version": package.version,
        "installs": package.installs,
        "needed_by": package.needed_by,
    }
    if from_image(package.name, package.version, plan.image):
        return {**entry, "source": "provided-by-image"}
    path = fitting_wheel(files, package.name, package.version, tags)
    if path is None:
        return {**entry, "source": "missing"}
    digest = recorded.get(path.name) or sha256(path)
    extra = {"file": path.name, "size": path.stat().st_size, "sha256": digest}
    return {**entry, "source": "file-in-wheelhouse", **extra}


def write_locks(dest: Path, locks: Mapping[str, str]) -> None:
    for install, name in LOCK_FILES.items():
        path = dest / name
        if install in locks:
            path.write_text(locks[install], encoding="utf-8")
        elif path.exists():
            path.unlink()


@dataclass
class BuildResult:
    figures: Dict[str, object]
    download_failures: List[str]


def build_wheelhouse(uv: str, plan: Plan, dest: Path, sources: Sources, header: str) -> BuildResult:
    """Resolve, lock and download into DEST; writes the report DEST/wheelhouse.json."""
    started = time.monotonic()
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wheelhouse-build-") as tmp:
        stubs = write_image_stubs(Path(tmp) / "image", plan.image, plan.target)
        online = Sources((*sources.find_links, str(stubs)), sources.no_index, False)
        try:
            locks = resolve_for_build(uv, plan, online, Path(tmp), header)
        except ResolutionFailed as failure:
            raise unresolvable(plan, failure) from None
    write_locks(dest, locks)
    packages = merge_locks({k: parse_lock(v) for k, v in locks.items()})
    findings = cuda_findings(packages, plan)
    if findings:
        raise WheelhouseError("\n".join(findings))
    tags = target_tags(plan.target)
    files = wheel_files(dest)
    wanted = [spec for spec, _ in missing_from_lock(packages, plan.image, files, tags)]
    recorded = recorded_hashes(dest)  # before the download: a wheel deleted to fetch again is new
    print(f"downloading {len(wanted)} wheels into {dest} with pip", file=sys.stderr)
    failed = download(plan.target, sources, dest, wanted)
    files = wheel_files(dest)
    entries = [report_entry(p, plan, files, tags, recorded) for p in packages]
    in_dest = [dest / str(e["file"]) for e in entries if e["source"] == "file-in-wheelhouse"]
    # The manifest lists every wheel of DEST, chosen or not: the host installs only listed ones.
    chosen = {e.get("file") for e in entries}
    others = [
        file_entry(p, recorded.get(p.name)) for p in wheel_paths(dest) if p.name not in chosen
    ]
    figures: Dict[str, object] = {
        "packages resolved": len(packages),
        "provided by the image": sum(e["source"] == "provided-by-image" for e in entries),
        "wheels in the wheelhouse": len(in_dest),
        "downloaded now": len(wanted) - len(failed),
        "MiB": mib(in_dest),
        "seconds": round(time.monotonic() - started, 1),
    }
    write_report(dest, plan, sources, header, [*entries, *others], figures, failed)
    return BuildResult(figures, failed)


def write_report(
    dest: Path,
    plan: Plan,
    sources: Sources,
    header: str,
    entries: Sequence[Mapping[str, object]],
    figures: Mapping[str, object],
    failed: Sequence[str],
) -> None:
    """DEST/wheelhouse.json: the target, every package and where it comes from (then DEST's
    other wheels, with no installs), the figures."""
    report = {
        "target": {
            "python_version": plan.target.python_version,
            "platform": plan.target.platform,
            "uv_python_platform": uv_python_platform(plan.target.platform),
            "cuda": plan.cuda,
        },
        "command": header,
        "download_command": shlex.join(
            pip_download_argv(plan.target, sources, dest, ["NAME==VERSION"])
        ),
        "packages": list(entries),
        "download_failures": list(failed),
        "figures": dict(figures),
    }
    write_manifest(dest, report)


def write_manifest(dest: Path, report: Mapping[str, object]) -> None:
    """DEST/wheelhouse.json, written whole (a reader never sees half of it)."""
    partial = dest / f".{REPORT_FILE}.partial"
    partial.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    partial.replace(dest / REPORT_FILE)


# --- hash: a manifest for a wheelhouse made by other means ---------------------------------


@dataclass
class HashResult:
    wheels: int
    added: List[str]
    changed: List[str]
    gone: List[str]


def read_manifest(dest: Path) -> Optional[Dict[str, object]]:
    """DEST/wheelhouse.json as written (None without one); WheelhouseError when unusable."""
    path = dest / REPORT_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        _hashes.manifest_hashes(data)
    except (OSError, ValueError) as exc:
        raise WheelhouseError(f"cannot use {path} ({exc}): delete it and run hash again") from None
    return data


def hash_wheelhouse(dest: Path, header: str) -> HashResult:
    """Record the sha256 of every wheel of DEST in DEST/wheelhouse.json, as the files are now.

    A manifest build wrote keeps its entries (their sha256 brought up to date); a wheel it
    does not list is added, one no longer there dropped (a resolved package's entry stays,
    as missing). This trusts the files: run it where they were made, before they travel.
    """
    wheels = {path.name: path for path in wheel_paths(dest)}
    if not wheels:
        raise WheelhouseError(f"{dest} has no *.whl file: --dest names a directory of wheels")
    report: Dict[str, object] = read_manifest(dest) or {"command": header}
    entries: List[Dict[str, object]] = []
    result = HashResult(len(wheels), [], [], [])
    for entry in report.get("packages") or []:
        name = entry.get("file")
        path = wheels.get(str(name)) if name else None
        if not name:
            entries.append(entry)
        elif path is None:
            result.gone.append(str(name))
            if entry.get("installs"):
                kept = {k: v for k, v in entry.items() if k not in ("file", "size", "sha256")}
                entries.append({**kept, "source": "missing"})
        elif str(name) not in {e.get("file") for e in entries}:
            digest = sha256(path)
            if digest != entry.get("sha256"):
                result.changed.append(str(name))
            entries.append({**entry, "size": path.stat().st_size, "sha256": digest})
    listed = {e.get("file") for e in entries}
    result.added = [name for name in wheels if name not in listed]
    entries += [file_entry(wheels[name]) for name in result.added]
    write_manifest(dest, {**report, "packages": entries, "hash_command": header})
    return result


def run_hash(dest: Path, header: str) -> int:
    if not dest.is_dir():
        raise WheelhouseError(f"--dest {dest} is not a directory")
    result = hash_wheelhouse(dest, header)
    for name in result.changed:
        warn(f"{name}: its sha256 differs from the one recorded before; recorded it as it is now")
    for name in result.gone:
        warn(f"{name}: listed before, no longer in {dest}; dropped from the manifest")
    figures = {
        "wheels recorded": result.wheels,
        "added": len(result.added),
        "with a new sha256": len(result.changed),
        "dropped": len(result.gone),
    }
    print_figures(f"hash: {dest / REPORT_FILE}", figures)
    return 0


# --- CLI -----------------------------------------------------------------------------------


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text} is not a file")
    return path


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dest", required=True, type=Path, help="the wheelhouse directory")
    common.add_argument(
        "--python-version",
        required=True,
        type=python_version_arg,
        help="the target's CPython, e.g. 3.12",
    )
    common.add_argument(
        "--platform",
        required=True,
        type=platform_arg,
        help=f"the target's manylinux tag, e.g. {PLATFORM_EXAMPLE}",
    )
    common.add_argument("--cuda", type=cuda_arg, help="the target's CUDA toolkit X.Y, e.g. 13.0")
    common.add_argument(
        "--image-freeze",
        type=existing_file,
        help="`pip freeze` of the Python the target's venv sits on",
    )
    common.add_argument(
        "--build-requires",
        type=existing_file,
        help="pyproject.toml of the vLLM checkout or sdist the target builds",
    )
    common.add_argument(
        "--compiler-cache",
        choices=("sccache", "ccache", "none"),
        default="none",
        help="the compiler cache a full build installs with the build requirements "
        "(vllm_source_compiler_cache; its pin is the role's): needs --build-requires",
    )
    common.add_argument(
        "--installer",
        choices=("pip", "uv"),
        default="pip",
        help="what installs on the target (vllm_source_installer): uv adds the uv wheel at the "
        "role's pin, and pip to the build requirements (a venv uv makes has none)",
    )
    common.add_argument(
        "--vllm-wheel", type=existing_file, help="the vLLM wheel the target installs"
    )
    common.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="NAME",
        help="a runtime requirement the role leaves out (repeatable)",
    )
    common.add_argument(
        "--requirement",
        action="append",
        default=[],
        type=requirement_arg,
        metavar="SPEC",
        help="another requirement of the runtime install (repeatable)",
    )
    parser = argparse.ArgumentParser(
        prog="python -m vllm_fleet.wheelhouse", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser(
        "build", parents=[common], help="resolve, download, then check (network)"
    )
    build.add_argument(
        "--find-links",
        action="append",
        default=[],
        metavar="DIR",
        help="a directory of wheels to take packages from too (repeatable)",
    )
    build.add_argument("--no-index", action="store_true", help="use --find-links only, not PyPI")
    commands.add_parser(
        "check", parents=[common], help="prove DEST complete for the target (offline)"
    )
    hashed = commands.add_parser(
        "hash",
        help=f"record the sha256 of every wheel in DEST/{REPORT_FILE} (offline)",
        description="Record the sha256 of every wheel of DEST in DEST/"
        f"{REPORT_FILE}, the manifest the role's offline installs check each wheel against: "
        "for a wheelhouse made by other means (pip wheel, pip download). It trusts the files "
        "as they are: run it where they were made.",
    )
    hashed.add_argument("--dest", required=True, type=Path, help="the wheelhouse directory")
    return parser


def plan_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Plan:
    if not (args.build_requires or args.vllm_wheel or args.requirement):
        parser.error("nothing to install: pass --build-requires, --vllm-wheel or --requirement")
    if args.exclude and not args.vllm_wheel:
        parser.error("--exclude drops requirements of --vllm-wheel, which is not given")
    image: Dict[str, str] = {}
    if args.image_freeze:
        image, skipped = parse_freeze(args.image_freeze.read_text(encoding="utf-8"))
        for line in skipped:
            warn(f"--image-freeze: {line!r} gives no version; the wheelhouse will not count on it")
    vllm: List[str] = []
    if args.vllm_wheel:
        vllm, unknown = runtime_requirements(wheel_requires(args.vllm_wheel), args.exclude)
        for name in unknown:
            warn(f"--exclude {name}: {args.vllm_wheel.name} does not require it")
    build = read_build_requirements(args.build_requires) if args.build_requires else []
    if args.compiler_cache != "none":
        if not args.build_requires:
            parser.error("--compiler-cache goes with the build requirements: give --build-requires")
        build.append(compiler_cache_package(args.compiler_cache))
    installer = [uv_package()] if args.installer == "uv" else []
    if installer and build:
        build.append("pip")  # the build script runs pip wheel in the venv uv made
    return Plan(
        target=Target(args.python_version, args.platform),
        cuda=args.cuda,
        image=image,
        inputs={
            "build.in": build,
            "vllm.in": vllm,
            "requirement.in": list(args.requirement),
            "installer.in": installer,
        },
    )


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def print_figures(title: str, figures: Mapping[str, object]) -> None:
    print(f"{title}: " + ", ".join(f"{key} {value}" for key, value in figures.items()))


def run_check(uv: str, plan: Plan, dest: Path, header: str) -> int:
    started = time.monotonic()
    result = check_wheelhouse(uv, plan, dest, header)
    for message in result.warnings:
        warn(message)
    if result.problems:
        print(f"{dest} is NOT complete for {plan.target.describe()}:", file=sys.stderr)
        for message in result.problems:
            print(message, file=sys.stderr)
        return 1
    figures = {**result.figures, "seconds": round(time.monotonic() - started, 1)}
    print_figures(f"check: {dest} is complete for {plan.target.describe()}", figures)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    header = "python -m vllm_fleet.wheelhouse " + shlex.join(argv)
    try:
        if args.command == "hash":
            return run_hash(args.dest.resolve(), header)
        plan = plan_from_args(args, parser)
        uv = uv_binary()
        dest = args.dest.resolve()
        if args.command == "build":
            sources = Sources(tuple(str(Path(d).resolve()) for d in args.find_links), args.no_index)
            built = build_wheelhouse(uv, plan, dest, sources, header)
            for line in built.download_failures:
                warn(f"pip could not download {line}")
            print_figures(f"build: {dest}", built.figures)
        elif not dest.is_dir():
            raise WheelhouseError(f"--dest {dest} is not a directory: run build first")
        return run_check(uv, plan, dest, header)
    except WheelhouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
