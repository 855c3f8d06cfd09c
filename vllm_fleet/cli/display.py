"""How a run shows while it goes: a live table on a terminal, a line per notice in a log,
a JSON object per notice for machines."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from typing import Any, Dict, Optional, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .model import Fleet, HostState


def clock(seconds: Optional[float]) -> str:
    """Seconds as 1 h 02 min, 12 min 05 s or 42 s."""
    if seconds is None:
        return ""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def eta_now(state: HostState, now: float) -> Optional[float]:
    """The build's estimated seconds left, counted down since the host reported it."""
    progress = state.progress or {}
    eta = progress.get("eta_s")
    if eta is None or state.progress_at is None:
        return None
    return max(0.0, float(eta) - (now - state.progress_at))


def progress_text(state: HostState, now: float) -> Text:
    """What the build does: its steps, rate and estimated end; else its stage."""
    progress = state.progress or {}
    if progress.get("total"):
        parts = [f"{progress.get('step')}/{progress['total']}"]
        if progress.get("percent") is not None:
            parts.append(f"{progress['percent']}%")
        if progress.get("steps_per_min"):
            parts.append(f"{progress['steps_per_min']} steps/min")
        left = eta_now(state, now)
        if left is not None:
            parts.append(f"~{clock(left)} left")
        return Text(" ".join(parts))
    if progress:
        label = progress.get("mode") or ""
        if progress.get("target") not in (None, "cuda"):
            label += f", target {progress['target']}"
        return Text(f"build ({label}): {progress.get('stage') or ''}")
    return Text(state.task[:70], style="dim")


class LiveView:
    """A table of the hosts, refreshed four times a second: phase, elapsed time, and during a
    build ninja's progress bar with rate and estimated end."""

    def __init__(self, console: Console, title: str, replay: bool = False) -> None:
        self.console = console
        self.title = title
        self.replay = replay  # a replay's clock is its events' time
        self.fleet: Optional[Fleet] = None
        self.live = Live(
            console=console, refresh_per_second=4, transient=True, get_renderable=self._render
        )

    def start(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.live.start()

    def notice(self, notice: Dict[str, Any]) -> None:
        if notice["type"] in ("failed", "unreachable"):
            self.live.console.print(
                Text(f"{notice['host']}: {notice['type']}: {notice.get('reason', '')}", "red")
            )

    def stop(self) -> None:
        self.live.stop()

    def _render(self) -> Group:
        now = time.time()
        if self.replay and self.fleet and self.fleet.ended is not None:
            now = self.fleet.ended
        table = Table(title=self.title, expand=False)
        for heading in ("Host", "Phase", "Elapsed", "Progress", "Detail"):
            table.add_column(heading, no_wrap=True)
        fleet = self.fleet
        for _, state in sorted((fleet.hosts if fleet else {}).items()):
            running = state.result == "running" and state.failed_at is None
            elapsed = now - state.started if running and state.started else state.duration
            bar: Any = ""
            progress = state.progress or {}
            if running and progress.get("total"):
                bar = ProgressBar(
                    total=progress["total"], completed=progress.get("step") or 0, width=30
                )
            phase = state.phase if running else state.result
            if state.result == "running" and state.failed_at is not None:
                phase = f"{state.phase}: failed"
            table.add_row(
                state.name,
                phase,
                clock(elapsed),
                bar,
                progress_text(state, now) if running else Text(state.reason[:70]),
            )
        return Group(table)


class LineView:
    """One line per notice, for logs (output that is not a terminal)."""

    def __init__(self, out: Optional[TextIO] = None) -> None:
        self.out = out or sys.stdout

    def start(self, fleet: Fleet) -> None:
        pass

    def notice(self, notice: Dict[str, Any]) -> None:
        at = notice.get("at")
        when = datetime.fromtimestamp(at, timezone.utc).strftime("%H:%M:%S") if at else "--:--:--"
        kind, host = notice["type"], notice["host"]
        if kind == "phase":
            text = f"phase {notice['phase']}: {notice.get('title') or notice.get('task', '')}"
        elif kind == "progress":
            text = str(notice.get("summary") or notice.get("stage") or "")
        elif kind == "result":
            text = f"result {notice['result']}" + (
                f": {notice['reason']}" if notice.get("reason") else ""
            )
        else:
            text = f"{kind}: {notice.get('reason', '')}"
        self.out.write(f"{when} {host} {text}\n")
        self.out.flush()

    def stop(self) -> None:
        pass


class JsonView:
    """One JSON object per notice (and the report at the end), one per line."""

    def __init__(self, out: Optional[TextIO] = None) -> None:
        self.out = out or sys.stdout

    def start(self, fleet: Fleet) -> None:
        pass

    def notice(self, notice: Dict[str, Any]) -> None:
        self.out.write(json.dumps(notice, sort_keys=True, default=str) + "\n")
        self.out.flush()

    def stop(self) -> None:
        pass
