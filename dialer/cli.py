"""The command line: parse, wire, and turn every DialerError into one clear line and an exit code.

Every module a command needs is imported inside that command: `dialer --help` and a cron line
pay for the interpreter and the CLI library only (tests/test_import_cost.py keeps it so).
"""

from __future__ import annotations

import gc
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated, TextIO, TypeVar

import typer

from dialer.cli_common import (
    LOGGING,
    CheckpointOpt,
    ConfigArg,
    InputOpt,
    JsonOpt,
    OutputOpt,
    command_settings,
    guarded,
    usage,
)
from dialer.errors import AlreadyRunning, DialerError
from dialer.exits import ExitCode
from dialer.init_cli import init, version_command
from dialer.mock_cli import mock_server
from dialer.upkeep_cli import agents, campaigns, collect, purge

app = typer.Typer(
    name="dialer",
    help="Dial a lead list through the KyzoAI placeCall API: paced, resumable, at most once per lead.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
)

T = TypeVar("T")


def _print_version(shown: bool) -> None:
    if shown:
        from dialer import __version__

        typer.echo(f"kyzo-dialer {__version__}")
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _global(
    ctx: typer.Context,
    log_format: Annotated[
        str,
        typer.Option("--log-format", help="auto (console on a TTY, JSON otherwise), console or json."),
    ] = "auto",
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
    log_file: Annotated[
        Path | None, typer.Option("--log-file", help="Write logs to this file instead of stderr.")
    ] = None,
    log_pii: Annotated[
        bool, typer.Option("--log-pii", help="DEBUG ONLY: write full phone numbers into the logs.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Dial a lead list through the KyzoAI voice-agent API."""
    os.umask(0o077)  # every file and folder the dialer creates is private to its user
    if log_format not in ("auto", "console", "json"):
        raise typer.BadParameter("must be auto, console or json", param_hint="--log-format")
    if log_level.lower() not in ("debug", "info", "warning", "error"):
        raise typer.BadParameter("must be debug, info, warning or error", param_hint="--log-level")
    stream = _open_log_file(log_file) if log_file else None
    if stream is not None:
        ctx.call_on_close(stream.close)

    def start_logging() -> None:
        from dialer import logs

        logs.configure(log_format, log_level.lower(), stream, log_file)  # type: ignore[arg-type]
        logs.set_log_pii(log_pii)
        if log_pii:
            logs.get_logger().warning(
                "log_pii_enabled",
                message="--log-pii: full phone numbers will be written to the logs; do not use in production",
            )

    # A command's own --help exits before its body: it must not pay for the logging stack.
    LOGGING[:] = [start_logging]


def _open_log_file(path: Path) -> TextIO:
    if path.suffix.lower() in (".csv", ".parquet", ".toml", ".db"):
        # `--log-file leads.csv` would append JSON lines to a lead list (or a config).
        raise typer.BadParameter(f"{path} looks like a data file, not a log; use e.g. dialer.log")
    try:
        return path.open("a", encoding="utf-8", buffering=1)
    except OSError as exc:
        raise typer.BadParameter(f"cannot open {path}: {exc.strerror or exc}") from None


@app.command()
def run(
    config: ConfigArg,
    input_path: InputOpt = None,
    output: OutputOpt = None,
    checkpoint: CheckpointOpt = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Send at most N leads in this run.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Build and check every request; send nothing.")
    ] = False,
    calls_per_second: Annotated[
        float | None, typer.Option("--calls-per-second", help="Overrides limits.calls_per_second.")
    ] = None,
    max_concurrency: Annotated[
        int | None, typer.Option("--max-concurrency", help="Overrides limits.max_concurrency.")
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Send the failed leads again.")
    ] = False,
    redial_unknown: Annotated[
        bool,
        typer.Option("--redial-unknown", help="Send leads whose outcome is unknown again (asks first)."),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    new_campaign: Annotated[
        bool,
        typer.Option("--new-campaign", help="Set a checkpoint of another campaign aside and start afresh."),
    ] = False,
    no_progress: Annotated[
        bool, typer.Option("--no-progress", help="No progress bar, even on a TTY.")
    ] = False,
    ignore_calling_hours: Annotated[
        bool,
        typer.Option(
            "--ignore-calling-hours", help="Dial outside the calling_hours window (for tests only)."
        ),
    ] = False,
    collect_outcomes: Annotated[
        bool, typer.Option("--collect", help="Receive call outcomes during the run (see dialer collect).")
    ] = False,
    wait_outcomes: Annotated[
        str | None,
        typer.Option(
            "--wait-outcomes",
            metavar="DURATION",
            help='After the last call, wait for the outcome of every placed lead, at most this long ("10m").',
        ),
    ] = None,
) -> None:
    """Dial every lead of the list; resumes from the checkpoint by default."""
    from dialer.campaign import RunOptions, run_campaign
    from dialer.logs import log_path
    from dialer.notify import notify_failure
    from dialer.printing import print_summary

    def body() -> int:
        settings = command_settings(
            config,
            input_path=input_path,
            output_path=output,
            checkpoint_path=checkpoint,
            limit_overrides={
                "calls_per_second": calls_per_second,
                "max_concurrency": max_concurrency,
            },
        )
        if redial_unknown and not yes:
            if not sys.stdin.isatty():
                raise usage("--redial-unknown may call people twice: add --yes to confirm without a TTY")
            if not typer.confirm(
                "Leads with an unknown outcome may already have been called. Call them again?",
                default=False,
            ):
                raise usage("not confirmed; nothing was sent")
        argv = _run_argv(config, input_path, output, checkpoint)
        limited = [*argv, "--limit", str(limit)] if limit is not None else argv
        options = RunOptions(
            limit=limit,
            dry_run=dry_run,
            retry_failed=retry_failed,
            redial_unknown=redial_unknown,
            new_campaign=new_campaign,
            progress=not no_progress and sys.stderr.isatty(),
            command=shlex.join(limited),
            resume_command=shlex.join(argv),
            ignore_calling_hours=ignore_calling_hours,
            collect=collect_outcomes,
            log_file=log_path(),
            wait_outcomes_s=_duration(wait_outcomes, "--wait-outcomes") if wait_outcomes else None,
        )
        try:
            summary = run_campaign(settings, options)
        except AlreadyRunning:
            raise  # the run that holds the checkpoint will report its own end
        except DialerError as exc:
            if not dry_run:
                notify_failure(settings, exc.exit_code, str(exc))
            raise
        except Exception as exc:
            if not dry_run:
                notify_failure(settings, ExitCode.BUG, f"internal error: {type(exc).__name__}")
            raise
        print_summary(summary)
        return summary.exit_code

    raise typer.Exit(guarded(body))


@app.command()
def validate(
    config: ConfigArg,
    input_path: InputOpt = None,
    as_json: JsonOpt = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="Do not ask the API whether the agent exists.")
    ] = False,
) -> None:
    """Preflight: read and check the list and config, show what would be sent; sends no call."""
    from dialer.preflight import validate_campaign
    from dialer.printing import print_validation

    def body() -> int:
        settings = command_settings(config, input_path=input_path)
        report = validate_campaign(settings, offline=offline)
        if as_json:
            typer.echo(json.dumps(report.as_dict(), indent=2, default=str))
        else:
            print_validation(report)
        return ExitCode.OK if report.ok else ExitCode.USAGE

    raise typer.Exit(guarded(body))


@app.command()
def status(config: ConfigArg, checkpoint: CheckpointOpt = None, as_json: JsonOpt = False) -> None:
    """Counts per status, the runs so far and the most common errors."""
    from dialer.printing import print_status
    from dialer.status import campaign_status

    def body() -> int:
        # a list in storage: status looks at it (HEAD) and fetches it only when it must
        settings = command_settings(config, stage=False, checkpoint_path=checkpoint)
        report = campaign_status(settings)
        if as_json:
            typer.echo(json.dumps(report.as_dict(), indent=2, default=str))
        else:
            print_status(report)
        return ExitCode.OK

    raise typer.Exit(guarded(body))


@app.command()
def export(config: ConfigArg, output: OutputOpt = None, checkpoint: CheckpointOpt = None) -> None:
    """Write the results and errors files again from the checkpoint and the lead list."""
    from dialer.full_run import export_campaign
    from dialer.printing import print_counts

    def body() -> int:
        settings = command_settings(config, output_path=output, checkpoint_path=checkpoint)
        summary = export_campaign(settings)
        print_counts(summary.counts)
        typer.echo(f"results: {summary.results_path}")
        typer.echo(f"errors:  {summary.errors_path}")
        return ExitCode.OK

    raise typer.Exit(guarded(body))


@app.command()
def report(
    config: ConfigArg,
    output: Annotated[
        Path | None, typer.Option("--output", help="The HTML file; overrides output.report.")
    ] = None,
    checkpoint: CheckpointOpt = None,
) -> None:
    """Write the campaign report: one self-contained HTML page with its charts."""
    from dialer.gate import utc_now
    from dialer.report import report_campaign

    def body() -> int:
        settings = command_settings(config, checkpoint_path=checkpoint)
        written = report_campaign(settings, output, utc_now)
        typer.echo(f"report: {written}")
        return ExitCode.OK

    raise typer.Exit(guarded(body))


def _duration(value: str, flag: str) -> float:
    from dialer.config_schema import parse_duration

    try:
        seconds: float = parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag) from None
    return seconds


