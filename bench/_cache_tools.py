"""What bench/compiler_cache and bench/full_build_cache share: CPU time, memory in use and
the compiler cache's counters, read with the role's own parser of the build log's line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "module_utils"))

from vllm_fleet_buildlog import cache_counts  # noqa: E402


def cpu_times() -> Tuple[int, int]:
    """Total and idle (idle + iowait) jiffies of all CPUs."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    return sum(fields), fields[3] + fields[4]


def busy_pct(before: Tuple[int, int], after: Tuple[int, int]) -> float:
    """The CPUs' busy share between two cpu_times() readings."""
    total, idle = after[0] - before[0], after[1] - before[1]
    return 100.0 * (1 - idle / total) if total > 0 else 0.0


def memory_used_mib() -> float:
    """MemTotal - MemAvailable, as the build log's samples count memory in use."""
    fields: Dict[str, int] = {}
    with open("/proc/meminfo", encoding="ascii") as info:
        for line in info:
            name, value = line.split(":", 1)
            fields[name] = int(value.split()[0])
    return (fields["MemTotal"] - fields["MemAvailable"]) / 1024.0


def tool_out(tool: str, env: Dict[str, str], *args: str) -> str:
    out = subprocess.run([tool, *args], env=env, capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


def kind(launcher: str) -> str:
    """sccache or ccache, by the launcher's file name."""
    return "ccache" if Path(launcher).name.startswith("ccache") else "sccache"


def start_cache(launcher: str, env: Dict[str, str]) -> None:
    """A fresh count of requests: sccache's server restarted, ccache's statistics zeroed."""
    if kind(launcher) == "ccache":
        tool_out(launcher, env, "--zero-stats")
    else:
        tool_out(launcher, env, "--stop-server")
        tool_out(launcher, env, "--start-server")


def finish_cache(launcher: str, env: Dict[str, str]) -> Optional[Dict[str, int]]:
    """The phase's hits and misses."""
    if kind(launcher) == "ccache":
        stats = " ".join(tool_out(launcher, env, "--print-stats").replace("\t", "=").split("\n"))
        return cache_counts("ccache", stats)
    counts = cache_counts(
        "sccache", tool_out(launcher, env, "--show-stats", "--stats-format", "json")
    )
    tool_out(launcher, env, "--stop-server")
    return counts
