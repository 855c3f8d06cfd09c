"""The CLI's live view in a real pseudo-terminal: ninja's progress bar, then the final table.

`vllm-fleet replay` shows a run again from ansible-runner's artifacts. The run here is made
from a real full CUDA build's log (2x H200, 2026-11-28, 32 jobs, which ended at step 167 of
393 when that machine's time ran out): every 30 s of its log becomes the build wait's retry
event, its progress read by module_utils/vllm_fleet_buildlog.py as the module reads it on
a host. The terminal is pexpect's pty; pyte renders what the CLI wrote into a screen.
"""

from __future__ import annotations

import json
import lzma
import re
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from ansible.module_utils.vllm_fleet_buildlog import parse_line, progress, read_log
from pty_screen import keep_screens, run_in_pty

ROOT = Path(__file__).resolve().parents[2]
LOG = ROOT / "docs" / "gpu-validation" / "h200x2-2026-11-28" / "full-build.log.xz"
CLI = str(Path(sys.executable).parent / "vllm-fleet")
HOST = "h200-a"
BUILD_TASK = "Build the vLLM wheel as the service user (still running while it retries)"
COLUMNS, LINES = 160, 40


def write_run(run: Path) -> int:
    """Write the run's job_events; return the number of progress events."""
    with lzma.open(LOG, "rt", encoding="utf-8", errors="replace") as log:
        lines = log.read().splitlines(True)
    start = datetime(2026, 11, 28, 6, 35, 34)
    events = []

    def add(kind: str, at: float, **data) -> None:
        events.append(
            {
                "event": kind,
                "counter": len(events) + 1,
                "uuid": str(uuid.uuid4()),
                "created": (start + timedelta(seconds=at)).isoformat(),
                "event_data": data,
            }
        )

    add("playbook_on_start", 0, playbook="site.yml")
    task = {
        "host": HOST,
        "task": BUILD_TASK,
        "task_action": "vllm_build_wait",
        "task_path": "/repo/roles/vllm_source/tasks/07_build.yml:125",
    }
    add("runner_on_start", 0, **task)
    next_cut, polls = 30.0, 0
    for i, line in enumerate(lines):
        elapsed, _ = parse_line(line)
        if elapsed is not None and elapsed >= next_cut:
            add(
                "runner_retry",
                elapsed,
                **task,
                res={"finished": False, "progress": progress(read_log(lines[: i + 1]))},
            )
            next_cut, polls = elapsed + 30.0, polls + 1
    end = read_log(lines)["last_elapsed_s"]
    add("runner_retry", end, **task, res={"finished": False, "progress": progress(read_log(lines))})
    polls += 1
    add(
        "runner_on_failed",
        end,
        **task,
        res={"msg": "the build stopped at step 167 of 393: the machine's time ran out"},
    )
    add("playbook_on_stats", end, failures={HOST: 1}, ok={HOST: 40})
    (run / "job_events").mkdir(parents=True)
    for event in events:
        name = f"{event['counter']}-{event['uuid']}.json"
        (run / "job_events" / name).write_text(json.dumps(event), encoding="utf-8")
    (run / "rc").write_text("2")
    return polls


def done_cells(row, line: str) -> int:
    """How much of the bar in a screen row is drawn done: rich draws the whole bar with ━, the
    done part in another colour than the rest (the rightmost cell is never done below 100%)."""
    start = re.search(r"[━╸╺]{10,}", line).start()
    end = start + len(re.search(r"[━╸╺]{10,}", line).group(0))
    rest = row[end - 1].fg
    return sum(1 for x in range(start, end) if row[x].fg != rest)


def test_replay_in_a_terminal_shows_ninjas_bar_then_the_report(tmp_path):
    run = tmp_path / "20261128T063534Z-build-h200x2"
    polls = write_run(run)
    assert polls > 15
    bars = {}  # step shown -> the host's line, its bar's done cells, the screen

    def watch(screen) -> None:
        for y, line in enumerate(screen.display):
            match = re.search(r"\b(\d+)/393\b", line)
            if HOST in line and match:
                bars.setdefault(
                    int(match.group(1)),
                    (line, done_cells(screen.buffer[y], line), "\n".join(screen.display)),
                )

    status, final = run_in_pty(
        [CLI, "replay", str(run), "--speed", "60"], watch, size=(COLUMNS, LINES), timeout=120
    )
    if bars:
        keep_screens({"replay-live.txt": bars[max(bars)][2], "replay-final.txt": final})
    assert status == 2, final

    # The live table: the host in its build phase, a bar growing step by step, the rate and
    # the time left read from the log.
    assert len(bars) >= 5, sorted(bars)
    last = bars[max(bars)][0]
    assert max(bars) == 167, sorted(bars)
    assert re.search(rf"{HOST}\s*│\s*build\s*│\s*11 min 36 s\s*│\s*[━╸╺]+\s*│", last), last
    assert re.search(r"167/393 42\.\d% [\d.]+ steps/min ~\d+ min \d\d s left", last), last
    # The bar's done part grows with the steps: from nothing to 42.5% of its 30 cells.
    done = [bars[step][1] for step in sorted(bars)]
    assert done == sorted(done) and done[0] == 0 and done[-1] in (12, 13), done
    # The end: the live view gave way to the report.
    assert "vllm-fleet build" in final and re.search(rf"{HOST} .*failed", final), final
    assert "step 167 of 393" in final and "0 of 1 hosts ok" in final.replace("\n", ""), final
