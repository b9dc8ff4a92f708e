"""The command line: parse, wire, and turn every DialerError into one clear line and an exit code.

Every module a command needs is imported inside that command: `dialer --help` and a cron line
pay for the interpreter and the CLI library only (tests/test_import_cost.py keeps it so).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TextIO, TypeVar

import click
import typer

from dialer.errors import AlreadyRunning, DialerError
from dialer.exits import ExitCode
from dialer.init_cli import init, version_command
from dialer.mock_cli import mock_server

if TYPE_CHECKING:
    from dialer.config import Settings

app = typer.Typer(
    name="dialer",
    help="Dial a lead list through the KyzoAI placeCall API: paced, resumable, at most once per lead.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
)

T = TypeVar("T")

ConfigArg = Annotated[Path, typer.Argument(help="Campaign config (TOML).", show_default=False)]
# text, not Path: a URL (s3://bucket/key) must reach the config as typed
InputOpt = Annotated[
    str | None,
    typer.Option(
        "--input", help="Lead list (a path or an s3://, gs://, az://, https:// URL); overrides leads.path."
    ),
]
OutputOpt = Annotated[
    str | None,
    typer.Option(
        "--output", help="Results file (a path or an s3://, gs://, az:// URL); overrides output.path."
    ),
]
CheckpointOpt = Annotated[
    Path | None, typer.Option("--checkpoint", help="Checkpoint file; overrides output.checkpoint.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")]


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
    _LOGGING[:] = [start_logging]


_LOGGING: list[Callable[[], None]] = []  # how the logs of this invocation are to be set up


def _open_log_file(path: Path) -> TextIO:
    if path.suffix.lower() in (".csv", ".parquet", ".toml", ".db"):
        # `--log-file leads.csv` would append JSON lines to a lead list (or a config).
        raise typer.BadParameter(f"{path} looks like a data file, not a log; use e.g. dialer.log")
    try:
        return path.open("a", encoding="utf-8", buffering=1)
    except OSError as exc:
        raise typer.BadParameter(f"cannot open {path}: {exc.strerror or exc}") from None


def guarded(action: Callable[[], T]) -> T:
    """Run a command body; a DialerError becomes a message on stderr and its exit code."""
    from dialer import logs

    for start_logging in _LOGGING:
        start_logging()
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt) if main else None
    try:
        with contextlib.ExitStack() as resources:  # what the body stages lives until it returns
            _COMMAND_RESOURCES.append(resources)
            try:
                return action()
            finally:
                _COMMAND_RESOURCES.pop()
    except DialerError as exc:
        logs.report_error(str(exc), exc.exit_code)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        logs.report_error(
            "interrupted; nothing is lost: run the same command again to resume", ExitCode.STOPPED
        )
        raise typer.Exit(ExitCode.STOPPED) from None
    except (typer.Exit, typer.Abort, click.ClickException):
        raise
    except Exception as exc:  # noqa: BLE001 - a bug must not pass for "finished" (Python's exit 1)
        logs.get_logger().exception("internal_error", error=logs.redact(f"{type(exc).__name__}: {exc}"))
        logs.report_error(
            "internal error (a bug in kyzo-dialer): please report it with the log above", ExitCode.BUG
        )
        raise typer.Exit(ExitCode.BUG) from None
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


_COMMAND_RESOURCES: list[contextlib.ExitStack] = []


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    """SIGTERM outside the dial loop (loading, writing files) ends like Ctrl-C: exit 4, resumable."""
    raise KeyboardInterrupt


def _settings(config: Path, *, stage: bool = True, **overrides: Any) -> Settings:
    """The command's settings; files in object storage are staged locally until it ends
    (`stage=False`: the command never reads the list, so nothing is fetched)."""
    from dialer import logs
    from dialer.config import load_settings

    settings = load_settings(config, **overrides)
    logs.add_secrets(settings.secrets)
    if stage and settings.remote.urls:
        from dialer.staging import staged

        settings = _COMMAND_RESOURCES[-1].enter_context(staged(settings))
    return settings


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
        settings = _settings(
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
                raise _usage("--redial-unknown may call people twice: add --yes to confirm without a TTY")
            if not typer.confirm(
                "Leads with an unknown outcome may already have been called. Call them again?",
                default=False,
            ):
                raise _usage("not confirmed; nothing was sent")
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
        settings = _settings(config, input_path=input_path)
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
        settings = _settings(config, checkpoint_path=checkpoint)
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
    from dialer.campaign import export_campaign
    from dialer.printing import print_counts

    def body() -> int:
        settings = _settings(config, output_path=output, checkpoint_path=checkpoint)
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
        settings = _settings(config, checkpoint_path=checkpoint)
        written = report_campaign(settings, output, utc_now)
        typer.echo(f"report: {written}")
        return ExitCode.OK

    raise typer.Exit(guarded(body))


@app.command()
def purge(
    config: ConfigArg,
    checkpoint: CheckpointOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Purge even though some leads have not been called yet.")
    ] = False,
) -> None:
    """Delete a finished campaign's checkpoint, results and errors files (data retention)."""
    from dialer.campaign import campaign_files
    from dialer.checkpoint_files import purge as delete_files
    from dialer.run_lock import RunLock
    from dialer.status import unfinished_leads

    def body() -> int:
        settings = _settings(config, checkpoint_path=checkpoint)
        if not campaign_files(settings):
            typer.echo("nothing to delete")
            return ExitCode.OK
        with RunLock(settings.checkpoint_path) as lock:  # first: a live run means exit 5
            targets = campaign_files(settings)
            pending = unfinished_leads(settings) if settings.checkpoint_path.exists() else None
            if pending and not force:
                # Without its checkpoint, a later run would dial everyone again, placed leads too.
                raise _usage(
                    f"the campaign is not finished: {pending} leads of {settings.leads_path} are "
                    "still pending. Finish it with dialer run, or add --force to purge it anyway"
                )
            for path in targets:
                typer.echo(f"  {path}")
            if not yes:
                if not sys.stdin.isatty():
                    raise _usage("purge deletes the files above: add --yes to confirm without a TTY")
                if not typer.confirm(f"Delete these {len(targets)} files for good?", default=False):
                    raise _usage("not confirmed; nothing was deleted")
            deleted = delete_files(targets, lock.path)
        typer.echo(f"deleted {len(deleted)} files")
        return ExitCode.OK

    raise typer.Exit(guarded(body))


