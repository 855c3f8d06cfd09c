"""Hash-checked pip installs from an offline wheelhouse.

The wheelhouse's manifest (DIR/wheelhouse.json, which `python -m vllm_fleet.wheelhouse build`
and `hash` write on the controller) gives every wheel's sha256. On the host,
library/vllm_pip_hashed.py asks pip what it would install (`pip install --dry-run --report`),
maps each chosen file to its sha256 here, writes a requirements file with `--hash=sha256:` on
every line and lets pip install exactly that in hash-checking mode (`--require-hashes
--no-deps`); a file whose bytes differ is refused by pip, and named here from pip's error.

Pure functions (file reads and paths aside), shared by the module, vllm_fleet/wheelhouse.py
(the manifest's name and parser) and their unit tests. No import beyond the standard library:
vllm_fleet/wheelhouse.py loads this file by its path.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence
from urllib.parse import unquote, urlparse

MANIFEST_FILE = "wheelhouse.json"
HASH_COMMAND = "python -m vllm_fleet.wheelhouse hash --dest {dest}"
SHA256_RE = re.compile(r"[0-9a-f]{64}")
# pip settings that would change where packages come from, or which versions it takes,
# besides the options the module passes: its configuration files and PIP_* variables.
_PIP_PREFIX = "PIP_"


class ManifestError(Exception):
    """The wheelhouse has no usable manifest; the message says why."""


class HashedInstallError(Exception):
    """pip would install a file whose sha256 is unknown; the message names it and the fix."""


# --- The manifest ---------------------------------------------------------------------------


def manifest_hashes(data: object) -> Dict[str, str]:
    """{file name: sha256} of a manifest's wheels: every `packages` entry with a `file`.

    ValueError names what is wrong: no `packages` list, a file that is not a plain file name,
    a sha256 that is not 64 lowercase hex digits, or one file listed with two sha256.
    """
    packages = data.get("packages") if isinstance(data, dict) else None
    if not isinstance(packages, list):
        raise ValueError("it has no `packages` list")
    hashes: Dict[str, str] = {}
    for entry in packages:
        if not isinstance(entry, dict):
            raise ValueError(f"a `packages` entry is not an object: {entry!r}")
        name = entry.get("file")
        if not name:
            continue  # provided by the image, or missing: no file to check
        digest = entry.get("sha256")
        if not isinstance(name, str) or os.path.basename(name) != name or name in (".", ".."):
            raise ValueError(f"`file` {name!r} is not a file name in the wheelhouse")
        if not isinstance(digest, str) or not SHA256_RE.fullmatch(digest):
            raise ValueError(f"{name}: sha256 {digest!r} is not 64 lowercase hex digits")
        if hashes.setdefault(name, digest) != digest:
            raise ValueError(f"{name} is listed twice, with different sha256")
    return hashes


def wheelhouse_files(path: str) -> List[str]:
    """Names of the files (or links to files) directly in `path`; none when it is no directory."""
    try:
        names = os.listdir(path)
    except OSError:
        return []
    return [n for n in names if os.path.isfile(os.path.join(path, n))]


def manifest_path(wheelhouse: str) -> str:
    return os.path.join(wheelhouse, MANIFEST_FILE)


def read_manifest(wheelhouse: str) -> Dict[str, str]:
    """The wheelhouse's {file name: sha256}; ManifestError when it has none or it is unusable."""
    path = manifest_path(wheelhouse)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise ManifestError(f"has no {MANIFEST_FILE}") from None
    except OSError as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from None
    try:
        return manifest_hashes(json.loads(text))
    except ValueError as exc:  # json.JSONDecodeError is one
        raise ManifestError(f"has an unusable {MANIFEST_FILE} ({exc})") from None


def hash_command(dest: str) -> str:
    return HASH_COMMAND.format(dest=dest)


def wheelhouse_origin(wheelhouse: str, controller_wheelhouse: str) -> str:
    """How messages name the wheelhouse: the host's path, and the controller's it copies."""
    if controller_wheelhouse:
        return f"{wheelhouse} (a copy of vllm_source_controller_wheelhouse {controller_wheelhouse})"
    return f"{wheelhouse} (vllm_source_wheelhouse)"


