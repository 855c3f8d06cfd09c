"""compiler_cache_env: the environment that makes vLLM's build compile through the chosen
compiler cache, with paths that stay the same from one release to the next."""

from __future__ import annotations

import zlib
from typing import Any, Callable, Dict

DOCUMENTATION = r"""
name: compiler_cache_env
short_description: The build script's environment for sccache, ccache or no compiler cache
description:
  - >-
    vLLM's setup.py picks the compiler launcher itself: sccache when C(sccache) is on PATH and
    C(VLLM_DISABLE_SCCACHE) is not 1, else ccache when C(ccache) is on PATH, passed to CMake as
    C(CMAKE_<LANG>_COMPILER_LAUNCHER) for C, C++ and CUDA. The build script links
    C(<prefix>/build/venv) to the release's venv and puts its bin, where the role installs the
    chosen tool, first on PATH: every release compiles against torch's headers at that one
    path. This environment turns the other tool off and points the chosen one at a cache that
    outlives releases.
  - >-
    sccache: the cache in C(<prefix>/cache/sccache) (C(SCCACHE_DIR)), unless a shared backend
    is given (its settings reach the build through the task's environment, never a file);
    C(SCCACHE_BASEDIRS) holds the checkout and the build venv's path (sccache 0.16.0 hit
    2.8 % of nvcc's steps at other paths on the H200, 100 % at the same paths; on the full
    CUDA build its warm rebuild took 0.207 of the cold wall); the server listens on a Unix
    socket in the cache folder (one server per prefix, reachable by its user only), or, when
    that path is too long for a socket, on a TCP port derived from the prefix.
  - >-
    ccache: the cache in C(<prefix>/cache/ccache), C(CCACHE_BASEDIR) the prefix and
    C(CCACHE_NOHASHDIR) on, so the fixed checkout and build venv hit across runs and
    releases. On nvcc ccache 4.14.2 hit 100 % of the units at the same paths and where the
    sources moved; the full CUDA build's 69 first steps rebuilt warm in 0.7 s, 0.001 of the
    cold wall (H200, bench/full_build_cache): the role's default.
  - C(none) sets C(VLLM_DISABLE_SCCACHE=1) and C(CCACHE_DISABLE=1).
options:
  _input:
    description: C(vllm_source_compiler_cache), C(sccache), C(ccache) or C(none).
    type: str
    required: true
  prefix:
    description: C(vllm_source_prefix).
    type: str
    required: true
  checkout:
    description: The fixed checkout the build runs in.
    type: str
    required: true
  venv:
    description: >-
      The build venv's path (C(<prefix>/build/venv), a link to the release's venv), whose
      torch the build compiles against.
    type: str
    required: true
  size:
    description: C(vllm_source_compiler_cache_size), such as C(50G).
    type: str
    required: true
  shared:
    description: Whether a shared backend is given (C(vllm_source_compiler_cache_env)).
    type: bool
    default: false
"""

EXAMPLES = r"""
env: >-
  {{ 'ccache' | compiler_cache_env('/opt/vllm', '/opt/vllm/extern/vllm', '/opt/vllm/build/venv',
     '50G') }}
"""

RETURN = r"""
_value:
  description: Variable name to value, for the build script to export.
  type: dict
"""

TOOLS = ("sccache", "ccache", "none")
# sun_path holds 108 bytes with its terminating NUL; a little margin for the kernel's checks.
MAX_SOCKET_PATH = 100
# sccache's own default port is 4226; a prefix whose socket path is too long takes one of
# these, the same on every run.
PORT_BASE, PORT_SPAN = 42260, 2000


def cache_dir(root: str, tool: str) -> str:
    """The tool's cache folder under the prefix (the role's __vllm_source_compiler_cache_dir)."""
    return f"{root}/cache/{tool}"


def sccache_server_env(root: str) -> Dict[str, str]:
    """Where the prefix's sccache server listens: a socket in its cache folder, or a port."""
    socket = f"{cache_dir(root, 'sccache')}/server.sock"
    if len(socket.encode()) <= MAX_SOCKET_PATH:
        return {"SCCACHE_SERVER_UDS": socket}
    port = PORT_BASE + zlib.crc32(root.encode()) % PORT_SPAN
    return {"SCCACHE_SERVER_PORT": str(port)}


def compiler_cache_env(
    tool: str,
    prefix: str,
    checkout: str,
    venv: str,
    size: str,
    shared: bool = False,
) -> Dict[str, str]:
    """The build's compiler-cache variables for `tool`."""
    if tool not in TOOLS:
        raise ValueError(f"vllm_source_compiler_cache must be one of {', '.join(TOOLS)}")
    root = prefix.rstrip("/")
    if tool == "none":
        return {"VLLM_DISABLE_SCCACHE": "1", "CCACHE_DISABLE": "1"}
    if tool == "ccache":
        return {
            "VLLM_DISABLE_SCCACHE": "1",
            "CCACHE_DIR": cache_dir(root, "ccache"),
            "CCACHE_BASEDIR": root,
            "CCACHE_NOHASHDIR": "true",
            "CCACHE_MAXSIZE": size,
        }
    env = {
        "CCACHE_DISABLE": "1",  # a host ccache never stands in for a failed sccache
        "SCCACHE_BASEDIRS": f"{checkout.rstrip('/')}:{venv.rstrip('/')}",
        "SCCACHE_CACHE_SIZE": size,
        **sccache_server_env(root),
    }
    if not shared:
        env["SCCACHE_DIR"] = cache_dir(root, "sccache")
    return env


class FilterModule:
    """The compiler cache's environment."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"compiler_cache_env": compiler_cache_env}
