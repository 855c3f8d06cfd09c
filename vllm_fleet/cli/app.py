"""vllm-fleet: run the project's playbooks on a fleet, watch them live, get one report.

    vllm-fleet build [-i INV] [-l LIMIT] [--version TAG] [-e k=v ...]
    vllm-fleet status [-i INV] [-l LIMIT]
    vllm-fleet rollback [--to KEY]
    vllm-fleet check-checkpoint HOST PATH...
    vllm-fleet serve-check PATH [--image FILE ...] [--prompt TEXT] [--check-only] [-l LIMIT]
    vllm-fleet stage sources|wheelhouse ...
    vllm-fleet replay RUN_DIR

Each command but `stage wheelhouse` runs a playbook through ansible-runner (runner.py);
`replay` shows a past run again from its artifacts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any, Dict, List, Optional

import typer
import yaml
from rich.console import Console

from . import report
from .display import JsonView, LineView, LiveView
from .model import Fleet, phase_titles
from .runner import REPO, read_events, run_playbook, runs_dir

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Build vLLM from source on a fleet of GPU hosts, watch it live, get one report.",
)
stage_app = typer.Typer(no_args_is_help=True, help="Stage offline inputs on the controller.")
app.add_typer(stage_app, name="stage")

InventoryOpt = typer.Option(None, "-i", "--inventory", help="Inventory file (repeatable).")
LimitOpt = typer.Option(None, "-l", "--limit", help="Hosts or groups to run on.")
ExtraOpt = typer.Option(
    None, "-e", "--extra-vars", help="k=v, a YAML/JSON mapping or @file (repeatable)."
)
JsonOpt = typer.Option(False, "--json", help="One JSON object per event, the report last.")
PlainOpt = typer.Option(False, "--plain", help="A line per event even on a terminal.")
ReportOpt = typer.Option(None, "--report", help="Write the JSON report here.")
MarkdownOpt = typer.Option(None, "--markdown", help="Also write the report as Markdown.")
SerialOpt = typer.Option(
    None, "--serial", help="Hosts per batch (vllm_source_serial: a number or a percentage)."
)


def parse_extra_vars(values: Optional[List[str]]) -> Dict[str, Any]:
    """ansible-playbook's -e forms: k=v (strings, several per value), a mapping, @file."""
    merged: Dict[str, Any] = {}
    for value in values or []:
        text = value.strip()
        if text.startswith("@"):
            loaded = yaml.safe_load(Path(text[1:]).expanduser().read_text(encoding="utf-8"))
        elif text.startswith("{"):
            loaded = yaml.safe_load(text)
        else:
            loaded = {}
            for pair in text.split():
                key, sep, val = pair.partition("=")
                if not sep or not key:
                    raise typer.BadParameter(
                        f"{pair!r} is not k=v, a mapping or @file", param_hint="-e"
                    )
                loaded[key] = val
        if not isinstance(loaded, dict):
            raise typer.BadParameter(f"{value!r} is not a mapping", param_hint="-e")
        merged.update(loaded)
    return merged


# The commands' own options -> the role variables they set (over -e's).
OPTION_VARS = {
    "version": "vllm_source_version",
    "serial": "vllm_source_serial",
    "to": "vllm_source_rollback_to",
}


def command_vars(extra_vars: Optional[List[str]], **options: Optional[str]) -> Dict[str, Any]:
    """-e's variables, then those of the options given (--version, --serial, --to)."""
    merged = parse_extra_vars(extra_vars)
    for name, value in options.items():
        if value:
            merged[OPTION_VARS[name]] = value
    return merged


def new_fleet() -> Fleet:
    """A Fleet that names each phase as the role's main.yml does."""
    main = REPO / "roles" / "vllm_source" / "tasks" / "main.yml"
    return Fleet(phase_titles(main.read_text(encoding="utf-8")) if main.is_file() else {})


def make_console() -> Console:
    """The terminal's width on a terminal; wide enough for the report in a log."""
    probe = Console()
    return Console(highlight=False, width=None if probe.is_terminal else 240)


def _view(json_out: bool, plain: bool, console: Console, title: str, replay: bool = False):
    if json_out:
        return JsonView()
    if plain or not console.is_terminal:
        return LineView()
    return LiveView(console, title, replay=replay)


