"""`dialer mock-server`: the flags of the local Kyzo-compatible server, turned into its settings.

Kept apart from `cli` because it is not part of a campaign: it is the stand-in for the API that
the demo, the tests and the benchmarks run against.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer


def mock_server(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port; 0 picks a free one.")] = 8787,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", help="Key to accept; defaults to $KYZO_API_KEY or kyzo-demo-key."),
    ] = None,
    organization_id: Annotated[str, typer.Option("--organization-id")] = "org_demo",
    agent_id: Annotated[str, typer.Option("--agent-id")] = "agent_demo",
    phone_number_id: Annotated[list[str] | None, typer.Option("--phone-number-id")] = None,
    rate_limit: Annotated[
        float | None, typer.Option("--rate-limit", help="Accepted calls per second.")
    ] = None,
    retry_after: Annotated[
        float, typer.Option("--retry-after", help="Retry-After seconds on 429/503.")
    ] = 1.0,
    latency_ms: Annotated[float, typer.Option("--latency-ms")] = 0.0,
    latency_jitter_ms: Annotated[float, typer.Option("--latency-jitter-ms")] = 0.0,
    ledger: Annotated[Path | None, typer.Option("--ledger", help="JSON-lines file of placed calls.")] = None,
    ledger_bodies: Annotated[
        bool, typer.Option("--ledger-bodies", help="Write each placed call's whole body to the ledger.")
    ] = False,
    drop_rate: Annotated[
        float, typer.Option("--drop-rate", help="Share of calls placed, then dropped.")
    ] = 0.0,
    error_rate: Annotated[
        float, typer.Option("--error-rate", help="Share of requests given an error.")
    ] = 0.0,
    error_status: Annotated[
        str, typer.Option("--error-status", help="Statuses to inject, e.g. 500,502,503.")
    ] = "500",
    error_after_place: Annotated[
        bool,
        typer.Option(
            "--error-after-place",
            help="Place the call before erring (not for 429/503, which mean 'not processed').",
        ),
    ] = False,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    outcomes: Annotated[
        bool, typer.Option("--outcomes", help="Post each call's outcome to its webhook tool, like Kyzo.")
    ] = False,
    call_seconds: Annotated[
        float, typer.Option("--call-seconds", min=0, help="Average call length before its outcome is posted.")
    ] = 3.0,
    outcome_weights: Annotated[
        str, typer.Option("--outcome-weights", help="Outcome statuses and their weights.")
    ] = "completed=6,no-answer=2,voicemail=1,busy=1",
    duplicate_rate: Annotated[
        float,
        typer.Option(
            "--duplicate-rate", min=0, max=1, help="Share of outcome payloads sent twice or out of order."
        ),
    ] = 0.05,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="Serve HTTPS with this certificate chain (PEM).")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", help="The private key of --tls-cert (PEM).")
    ] = None,
    silent_rate: Annotated[
        float,
        typer.Option("--silent-rate", min=0, max=1, help="Share of calls whose outcome is never posted."),
    ] = 0.0,
) -> None:
    """Run the local Kyzo-compatible server used by the demo, the tests and the benchmarks."""
    from dialer.mock_outcomes import OutcomeSettings, parse_weights
    from dialer.server import ServerSettings, serve

    try:
        statuses = tuple(int(s) for s in error_status.split(",") if s.strip())
    except ValueError:
        raise typer.BadParameter(
            "a comma-separated list of HTTP statuses", param_hint="--error-status"
        ) from None
    try:
        weights = parse_weights(outcome_weights)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--outcome-weights") from None
    sender = OutcomeSettings(
        call_seconds=call_seconds, weights=weights, duplicate_rate=duplicate_rate, silent_rate=silent_rate
    )
    settings = ServerSettings(
        host=host,
        port=port,
        api_key=api_key or os.environ.get("KYZO_API_KEY") or "kyzo-demo-key",
        organization_id=organization_id,
        agent_id=agent_id,
        phone_number_ids=tuple(phone_number_id or ["pn_demo"]),
        rate_limit=rate_limit,
        retry_after=retry_after,
        latency_ms=latency_ms,
        latency_jitter_ms=latency_jitter_ms,
        ledger=ledger,
        ledger_bodies=ledger_bodies,
        drop_rate=drop_rate,
        error_rate=error_rate,
        error_statuses=statuses or (500,),
        error_after_place=error_after_place,
        seed=seed,
        outcomes=sender if outcomes else None,
        tls_certfile=tls_cert,
        tls_keyfile=tls_key,
    )

    def ready(url: str) -> None:
        typer.echo(f"Kyzo mock server listening on {url}")
        sys.stdout.flush()

    serve(settings, on_ready=ready)