def record_fix(wheelhouse: str, controller_wheelhouse: str) -> str:
    """Where to run `hash` so the host gets a manifest: on the controller, whose files it trusts."""
    if controller_wheelhouse:
        return (
            f"run `{hash_command(controller_wheelhouse)}` on the controller (it records the "
            "sha256 of the wheels there, which it trusts) and run the role again, which copies it"
        )
    return (
        f"run `{hash_command('DIR')}` on the controller for the wheelhouse DIR these wheels "
        f"came from and copy DIR/{MANIFEST_FILE} to {wheelhouse} with them (or run it on this "
        "host, trusting the files as they are now)"
    )


def manifest_message(problem: str, wheelhouse: str, controller_wheelhouse: str) -> str:
    """The failure of an offline install whose wheelhouse has no usable manifest."""
    return (
        f"The wheelhouse {wheelhouse_origin(wheelhouse, controller_wheelhouse)} {problem}, so "
        "its wheels cannot be installed hash-checked (vllm_source_pip_offline installs only "
        f"wheels whose sha256 its {MANIFEST_FILE} records): "
        f"{record_fix(wheelhouse, controller_wheelhouse)}."
    )


# --- What pip would install ----------------------------------------------------------------


@dataclass(frozen=True)
class Chosen:
    """One distribution of pip's installation report."""

    name: str
    version: str
    url: str
    path: str  # the local file, "" unless the URL is a file:// URL of one
    is_dir: bool = False  # a local project directory, built before it is installed


def file_url_path(url: str) -> str:
    """The local path of a file:// URL, "" for any other URL."""
    parsed = urlparse(url)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        return ""
    return unquote(parsed.path)


def parse_report(text: str) -> List[Chosen]:
    """What pip would install, from `pip install --dry-run --report FILE` (pip >= 22.2).

    ValueError when the text is no such report.
    """
    data = json.loads(text)
    items = data.get("install") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ValueError("the report has no `install` list")
    chosen = []
    for item in items:
        try:
            metadata, info = item["metadata"], item["download_info"]
            name, version, url = str(metadata["name"]), str(metadata["version"]), info["url"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"an `install` entry lacks {exc}: {item!r}") from None
        chosen.append(Chosen(name, version, str(url), file_url_path(str(url)), "dir_info" in info))
    return chosen


# --- Their hashes, and the requirements file -----------------------------------------------


@dataclass(frozen=True)
class Pinned:
    """A chosen file with its sha256 from the manifest (or, direct, from the caller)."""

    chosen: Chosen
    sha256: str
    direct: bool  # a file the caller named with its sha256 (the vLLM wheel)

    @property
    def line(self) -> str:
        """Its line of the requirements file: pinned by version, or by the file's URL."""
        spec = (
            f"{self.chosen.name} @ {self.chosen.url}"
            if self.direct
            else f"{self.chosen.name}=={self.chosen.version}"
        )
        return f"{spec} --hash=sha256:{self.sha256}"

    def returned(self) -> Dict[str, str]:
        return {
            "name": self.chosen.name,
            "version": self.chosen.version,
            "file": self.chosen.path or self.chosen.url,
            "sha256": self.sha256,
        }


def _real(path: str) -> str:
    return os.path.realpath(path)


