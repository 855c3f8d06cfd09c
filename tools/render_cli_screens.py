#!/usr/bin/env python3
"""Render docs/cli.md, and the README's screen block, from the CLI's recorded screens.

Usage: tools/render_cli_screens.py [RECORD_DIR] [--readme README.md] > docs/cli.md

RECORD_DIR (default .cache/reliability) holds cli/*.txt, the screens the tests read from a
real pseudo-terminal: build-live.txt and build-final.txt from tests/integration/
test_fleet_cli.py (a real build on two podman hosts), replay-live.txt and replay-final.txt
from tests/unit/test_cli_terminal.py (a replay of a real full CUDA build's log). Nothing
here is typed: the screens are copied as the terminal showed them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- cli-screens: begin (tools/render_cli_screens.py --readme writes this block) -->"
END = "<!-- cli-screens: end -->"

SCREENS = (
    (
        "replay-live.txt",
        "A full CUDA build in progress: the live table with ninja's bar, rate and time left "
        "(`vllm-fleet replay` of the 2x H200 build log of 2026-11-28, 32 jobs, in a 160x40 pty)",
    ),
    (
        "build-live.txt",
        "A real build on two podman hosts (no GPU, target `empty`), the good host in its build "
        "phase (`vllm-fleet build` in a 220x60 pty; tests/integration/test_fleet_cli.py)",
    ),
    (
        "build-final.txt",
        "The same build's end: the live table gives way to the report; the host that asked "
        "for the tag without its v failed before anything changed, so the exit code is 2",
    ),
)


def block(folder: Path, names=SCREENS) -> str:
    parts = []
    for name, caption in names:
        path = folder / "cli" / name
        if not path.is_file():
            raise SystemExit(f"{path} is missing: run the tests that record it (see --help)")
        parts.append(f"{caption}:\n\n```text\n{path.read_text(encoding='utf-8').rstrip()}\n```\n")
    return "\n".join(parts)


def page(folder: Path) -> str:
    head = (
        "# The vllm-fleet CLI's screens\n\n"
        "Rendered by `tools/render_cli_screens.py` from the screens the tests read from a real\n"
        "pseudo-terminal (pexpect's pty, rendered by pyte) during `tools/test.sh`.\n\n"
    )
    return head + block(folder, (*SCREENS, ("replay-final.txt", "The replay's report")))


def replace_block(readme: str, text: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"the README has no {BEGIN!r} ... {END!r} block")
    before, rest = readme.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    return f"{before}{BEGIN}\n{text}{END}{after}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record_dir", nargs="?", type=Path, default=ROOT / ".cache" / "reliability")
    parser.add_argument("--readme", type=Path, help="also rewrite this README's screen block")
    args = parser.parse_args()
    sys.stdout.write(page(args.record_dir))
    if args.readme:
        chosen = (SCREENS[0], SCREENS[2])
        args.readme.write_text(
            replace_block(args.readme.read_text(encoding="utf-8"), block(args.record_dir, chosen)),
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
