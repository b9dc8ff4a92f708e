"""What every command shares: the option types, the guard that turns a DialerError into its
exit code (and a bug into exit 70), and the settings a command holds for as long as it runs.

`cli.py` (the campaign commands), `upkeep_cli.py` and `init_cli.py` build on it; it imports
nothing heavy, so `--help` stays instant.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import click
import typer

from dialer.errors import DialerError, UserError
from dialer.exits import ExitCode

if TYPE_CHECKING:
    from dialer.config import Settings

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

LOGGING: list[Callable[[], None]] = []  # how the logs of this invocation are to be set up
COMMAND_RESOURCES: list[contextlib.ExitStack] = []  # what the running command staged, closed as it ends


def guarded(action: Callable[[], T]) -> T:
    """Run a command body; a DialerError becomes a message on stderr and its exit code."""
    from dialer import logs

    for start_logging in LOGGING:
        start_logging()
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, terminate_as_interrupt) if main else None
    try:
        with contextlib.ExitStack() as resources:  # what the body stages lives until it returns
            COMMAND_RESOURCES.append(resources)
            try:
                return action()
            finally:
                COMMAND_RESOURCES.pop()
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


def terminate_as_interrupt(signum: int, frame: object) -> None:
    """SIGTERM outside the dial loop (loading, writing files) ends like Ctrl-C: exit 4, resumable."""
    raise KeyboardInterrupt


def command_settings(config: Path, *, stage: bool = True, **overrides: Any) -> Settings:
    """The command's settings; files in object storage are staged locally until it ends
    (`stage=False`: the command never reads the list, so nothing is fetched)."""
    from dialer import logs
    from dialer.config import load_settings

    settings = load_settings(config, **overrides)
    logs.add_secrets(settings.secrets)
    if stage and settings.remote.urls:
        from dialer.staging import staged

        settings = COMMAND_RESOURCES[-1].enter_context(staged(settings))
    return settings


def usage(message: str) -> DialerError:
    return UserError(message)
