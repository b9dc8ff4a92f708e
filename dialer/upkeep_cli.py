"""Commands around a campaign rather than in it: `purge`, `collect`, `agents`, `campaigns`.

Registered on the CLI's app by `dialer.cli`; each imports its modules when it runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from dialer.cli_common import CheckpointOpt, ConfigArg, JsonOpt, command_settings, guarded, usage
from dialer.exits import ExitCode


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
        settings = command_settings(config, checkpoint_path=checkpoint)
        if not campaign_files(settings):
            typer.echo("nothing to delete")
            return ExitCode.OK
        with RunLock(settings.checkpoint_path) as lock:  # first: a live run means exit 5
            targets = campaign_files(settings)
            pending = unfinished_leads(settings) if settings.checkpoint_path.exists() else None
            if pending and not force:
                # Without its checkpoint, a later run would dial everyone again, placed leads too.
                raise usage(
                    f"the campaign is not finished: {pending} leads of {settings.leads_path} are "
                    "still pending. Finish it with dialer run, or add --force to purge it anyway"
                )
            for path in targets:
                typer.echo(f"  {path}")
            if not yes:
                if not sys.stdin.isatty():
                    raise usage("purge deletes the files above: add --yes to confirm without a TTY")
                if not typer.confirm(f"Delete these {len(targets)} files for good?", default=False):
                    raise usage("not confirmed; nothing was deleted")
            deleted = delete_files(targets, lock.path)
        typer.echo(f"deleted {len(deleted)} files")
        return ExitCode.OK

    raise typer.Exit(guarded(body))


def agents(config: ConfigArg, as_json: JsonOpt = False) -> None:
    """List the agents of the organization (Get Agents)."""
    _list_account(config, "agents", as_json)


def campaigns(config: ConfigArg, as_json: JsonOpt = False) -> None:
    """List the campaigns of the organization (Get Campaigns)."""
    _list_account(config, "campaigns", as_json)


def _list_account(config: Path, what: Literal["agents", "campaigns"], as_json: bool) -> None:
    from dialer.account import list_account

    def body() -> int:
        settings = command_settings(config, stage=False)
        items = list_account(settings, what)
        if as_json:
            typer.echo(json.dumps(items, indent=2))
            return ExitCode.OK
        typer.echo(f"{'id':<28} name")
        for item in items:
            typer.echo(f"{item.get('id', '')!s:<28} {item.get('name', '')}")
        return ExitCode.OK

    raise typer.Exit(guarded(body))


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
        settings = command_settings(config, stage=False, checkpoint_path=checkpoint)
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
