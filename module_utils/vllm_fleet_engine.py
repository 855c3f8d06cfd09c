"""Running a vLLM engine in a child process and leaving nothing of it behind.

vllm_smoke (the user's models) and vllm_verify (an engine-start check with dummy weights)
both start `vllm.LLM` in a child of the venv's Python. An engine starts processes of its own
(the `VLLM::EngineCore` process, tensor-parallel workers) that each hold GPU memory: a child
that exits without shutting its engine down leaves them running, reparented to init, and the
next engine on that GPU fails for memory. So every child here runs in a process group of its
own and carries a marker in its environment; once it returns, every process of that group and
every process whose environment carries the marker (a descendant that left the group) is
ended, and the module reports which ones it had to end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import uuid
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ansible.module_utils.vllm_fleet_child import CHILD_HELPERS, child_report

MARKER_VARIABLE = "VLLM_FLEET_ENGINE_RUN"
CREDENTIALS_RE = re.compile(r"//[^/@\s]+@")
SECRET_NAME_RE = re.compile(r"(TOKEN|SECRET|PASSW|KEY|CREDENTIAL|AUTH)", re.I)
# "(EngineCore_DP0 pid=123) " that vLLM puts before each line of an engine process, and the
# "ERROR 12-01 19:22:10 [core.py:708] " of its log format.
_PROCESS_PREFIX_RE = re.compile(r"^\([^()]*? pid=\d+\) ?")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_LOG_PREFIX_RE = re.compile(
    r"^(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) \d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \[[^\]]*\] ?"
)
TRACEBACK_HEAD = "Traceback (most recent call last):"

# Runs as `<venv python> -I -c GENERATE_SCRIPT` with the run as JSON on stdin; the report is
# the last stdout line (vLLM's logging goes to stderr). The engine is shut down before the
# process exits, so its EngineCore process ends with it.
GENERATE_SCRIPT = (
    CHILD_HELPERS
    + r"""
import json, os, sys, time

def resolved_quantization(llm):
    engine = llm.llm_engine
    for owner in (getattr(engine, "vllm_config", None), engine):
        config = getattr(owner, "model_config", None)
        if config is not None:
            value = getattr(config, "quantization", None)
            return str(value) if value else None
    return None

def expected_ids(llm, prompt, expect):
    # The ids the model must generate: those of prompt + expect past the prompt's own ids.
    tokenizer = llm.get_tokenizer()
    head, full = tokenizer.encode(prompt), tokenizer.encode(prompt + expect)
    if list(full[:len(head)]) != list(head):
        return None
    return [int(i) for i in full[len(head):]]

def shutdown(llm):
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        core.shutdown()

def main():
    run = json.loads(sys.stdin.read())
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    report = {}
    llm = None
    try:
        from vllm import LLM, SamplingParams
        started = time.monotonic()
        options = dict(model=run["path"], tensor_parallel_size=run["tensor_parallel_size"],
                       max_model_len=run["max_model_len"],
                       gpu_memory_utilization=run["gpu_memory_utilization"],
                       enforce_eager=True, seed=0)
        if run.get("quantization"):
            options["quantization"] = run["quantization"]
        if run.get("load_format"):
            options["load_format"] = run["load_format"]
        if run.get("prompt_token_ids"):
            options["skip_tokenizer_init"] = True
        llm = LLM(**options)
        report["load_s"] = round(time.monotonic() - started, 2)
        report["quantization"] = resolved_quantization(llm)
        params = SamplingParams(max_tokens=run["max_tokens"], temperature=0.0, ignore_eos=True)
        prompt = ({"prompt_token_ids": run["prompt_token_ids"]} if run.get("prompt_token_ids")
                  else run["prompt"])
        started = time.monotonic()
        outputs = llm.generate([prompt], params)
        report["generate_s"] = round(time.monotonic() - started, 4)
        completion = outputs[0].outputs[0]
        report["tokens"] = len(completion.token_ids)
        report["token_ids"] = [int(i) for i in completion.token_ids]
        report["text"] = completion.text or ""
        if run.get("expect"):
            report["expected_ids"] = expected_ids(llm, run["prompt"], run["expect"])
    except BaseException as exc:
        report["error"] = exception_line(exc)
    try:
        if llm is not None:
            shutdown(llm)
    except BaseException as exc:
        report["shutdown_error"] = exception_line(exc)
    sys.stdout.flush()
    out.write(json.dumps(report) + "\n")
    out.flush()
    os._exit(0)

if __name__ == "__main__":
    main()
"""
)


def mask_credentials(text: str) -> str:
    """Mask the user:password@ part of every URL in a text."""
    return CREDENTIALS_RE.sub("//***@", text)


def secret_values(environment: Dict[str, Any]) -> List[str]:
    """Return the values of the variables whose names say they hold a secret (tokens, keys,
    passwords), so only those are masked in a module's output: counts such as "0" and "1"
    elsewhere in the result stay readable."""
    return [
        str(value)
        for name, value in environment.items()
        if SECRET_NAME_RE.search(str(name)) and str(value)
    ]


def strip_log_prefix(line: str) -> str:
    """Drop vLLM's process prefix and log-record prefix from one stderr line."""
    line = _PROCESS_PREFIX_RE.sub("", _ANSI_RE.sub("", line.rstrip("\n")))
    return _LOG_PREFIX_RE.sub("", line)


