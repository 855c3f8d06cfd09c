"""Read a vLLM checkout's CMake: the git sources FetchContent fetches, the CUDA archs it builds.

A tokenizer of CMake's command syntax (quoted, unquoted and bracket arguments, comments)
and a walk of CMakeLists.txt and the cmake/external_projects/*.cmake files it includes, the
way CMake would for a CUDA build. Pure functions over a `read(relpath)` callable; Python 3.8+,
stdlib only.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Optional, Tuple

from ansible.module_utils.vllm_fleet_versions import capability_key

EXTERNAL_PROJECTS_DIR = "cmake/external_projects/"

_VAR_REF = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
_ENV_REF = re.compile(r"\$?ENV\{([A-Za-z0-9_]+)\}")
_ENV_ONLY = re.compile(r"^\$ENV\{([A-Za-z0-9_]+)\}$")
_UNQUOTED = re.compile(r'(?:[^\s()#"\\]|\\.)+')
_COMMAND = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")

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
    return sorted(archs, key=capability_key)