def pin_hashes(
    chosen: Sequence[Chosen],
    wheelhouse: str,
    manifest: Mapping[str, str],
    file_hashes: Mapping[str, str],
    controller_wheelhouse: str = "",
) -> List[Pinned]:
    """Each chosen file with its sha256: from `file_hashes` (path: sha256) or the manifest.

    HashedInstallError names every file with none (not a wheel, not in the wheelhouse, not
    listed in its manifest) and the fix.
    """
    direct = {_real(path): digest for path, digest in file_hashes.items()}
    home = _real(wheelhouse) if wheelhouse else None
    pinned: List[Pinned] = []
    unlisted: List[str] = []
    problems: List[str] = []
    for item in chosen:
        what = f"{item.name} {item.version}"
        real = _real(item.path) if item.path else ""
        if not item.path or item.is_dir:
            problems.append(
                f"pip would install {what} from {item.url}, which is not a wheel file: offline "
                "installs take only wheels whose sha256 is recorded"
            )
        elif real in direct:
            pinned.append(Pinned(item, direct[real], True))
        elif home is None or os.path.dirname(real) != home:
            where = f"outside the wheelhouse {wheelhouse}" if home else "with no wheelhouse given"
            problems.append(
                f"pip would install {what} from {item.path}, {where}: its sha256 is unknown "
                "(is a pip configuration adding find-links?)"
            )
        elif not item.path.endswith(".whl"):
            problems.append(
                f"pip would build {what} from {item.path}, not a wheel: build its wheel "
                f"(pip wheel) into the wheelhouse on the controller, then `{hash_command('DIR')}`"
            )
        elif os.path.basename(item.path) not in manifest:
            unlisted.append(item.path)
        else:
            pinned.append(Pinned(item, manifest[os.path.basename(item.path)], False))
    if unlisted:
        problems.append(
            f"pip would install {', '.join(unlisted)} from the wheelhouse "
            f"{wheelhouse_origin(wheelhouse, controller_wheelhouse)}, but its {MANIFEST_FILE} "
            "does not list them, so their sha256 is unknown: "
            f"{record_fix(wheelhouse, controller_wheelhouse)}; or delete them from the wheelhouse"
        )
    if problems:
        raise HashedInstallError("Refusing to install without hash checks: " + "; ".join(problems))
    return pinned


REQUIREMENTS_HEADER = (
    "# What vllm_pip_hashed installed: each wheel pip chose, with the sha256 that the\n"
    "# wheelhouse's manifest (or the build, for vLLM's wheel) records for it.\n"
)


def requirements_text(pinned: Sequence[Pinned]) -> str:
    """The requirements file for `pip install --require-hashes --no-deps -r`."""
    return REQUIREMENTS_HEADER + "".join(f"{p.line}\n" for p in pinned)


# --- pip's command lines and environment ---------------------------------------------------


def source_args(wheelhouse: str) -> List[str]:
    """Only the wheelhouse: no index, whatever pip's configuration says."""
    return ["--no-index", *(["--find-links", wheelhouse] if wheelhouse else [])]


def _mode_args(deps: bool, force_reinstall: bool) -> List[str]:
    return [*([] if deps else ["--no-deps"]), *(["--force-reinstall"] if force_reinstall else [])]


def dry_run_argv(
    python: str,
    wheelhouse: str,
    requirements: Sequence[str],
    report: str,
    deps: bool = True,
    force_reinstall: bool = False,
) -> List[str]:
    """Ask pip what it would install, into the report file; changes nothing."""
    return [
        python, "-m", "pip", "install", "--dry-run", "--report", report,
        *source_args(wheelhouse), *_mode_args(deps, force_reinstall), *requirements,
    ]  # fmt: skip


def install_argv(
    python: str,
    wheelhouse: str,
    requirements_file: str,
    force_reinstall: bool = False,
    extra_args: Sequence[str] = (),
) -> List[str]:
    """Install exactly the requirements file's wheels, each checked against its hash."""
    return [
        python, "-m", "pip", "install", "--require-hashes", *source_args(wheelhouse),
        *_mode_args(False, force_reinstall), *extra_args, "-r", requirements_file,
    ]  # fmt: skip


def pip_environment(environ: Mapping[str, str]) -> Dict[str, str]:
    """`environ` for pip without its configuration: no PIP_* variable, no configuration file
    (PIP_CONFIG_FILE=os.devnull), so only the module's options say where packages come from."""
    env = {k: v for k, v in environ.items() if not k.startswith(_PIP_PREFIX)}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


# --- pip's hash errors ---------------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    requirement: str
    url: str
    expected: str
    got: str


_MISMATCH_HEAD = re.compile(r"^\s+(?P<req>\S.*?) from (?P<url>\S+)(?: \(from .*\))?:\s*$")
_EXPECTED = re.compile(r"^\s+Expected(?: or)?\s+sha256\s+(?P<hex>[0-9a-f]{64})\s*$")
_GOT = re.compile(r"^\s+Got\s+(?P<hex>[0-9a-f]{64})\s*$")


