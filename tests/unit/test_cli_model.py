"""The CLI's reading of ansible-runner events: phases, progress, facts, results, the report.

tests/data/cli/build-empty-v0.30.0.events.tar.xz holds the job_events ansible-runner wrote
for a real `vllm-fleet build` of v0.30.0 (target empty) on a podman host, with
vllm_source_build_progress_interval 5: every event, as runner stores it.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from vllm_fleet.cli import report
from vllm_fleet.cli.model import Fleet, mask, phase_of, phase_titles
from vllm_fleet.cli.runner import read_events

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests" / "data" / "cli" / "build-empty-v0.30.0.events.tar.xz"
ROLE_PHASES = [
    p.stem.split("_", 1)[1] for p in sorted((ROOT / "roles/vllm_source/tasks").glob("[0-9]*.yml"))
]


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    with tarfile.open(RECORDED) as tar:
        tar.extractall(run, filter="data")
    return read_events(run)


def fold(events):
    fleet = Fleet()
    notices = [n for event in events for n in fleet.apply(event)]
    return fleet, notices


def result_of(events, action):
    """The res of the first runner_on_ok of a module, straight from the events."""
    for event in events:
        data = event.get("event_data") or {}
        if event["event"] == "runner_on_ok" and data.get("task_action") == action:
            return data["res"]
    raise AssertionError(f"no {action} result recorded")


@pytest.mark.parametrize(
    ("path", "action", "phase"),
    [
        ("/repo/roles/vllm_source/tasks/07_build.yml:120", "vllm_build_wait", "build"),
        ("/repo/roles/vllm_source/tasks/01_preflight.yml:3", "ansible.builtin.assert", "preflight"),
        ("/repo/roles/vllm_source/tasks/rollback.yml:9", "vllm_release", "rollback"),
        ("/repo/roles/vllm_source/tasks/status.yml:5", "vllm_release", "status"),
        ("/repo/roles/vllm_source/tasks/_lock.yml:12", "vllm_lock", None),
        ("/repo/playbooks/vllm_source.yml:5", "gather_facts", "facts"),
        ("/repo/site.yml:4", "ansible.builtin.debug", None),
        (None, "ansible.builtin.debug", None),
    ],
)
def test_phase_is_the_role_task_file(path, action, phase):
    assert phase_of(path, action) == phase


def test_every_phase_has_the_title_main_yml_gives_it():
    titles = phase_titles((ROOT / "roles/vllm_source/tasks/main.yml").read_text())
    assert list(titles) == ROLE_PHASES
    assert titles["venv"] == "Create the release's venv with the PyTorch the tag pins."


def test_a_recorded_build_walks_the_role_phases_in_order(events):
    _, notices = fold(events)
    phases = [n["phase"] for n in notices if n["type"] == "phase"]
    assert phases == ["facts", *ROLE_PHASES]
    assert [n["type"] for n in notices][-1] == "result"


def test_progress_notices_carry_what_the_build_wait_returned(events):
    _, notices = fold(events)
    progress = [n for n in notices if n["type"] == "progress"]
    retries = [e["event_data"]["res"]["progress"] for e in events if e["event"] == "runner_retry"]
    assert retries, "the recorded build polled at least once before it ended"
    assert [{k: n[k] for k in retries[0]} for n in progress][: len(retries)] == retries
    assert progress[-1]["stage"] == "finished"


def test_the_report_row_is_made_of_the_modules_results(events):
    fleet, _ = fold(events)
    (name,) = fleet.hosts
    row = report.row(fleet, fleet.hosts[name])
    verify = result_of(events, "vllm_verify")
    key = result_of(events, "vllm_build_key")
    assert row["vllm"] == verify["vllm_version"]
    assert row["commit"] == key["build_inputs"]["commit"][:12]
    assert row["torch"] == verify["torch_version"]
    assert row["modelopt"] == ", ".join(sorted(verify["modelopt_methods"]))
    assert row["key"] == key["build_key"]
    assert row["gpus"] == "none" and row["archs"] == "none"  # a host without GPU, target empty
    assert row["source"] == "built here"
    assert row["result"] == "changed" and row["reason"] == ""
    first, last = events[0]["created"], events[-1]["created"]
    assert (
        0
        < row["duration_s"]
        <= (
            __import__("datetime").datetime.fromisoformat(last)
            - __import__("datetime").datetime.fromisoformat(first)
        ).total_seconds()
    )


def test_a_failed_host_keeps_the_reason_masked_and_counts_as_failed(events):
    fleet = Fleet()
    host = "gpu-9"
    fleet.apply(
        {
            "event": "runner_on_start",
            "created": "2026-12-02T10:00:00",
            "event_data": {
                "host": host,
                "task": "Refuse a version",
                "task_path": "/r/roles/vllm_source/tasks/01_preflight.yml:3",
            },
        }
    )
    failed = fleet.apply(
        {
            "event": "runner_on_failed",
            "created": "2026-12-02T10:00:02",
            "event_data": {
                "host": host,
                "task": "Clone",
                "res": {"msg": "clone of https://u:tok3n@git.example/v.git failed"},
            },
        }
    )
    assert failed[0]["reason"] == "clone of https://***@git.example/v.git failed"
    done = fleet.apply(
        {
            "event": "playbook_on_stats",
            "created": "2026-12-02T10:00:03",
            "event_data": {"failures": {host: 1}, "ok": {host: 3}},
        }
    )
    assert done[0]["result"] == "failed"
    rows = report.rows(fleet)
    assert report.failed(rows) == [host] and "tok3n" not in report.as_json({"hosts": rows})
    assert rows[0]["duration_s"] == 2.0  # its first event to its last


def test_ignored_errors_are_not_a_reason_and_unreachable_hosts_are_reported():
    fleet = Fleet()
    fleet.apply(
        {
            "event": "runner_on_failed",
            "event_data": {"host": "a", "ignore_errors": True, "res": {"msg": "probe"}},
        }
    )
    fleet.apply(
        {
            "event": "runner_on_unreachable",
            "event_data": {"host": "b", "res": {"msg": "ssh: connect timed out"}},
        }
    )
    fleet.apply({"event": "playbook_on_stats", "event_data": {"ok": {"a": 2}, "dark": {"b": 1}}})
    rows = {r["host"]: r for r in report.rows(fleet)}
    assert rows["a"]["result"] == "ok" and rows["a"]["reason"] == ""
    assert rows["b"]["result"] == "unreachable" and "timed out" in rows["b"]["reason"]
    assert report.failed(list(rows.values())) == ["b"]


def test_markdown_and_json_reports_hold_every_row(events):
    fleet, _ = fold(events)
    rows = report.rows(fleet)
    text = report.markdown(rows)
    assert text.splitlines()[0].startswith("| Host | GPUs |")
    assert rows[0]["host"] in text.splitlines()[2]
    assert json.loads(report.as_json({"hosts": rows}))["hosts"][0]["vllm"] == rows[0]["vllm"]


def test_mask_hides_every_url_credential():
    assert mask("a https://x:y@h/p and ssh://git:pw@h2/r") == "a https://***@h/p and ssh://***@h2/r"


def test_the_gpu_columns_read_a_real_h200_hosts_driver_facts():
    """tests/data/nvidia/h200x1/module-result.json: what nvidia_driver_facts returned on a
    1x H200 host; cuda_toolkit_facts there found CUDA 13.0."""
    driver = json.loads((ROOT / "tests/data/nvidia/h200x1/module-result.json").read_text())
    fleet = Fleet()
    for action, res in (
        ("nvidia_driver_facts", {"nvidia_driver": driver}),
        ("cuda_toolkit_facts", {"cuda_toolkit": {"found": True, "version": "13.0"}}),
    ):
        fleet.apply(
            {
                "event": "runner_on_ok",
                "event_data": {"host": "h200-a", "task_action": action, "res": res},
            }
        )
    row = report.row(fleet, fleet.hosts["h200-a"])
    assert row["gpus"] == "1x NVIDIA H200"
    assert row["driver"] == "580.159.04 (max CUDA 13.0) / toolkit 13.0"
