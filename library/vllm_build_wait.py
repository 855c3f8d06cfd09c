#!/usr/bin/python
"""Wait for the build that 07_build.yml started as an async job, and notice when it died."""

from __future__ import annotations

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vllm_fleet_buildlog import read_log_file
from ansible.module_utils.vllm_fleet_release import host_boot_id, live_build

DOCUMENTATION = r"""
---
module: vllm_build_wait
short_description: Wait for the async build job, failing when the build died instead of waiting
description:
  - >-
    The build runs as an Ansible async job (C(poll=0)), so it goes on when the connection
    drops. Ansible's own polling waits for the job's results file until the async timeout,
    even when the build can no longer finish (the host rebooted, the build was killed): a run
    would hang for hours.
  - >-
    Reads the job's results file every I(poll) seconds for up to I(wait) seconds. When the
    job finished, returns its result (the command's C(rc), C(stdout), C(stdout_lines),
    C(stderr)) and fails as the command would have when C(rc) is not 0.
  - >-
    While it runs, the build script's pid file (C(<wheels>/<key>.pid), C(pid boot_id), written
    once the script holds the key's build lock) says whether a build of the key is alive. A
    pid that is gone, or a boot id other than the host's, means the build died: the module
    fails at once, naming the build log; the next run builds the key again.
  - Returns C(finished=false) when I(wait) ends first, for the task's C(until) to call again.
  - >-
    Every return, finished or not and failures too, carries the build's C(progress) read from
    I(log) (module_utils/vllm_fleet_buildlog.py): its stage, ninja's step count, the recent
    rate, the time left and a one-line C(summary), which the vllm_fleet_progress callback
    prints at every retry.
options:
  results_file:
    description: The async job's results file, the C(results_file) of the async task's result.
    type: path
    required: true
  pid_file:
    description: The build script's pid file.
    type: path
    required: true
  log:
    description: The build log, named in the failure and read for C(progress).
    type: path
    required: true
  wait:
    description: Seconds to wait in this call before returning C(finished=false).
    type: int
    default: 60
  poll:
    description: Seconds between reads.
    type: int
    default: 5
  compiler_cache:
    description: >-
      The compiler cache the build was to compile through (C(vllm_source_compiler_cache), or
      C(none) for a build that compiles nothing). When the build log says that cache was off
      (it failed its health check, or its tool was missing), the finished build warns, naming
      why: the build went on uncached.
    type: str
    default: none
    choices: [sccache, ccache, none]
  settle:
    description: >-
      Seconds the job's results may take to appear once the build's pid is gone: the script
      has ended, and the command module and async_wrapper write its result a moment later (on
      a busy host, more than a moment). Only a build whose result does not appear by then
      died.
    type: int
    default: 20
  start_grace:
    description: >-
      Seconds after the job started during which a missing pid file is not yet a dead build
      (the script may still be starting).
    type: int
    default: 120
author: vllm-fleet
"""

EXAMPLES = r"""
- name: Wait for the build, noticing a build that died.
  vllm_build_wait:
    results_file: "{{ job.results_file }}"
    pid_file: /opt/vllm/wheels/1f2e3d4c5b6a7980.pid
    log: /opt/vllm/logs/build-1f2e3d4c5b6a7980.log
  register: build
  until: build.finished
  retries: 240
  delay: 0
"""

RETURN = r"""
finished:
  description: Whether the job finished (then rc, stdout, stdout_lines and stderr are set).
  type: bool
  returned: always
rc:
  description: The build script's exit status.
  type: int
  returned: when finished
stdout:
  description: The build script's standard output (its last line is the wheel).
  type: str
  returned: when finished
stdout_lines:
  description: stdout split into lines.
  type: list
  elements: str
  returned: when finished
stderr:
  description: The build script's standard error.
  type: str
  returned: when finished
progress:
  description: >-
    The build's progress read from I(log) when the module returned (vllm_fleet_buildlog's
    progress()); null while the log does not exist.
  type: dict
  returned: always
  contains:
    key:
      description: The build key (null before the script's first line).
      type: str
    mode:
      description: The build mode, C(full) or C(precompiled).
      type: str
    stage:
      description: >-
        What the build does now: starting, preparing metadata, extracting precompiled
        kernels, building the wheel, configuring, compiling, packing the wheel, wheel built,
        finished or failed.
      type: str
    elapsed_s:
      description: Seconds since the build started, to 0.1 s.
      type: float
    step:
      description: The step of ninja's last C([step/total]) line, null before one.
      type: int
    total:
      description: The total of ninja's last C([step/total]) line, null before one.
      type: int
    percent:
      description: step / total in percent, to 0.1.
      type: float
    steps_per_min:
      description: >-
        Ninja's steps per minute over the last 10 minutes; null before 10 steps.
      type: float
    eta_s:
      description: While the build runs, the estimated seconds to the compile's end, or null.
      type: int
    last_line:
      description: >-
        The log's last line without its stamp, URL credentials masked, at most 160
        characters.
      type: str
    compiler_cache:
      description: >-
        The compiler cache's part in the build (vllm_fleet_buildlog's cache_figures()):
        launcher (null without one), hits, misses and errors of this build, hit_rate_pct,
        and off_reason, why the build ran without a cache.
      type: dict
    summary:
      description: >-
        One line of these, such as "build 0ddf074ce686cbc9 (full): compiling 167/393
        (42.5%), 15.9 steps/min, about 14 min left, 11 min 36 s in".
      type: str
  sample:
    key: 0ddf074ce686cbc9
    mode: full
    stage: compiling
    elapsed_s: 696.1
    step: 167
    total: 393
    percent: 42.5
    steps_per_min: 15.9
    eta_s: 852
    last_line: >-
      [167/393] Building CXX object
      vllm-flash-attn/CMakeFiles/_vllm_fa3_C.dir/hopper/flash_api_torch_lib.cpp.o
    summary: >-
      build 0ddf074ce686cbc9 (full): compiling 167/393 (42.5%), 15.9 steps/min,
      about 14 min left, 11 min 36 s in
"""