def hash_mismatches(output: str) -> List[Mismatch]:
    """The files pip refused in hash-checking mode ("THESE PACKAGES DO NOT MATCH THE HASHES")."""
    found: List[Mismatch] = []
    head: Optional[re.Match] = None
    expected = ""
    for line in output.splitlines():
        match = _MISMATCH_HEAD.match(line)
        if match:
            head, expected = match, ""
            continue
        if head is None:
            continue
        wanted, got = _EXPECTED.match(line), _GOT.match(line)
        if wanted:
            expected = expected or wanted.group("hex")
        elif got:
            found.append(Mismatch(head.group("req"), head.group("url"), expected, got.group("hex")))
            head = None
        elif line.strip():
            head = None
    return found


def refused_message(
    installer: str,
    lines: Sequence[str],
    in_wheelhouse: bool,
    wheelhouse: str,
    controller_wheelhouse: str,
) -> str:
    """What pip or uv refused (`lines`) and the fix: the wheelhouse's file replaced or
    recorded again when one of them lies there, else the role run again."""
    fix = (
        "replace the file with the wheel the manifest was made from (the controller's copy), "
        "or, if the new file is trusted, "
        f"{record_fix(wheelhouse, controller_wheelhouse)}"
        if in_wheelhouse
        else "the file changed after its sha256 was recorded: run the role again, which copies "
        "it again (for vLLM's wheel, delete the key's folder in vllm_source_artifact_cache on "
        "the controller if it fails again, to build the key anew)"
    )
    return f"{installer} refused files whose bytes changed: {'; '.join(lines)}. Fix: {fix}."


def mismatch_message(
    mismatches: Sequence[Mismatch],
    wheelhouse: str,
    controller_wheelhouse: str = "",
    direct: Sequence[str] = (),
) -> str:
    """Which files pip refused, that they do not match the manifest, and what to do."""
    home = _real(wheelhouse) if wheelhouse else None
    named = {_real(path) for path in direct}
    lines = []
    in_wheelhouse = False
    for item in mismatches:
        path = file_url_path(item.url) or item.url
        real = _real(path) if path.startswith("/") else path
        what = path if item.url in item.requirement else f"{path} ({item.requirement})"
        if real in named or home is None or os.path.dirname(real) != home:
            lines.append(
                f"{what} does not match the sha256 recorded for it: "
                f"recorded {item.expected}, the file has {item.got}"
            )
        else:
            in_wheelhouse = True
            lines.append(
                f"{what} does not match the wheelhouse's manifest "
                f"{manifest_path(wheelhouse)}: it records sha256 {item.expected}, the file has "
                f"{item.got}"
            )
    return refused_message("pip", lines, in_wheelhouse, wheelhouse, controller_wheelhouse)


# --- uv (vllm_source_installer: uv) --------------------------------------------------------
#
# uv has no installation report: `uv pip install --dry-run` prints what it would install, one
# ` + name==version` (or ` + name @ url`) line each. Each pin gets the sha256 of every wheel of
# that name and version in the wheelhouse (uv picks the one whose tags fit and checks its
# bytes against those), and uv installs exactly them with `--require-hashes --no-deps`.

# uv settings that would change where packages come from: its UV_* variables (its
# configuration files are off through --no-config).
_UV_PREFIX = "UV_"
_UV_LINE = re.compile(
    r"^ \+ (?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:==(?P<version>\S+)| @ (?P<url>\S+))"
)


def canonical_name(name: str) -> str:
    """A distribution's name as PEP 503 compares them (Foo_Bar -> foo-bar)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_name_version(filename: str) -> Optional[tuple]:
    """(canonical name, version) of a wheel's file name, None for any other file."""
    if not filename.endswith(".whl"):
        return None
    parts = filename[: -len(".whl")].split("-")
    if len(parts) < 5:
        return None
    return canonical_name(parts[0]), parts[1]


def parse_uv_dry_run(text: str) -> List[Chosen]:
    """What `uv pip install --dry-run` would install (its ` + ` lines); path "" for index pins."""
    chosen = []
    for line in text.splitlines():
        match = _UV_LINE.match(line)
        if not match:
            continue
        url = match.group("url") or ""
        name = match.group("name")
        chosen.append(Chosen(name, match.group("version") or "", url, file_url_path(url)))
    return chosen


