"""vllm_verify's probe against every ModelOpt checkpoint shape, in a real vLLM venv.

The shapes (tests/modelopt_shapes.py) are crafted config files of the tiny Llama, no weights:
the probe builds ModelConfig and then the quantization config the way the engine does at
start. Each shape must come out as the installed vLLM reads it: the method it resolves, or
the reason it refuses the checkpoint, which verify then reports as a problem.

Runs in the served_host fixture's release venv (/opt/vllm/current/venv, vLLM 0.30.0 `empty`)
as the user vllm; or, without podman, in a local venv when VLLM_SHAPES_VENV names one
(e.g. VLLM_SHAPES_VENV=/tmp/vv030 pytest tests/integration/test_checkpoint_shapes.py).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import uuid
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional

import pytest
from ansible.module_utils.vllm_fleet_child import offline_environment
from ansible.module_utils.vllm_fleet_modelopt import checkpoint_entries
from ansible.module_utils.vllm_fleet_probe import PROBE_SCRIPT, parse_probe_output
from modelopt_shapes import CASES, SHAPES, Shape, write_shapes

from .podman_host import REPO_ROOT, podman
from .record import record

BASE = REPO_ROOT / "tests" / "data" / "vllm-verify" / "tiny-llama"
HOST_VENV = "/opt/vllm/current/venv"
VERSION_SCRIPT = "from importlib.metadata import version; print(version('vllm'))"


class Probed(NamedTuple):
    version: str
    table: Dict[str, Shape]
    report: Dict[str, Any]
    entries: Dict[str, Dict[str, Any]]
    problems: List[str]


def run_locally(venv: Path, script: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(offline_environment())
    return subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", script],
        input=stdin, env=env, cwd="/", capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip


def run_in_host(host, local: Path, folder: str, script: str, stdin: str = ""):
    """Run `script` with the release venv's python as the user vllm, offline, in the host;
    the script and its stdin travel by podman cp through the local folder `local`."""
    name = uuid.uuid4().hex[:8]
    for suffix, text in (("py", script), ("json", stdin)):
        (local / f"{name}.{suffix}").write_text(text)
        podman("cp", str(local / f"{name}.{suffix}"), f"{host.name}:{folder}/{name}.{suffix}")
    host.sh(f"chmod -R a+rX {folder}")
    env = " ".join(f"{k}={v}" for k, v in offline_environment().items())
    command = f"cd / && {env} {HOST_VENV}/bin/python -I {folder}/{name}.py < {folder}/{name}.json"
    return host.sh(f"su -s /bin/sh vllm -c {shlex.quote(command)}", check=False)


def probe_shapes(tmp: Path, runner, copy_in) -> Probed:
    """Write the shapes for the venv's vLLM, probe them all in one child, and evaluate the
    report as vllm_verify does."""
    done = runner(VERSION_SCRIPT)
    assert done.returncode == 0, done.stderr[-2000:]
    version = done.stdout.strip().splitlines()[-1]
    table = write_shapes(BASE, tmp / "shapes", version)
    where = copy_in(tmp / "shapes")  # the shapes' folder as the probe sees it
    request = {"checkpoints": [f"{where}/{name}" for name in table], "capabilities": {}}
    done = runner(PROBE_SCRIPT, json.dumps(request))
    report, error = parse_probe_output(done.returncode, done.stdout, done.stderr)
    assert error is None, f"{error}\n{done.stderr[-3000:]}"
    probed = {str(table[name].path): report["checkpoints"][f"{where}/{name}"] for name in table}
    paths = [str(shape.path) for shape in table.values()]
    entries, problems = checkpoint_entries(paths, probed, version.split("+")[0])
    return Probed(version, table, report, {e["path"]: e for e in entries}, problems)


_PROBED: Dict[str, Probed] = {}


@pytest.fixture
def probed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Probed:
    """The probe's verdict on every shape, once per venv (the child imports vLLM once)."""
    local = os.environ.get("VLLM_SHAPES_VENV")
    if local:
        key = f"local:{local}"
        if key not in _PROBED:
            venv = Path(local)
            if not (venv / "bin" / "python").is_file():
                pytest.fail(f"VLLM_SHAPES_VENV={local} is not a venv (no bin/python)")
            _PROBED[key] = probe_shapes(
                tmp_path_factory.mktemp("shapes"),
                lambda script, stdin="": run_locally(venv, script, stdin),
                lambda folder: str(folder),
            )
        return _PROBED[key]
    host = request.getfixturevalue("served_host")
    key = f"host:{host.name}"
    if key not in _PROBED:
        folder = f"/tmp/modelopt-shapes-{uuid.uuid4().hex[:8]}"
        host.sh(f"mkdir -p {folder}")

        def copy_in(shapes: Path) -> str:
            podman("cp", str(shapes), f"{host.name}:{folder}/shapes")
            host.sh(f"chmod -R a+rX {folder}")
            return f"{folder}/shapes"

        scripts = tmp_path_factory.mktemp("scripts")
        _PROBED[key] = probe_shapes(
            tmp_path_factory.mktemp("shapes"),
            lambda script, stdin="": run_in_host(host, scripts, folder, script, stdin),
            copy_in,
        )
    return _PROBED[key]


def decisive_config(path: Path) -> Dict[str, Any]:
    """The quantization config vLLM reads for a shape (config.json's wins), for the record."""
    config = json.loads((path / "config.json").read_text())
    if "quantization_config" in config:
        return {"config.json quantization_config": config["quantization_config"]}
    return {"hf_quant_config.json": json.loads((path / "hf_quant_config.json").read_text())}


def problem_for(probed: Probed, path: str) -> Optional[str]:
    found = [
        p for p in probed.problems if p.startswith((f"checkpoint {path} ", f"checkpoint {path}:"))
    ]
    assert len(found) <= 1, found
    return found[0] if found else None


@pytest.mark.parametrize("name", list(SHAPES))
def test_verify_reads_each_modelopt_shape_as_vllm_does(probed: Probed, name: str) -> None:
    shape = probed.table[name]
    path = str(shape.path)
    entry = probed.entries[path]
    reason = entry["error"] or entry["load_error"]
    what = f"{name} in vLLM {probed.version}: {entry}"
    assert entry["quantization"] == shape.method, what
    problem = problem_for(probed, path)
    if shape.refusal is None:
        assert reason is None, what
        assert entry["quant_config"], what  # the engine's config class was built
        assert isinstance(entry["exclude_modules"], list), what
        assert problem is None, problem
        return
    assert reason is not None and shape.refusal in reason, what
    assert problem is not None and shape.refusal in problem, what
    assert "vllm_source_verify_checkpoints" in problem and path in problem, problem
    record(
        "bad input",
        CASES[name],
        f"test_checkpoint_shapes.py::test_verify_reads_each_modelopt_shape_as_vllm_does[{name}]",
        {
            "input": {"checkpoint": name, **decisive_config(shape.path)},
            "vllm_version": probed.version,
            "observed": f"vllm_verify reports: {reason}",
        },
    )
