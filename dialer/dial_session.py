"""One run's calls: the client, the rate limiter, the dispatcher and (with --collect) the
outcomes receiver, wired together for as long as the run dials and waits for outcomes.

`full_run` decides what to dial and what to write afterwards; this module only sends.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import httpx
import polars as pl

from dialer import logs
from dialer.checkpoint import Checkpoint
from dialer.client import KyzoClient, Outcome
from dialer.config import Settings
from dialer.dispatch import Dispatcher
from dialer.dispatch_options import DispatchOptions, DispatchReport
from dialer.errors import UserError
from dialer.gate import CallingGate
from dialer.lead_state import Status
from dialer.limiter import RateLimiter
from dialer.progress import Progress
from dialer.receiver import bind, serving
from dialer.request_bodies import LeadRequest, RequestSpec, iter_requests
from dialer.signals import stop_on_signals

if TYPE_CHECKING:
    from dialer.campaign import RunOptions


@contextmanager
def receiver_socket(settings: Settings) -> Iterator[socket.socket]:
    if settings.outcomes is None:
        raise UserError(f"{settings.source}: --collect needs an [outcomes] table in the config")
    sock = bind(settings.outcomes.listen)
    try:
        yield sock
    finally:
        sock.close()


async def dial(
    settings: Settings,
    options: RunOptions,
    checkpoint: Checkpoint,
    run_id: int,
    todo: pl.DataFrame,
    spec: RequestSpec,
    gate: CallingGate | None,
    transport: httpx.AsyncBaseTransport | None,
    listening: socket.socket | None,
) -> DispatchReport:
    log = logs.get_logger()
    limits = settings.limits
    loop = asyncio.get_running_loop()
    writer = checkpoint.writer(loop, run_id, options.claimable)
    progress = Progress(min(todo.height, options.limit or todo.height), enabled=options.progress)

    def on_outcome(lead: LeadRequest, status: Status, outcome: Outcome, attempts: int) -> None:
        log.debug(
            "lead_outcome",
            row=lead.row,
            phone=logs.mask_phone(lead.phone),
            status=status.value,
            http_status=outcome.http_status,
            attempts=attempts,
            error=outcome.message or None,
        )
        progress.advance(status.value)

    tag = checkpoint.tagger()

    def on_event(event: str, **fields: Any) -> None:
        level = log.warning if event in _WARNING_EVENTS else log.info
        if "result" in fields:  # an answer not recorded: logged so that the next run can take it back
            result = fields.pop("result")
            fields.update(
                lead=tag(result.key),
                status=result.status.value,
                call_id=result.call_id,
                attempts=result.attempts,
                http_status=result.http_status,
                result_error=result.error,
            )
        level(event, **fields)
        if event == "pace":  # the pauses the API imposed, for the report's timeline
            writer.note_pause(run_id, fields["pause_s"], fields["status"])

    def on_pace(event: str, rate: float) -> None:
        log.info("pace_change", change=event, calls_per_second=round(rate, 3))

    client = KyzoClient.for_settings(settings, settings.require_api_key(), transport=transport)
    async with client, AsyncExitStack() as receiving:
        if listening is not None:
            await receiving.enter_async_context(serving(settings, listening))
        dispatcher: Dispatcher

        async def interruptible_sleep(delay: float) -> None:
            await dispatcher.sleep(delay)

        limiter = RateLimiter(rate=limits.calls_per_second, sleep=interruptible_sleep, on_change=on_pace)
        dispatcher = Dispatcher(
            client,
            writer,
            limiter,
            DispatchOptions.of(settings, limit=options.limit),
            on_outcome=on_outcome,
            on_event=on_event,
            gate=gate,
        )
        try:
            with stop_on_signals(loop, dispatcher):
                report = await dispatcher.run(iter_requests(todo, spec))
                if options.wait_outcomes_s:
                    await _wait_for_outcomes(checkpoint, options.wait_outcomes_s, dispatcher)
        finally:
            await writer.aclose()
            progress.close()
    return report


async def _wait_for_outcomes(checkpoint: Checkpoint, seconds: float, dispatcher: Dispatcher) -> None:
    """Until every placed lead has an outcome, the time is up, or a signal says stop."""
    log = logs.get_logger()
    deadline = asyncio.get_running_loop().time() + seconds
    waiting = await asyncio.to_thread(checkpoint.awaiting_outcomes)
    log.info("waiting_for_outcomes", leads=waiting, for_s=seconds)
    while waiting and not dispatcher.stopping and asyncio.get_running_loop().time() < deadline:
        await dispatcher.sleep(1.0)
        waiting = await asyncio.to_thread(checkpoint.awaiting_outcomes)
    log.info("outcomes_wait_over", still_awaiting=waiting)


_WARNING_EVENTS = frozenset({"stopping", "record_failed", "claim_refused", "claim_failed"})