def pin_uv_hashes(
    chosen: Sequence[Chosen],
    wheelhouse: str,
    manifest: Mapping[str, str],
    file_hashes: Mapping[str, str],
    controller_wheelhouse: str = "",
) -> List[Pinned]:
    """Each pin of uv's dry run with its sha256: `file_hashes` for a file named by its path,
    else the manifest's sha256 of every wheel of that name and version in the wheelhouse.

    A Pinned's sha256 may hold several digests, space-separated (one wheel per tag set).
    HashedInstallError names every pin with none, and the fix.
    """
    direct = {_real(path): digest for path, digest in file_hashes.items()}
    files: Dict[tuple, List[str]] = {}
    others: Dict[tuple, List[str]] = {}
    if wheelhouse and os.path.isdir(wheelhouse):
        for entry in sorted(os.listdir(wheelhouse)):
            parsed = wheel_name_version(entry)
            if parsed:
                files.setdefault(parsed, []).append(entry)
            else:
                stem = canonical_name(re.split(r"-(?=\d)", entry, maxsplit=1)[0])
                others.setdefault((stem, ""), []).append(entry)
    pinned: List[Pinned] = []
    unlisted: List[str] = []
    problems: List[str] = []
    for item in chosen:
        what = f"{item.name} {item.version}".strip()
        key = (canonical_name(item.name), item.version)
        if item.url:
            if item.path and _real(item.path) in direct:
                pinned.append(Pinned(item, direct[_real(item.path)], True))
            else:
                problems.append(
                    f"uv would install {what} from {item.url}, whose sha256 is unknown: offline "
                    "installs take only wheels whose sha256 is recorded"
                )
        elif key in files:
            names = files[key]
            missing = [n for n in names if n not in manifest]
            if missing:
                unlisted.extend(os.path.join(wheelhouse, n) for n in missing)
                continue
            digests = " ".join(manifest[n] for n in names)
            path = os.path.join(wheelhouse, names[0]) if len(names) == 1 else ""
            pinned.append(Pinned(Chosen(item.name, item.version, "", path), digests, False))
        elif wheelhouse and (key[0], "") in others:
            problems.append(
                f"uv would build {what} from the wheelhouse {wheelhouse}, which has no wheel of "
                f"it: build its wheel (pip wheel) into the wheelhouse on the controller, then "
                f"`{hash_command('DIR')}`"
            )
        else:
            where = f"the wheelhouse {wheelhouse}" if wheelhouse else "no wheelhouse given"
            problems.append(
                f"uv would install {what}, which is no wheel of {where}: its sha256 is unknown "
                "(is a uv configuration adding sources?)"
            )
    if unlisted:
        problems.append(
            f"uv would install {', '.join(unlisted)} from the wheelhouse "
            f"{wheelhouse_origin(wheelhouse, controller_wheelhouse)}, but its {MANIFEST_FILE} "
            "does not list them, so their sha256 is unknown: "
            f"{record_fix(wheelhouse, controller_wheelhouse)}; or delete them from the wheelhouse"
        )
    if problems:
        raise HashedInstallError("Refusing to install without hash checks: " + "; ".join(problems))
    return pinned


def uv_requirement_line(pinned: Pinned) -> str:
    """A uv requirements line: every digest of the pin, one --hash each."""
    spec = (
        f"{pinned.chosen.name} @ {pinned.chosen.url}"
        if pinned.direct
        else f"{pinned.chosen.name}=={pinned.chosen.version}"
    )
    return spec + "".join(f" --hash=sha256:{d}" for d in pinned.sha256.split())


def uv_requirements_text(pinned: Sequence[Pinned]) -> str:
    """The requirements file for `uv pip install --require-hashes --no-deps -r`."""
    return REQUIREMENTS_HEADER + "".join(f"{uv_requirement_line(p)}\n" for p in pinned)


def uv_source_args(wheelhouse: str) -> List[str]:
    """Only the wheelhouse, and no network: no index, whatever uv's configuration says."""
    return ["--offline", "--no-index", *(["--find-links", wheelhouse] if wheelhouse else [])]


