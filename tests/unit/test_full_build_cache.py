"""bench/full_build_cache: ninja's status lines, the configure command vLLM's setup.py runs, and a
real ninja stopped at its time limit, then asked for exactly the objects it finished."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP_PY = ROOT / "tests" / "data" / "vllm-src" / "0.22.0" / "setup_configure.py"


def load_bench():
    loader = importlib.machinery.SourceFileLoader(
        "full_build_cache", str(ROOT / "bench" / "full_build_cache")
    )
    spec = importlib.util.spec_from_loader("full_build_cache", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


bench = load_bench()


def test_status_lines_and_object_outputs():
    line = "[12/393] Building CUDA object CMakeFiles/_C.dir/csrc/cache_kernels.cu.o\n"
    finished, total, desc = bench.parse_status(line)
    assert (finished, total) == (12, 393)
    assert bench.object_output(desc) == "CMakeFiles/_C.dir/csrc/cache_kernels.cu.o"
    assert bench.object_output("Building CXX object CMakeFiles/x.dir/a.cpp.o") == (
        "CMakeFiles/x.dir/a.cpp.o"
    )
    assert bench.object_output("Linking CXX shared module _C.abi3.so") is None
    assert bench.parse_status("FAILED: CMakeFiles/_C.dir/a.cu.o") is None


def test_configure_matches_the_options_of_vllm_setup_py():
    args = bench.setup_py_cmake_args("/p/extern/vllm", "/v/bin/python", "/t/ccache", 16, 2, "/cuda")
    assert args[:4] == ["cmake", "/p/extern/vllm", "-G", "Ninja"]
    assert "-DCMAKE_CUDA_COMPILER_LAUNCHER=ccache" in args
    assert "-DCMAKE_JOB_POOLS:STRING=compile=16" in args
    assert "-DNVCC_THREADS=2" in args
    # Every option is one the tag's own setup.py passes (its format strings name them).
    setup_py = SETUP_PY.read_text(encoding="utf-8")
    for arg in args[4:]:
        name = re.match(r"-D([A-Z_]+(?::STRING)?)=", arg).group(1)
        assert f"-D{name}=" in setup_py, arg
    assert not any("LAUNCHER" in a for a in bench.setup_py_cmake_args("/s", "py", None, 1, 0, "/c"))


@pytest.fixture
def ninja_on_path(monkeypatch):
    bindir = Path(sys.executable).parent
    if not (bindir / "ninja").exists():
        pytest.fail("ninja is in requirements-control.txt: run tools/bootstrap-control.sh")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")


def test_a_real_ninja_is_stopped_at_the_limit_then_rebuilds_what_finished(tmp_path, ninja_on_path):
    objs = [f"CMakeFiles/k.dir/u{i}.cu.o" for i in range(8)]
    lines = [
        "rule cc",
        "  command = sleep 0.6 && touch $out",
        "  description = Building CUDA object $out",
    ]
    lines += [f"build {obj}: cc" for obj in objs]
    (tmp_path / "build.ninja").write_text("\n".join(lines) + "\n")
    env = dict(os.environ)
    cold = bench.run_ninja(tmp_path, 2, env, [], seconds=1.5)
    done = [bench.object_output(desc) for _, _, _, desc in cold["steps"]]
    assert cold["stopped_at_limit"] is True and cold["rc"] != 0
    assert 1 <= len(done) < len(objs) and set(done) <= set(objs)
    assert cold["steps"][-1][2] == len(objs)
    for obj in objs:
        (tmp_path / obj).unlink(missing_ok=True)
    warm = bench.run_ninja(tmp_path, 2, env, done, seconds=None)
    rebuilt = [bench.object_output(desc) for _, _, _, desc in warm["steps"]]
    assert warm["rc"] == 0 and warm["stopped_at_limit"] is False
    assert sorted(rebuilt) == sorted(done)
    assert sorted(p.name for p in (tmp_path / "CMakeFiles" / "k.dir").iterdir()) == sorted(
        Path(obj).name for obj in done
    )