def _finish(
    fleet: Fleet,
    command: str,
    result_info: Dict[str, Any],
    *,
    json_out: bool,
    console: Console,
    columns=report.COLUMNS,
    report_path: Optional[Path],
    markdown_path: Optional[Path],
    default_dir: Optional[Path],
) -> int:
    """Print and write the report; the exit code: non-zero when a host failed or was
    unreachable, or the run itself failed."""
    rows = report.rows(fleet)
    bad = report.failed(rows)
    rc = int(result_info.get("rc") or 0)
    code = rc or (2 if bad else 0)
    if not rows and result_info.get("status") != "successful":
        code = code or 1
    document = {
        "command": command,
        "playbook": fleet.playbook,
        "started": fleet.started,
        "ended": fleet.ended,
        "exit_code": code,
        "hosts": rows,
        "failed_hosts": bad,
        **result_info,
    }
    paths = []
    target = report_path or (default_dir / "report.json" if default_dir else None)
    if target:
        target.write_text(report.as_json(document), encoding="utf-8")
        paths.append(str(target))
    if markdown_path:
        markdown_path.write_text(report.markdown(rows, columns), encoding="utf-8")
        paths.append(str(markdown_path))
    if json_out:
        print(json.dumps({"type": "report", **document}, sort_keys=True, default=str))
        return code
    if rows:
        console.print(report.table(rows, columns, title=f"vllm-fleet {command}"))
    elif result_info.get("stdout_tail"):  # the run reached no host: say what Ansible said
        console.print(result_info["stdout_tail"], markup=False, highlight=False)
    summary = f"{len(rows) - len(bad)} of {len(rows)} hosts ok"
    if bad:
        summary += f"; failed or unreachable: {', '.join(bad)}"
    console.print(summary + (f"; report: {', '.join(paths)}" if paths else ""), markup=False)
    return code


def execute(
    command: str,
    playbook: str,
    *,
    inventory: Optional[List[str]],
    limit: Optional[str],
    extravars: Dict[str, Any],
    json_out: bool,
    plain: bool,
    report_path: Optional[Path],
    markdown_path: Optional[Path],
    columns=report.COLUMNS,
) -> int:
    console = make_console()
    fleet = new_fleet()
    view = _view(json_out, plain, console, f"vllm-fleet {command}")
    view.start(fleet)

    def on_event(event: Dict[str, Any]) -> None:
        for notice in fleet.apply(event):
            view.notice(notice)

    try:
        result = run_playbook(
            playbook,
            name=command,
            inventories=inventory or [],
            limit=limit,
            extravars=extravars,
            on_event=on_event,
        )
    finally:
        view.stop()
    info = {
        "status": result.status,
        "rc": result.rc,
        "artifacts": str(result.artifact_dir),
        "stdout_tail": result.stdout_tail if result.rc and not fleet.hosts else "",
    }
    return _finish(
        fleet,
        command,
        info,
        json_out=json_out,
        console=console,
        columns=columns,
        report_path=report_path,
        markdown_path=markdown_path,
        default_dir=result.artifact_dir if result.artifact_dir.is_dir() else None,
    )


@app.command()
def build(
    inventory: Optional[List[str]] = InventoryOpt,
    limit: Optional[str] = LimitOpt,
    version: Optional[str] = typer.Option(None, "--version", help="vLLM tag, e.g. v0.30.0."),
    serial: Optional[str] = SerialOpt,
    extra_vars: Optional[List[str]] = ExtraOpt,
    json_out: bool = JsonOpt,
    plain: bool = PlainOpt,
    report_path: Optional[Path] = ReportOpt,
    markdown_path: Optional[Path] = MarkdownOpt,
) -> None:
    """Build, install, verify and switch vLLM on the hosts (site.yml)."""
    extravars = command_vars(extra_vars, version=version, serial=serial)
    raise typer.Exit(
        execute(
            "build",
            "site.yml",
            inventory=inventory,
            limit=limit,
            extravars=extravars,
            json_out=json_out,
            plain=plain,
            report_path=report_path,
            markdown_path=markdown_path,
        )
    )