def _uv_mode_args(deps: bool, force_reinstall: bool) -> List[str]:
    return [*([] if deps else ["--no-deps"]), *(["--reinstall"] if force_reinstall else [])]


def uv_base_argv(uv: str, python: str, cache_dir: str) -> List[str]:
    """`uv pip install` into the venv of `python`, with no configuration file; files copied
    from the cache (a release shares no inode with it, so sealing one changes no other)."""
    return [
        uv, "pip", "install", "--no-config", "--python", python, "--link-mode", "copy",
        *(["--cache-dir", cache_dir] if cache_dir else []),
    ]  # fmt: skip


def uv_dry_run_argv(
    uv: str,
    python: str,
    cache_dir: str,
    wheelhouse: str,
    requirements: Sequence[str],
    deps: bool = True,
    force_reinstall: bool = False,
) -> List[str]:
    """Ask uv what it would install (its ` + ` lines); changes nothing."""
    return [
        *uv_base_argv(uv, python, cache_dir), "--dry-run", *uv_source_args(wheelhouse),
        *_uv_mode_args(deps, force_reinstall), *requirements,
    ]  # fmt: skip


def uv_install_argv(
    uv: str,
    python: str,
    cache_dir: str,
    wheelhouse: str,
    requirements_file: str,
    force_reinstall: bool = False,
    extra_args: Sequence[str] = (),
) -> List[str]:
    """Install exactly the requirements file's wheels, each checked against its hashes."""
    return [
        *uv_base_argv(uv, python, cache_dir), "--require-hashes", *uv_source_args(wheelhouse),
        *_uv_mode_args(False, force_reinstall), *extra_args, "-r", requirements_file,
    ]  # fmt: skip


def uv_environment(environ: Mapping[str, str]) -> Dict[str, str]:
    """`environ` for uv without its settings: no UV_* variable (no PIP_* either: uv reads none,
    pip-free like the pip installs), so only the module's options say where packages come from."""
    env = {k: v for k, v in environ.items() if not k.startswith((_UV_PREFIX, _PIP_PREFIX))}
    env.update(UV_NO_PROGRESS="1")
    return env


_UV_MISMATCH = re.compile(
    r"Hash mismatch for `(?P<req>[^`]+)`\s*Expected:\s*(?P<expected>(?:sha256:[0-9a-f]{64}\s*)+)"
    r"Computed:\s*sha256:(?P<got>[0-9a-f]{64})"
)


def uv_hash_mismatches(output: str) -> List[Mismatch]:
    """The files uv refused in hash-checking mode ("Hash mismatch for `name==version`")."""
    found = []
    for match in _UV_MISMATCH.finditer(output):
        expected = re.findall(r"[0-9a-f]{64}", match.group("expected"))
        found.append(
            Mismatch(match.group("req"), "", expected[0] if expected else "", match.group("got"))
        )
    return found


def uv_mismatch_message(
    mismatches: Sequence[Mismatch],
    wheelhouse: str,
    controller_wheelhouse: str = "",
    direct: Sequence[str] = (),
) -> str:
    """Which pins uv refused, that their files do not match the sha256 recorded, and what to do."""
    names = {wheel_name_version(os.path.basename(p)) for p in direct}
    lines = []
    in_wheelhouse = False
    for item in mismatches:
        name, _, version = item.requirement.partition("==")
        if (canonical_name(name), version) in names or not wheelhouse:
            lines.append(
                f"{item.requirement} does not match the sha256 recorded for it: "
                f"recorded {item.expected}, the file has {item.got}"
            )
        else:
            in_wheelhouse = True
            lines.append(
                f"the wheel of {item.requirement} in {wheelhouse} does not match the wheelhouse's "
                f"manifest {manifest_path(wheelhouse)}: it records sha256 {item.expected}, the "
                f"file has {item.got}"
            )
    return refused_message("uv", lines, in_wheelhouse, wheelhouse, controller_wheelhouse)


def uv_changed(output: str) -> bool:
    """Whether a `uv pip install` changed the venv: it lists each change as ` + ` / ` - `."""
    return any(re.match(r"^ [+-] \S", line) for line in output.splitlines())
