"""Read what a vLLM checkout pins: torch, Python, build requirements and CMake sources.

Pure parsing for the `vllm_source_facts` module. Runs on Python 3.8+ hosts, which may
have neither `tomllib` nor `packaging`, so both come with small fallbacks here.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Optional, Tuple

try:  # Python 3.11+
    import tomllib as _tomllib
except ImportError:  # pragma: no cover - exercised on older hosts
    _tomllib = None  # type: ignore[assignment]

# Where vLLM keeps the script that strips the torch pins (moved to tools/ in 0.33).
USE_EXISTING_TORCH_SCRIPTS = ("use_existing_torch.py", "tools/use_existing_torch.py")
EXTERNAL_PROJECTS_DIR = "cmake/external_projects/"

_TORCH_PIN = re.compile(r"^\s*torch\s*===?\s*([0-9][0-9A-Za-z.+!_-]*)\s*(?:;.*)?$")
_PYTHON_REQUIRES = re.compile(r"""python_requires\s*=\s*["']([^"']+)["']""")
_SETUPTOOLS_RUST = re.compile(
    r"^\s*(?:from\s+setuptools_rust[\s.]|import\s+setuptools_rust\b)", re.M
)
_SPECIFIER = re.compile(r"^\s*(~=|===|==|!=|<=|>=|<|>)\s*([0-9][0-9A-Za-z.*+!_-]*)\s*$")
_VAR_REF = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
_ENV_REF = re.compile(r"\$?ENV\{([A-Za-z0-9_]+)\}")
_ENV_ONLY = re.compile(r"^\$ENV\{([A-Za-z0-9_]+)\}$")
_UNQUOTED = re.compile(r'(?:[^\s()#"\\]|\\.)+')
_COMMAND = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")


class PinError(ValueError):
    """A checkout lacks something the build depends on; the message says what to do."""


# --- pyproject.toml --------------------------------------------------------------


def parse_pyproject(text: str) -> Dict[str, Any]:
    """Parse pyproject.toml with tomllib, or with the small subset parser on Python < 3.11."""
    if _tomllib is not None:
        return _tomllib.loads(text)
    return parse_toml_subset(text)


def _strip_toml_comment(line: str) -> str:
    """Drop a `#` comment that is outside double or single quotes."""
    quote = ""
    for pos, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "#":
            return line[:pos]
    return line


def _toml_strings(text: str) -> List[str]:
    """The quoted strings in `text` ('...' literal, "..." basic with simple escapes)."""
    values = []
    for match in re.finditer(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'', text):
        if match.group(1) is not None:
            values.append(re.sub(r"\\(.)", r"\1", match.group(1)))
        else:
            values.append(match.group(2))
    return values


def parse_toml_subset(text: str) -> Dict[str, Any]:
    """Parse the part of TOML pyproject files use for what we read.

    Handles `[table]` headers and `key = "string"` / `key = [ "strings", ... ]` (arrays may
    span lines). Other values are skipped. Enough for [build-system].requires and
    [project].requires-python on hosts without tomllib.
    """
    data: Dict[str, Any] = {}
    table: Dict[str, Any] = data
    lines = text.splitlines()
    pos = 0
    while pos < len(lines):
        line = _strip_toml_comment(lines[pos]).strip()
        pos += 1
        header = re.match(r"^\[([^\[\]]+)\]$", line)
        if header:
            table = data
            for part in header.group(1).split("."):
                table = table.setdefault(part.strip().strip("\"'"), {})
            continue
        pair = re.match(r"^([A-Za-z0-9_.\"'-]+)\s*=\s*(.*)$", line)
        if not pair:
            continue
        key, value = pair.group(1).strip("\"'"), pair.group(2).strip()
        if value.startswith("["):
            chunk = value
            while chunk.count("[") > chunk.count("]") and pos < len(lines):
                chunk += " " + _strip_toml_comment(lines[pos]).strip()
                pos += 1
            table[key] = _toml_strings(chunk)
        elif value[:1] in "\"'":
            strings = _toml_strings(value)
            table[key] = strings[0] if strings else ""
    return data


def torch_pin(requires: List[str]) -> Optional[str]:
    """The X of an exact `torch == X` in a requirements list, or None."""
    for requirement in requires:
        match = _TORCH_PIN.match(requirement)
        if match:
            return match.group(1)
    return None


def setup_py_python_requires(text: str) -> str:
    """The `python_requires="..."` of a setup.py (older vLLM tags), or ""."""
    match = _PYTHON_REQUIRES.search(text)
    return match.group(1).strip() if match else ""


def setup_py_uses_setuptools_rust(text: str) -> bool:
    """Whether setup.py imports setuptools_rust (vLLM 0.22+: the optional Rust frontend)."""
    return bool(_SETUPTOOLS_RUST.search(text))


# --- version specifiers (a small PEP 440 subset; hosts may lack `packaging`) ----------


def version_tuple(version: str) -> Tuple[int, ...]:
    """`3.11.2` -> (3, 11, 2); trailing non-numeric parts such as `rc1` or `+local` drop."""
    parts = []
    for part in version.strip().split("+")[0].split("."):
        digits = re.match(r"^(\d+)", part)
        if not digits:
            break
        parts.append(int(digits.group(1)))
        if digits.group(1) != part:
            break
    return tuple(parts)


def _padded(left: Tuple[int, ...], right: Tuple[int, ...]) -> Tuple[Tuple[int, ...], ...]:
    width = max(len(left), len(right))
    return tuple(v + (0,) * (width - len(v)) for v in (left, right))


def _matches_one(version: Tuple[int, ...], operator: str, target: str) -> bool:
    if operator in ("==", "!=") and target.endswith(".*"):
        prefix = version_tuple(target[:-2])
        equal = version[: len(prefix)] + (0,) * (len(prefix) - len(version)) == prefix
        return equal if operator == "==" else not equal
    wanted = version_tuple(target)
    have, want = _padded(version, wanted)
    if operator in ("==", "==="):
        return have == want
    if operator == "!=":
        return have != want
    if operator == ">=":
        return have >= want
    if operator == "<=":
        return have <= want
    if operator == ">":
        return have > want
    if operator == "<":
        return have < want
    # ~=X.Y[.Z]: >= X.Y[.Z] and the same release up to the last component given.
    prefix = wanted[:-1]
    return have >= want and version[: len(prefix)] + (0,) * (len(prefix) - len(version)) == prefix


def parse_specifier(specifier: str) -> List[Tuple[str, str]]:
    """`>=3.10,<3.15` -> [(">=", "3.10"), ("<", "3.15")]; PinError on anything else."""
    clauses = []
    for clause in specifier.split(","):
        if not clause.strip():
            continue
        match = _SPECIFIER.match(clause)
        if not match or (match.group(1) == "~=" and len(version_tuple(match.group(2))) < 2):
            raise PinError(f"Cannot read the version specifier {specifier!r}")
        clauses.append((match.group(1), match.group(2)))
    return clauses


def version_satisfies(version: str, specifier: str) -> bool:
    """Whether a release such as `3.11.2` satisfies every clause of `specifier`."""
    have = version_tuple(version)
    if not have:
        raise PinError(f"Cannot read the version {version!r}")
    return all(_matches_one(have, op, target) for op, target in parse_specifier(specifier))


# --- CMake ------------------------------------------------------------------------

CMakeCommand = Tuple[str, List[str]]


def _skip_bracket(text: str, pos: int) -> Optional[int]:
    """If a `[==[` bracket opens at `pos`, return the index after its `]==]` close."""
    opening = re.match(r"\[(=*)\[", text[pos:])
    if not opening:
        return None
    close = text.find("]" + opening.group(1) + "]", pos + len(opening.group(0)))
    return len(text) if close < 0 else close + len(opening.group(1)) + 2


def _skip_comment(text: str, pos: int) -> int:
    """The index after the `#` comment (line or `#[[ ]]` bracket) that starts at `pos`."""
    end = _skip_bracket(text, pos + 1)
    if end is not None:
        return end
    newline = text.find("\n", pos)
    return newline if newline >= 0 else len(text)


def _read_arguments(text: str, pos: int) -> Tuple[List[str], int]:
    """Read the arguments after a command's `(`; returns them and the index after `)`."""
    args: List[str] = []
    depth = 1
    while pos < len(text):
        char = text[pos]
        if char == "#":
            pos = _skip_comment(text, pos)
        elif char == '"':
            end = pos + 1
            while end < len(text) and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            args.append(text[pos + 1 : end])
            pos = end + 1
        elif char == "(":
            depth += 1
            args.append("(")
            pos += 1
        elif char == ")":
            depth -= 1
            pos += 1
            if depth == 0:
                return args, pos
            args.append(")")
        elif char.isspace():
            pos += 1
        else:
            end = _skip_bracket(text, pos) if char == "[" else None
            if end is not None:
                args.append(text[pos:end])
                pos = end
                continue
            match = _UNQUOTED.match(text, pos)
            token = match.group(0) if match else char
            args.append(token)
            pos += len(token)
    return args, pos