@app.command()
def agents(config: ConfigArg, as_json: JsonOpt = False) -> None:
    """List the agents of the organization (Get Agents)."""
    _list_account(config, "agents", as_json)


@app.command()
def campaigns(config: ConfigArg, as_json: JsonOpt = False) -> None:
    """List the campaigns of the organization (Get Campaigns)."""
    _list_account(config, "campaigns", as_json)


def _list_account(config: Path, what: Literal["agents", "campaigns"], as_json: bool) -> None:
    from dialer.account import list_account

    def body() -> int:
        settings = _settings(config, stage=False)
        items = list_account(settings, what)
        if as_json:
            typer.echo(json.dumps(items, indent=2))
            return ExitCode.OK
        typer.echo(f"{'id':<28} name")
        for item in items:
            typer.echo(f"{item.get('id', '')!s:<28} {item.get('name', '')}")
        return ExitCode.OK

    raise typer.Exit(guarded(body))


@app.command()
def collect(
    config: ConfigArg,
    listen: Annotated[
        str | None,
        typer.Option("--listen", metavar="HOST:PORT", help="Where to listen; overrides outcomes.listen."),
    ] = None,
    checkpoint: CheckpointOpt = None,
) -> None:
    """Receive call outcomes from Kyzo's webhook tool into the checkpoint; runs until SIGTERM."""
    from dialer.logs import get_logger
    from dialer.receiver import collect as receive

    def body() -> int:
        settings = _settings(config, stage=False, checkpoint_path=checkpoint)
        if listen is not None:
            _listen_address(listen)
        outcomes = settings.outcomes
        path = outcomes.path if outcomes is not None else "/"

        def ready(url: str) -> None:
            typer.echo(f"collecting outcomes on {url}{path} (checkpoint {settings.checkpoint_path})")
            sys.stdout.flush()
            get_logger().info("collect_listening", url=url, path=path)

        stored = receive(settings, listen, ready)
        typer.echo(f"stopped; {stored} outcome payloads stored")
        return ExitCode.OK

    raise typer.Exit(guarded(body))


def _listen_address(value: str) -> None:
    from dialer.config_schema import listen_address

    try:
        listen_address(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--listen") from None


def _duration(value: str, flag: str) -> float:
    from dialer.config_schema import parse_duration

    try:
        seconds: float = parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag) from None
    return seconds


def _usage(message: str) -> DialerError:
    from dialer.errors import UserError

    return UserError(message)


def _run_argv(config: Path, input_path: str | None, output: str | None, checkpoint: Path | None) -> list[str]:
    """`dialer run` as the user would type it again, path flags included."""
    parts = ["dialer", "run", str(config)]
    for flag, value in (("--input", input_path), ("--output", output), ("--checkpoint", checkpoint)):
        if value is not None:
            parts += [flag, str(value)]
    return parts


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
    app()