@app.command()
def status(
    inventory: Optional[List[str]] = InventoryOpt,
    limit: Optional[str] = LimitOpt,
    extra_vars: Optional[List[str]] = ExtraOpt,
    json_out: bool = JsonOpt,
    plain: bool = PlainOpt,
    report_path: Optional[Path] = ReportOpt,
    markdown_path: Optional[Path] = MarkdownOpt,
) -> None:
    """What each host runs now, from its current release's stamp (read-only)."""
    raise typer.Exit(
        execute(
            "status",
            "playbooks/status.yml",
            inventory=inventory,
            limit=limit,
            extravars=parse_extra_vars(extra_vars),
            json_out=json_out,
            plain=plain,
            report_path=report_path,
            markdown_path=markdown_path,
            columns=report.STATUS_COLUMNS,
        )
    )


@app.command()
def rollback(
    to: Optional[str] = typer.Option(None, "--to", help="Release key; default the previous."),
    inventory: Optional[List[str]] = InventoryOpt,
    limit: Optional[str] = LimitOpt,
    serial: Optional[str] = SerialOpt,
    extra_vars: Optional[List[str]] = ExtraOpt,
    json_out: bool = JsonOpt,
    plain: bool = PlainOpt,
    report_path: Optional[Path] = ReportOpt,
    markdown_path: Optional[Path] = MarkdownOpt,
) -> None:
    """Switch current back to the previous verified release, or to --to KEY, verified first."""
    extravars = command_vars(extra_vars, to=to, serial=serial)
    raise typer.Exit(
        execute(
            "rollback",
            "playbooks/rollback.yml",
            inventory=inventory,
            limit=limit,
            extravars=extravars,
            json_out=json_out,
            plain=plain,
            report_path=report_path,
            markdown_path=markdown_path,
        )
    )


@app.command("check-checkpoint")
def check_checkpoint(
    host: Annotated[str, typer.Argument(help="The inventory host (in gpu_hosts) to check on.")],
    paths: Annotated[List[str], typer.Argument(help="Checkpoint directories on that host.")],
    inventory: Optional[List[str]] = InventoryOpt,
    extra_vars: Optional[List[str]] = ExtraOpt,
    json_out: bool = JsonOpt,
    plain: bool = PlainOpt,
    report_path: Optional[Path] = ReportOpt,
) -> None:
    """How the host's current vLLM reads ModelOpt checkpoints (vllm_verify's check)."""
    extravars = parse_extra_vars(extra_vars)
    extravars["vllm_source_verify_checkpoints"] = list(paths)
    code = execute(
        "check-checkpoint",
        "playbooks/check_checkpoint.yml",
        inventory=inventory,
        limit=host,
        extravars=extravars,
        json_out=json_out,
        plain=plain,
        report_path=report_path,
        markdown_path=None,
        columns=CHECK_COLUMNS,
    )
    raise typer.Exit(code)


@app.command("serve-check")
def serve_check(
    path: Annotated[str, typer.Argument(help="The checkpoint directory on every host.")],
    image: Annotated[
        Optional[List[str]],
        typer.Option("--image", help="Image file on the hosts (repeatable); none: a test pattern."),
    ] = None,
    prompt: Annotated[
        Optional[str], typer.Option("--prompt", help="The text after the images.")
    ] = None,
    unquantized: Annotated[
        bool, typer.Option("--unquantized", help="Run a checkpoint that is not quantized.")
    ] = False,
    check_only: Annotated[
        bool, typer.Option("--check-only", help="Only the checks: load no weight.")
    ] = False,
    inventory: Optional[List[str]] = InventoryOpt,
    limit: Optional[str] = LimitOpt,
    extra_vars: Optional[List[str]] = ExtraOpt,
    json_out: bool = JsonOpt,
    plain: bool = PlainOpt,
    report_path: Optional[Path] = ReportOpt,
    markdown_path: Optional[Path] = MarkdownOpt,
) -> None:
    """Each host's current vLLM runs a vision-language checkpoint (playbooks/serve_check.yml)."""
    extravars = parse_extra_vars(extra_vars)
    extravars["vllm_source_serve_check_model"] = path
    if image:
        extravars["vllm_source_serve_check_images"] = list(image)
    if prompt is not None:
        extravars["vllm_source_serve_check_prompt"] = prompt
    if unquantized:
        extravars["vllm_source_serve_check_unquantized"] = True
    if check_only:
        extravars["vllm_source_serve_check_generate"] = False
    code = execute(
        "serve-check",
        "playbooks/serve_check.yml",
        inventory=inventory,
        limit=limit,
        extravars=extravars,
        json_out=json_out,
        plain=plain,
        report_path=report_path,
        markdown_path=markdown_path,
        columns=SERVE_COLUMNS,
    )
    raise typer.Exit(code)