def read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def job_result(results_file: str):
    """The job's final result, or None while it runs (async_wrapper's 'started' record)."""
    text = read_text(results_file)
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None  # being written
    return None if data.get("started") and not data.get("finished") else data


def build_alive(pid_file: str, since: float, grace: int, now: float, boot_id: str) -> str:
    """'' while a build of the key may be alive, else why it is not. The pid file names the
    build that holds the key's lock: this job's, or an earlier one's that this job's script
    waits for (a run whose connection dropped left it running)."""
    if live_build(pid_file, boot_id):
        return ""
    text = read_text(pid_file).split()
    if text and os.path.getmtime(pid_file) >= since - 1:  # this job's build, and it is gone
        pid, boot = text[0], text[1] if len(text) > 1 else ""
        if boot and boot != boot_id:
            return f"the build (pid {pid}) ran in an earlier boot of the host: it restarted"
        return f"the build (pid {pid}) is gone: it was killed"
    if now - since < grace:
        return ""
    return f"no build of the key ran within {grace} s of the job's start"


def build_progress(log: str, running: bool):
    """The build's progress from its log (None while there is none). While it runs, its
    elapsed time counts on from the log's last write. Progress is for display: a log it cannot
    read never fails the wait."""
    try:
        return read_log_file(log, now=time.time() if running else None)
    except Exception:  # a display aid must not end the wait for a build of hours
        return None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "results_file": {"type": "path", "required": True},
            "pid_file": {"type": "path", "required": True},
            "log": {"type": "path", "required": True},
            "wait": {"type": "int", "default": 60},
            "poll": {"type": "int", "default": 5},
            "start_grace": {"type": "int", "default": 120},
            "settle": {"type": "int", "default": 20},
            "compiler_cache": {
                "type": "str",
                "default": "none",
                "choices": ["sccache", "ccache", "none"],
            },
        },
        supports_check_mode=False,
    )
    p = module.params
    if not os.path.exists(p["results_file"]):
        module.fail_json(
            msg=f"The build job's results file {p['results_file']} is gone: the host restarted "
            f"or its async directory was cleaned while the build ran; see {p['log']}. The next "
            "run builds the key again.",
            progress=build_progress(p["log"], False),
        )
    since = os.path.getmtime(p["results_file"])
    since = min(since, os.stat(p["results_file"]).st_ctime)
    boot_id = host_boot_id()
    deadline = time.monotonic() + p["wait"]
    settle_deadline = None
    while True:
        result = job_result(p["results_file"])
        if result is not None:
            out = {k: result.get(k) for k in ("rc", "stdout", "stdout_lines", "stderr")}
            if out["stdout_lines"] is None:
                out["stdout_lines"] = (out["stdout"] or "").splitlines()
            out["progress"] = build_progress(p["log"], False)
            off = ((out["progress"] or {}).get("compiler_cache") or {}).get("off_reason")
            if off and p["compiler_cache"] != "none":
                module.warn(
                    f"The build ran without the compiler cache {p['compiler_cache']}: {off}. It "
                    "compiled everything; fix the cache (vllm_source_compiler_cache_env, the "
                    "cache folder) for the next build to reuse its units."
                )
            if result.get("rc") != 0 or result.get("failed"):
                module.fail_json(
                    msg=result.get("msg") or "non-zero return code", finished=True, **out
                )
            module.exit_json(changed=True, finished=True, **out)
        dead = build_alive(p["pid_file"], since, p["start_grace"], time.time(), boot_id)
        if dead and settle_deadline is None:
            # The script may have just ended: its result is on its way. Look again until
            # `settle` is over before calling the build dead.
            settle_deadline = time.monotonic() + p["settle"]
        if dead and time.monotonic() < settle_deadline:
            time.sleep(min(0.5, p["poll"]))
            continue
        if dead:
            module.fail_json(
                finished=True,
                msg=f"The build stopped without finishing: {dead}. See {p['log']}; the next "
                "run builds the key again (the host keeps its current release).",
                progress=build_progress(p["log"], False),
            )
        if time.monotonic() >= deadline:
            module.exit_json(changed=False, finished=False, progress=build_progress(p["log"], True))
        time.sleep(p["poll"])


if __name__ == "__main__":
    main()