def _run_argv(config: Path, input_path: str | None, output: str | None, checkpoint: Path | None) -> list[str]:
    """`dialer run` as the user would type it again, path flags included."""
    parts = ["dialer", "run", str(config)]
    for flag, value in (("--input", input_path), ("--output", output), ("--checkpoint", checkpoint)):
        if value is not None:
            parts += [flag, str(value)]
    return parts


app.command("purge")(purge)
app.command("agents")(agents)
app.command("campaigns")(campaigns)
app.command("collect")(collect)
app.command("mock-server")(mock_server)
app.command("version")(version_command)
app.command("init")(init)


# polars' allocator (jemalloc, configured by this variable when polars loads) keeps freed pages
# for a while, so a transient peak stays resident: a 1M-lead validate peaked at 2.5x a plain
# read_csv. Returning them at once costs a few percent of time on the 1M-lead paths and nothing
# measurable elsewhere (benchmarks/README.md). Set unconditionally: polars exports its own
# default into the environment of any process that imports it, so a dialer started from such a
# process (a Python scheduler, the benchmark) would otherwise inherit that instead.
ALLOCATOR_CONF = ("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")


def main() -> None:
    os.environ.update([ALLOCATOR_CONF])
    try:
        app()
    finally:
        # The interpreter's last collections walk every object the command's libraries made
        # (0.1 s for matplotlib's alone); all of it dies with the process anyway, and the
        # command closed its files itself. A run froze its objects before dialing for the same reason.
        gc.freeze()
