"""A command in a real pseudo-terminal (pexpect's pty), its output rendered into a screen by
pyte, as a terminal would show it; and the screens kept for docs/cli.md."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import pexpect
import pyte

REPO_ROOT = Path(__file__).resolve().parents[1]
# Where the tests keep what they observed (tests/integration/record.py reads the same).
RECORD_DIR = Path(os.environ.get("VLLM_FLEET_RECORD_DIR", REPO_ROOT / ".cache" / "reliability"))


def terminal_env(env: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment without COLUMNS and LINES (pytest exports COLUMNS, which rich reads
    before the terminal's size): the size comes from the pty alone."""
    base = dict(os.environ if env is None else env)
    return {k: v for k, v in base.items() if k not in ("COLUMNS", "LINES")}


def run_in_pty(
    argv: Sequence[str],
    on_screen: Callable[[pyte.Screen], None],
    *,
    size: Tuple[int, int] = (160, 40),
    env: Optional[Dict[str, str]] = None,
    cwd: Optional[str] = None,
    timeout: float = 900,
) -> Tuple[int, str]:
    """Run argv in a pty of `size` (columns, lines); call on_screen(screen) after each read;
    return the exit status and the last screen's text."""
    columns, lines = size
    child = pexpect.spawn(
        argv[0],
        list(argv[1:]),
        env=terminal_env(env),
        cwd=cwd,
        dimensions=(lines, columns),
        encoding="utf-8",
        codec_errors="replace",
    )
    screen = pyte.Screen(columns, lines)
    stream = pyte.Stream(screen)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stream.feed(child.read_nonblocking(65536, timeout=1))
        except pexpect.TIMEOUT:
            continue
        except pexpect.EOF:
            break
        on_screen(screen)
    child.close(force=True)
    return child.exitstatus if child.exitstatus is not None else -1, "\n".join(screen.display)


def keep_screens(screens: Dict[str, str]) -> None:
    """Write each screen (name -> text) to RECORD_DIR/cli/<name>, trailing blanks dropped."""
    folder = RECORD_DIR / "cli"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in screens.items():
        kept: List[str] = [line.rstrip() for line in text.splitlines()]
        while kept and not kept[-1]:
            kept.pop()
        (folder / name).write_text("\n".join(kept) + "\n", encoding="utf-8")