def root_cause(stderr: str, lines: int = 3) -> Optional[str]:
    """Return the end of the FIRST traceback in a child's stderr, credentials masked.

    vLLM reports an engine that died at start as "Engine core initialization failed. See root
    cause above": the cause is the traceback the engine process printed before, often with
    later, chained tracebacks after it. The first traceback's last frame and exception line
    name what really failed (e.g. a missing package). None when stderr holds no traceback.
    """
    text = [strip_log_prefix(line) for line in stderr.splitlines()]
    try:
        start = next(i for i, line in enumerate(text) if line.strip() == TRACEBACK_HEAD)
    except StopIteration:
        return None
    block: List[str] = []
    for line in text[start + 1 :]:
        if not line.strip():
            continue
        block.append(line)
        if not line.startswith((" ", "\t")) and not line.startswith("^"):
            break  # the exception line ends the traceback
    kept = [line.strip() for line in block[-lines:]]
    return mask_credentials(" | ".join(kept)) if kept else None


def engine_report(what: str, rc: int, stdout: str, stderr: str) -> Dict[str, Any]:
    """Return an engine child's JSON report, or an error report from its exit and output.

    A vLLM error that only points elsewhere ("See root cause above") gets the first
    traceback's end from stderr appended: the engine process printed the real cause there.
    """
    report, error = child_report(what, rc, stdout, stderr)
    if error:
        report = {"error": error}
    cause = root_cause(stderr) if report.get("error") else None
    if cause and cause not in report["error"]:
        report["error"] = f"{report['error']} (root cause: {cause})"
    return report


def _environ_has(pid: int, marker: str) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return marker.encode() in handle.read().split(b"\0")
    except OSError:
        return False


def _process_group(pid: int) -> Optional[int]:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def leftover_processes(pgid: int, marker: str, pids: Optional[Iterable[int]] = None) -> List[int]:
    """Return the live processes of a run: in its process group, or carrying its marker."""
    if pids is None:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    own = os.getpid()
    found = []
    for pid in pids:
        if pid == own or _zombie(pid):
            continue  # a zombie has ended already; its parent reaps it
        if _process_group(pid) == pgid or _environ_has(pid, marker):
            found.append(pid)
    return sorted(found)


def _command_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            parts = handle.read().split(b"\0")
    except OSError:
        return "?"
    return " ".join(p.decode(errors="replace") for p in parts if p)[:120] or "?"


def end_processes(
    pgid: int, marker: str, grace: float = 10.0, settle: float = 5.0
) -> List[Dict[str, Any]]:
    """End every process of a run that is still alive `settle` seconds after the child
    returned (an engine process finishing its own shutdown gets that long), with SIGTERM, then
    SIGKILL after `grace` seconds; return the ones it had to end, as {pid, command}."""
    deadline = time.monotonic() + settle
    found = leftover_processes(pgid, marker)
    while found and time.monotonic() < deadline:
        time.sleep(0.2)
        found = leftover_processes(pgid, marker)
    ended = [{"pid": pid, "command": _command_of(pid)} for pid in found]
    for pid in found:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while found and time.monotonic() < deadline:
        time.sleep(0.2)
        found = [pid for pid in found if os.path.exists(f"/proc/{pid}") and not _zombie(pid)]
    for pid in found:
        _signal(pid, signal.SIGKILL)
    return ended


def _signal(pid: int, number: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, number)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True


def run_child(
    argv: List[str],
    request: Dict[str, Any],
    environment: Dict[str, str],
    timeout: int,
) -> Tuple[Optional[int], str, str, List[Dict[str, Any]]]:
    """Run one child with `request` as JSON on stdin; return (rc, stdout, stderr, ended).

    rc is None when the child ran past `timeout` seconds (0: no limit) and was killed.
    `ended` lists the processes of the run that were still alive when it returned and were
    ended here (an engine that did not shut down, workers); empty when it cleaned up itself.
    """
    marker = f"{MARKER_VARIABLE}={uuid.uuid4().hex}"
    env = dict(os.environ)
    env.update(environment)
    name, _, value = marker.partition("=")
    env[name] = value
    # Files, not pipes: an engine process that outlives the child inherits its stdout and
    # stderr, and reading a pipe to its end would wait for that process too.
    with contextlib.ExitStack() as files:
        stdin, stdout, stderr = (files.enter_context(tempfile.TemporaryFile()) for _ in range(3))
        stdin.write(json.dumps(request).encode())
        stdin.seek(0)
        child = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd="/",
            start_new_session=True,
        )
        rc: Optional[int]
        try:
            rc = child.wait(timeout=timeout or None)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            rc = None
        ended = end_processes(child.pid, marker)
        stdout.seek(0)
        stderr.seek(0)
        out, err = stdout.read(), stderr.read()
    return rc, out.decode(errors="replace"), err.decode(errors="replace"), ended
