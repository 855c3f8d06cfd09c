"""The vllm-fleet commands' own parts: -e forms, the run's recorded environment, the line
view and report of a recorded run, and `stage wheelhouse` passing through."""

from __future__ import annotations

import json
import tarfile
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer
from typer.testing import CliRunner

from vllm_fleet.cli.app import app, command_vars, parse_extra_vars
from vllm_fleet.cli.runner import forget_environment

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "tests" / "data" / "cli" / "build-empty-v0.30.0.events.tar.xz"


def test_extra_vars_take_ansible_playbooks_forms(tmp_path):
    varfile = tmp_path / "vars.yml"
    varfile.write_text("vllm_source_serial: 1\nvllm_source_smoke_test: false\n")
    merged = parse_extra_vars(
        [
            "vllm_source_version=v0.30.0 vllm_source_user=svc",
            '{"vllm_source_keep_releases": 3}',
            f"@{varfile}",
        ]
    )
    assert merged == {
        "vllm_source_version": "v0.30.0",
        "vllm_source_user": "svc",
        "vllm_source_keep_releases": 3,
        "vllm_source_serial": 1,
        "vllm_source_smoke_test": False,
    }


def test_the_commands_options_set_their_role_variables_over_extra_vars():
    merged = command_vars(
        ["vllm_source_version=v0.29.0 vllm_source_user=svc"],
        version="v0.30.0",
        serial="25%",
        to=None,
    )
    assert merged == {
        "vllm_source_version": "v0.30.0",
        "vllm_source_user": "svc",
        "vllm_source_serial": "25%",
    }
    assert command_vars(None, to="1f2e3d4c5b6a7980") == {
        "vllm_source_rollback_to": "1f2e3d4c5b6a7980"
    }


@pytest.mark.parametrize("bad", ["novalue", "=x", "[1, 2]"])
def test_extra_vars_that_are_not_a_mapping_are_refused(bad):
    with pytest.raises(typer.BadParameter):
        parse_extra_vars([bad])


def test_the_runs_recorded_environment_keeps_only_names(tmp_path):
    (tmp_path / "command").write_text(
        json.dumps(
            {
                "command": ["ansible-playbook", "site.yml"],
                "cwd": "/repo",
                "env": {"PATH": "/bin", "GIT_TOKEN": "s3cr3t"},
            }
        )
    )
    config = SimpleNamespace(artifact_dir=str(tmp_path))
    forget_environment({"status": "starting"}, config)
    assert "s3cr3t" in (tmp_path / "command").read_text()  # not yet: the file is being written
    forget_environment({"status": "running"}, config)
    recorded = json.loads((tmp_path / "command").read_text())
    assert recorded == {
        "command": ["ansible-playbook", "site.yml"],
        "cwd": "/repo",
        "env": ["GIT_TOKEN", "PATH"],
    }
    assert (tmp_path / "command").stat().st_mode & 0o777 == 0o600


def test_replay_of_a_recorded_run_prints_a_line_per_event_and_the_report(tmp_path):
    run = tmp_path / "20261202T140005Z-build-2e6623"
    run.mkdir()
    with tarfile.open(RECORDED) as tar:
        tar.extractall(run, filter="data")
    report = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["replay", str(run), "--report", str(report)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # Each phase as main.yml names it.
    assert any(" phase build: Build the wheel once per build key." in line for line in lines)
    assert any(line.endswith(" result changed") for line in lines)
    (row,) = json.loads(report.read_text())["hosts"]
    assert row["result"] == "changed" and row["source"] == "built here"
    assert row["host"] in result.output and "1 of 1 hosts ok" in result.output


def test_stage_wheelhouse_is_the_wheelhouse_tool(tmp_path):
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("demo/__init__.py", "")
    result = CliRunner().invoke(app, ["stage", "wheelhouse", "hash", "--dest", str(tmp_path)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "wheelhouse.json").read_text())
    assert wheel.name in json.dumps(manifest)