SERVE_COLUMNS = (
    ("host", "Host"),
    ("vllm", "vLLM"),
    ("serve", "Served"),
    ("result", "Result"),
    ("reason", "Reason"),
)


CHECK_COLUMNS = (
    ("host", "Host"),
    ("vllm", "vLLM"),
    ("checkpoints", "Checkpoints"),
    ("result", "Result"),
    ("reason", "Reason"),
)


@stage_app.command("sources")
def stage_sources(
    version: Optional[str] = typer.Option(None, "--version", help="vLLM tag, e.g. v0.30.0."),
    repo_url: Optional[str] = typer.Option(None, "--repo-url", help="vLLM's repository."),
    stage_dir: Annotated[
        Optional[Path], typer.Option("--stage-dir", help="Where to stage.")
    ] = None,
    extra_vars: Optional[List[str]] = ExtraOpt,
    json_out: bool = JsonOpt,
    plain: bool = PlainOpt,
) -> None:
    """Stage the sources a CUDA build fetches (playbooks/stage_sources.yml, on this host)."""
    extravars = parse_extra_vars(extra_vars)
    for key, value in (
        ("vllm_source_version", version),
        ("vllm_source_repo_url", repo_url),
        ("vllm_source_stage_dir", str(stage_dir.resolve()) if stage_dir else None),
    ):
        if value:
            extravars[key] = value
    raise typer.Exit(
        execute(
            "stage-sources",
            "playbooks/stage_sources.yml",
            inventory=None,
            limit=None,
            extravars=extravars,
            json_out=json_out,
            plain=plain,
            report_path=None,
            markdown_path=None,
            columns=(("host", "Host"), ("result", "Result"), ("reason", "Reason")),
        )
    )


@stage_app.command(
    "wheelhouse", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def stage_wheelhouse(ctx: typer.Context) -> None:
    """The offline wheelhouse: python -m vllm_fleet.wheelhouse build|check|hash ARGS."""
    from vllm_fleet import wheelhouse

    raise typer.Exit(wheelhouse.main(list(ctx.args)))


@app.command()
def replay(
    run_dir: Annotated[
        Optional[Path], typer.Argument(help="A run's folder; default the newest.")
    ] = None,
    speed: float = typer.Option(0.0, "--speed", help="Replay at this many times real time."),
    json_out: bool = JsonOpt,
    plain: bool = PlainOpt,
    report_path: Optional[Path] = ReportOpt,
    markdown_path: Optional[Path] = MarkdownOpt,
) -> None:
    """Show a past run again from its artifacts (<cache>/runs/<ident>), with its report."""
    if run_dir is None:
        candidates = sorted(p for p in runs_dir().iterdir() if (p / "job_events").is_dir())
        if not candidates:
            raise typer.BadParameter(f"no runs under {runs_dir()}", param_hint="RUN_DIR")
        run_dir = candidates[-1]
    events = read_events(run_dir)
    if not events:
        raise typer.BadParameter(f"{run_dir} holds no job_events", param_hint="RUN_DIR")
    console = make_console()
    fleet = new_fleet()
    command = run_dir.name.split("-")[1] if "-" in run_dir.name else "run"
    view = _view(json_out, plain, console, f"vllm-fleet {command} (replay)", replay=True)
    view.start(fleet)
    previous = None
    try:
        for event in events:
            for notice in fleet.apply(event):
                view.notice(notice)
            at = fleet.ended
            if speed > 0 and previous is not None and at is not None:
                time.sleep(max(0.0, min(5.0, (at - previous) / speed)))
            previous = at
    finally:
        view.stop()
    rc_file = run_dir / "rc"
    rc = int(rc_file.read_text().strip() or 0) if rc_file.is_file() else 0
    columns = report.STATUS_COLUMNS if command == "status" else report.COLUMNS
    raise typer.Exit(
        _finish(
            fleet,
            command,
            {"status": "replayed", "rc": rc, "artifacts": str(run_dir)},
            json_out=json_out,
            console=console,
            columns=columns,
            report_path=report_path,
            markdown_path=markdown_path,
            default_dir=None,
        )
    )


def main() -> None:
    app(prog_name="vllm-fleet")


if __name__ == "__main__":
    main()
