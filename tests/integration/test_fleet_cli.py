"""The vllm-fleet CLI against real podman hosts, through ansible-runner (nothing mocked).

Two hosts share one inventory: `good` is bare (the role installs its packages) and `bad`
asks for the tag spelled without its v, which the role refuses before it changes anything.
In order: a build in a real pseudo-terminal (live table, final table, exit code, JSON and
Markdown reports), `status --json` (events and report) against the host's stamp, `rollback`
refused without an earlier release and `rollback --to` the current one (line mode), and
`check-checkpoint` on a checkpoint of the host's own. The build's screens, live and final,
are kept in <record dir>/cli/ for docs/cli.md (tools/render_cli_screens.py).
The pty and its screen: tests/pty_screen.py.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from pty_screen import keep_screens, run_in_pty

from .podman_host import CACHE, PodmanHost
from .served_host import PREFIX, ROLE_VARS, WHEELHOUSE, current, current_vllm

CLI = str(Path(sys.executable).parent / "vllm-fleet")
CHECKPOINTS = ("-v", f"{CACHE / 'checkpoints'}:/srv/checkpoints:ro")
FP8 = "/srv/checkpoints/tiny-llama-modelopt-fp8"
COLUMNS, LINES = 220, 60


def stamp(host: PodmanHost) -> dict:
    return json.loads(host.sh(f"cat {PREFIX}/current/venv/vllm-source-stamp.json").stdout)


@pytest.fixture(scope="module")
def fleet(podman_ready, tmp_path_factory):
    work = tmp_path_factory.mktemp("fleet-cli")
    good = PodmanHost(extra_args=WHEELHOUSE + CHECKPOINTS)
    bad = PodmanHost()
    group_vars = {
        **ROLE_VARS,
        "vllm_source_artifact_cache": str(work / "artifacts"),
        "vllm_source_build_progress_interval": 5,
    }
    inventory = work / "hosts.yml"
    inventory.write_text(
        json.dumps(
            {
                "gpu_hosts": {
                    "vars": group_vars,
                    "hosts": {
                        good.name: good.host_vars(),
                        bad.name: {**bad.host_vars(), "vllm_source_version": "0.30.0"},
                    },
                }
            }
        ),
        encoding="utf-8",
    )
    env = dict(os.environ, VLLM_FLEET_CACHE=str(work / "cache"), TERM="xterm-256color")
    good.wait_for_ssh()
    bad.wait_for_ssh()
    yield SimpleNamespace(good=good, bad=bad, inventory=inventory, env=env, work=work, keys={})
    good.remove()
    bad.remove()


def cli(fleet, *args: str, timeout: float = 900):
    """Run vllm-fleet with output to a pipe (not a terminal)."""
    import subprocess

    return subprocess.run(
        [CLI, *args, "-i", str(fleet.inventory)],
        env=fleet.env,
        cwd=fleet.work,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def json_lines(text: str) -> list:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_build_in_a_terminal_shows_live_phases_and_the_final_table(fleet):
    report_file, markdown_file = fleet.work / "build.json", fleet.work / "build.md"
    live = {}  # phase -> a screen that showed the good host in it, with its elapsed time

    def watch(screen) -> None:
        for line in screen.display:
            match = re.search(rf"{fleet.good.name}\s*│\s*(\w+)\s*│\s*(\d+ s|\d+ min \d\d s)", line)
            if match and match.group(1) not in live:
                live[match.group(1)] = "\n".join(screen.display)

    argv = [
        CLI,
        "build",
        "-i",
        str(fleet.inventory),
        "--report",
        str(report_file),
        "--markdown",
        str(markdown_file),
    ]
    status, final = run_in_pty(
        argv, watch, size=(COLUMNS, LINES), env=fleet.env, cwd=str(fleet.work)
    )
    keep_screens({"build-live.txt": live.get("build", ""), "build-final.txt": final})
    assert status == 2, final  # one host failed

    # Live: the good host went through the role's phases, each with its elapsed time.
    assert {"preflight", "venv", "build", "install", "verify"} <= set(live), sorted(live)
    assert "vllm-fleet build" in live["build"] and "Elapsed" in live["build"]
    # The end: the live table gave way to the report, both hosts in it.
    assert re.search(rf"{fleet.good.name} .*changed", final), final
    assert re.search(rf"{fleet.bad.name} .*failed", final), final
    assert "1 of 2 hosts ok; failed or unreachable: " + fleet.bad.name in final.replace("\n", "")

    report = json.loads(report_file.read_text(encoding="utf-8"))
    rows = {row["host"]: row for row in report["hosts"]}
    recorded = stamp(fleet.good)
    fleet.keys["first"] = current(fleet.good)
    good, bad = rows[fleet.good.name], rows[fleet.bad.name]
    assert good["result"] == "changed" and good["source"] == "built here"
    assert good["vllm"] == recorded["vllm_version"] == current_vllm(fleet.good)
    assert good["commit"] == recorded["inputs"]["commit"][:12]
    assert good["key"] == recorded["key"] == fleet.keys["first"]
    assert good["torch"].startswith(recorded["torch_version"])
    assert good["modelopt"] == ", ".join(sorted(recorded["modelopt_methods"]))
    assert bad["result"] == "failed" and "set vllm_source_version: v0.30.0" in bad["reason"]
    assert report["failed_hosts"] == [fleet.bad.name] and report["exit_code"] == 2
    assert fleet.bad.sh(f"test -e {PREFIX}", check=False).returncode == 1  # nothing changed
    markdown = markdown_file.read_text(encoding="utf-8")
    assert f"| {fleet.good.name} |" in markdown and "| failed |" in markdown


def test_status_reads_each_host_from_its_current_release(fleet):
    done = cli(fleet, "status", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    events = json_lines(done.stdout)
    assert {e["type"] for e in events[:-1]} <= {"phase", "result"}
    report = events[-1]
    assert report["type"] == "report" and report["command"] == "status"
    rows = {row["host"]: row for row in report["hosts"]}
    recorded = stamp(fleet.good)
    good = rows[fleet.good.name]
    assert good["key"] == current(fleet.good) == recorded["key"]
    assert good["vllm"] == recorded["vllm_version"]
    assert good["commit"] == recorded["inputs"]["commit"][:12]
    assert good["torch"].startswith(recorded["torch_version"])
    assert good["modelopt"] == ", ".join(sorted(recorded["modelopt_methods"]))
    assert recorded["built_at"] in good["built"] and recorded["built_by"] in good["built"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", recorded["built_at"])
    assert good["gpus"] == "none"  # a podman host without GPU
    assert rows[fleet.bad.name]["key"] == "" and rows[fleet.bad.name]["result"] == "ok"


def test_rollback_without_an_earlier_release_fails_with_its_reason(fleet):
    done = cli(fleet, "rollback", "-l", fleet.good.name, "--json")
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr
    events = json_lines(done.stdout)
    assert [e["phase"] for e in events if e["type"] == "phase"] == ["rollback"]
    (row,) = events[-1]["hosts"]
    assert row["result"] == "failed" and "has no verified release" in row["reason"], row
    assert current(fleet.good) == fleet.keys["first"]


def test_rollback_to_a_named_release_verifies_it_first(fleet):
    done = cli(fleet, "rollback", "-l", fleet.good.name, "--to", fleet.keys["first"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    # Not a terminal: a line per event, then the table.
    assert re.search(rf"^\d\d:\d\d:\d\d {fleet.good.name} phase rollback: ", done.stdout, re.M)
    assert re.search(rf"^\d\d:\d\d:\d\d {fleet.good.name} result ok$", done.stdout, re.M)
    assert re.search(rf"│ {fleet.good.name} .*│ 0\.30\.0 .*│ ok ", done.stdout), done.stdout
    assert current(fleet.good) == fleet.keys["first"] and current_vllm(fleet.good) == "0.30.0"


def test_check_checkpoint_reads_a_users_checkpoint_as_vllm_loads_it(fleet):
    done = cli(fleet, "check-checkpoint", fleet.good.name, FP8, "--json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    (row,) = json_lines(done.stdout)[-1]["hosts"]
    assert row["checkpoints"] == f"{FP8}: modelopt", row
    missing = cli(fleet, "check-checkpoint", fleet.good.name, "/srv/checkpoints/none", "--json")
    assert missing.returncode == 2
    (row,) = json_lines(missing.stdout)[-1]["hosts"]
    assert row["result"] == "failed" and "/srv/checkpoints/none" in row["reason"], row


def test_serve_check_runs_the_checks_on_the_hosts_release(fleet):
    # The host's release is vLLM 0.30.0 `empty` without a GPU: the checks run in its venv
    # (vllm-fleet-vl's facts from the installed vLLM), no weight is loaded.
    done = cli(fleet, "serve-check", FP8, "--check-only", "-l", fleet.good.name, "--json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    (row,) = json_lines(done.stdout)[-1]["hosts"]
    assert (
        row["serve"] == f"{FP8}: vLLM 0.30.0, modelopt, vision layers excluded 0/0: checks passed"
    )
    plain = "/srv/checkpoints/tiny-llama"
    refused = cli(fleet, "serve-check", plain, "--check-only", "-l", fleet.good.name, "--json")
    assert refused.returncode == 2
    (row,) = json_lines(refused.stdout)[-1]["hosts"]
    assert row["result"] == "failed", row
    assert row["reason"].startswith(f"{plain}: not a ModelOpt checkpoint (vLLM 0.30.0 reads"), row
    # Qwen2.5-VL's model class imports torchvision, which an `empty` release on torch's CPU
    # wheel lacks: refused before any weight, saying so (the H200 run has it, and runs it).
    vl_fp8 = "/srv/checkpoints/tiny-qwen2_5-vl-modelopt-fp8"
    vl = cli(fleet, "serve-check", vl_fp8, "--check-only", "-l", fleet.good.name, "--json")
    assert vl.returncode == 2
    (row,) = json_lines(vl.stdout)[-1]["hosts"]
    assert "cannot import the model class of Qwen2_5_VLForConditionalGeneration" in row["reason"]