def cmake_commands(text: str) -> List[CMakeCommand]:
    """Split CMake source into (lower-cased command name, arguments) pairs, skipping comments."""
    commands: List[CMakeCommand] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char == "#":
            pos = _skip_comment(text, pos)
            continue
        match = _COMMAND.match(text, pos)
        if match and (pos == 0 or not (text[pos - 1].isalnum() or text[pos - 1] == "_")):
            args, pos = _read_arguments(text, match.end())
            commands.append((match.group(1).lower(), args))
            continue
        pos += 1
    return commands


def _is_rocm_only(condition: List[str]) -> bool:
    """A condition that selects a ROCm/HIP build (whose pins a CUDA build never fetches)."""
    words = [arg.upper() for arg in condition]
    mentions_rocm = any(w in ("ROCM", "HIP") for w in words)
    return mentions_rocm and "CUDA" not in words and "NOT" not in words


class _Frame:
    """One open if() block: its conditions so far and whether the current branch is skipped."""

    def __init__(self, condition: List[str], parent_skipped: bool) -> None:
        self.conditions = [condition]
        self.parent_skipped = parent_skipped
        self.skipped = parent_skipped or _is_rocm_only(condition)


class _FetchContentScanner:
    """Walk CMakeLists.txt and the external project files it includes, like CMake would,
    collecting the git sources of FetchContent_Declare/FetchContent_Populate calls."""

    def __init__(self, read: Callable[[str], Optional[str]]) -> None:
        self.read = read
        self.variables: Dict[str, str] = {}
        self.env_of_variable: Dict[str, str] = {}
        self.pins: List[Dict[str, str]] = []
        self.seen_files: List[str] = []

    def resolve(self, value: str) -> str:
        for _ in range(10):  # nested references such as ${${LANG}_ARCHS} stay bounded
            new = _VAR_REF.sub(lambda m: self.variables.get(m.group(1), m.group(0)), value)
            if new == value:
                break
            value = new
        return value

    def scan(self, relpath: str) -> None:
        text = self.read(relpath)
        if text is None or relpath in self.seen_files:
            return
        self.seen_files.append(relpath)
        stack: List[_Frame] = []
        function_depth = 0
        last_src_dir_env = ""
        for name, args in cmake_commands(text):
            if name in ("function", "macro"):
                function_depth += 1
            elif name in ("endfunction", "endmacro"):
                function_depth = max(0, function_depth - 1)
            if function_depth or name in ("endfunction", "endmacro"):
                continue
            skipped = bool(stack) and stack[-1].skipped
            if name == "if":
                stack.append(_Frame(args, skipped))
                for env in _ENV_REF.findall(" ".join(args)):
                    if env.endswith("_SRC_DIR"):
                        last_src_dir_env = env
            elif name == "elseif" and stack:
                frame = stack[-1]
                frame.conditions.append(args)
                frame.skipped = frame.parent_skipped or _is_rocm_only(args)
            elif name == "else" and stack:
                stack[-1].skipped = stack[-1].parent_skipped
            elif name == "endif" and stack:
                stack.pop()
            elif skipped:
                continue
            elif name == "set" and args:
                self._set(args)
            elif name == "include" and args:
                self._include(args[0])
            elif name in ("fetchcontent_declare", "fetchcontent_populate"):
                self._fetch(relpath, args, stack, last_src_dir_env)

    def _set(self, args: List[str]) -> None:
        values = []
        for arg in args[1:]:
            if arg in ("CACHE", "PARENT_SCOPE"):
                break
            values.append(arg)
        value = ";".join(values)
        self.variables[args[0]] = self.resolve(value)
        env = _ENV_ONLY.match(value)
        if env:
            self.env_of_variable[args[0]] = env.group(1)

    def _include(self, target: str) -> None:
        path = self.resolve(target)
        for prefix in (
            "${CMAKE_SOURCE_DIR}/",
            "${CMAKE_CURRENT_SOURCE_DIR}/",
            "${CMAKE_CURRENT_LIST_DIR}/",
        ):
            if path.startswith(prefix):
                path = path[len(prefix) :]
        if path.startswith(EXTERNAL_PROJECTS_DIR) and path.endswith(".cmake"):
            self.scan(path)

    def _override_env(self, stack: List[_Frame], fallback: str) -> str:
        """The environment variable whose if() encloses this call (innermost first)."""
        for frame in reversed(stack):
            for condition in frame.conditions:
                for arg in condition:
                    env = _ENV_REF.search(arg)
                    if env:
                        return env.group(1)
                    if arg in self.env_of_variable:
                        return self.env_of_variable[arg]
        return fallback

    def _fetch(self, relpath: str, args: List[str], stack: List[_Frame], fallback: str) -> None:
        if not args or "GIT_REPOSITORY" not in args:
            return
        options = {}
        for key in ("GIT_REPOSITORY", "GIT_TAG"):
            index = args.index(key) if key in args else -1
            if 0 <= index < len(args) - 1:
                options[key] = self.resolve(args[index + 1])
        name = args[0]
        if any(pin["name"] == name for pin in self.pins):
            return
        self.pins.append(
            {
                "name": name,
                "repository": options.get("GIT_REPOSITORY", ""),
                "tag": options.get("GIT_TAG", ""),
                "src_dir_env": self._override_env(stack, fallback),
                "file": relpath,
            }
        )


