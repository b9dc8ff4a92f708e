"""`dialer init` and `dialer version`: the commands a newcomer starts with.

Registered on the CLI's app by `dialer.cli`; kept apart so that module stays about wiring the
campaign commands. Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from dialer.cli_common import JsonOpt, guarded
from dialer.exits import ExitCode


def version_command(as_json: JsonOpt = False) -> None:
    """The versions of the dialer and of what it runs on, for bug reports."""
    import platform
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    from dialer import __version__

    def of(package: str) -> str | None:
        try:
            return installed(package)
        except PackageNotFoundError:
            return None

    versions = {
        "kyzo-dialer": __version__,
        "python": platform.python_version(),
        **{name: of(name) for name in ("polars", "httpx", "aiohttp", "obstore", "pydantic", "typer")},
    }
    if as_json:
        typer.echo(json.dumps(versions, indent=2))
    else:
        for name, value in versions.items():
            typer.echo(f"{name:<12} {value or 'not installed'}")


def init(
    leads: Annotated[Path, typer.Argument(help="The lead list (CSV, TSV or Parquet).", show_default=False)],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", help="Where to write the campaign file (default configs/<list>.toml or <list>.toml)."
        ),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="The Kyzo API's base URL (else KYZO_BASE_URL).")
    ] = None,
    organization_id: Annotated[
        str | None, typer.Option("--organization-id", help="Your Kyzo organization id.")
    ] = None,
    agent_id: Annotated[
        str | None, typer.Option("--agent-id", help="The agent that makes the calls.")
    ] = None,
    from_phone_number_id: Annotated[
        str | None, typer.Option("--from-phone-number-id", help="The number the calls come from.")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="The campaign's name (default: the list's name).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Write a commented campaign file from a lead list: columns, region and ids, each explained."""
    from dialer.init_config import InitRequest, init_campaign

    def body() -> int:
        request = InitRequest(
            leads=leads,
            output=output,
            base_url=base_url,
            organization_id=organization_id,
            agent_id=agent_id,
            from_phone_number_id=from_phone_number_id,
            name=name,
            force=force,
        )
        written, said = init_campaign(request, environ=dict(os.environ), cwd=Path.cwd())
        for line in said:
            typer.echo(line)
        typer.echo(f"wrote {written}; next: dialer validate {written}")
        return ExitCode.OK

    raise typer.Exit(guarded(body))
