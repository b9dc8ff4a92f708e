"""The async engine: claim, pace, send, classify, record; stop cleanly when told to.

A lead moves pending -> in_flight (durable) -> placed | failed | unknown. It is released back
to pending only when the request certainly never reached the server (stopped before sending,
or an answer that proves nothing was placed: 401/403/404, 429, connect errors); a lead that
got only such answers `max_attempts` times ends `failed` ("gave up after N attempts").
A bug in one worker stops them all: the leads in flight end `unknown`, then the error is raised.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from dialer import logs
from dialer.client import Action, Answer, Outcome, classify
from dialer.dispatch_options import DispatchOptions, DispatchReport, StopReason, Unrecorded
from dialer.errors import CheckpointWriteFailed
from dialer.lead_state import ClaimRefused, IllegalMove, Status
from dialer.lead_writes import Claim, Result, RunWriter
from dialer.limiter import RateLimiter

if TYPE_CHECKING:
    pass
from dialer.request_bodies import LeadRequest


class Sender(Protocol):
    async def place_call(self, body: dict[str, Any]) -> Answer: ...


OutcomeHook = Callable[[LeadRequest, Status, Outcome, int], None]
EventHook = Callable[..., None]
Gate = Callable[[LeadRequest], bool]


class Dispatcher:
    """Sends every lead of an iterator once, under the limiter and `max_concurrency`."""

    def __init__(
        self,
        sender: Sender,
        writer: RunWriter,
        limiter: RateLimiter,
        options: DispatchOptions,
        *,
        on_outcome: OutcomeHook | None = None,
        on_event: EventHook | None = None,
        gate: Gate | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sender = sender
        self._writer = writer
        self._limiter = limiter
        self._options = options
        self._on_outcome = on_outcome or (lambda *_: None)
        self._on_event = on_event or (lambda *_a, **_k: None)
        self._gate = gate
        self._clock = clock
        self._stopping = False
        self._sleepers: set[asyncio.Future[None]] = set()
        self._in_flight: dict[str, LeadRequest] = {}
        self._recent: deque[str | None] = deque(maxlen=options.breaker_window)
        self._consecutive_unknown = 0
        self._consecutive_429 = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.report = DispatchReport()
        self._backoff = wait_exponential_jitter(
            multiplier=options.backoff_initial_s,
            max=options.backoff_max_s,
            jitter=options.backoff_initial_s,
        )

    # -- control

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop(self, reason: StopReason, message: str = "") -> None:
        """Send nothing new; requests already in flight finish and are recorded."""
        if self._stopping:
            return
        self._stopping = True
        self.report.stop_reason = reason
        self.report.stop_message = message
        self._on_event("stopping", reason=reason.value, message=message)
        for sleeper in list(self._sleepers):
            if not sleeper.done():
                sleeper.set_result(None)

    def interrupt(self, message: str) -> None:
        """A signal: finish the calls in flight, send nothing new (exit 4, resumable)."""
        self.stop(StopReason.INTERRUPTED, message)

    def abort(self) -> None:
        """Stop at once: cancel in-flight requests (their leads become unknown)."""
        self.stop(StopReason.INTERRUPTED, "stopped immediately")
        for task in self._tasks:
            task.cancel()

    async def sleep(self, delay: float) -> None:
        """A sleep that a stop cuts short, so a long Retry-After never delays Ctrl-C."""
        if self._stopping or delay <= 0:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        handle = loop.call_later(delay, _wake, waiter)
        self._sleepers.add(waiter)
        try:
            await waiter
        finally:
            handle.cancel()
            self._sleepers.discard(waiter)

    # -- the run

    async def run(self, leads: Iterator[LeadRequest]) -> DispatchReport:
        self.report.started = self._clock()
        # leads outside their calling hours are passed over here, so --limit counts only
        # leads that can be sent; the window is checked again at the moment of sending
        source = _Limited(leads, self._options.limit, self._may_call)
        self._tasks = [
            asyncio.create_task(self._worker(source), name=f"dialer-worker-{i}")
            for i in range(self._options.max_concurrency)
        ]
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._settle_abandoned()
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result
        if not self._stopping and source.cut_short():
            self.stop(StopReason.LIMIT, f"--limit {self._options.limit} reached")
        self.report.finished = self._clock()
        return self.report

    async def _worker(self, source: _Limited) -> None:
        while not self._stopping:
            lead = source.next()
            if lead is None:
                return
            try:
                await self._handle(lead)
            except Exception:
                self.abort()  # a bug: no worker may go on dialing the list behind it
                raise

    async def _handle(self, lead: LeadRequest) -> None:
        attempts = 0
        claimed = False
        maybe_placed = False  # an earlier attempt may have rung the phone (api.retry_ambiguous)

        async def attempt() -> Outcome:
            nonlocal attempts, claimed, maybe_placed
            # The calling window is checked before taking a send slot (a closed lead must not
            # cost one) and again at the moment of sending, before every attempt.
            if not self._may_call(lead):
                return _OUTSIDE_HOURS
            slot = await self._limiter.acquire()
            if self._stopping:
                return _NOT_SENT
            if not self._may_call(lead):
                return _OUTSIDE_HOURS
            if not claimed:
                # in flight from the moment the claim is queued: an abort while it commits must
                # find the lead (and settle it unknown), not leave it in_flight in the checkpoint
                self._in_flight[lead.key] = lead
                try:
                    await self._writer.claim(
                        Claim(lead.key, lead.phone, lead.body.get("referenceId"), lead.recycle_of_calls)
                    )
                except ClaimRefused as exc:  # settled meanwhile (another run, a duplicate): skip it
                    self._in_flight.pop(lead.key, None)
                    self._on_event("claim_refused", row=lead.row, error=str(exc))
                    return _NOT_CLAIMED
                except CheckpointWriteFailed as exc:
                    self._in_flight.pop(lead.key, None)
                    self._on_event("claim_failed", row=lead.row, error=str(exc))
                    self.stop(StopReason.CHECKPOINT, str(exc))
                    return _NOT_CLAIMED
                claimed = True
            await self._limiter.admit(slot)
            if self._stopping:
                return _NOT_SENT
            if not self._may_call(lead):  # admit may have waited out a pause
                return _OUTSIDE_HOURS
            attempts += 1
            self.report.sent += 1
            self.report.last_send = self._clock()
            if self.report.sent == 1:
                self.report.first_send = self.report.last_send
            answer = await self._sender.place_call(lead.body)
            outcome = classify(
                answer, retry_ambiguous=self._options.retry_ambiguous, account=self._options.account
            )
            maybe_placed = maybe_placed or outcome.maybe_placed
            self._after_answer(lead, outcome, attempts)
            return outcome

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._options.max_attempts) | _WhenStopping(self),
            wait=self._wait,
            retry=retry_if_result(lambda o: o.action is Action.RETRY and o not in _NOT_ATTEMPTED),
            sleep=self.sleep,
            retry_error_callback=_last_result,
        )
        outcome: Outcome = await retrying(attempt)
        if not claimed:
            return
        await self._finish(lead, outcome, attempts, maybe_placed=maybe_placed)

    def _may_call(self, lead: LeadRequest) -> bool:
        if self._gate is None or self._gate(lead):
            return True
        self.report.outside_hours += 1
        return False

    def _wait(self, state: RetryCallState) -> float:
        """Paused 429/503s wait in the limiter; transport retries back off with jitter."""
        outcome = state.outcome.result() if state.outcome and not state.outcome.failed else None
        if outcome is not None and outcome.paces:
            return 0.0
        return float(self._backoff(state))

    def _after_answer(self, lead: LeadRequest, outcome: Outcome, attempts: int) -> None:
        """React to pacing signals at once, before other workers send more."""
        self._consecutive_429 = self._consecutive_429 + 1 if outcome.cut_rate else 0
        if outcome.paces:
            pause = outcome.retry_after
            if pause is not None and pause > self._options.max_retry_after_s:
                self.stop(
                    StopReason.RATE_LIMITED,
                    f"the API asked to wait {pause:.0f} s (Retry-After), more than "
                    f"limits.max_retry_after_s = {self._options.max_retry_after_s:.0f}",
                )
                return
            if pause is None:
                pause = min(
                    self._options.backoff_max_s,
                    self._options.backoff_initial_s * 2 ** (attempts - 1),
                )
            self._limiter.pause(pause, cut_rate=outcome.cut_rate)
            self._on_event(
                "pace",
                status=outcome.http_status,
                pause_s=round(pause, 3),
                rate=round(self._limiter.rate, 3),
            )
        if self._consecutive_429 > self._options.max_consecutive_429:
            self.stop(
                StopReason.RATE_LIMITED,
                f"the API answered 429 (rate limited) {self._consecutive_429} times in a row",
            )
        if outcome.action is Action.STOP:
            self.stop(StopReason.API, outcome.message)
        elif outcome.action is Action.RETRY:
            self._on_event("retry", row=lead.row, attempt=attempts, reason=outcome.message)

    async def _finish(
        self, lead: LeadRequest, outcome: Outcome, attempts: int, *, maybe_placed: bool
    ) -> None:
        status, error = _final_status(outcome, attempts, self._options.max_attempts)
        if maybe_placed and status is not Status.PLACED:
            # Only a callId settles a lead that may already have rung: never `failed` or
            # `pending`, which a rerun or --retry-failed would send again without asking.
            status = Status.UNKNOWN
            error = f"{error or outcome.message}; an earlier attempt may have placed the call"
        if error is not None:
            error = logs.redact(error)  # a server may echo a secret (an id from ${env:}) back
        if status is Status.PENDING and lead.recycle_of_calls is not None:
            # a call again that never left: the lead is as it was, placed, its calls uncounted
            result = Result(lead.key, Status.PLACED, attempts, released=True)
        else:
            result = Result(lead.key, status, attempts, outcome.call_id, error, outcome.http_status)
        try:
            await self._writer.record(result)
        except CheckpointWriteFailed as exc:
            self.report.unrecorded.append(Unrecorded(lead.row, result))
            self._on_event("record_failed", row=lead.row, result=result, error=str(exc))
            self.stop(StopReason.CHECKPOINT, str(exc))
            return
        finally:
            self._in_flight.pop(lead.key, None)
        if status is not Status.PENDING:
            self.report.leads += 1
            self.report.outcomes[status.value] += 1
            self._watch_breaker(status, error)
        self._on_outcome(lead, status, outcome, attempts)

    def _watch_breaker(self, status: Status, error: str | None) -> None:
        """Systematic errors must not burn through a list."""
        self._recent.append(error if status is Status.FAILED else None)
        self._consecutive_unknown = self._consecutive_unknown + 1 if status is Status.UNKNOWN else 0
        if self._consecutive_unknown > self._options.max_consecutive_unknown:
            self.stop(
                StopReason.API,
                f"circuit breaker: {self._consecutive_unknown} calls in a row ended unknown "
                "(server errors or no answer); check the API before resuming",
            )
            return
        failures = Counter(e for e in self._recent if e is not None)
        if failures:
            message, count = failures.most_common(1)[0]
            if count > self._options.breaker_ratio * self._options.breaker_window:
                self.stop(
                    StopReason.API,
                    f"circuit breaker: {count} of the last {len(self._recent)} leads failed with "
                    f"the same error: {message}",
                )

    async def _settle_abandoned(self) -> None:
        """After an abort, leads whose request may be on the wire become unknown."""
        for lead in list(self._in_flight.values()):
            result = Result(lead.key, Status.UNKNOWN, 1, None, "interrupted while the request was in flight")
            try:
                await self._writer.record(result)
            except CheckpointWriteFailed as exc:
                self.report.unrecorded.append(Unrecorded(lead.row, result))
                self._on_event("record_failed", row=lead.row, result=result, error=str(exc))
            except IllegalMove:
                pass  # its claim never committed (refused, or lost with the batch): not in flight
            else:
                self.report.leads += 1
                self.report.outcomes[Status.UNKNOWN.value] += 1
            self._in_flight.pop(lead.key, None)


_NOT_SENT = Outcome(Action.RETRY, "stopped before sending")
_NOT_CLAIMED = Outcome(Action.RETRY, "the checkpoint refused the claim")
_OUTSIDE_HOURS = Outcome(Action.RETRY, "outside the lead's calling hours")
_NOT_ATTEMPTED = (_NOT_CLAIMED, _OUTSIDE_HOURS)


def _final_status(outcome: Outcome, attempts: int, max_attempts: int) -> tuple[Status, str | None]:
    if outcome.action is Action.PLACED:
        return Status.PLACED, None
    if outcome.action is Action.FAILED:
        return Status.FAILED, outcome.message
    if outcome.action is Action.UNKNOWN:
        return Status.UNKNOWN, outcome.message
    if (
        outcome.action is Action.RETRY
        and attempts >= max_attempts
        and outcome not in (_NOT_SENT, _OUTSIDE_HOURS)
    ):
        return Status.FAILED, f"gave up after {attempts} attempts: {outcome.message}"
    # STOP, or a retryable answer cut short by a stop: nothing was placed
    return Status.PENDING, outcome.message


class _WhenStopping(stop_base):
    """Tenacity stop condition: the run is stopping, so no further attempt."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._dispatcher.stopping


def _last_result(state: RetryCallState) -> Outcome:
    assert state.outcome is not None
    result: Outcome = state.outcome.result()
    return result


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Limited:
    """The shared lead iterator, cut at --limit; `next` never awaits, so tasks may share it."""

    def __init__(
        self, leads: Iterator[LeadRequest], limit: int | None, admit: Callable[[LeadRequest], bool]
    ) -> None:
        self._leads = leads
        self._limit = limit
        self._admit = admit
        self.taken = 0
        self._exhausted = False

    def next(self) -> LeadRequest | None:
        if self._limit is not None and self.taken >= self._limit:
            return None
        for lead in self._leads:
            if self._admit(lead):
                self.taken += 1
                return lead
        self._exhausted = True
        return None

    def cut_short(self) -> bool:
        if self._exhausted or self._limit is None or self.taken < self._limit:
            return False
        return next(self._leads, None) is not None