def fetchcontent_pins(read: Callable[[str], Optional[str]]) -> List[Dict[str, str]]:
    """The git sources a CUDA build of the checkout fetches with CMake FetchContent.

    `read(relpath)` returns a file's text or None. Starts at CMakeLists.txt and follows its
    include()s of cmake/external_projects/*.cmake in order, skipping ROCm/HIP-only branches.
    Each pin: name, repository, tag (variables resolved), src_dir_env (the environment
    variable that points the build at a local copy instead, "" if none) and file.
    """
    scanner = _FetchContentScanner(read)
    scanner.scan("CMakeLists.txt")
    return scanner.pins


def cuda_supported_archs(cmakelists: str) -> List[str]:
    """Every arch any `set(CUDA_SUPPORTED_ARCHS ...)` in CMakeLists.txt names, ascending.

    vLLM picks one of these lists by the nvcc version; the union is what the tag can build.
    """
    archs = set()
    for name, args in cmake_commands(cmakelists):
        if name == "set" and args and args[0] == "CUDA_SUPPORTED_ARCHS":
            for value in args[1:]:
                archs.update(a.strip() for a in value.split(";") if a.strip())
    return sorted(archs, key=version_tuple)


# --- the whole checkout ---------------------------------------------------------------


def source_facts(
    read: Callable[[str], Optional[str]],
    exists: Callable[[str], bool],
    fallback_pyproject: Optional[Callable[[], Optional[str]]] = None,
) -> Dict[str, Any]:
    """Collect the `vllm_source` facts of a checkout.

    `read(relpath)` gives a file's text or None, `exists(relpath)` whether a file exists.
    `fallback_pyproject()` may return the committed pyproject.toml (git HEAD) for a working
    tree whose torch pin `use_existing_torch.py` already stripped. Raises PinError.
    """
    pyproject_text = read("pyproject.toml")
    if pyproject_text is None:
        raise PinError(
            "pyproject.toml is missing: this is not a vLLM checkout, or a tag too old for "
            "this role; check vllm_source_version."
        )
    pyproject = parse_pyproject(pyproject_text)
    requires = list(pyproject.get("build-system", {}).get("requires", []))
    pin = torch_pin(requires)
    pin_source = "pyproject.toml"
    if pin is None and fallback_pyproject is not None:
        committed = fallback_pyproject()
        if committed:
            committed_requires = parse_pyproject(committed).get("build-system", {})
            requires = list(committed_requires.get("requires", []))
            pin = torch_pin(requires)
            pin_source = "git HEAD:pyproject.toml"
    if pin is None:
        raise PinError(
            "pyproject.toml has no exact 'torch == X' in [build-system].requires, and neither "
            "has the committed copy: use_existing_torch.py strips it, so restore the file "
            "(git checkout -- pyproject.toml), or check that vllm_source_version names a vLLM "
            "release tag."
        )
    setup_text = read("setup.py") or ""
    requires_python = str(pyproject.get("project", {}).get("requires-python", "")).strip()
    if not requires_python:
        requires_python = setup_py_python_requires(setup_text)
    script = next((s for s in USE_EXISTING_TORCH_SCRIPTS if exists(s)), "")
    cmakelists = read("CMakeLists.txt") or ""
    return {
        "torch_pin": pin,
        "torch_pin_source": pin_source,
        "requires_python": requires_python,
        "build_requires": requires,
        "use_existing_torch_script": script,
        "rust_frontend": setup_py_uses_setuptools_rust(setup_text),
        "fetchcontent": fetchcontent_pins(read),
        "cuda_supported_archs": cuda_supported_archs(cmakelists),
    }


def python_outside_message(python_version: str, requires_python: str) -> str:
    """The fail message for a venv interpreter the tag does not support."""
    return (
        f"Python {python_version} (vllm_source_python) is outside what vLLM needs "
        f"(requires-python {requires_python}): set vllm_source_python to an interpreter "
        f"that satisfies it, e.g. {suggest_python(requires_python)}"
    )


def suggest_python(requires_python: str) -> str:
    """A python3.X that satisfies the specifier (prefers 3.11/3.12, common on distros)."""
    for minor in (11, 12, 10, 13, 14, 9, 8):
        if version_satisfies(f"3.{minor}", requires_python):
            return f"python3.{minor}"
    return "python3"
