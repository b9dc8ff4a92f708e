"""The dispatch engine on its own: a scripted sender, a real checkpoint, a fake clock, no HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from dialer.checkpoint import Checkpoint
from dialer.client import Answer, Failure
from dialer.dispatch import Dispatcher, Gate, Sender
from dialer.dispatch_options import DispatchOptions, DispatchReport, StopReason
from dialer.errors import CheckpointWriteFailed
from dialer.lead_state import Status
from dialer.lead_writes import Claim, Result, RunWriter
from dialer.limiter import RateLimiter
from dialer.request_bodies import LeadRequest

START = 1000.0  # an arbitrary monotonic reading: nothing may depend on the clock starting at 0
FAST = 1000.0  # calls per second: pacing never matters at this rate for a handful of leads

# One worker makes the order of sends, and so every count below, deterministic. Transport
# retries back off in real time (the dispatcher's own sleep), so the backoff is a millisecond.
QUICK = DispatchOptions(max_concurrency=1, backoff_initial_s=0.001, backoff_max_s=0.002)

READ_TIMEOUT = Answer(failure=Failure.AMBIGUOUS, detail="ReadTimeout: timed out")
CONNECT_ERROR = Answer(failure=Failure.NOT_SENT, detail="ConnectError: connection refused")

Event = tuple[str, dict[str, Any]]
Script = Callable[[str, int], Answer]  # (lead key, how many times that lead was sent) -> answer


def _options(**changes: Any) -> DispatchOptions:
    return replace(QUICK, **changes)


def _placed(key: str) -> Answer:
    return Answer(200, json.dumps({"success": True, "callId": f"call-{key}"}).encode())


def _http(status: int, message: str = "", headers: Mapping[str, str] | None = None) -> Answer:
    return Answer(status, json.dumps({"message": message}).encode() if message else b"", headers)


def _leads(count: int) -> list[LeadRequest]:
    """Leads k0, k1, ...; the sender tells them apart by the referenceId of their body."""
    return [
        LeadRequest(
            f"k{i}", i + 2, f"+1415555{i:04d}", {"phoneNumber": f"+1415555{i:04d}", "referenceId": f"k{i}"}
        )
        for i in range(count)
    ]


def _keys(count: int) -> list[str]:
    return [f"k{i}" for i in range(count)]


class FakeTime:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = START

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


class FakeSender:
    """Answers the n-th send of a lead from its script; unscripted sends are placed."""

    def __init__(
        self,
        answers: Mapping[str, Sequence[Answer]] | None = None,
        *,
        script: Script | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._answers = answers or {}
        self._script = script or self._scripted
        self._clock = clock
        self.calls: list[str] = []  # lead keys, in send order
        self.times: list[float] = []  # the clock at each send
        self.first_send = asyncio.Event()

    def _scripted(self, key: str, n: int) -> Answer:
        answers = self._answers.get(key, ())
        return answers[n - 1] if n <= len(answers) else _placed(key)

    async def place_call(self, body: dict[str, Any]) -> Answer:
        key = body["referenceId"]
        self.calls.append(key)
        self.times.append(self._clock())
        self.first_send.set()
        return self._script(key, self.calls.count(key))

    def count(self, key: str) -> int:
        return self.calls.count(key)


class HeldSender:
    """Every send waits for `release`; `all_in` is set once `expected` sends are waiting."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.calls: list[str] = []
        self.cancelled: list[str] = []
        self.release = asyncio.Event()
        self.all_in = asyncio.Event()

    async def place_call(self, body: dict[str, Any]) -> Answer:
        key = body["referenceId"]
        self.calls.append(key)
        if len(self.calls) == self.expected:
            self.all_in.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.append(key)
            raise
        return _placed(key)


class HookedWriter:
    """The real writer, with a hook run before each claim and each record: to break or stop things."""

    def __init__(
        self,
        writer: RunWriter,
        *,
        on_claim: Callable[[Claim], None] = lambda claim: None,
        on_record: Callable[[Result], None] = lambda result: None,
    ) -> None:
        self._writer = writer
        self._on_claim = on_claim
        self._on_record = on_record

    async def claim(self, claim: Claim) -> None:
        self._on_claim(claim)
        await self._writer.claim(claim)

    async def record(self, result: Result) -> None:
        self._on_record(result)
        await self._writer.record(result)


@dataclass
class Rig:
    """A real checkpoint with one run in it, a fake clock, and every event the dispatcher emitted."""

    checkpoint: Checkpoint
    run_id: int
    time: FakeTime = field(default_factory=FakeTime)
    events: list[Event] = field(default_factory=list)
    dispatcher: Dispatcher | None = None  # the one running, for hooks that stop it

    def limiter(self, rate: float = FAST) -> RateLimiter:
        return RateLimiter(rate, sleep=self.time.sleep, clock=self.time.clock)

    def sender(self, answers: Mapping[str, Sequence[Answer]] | None = None, **kwargs: Any) -> FakeSender:
        return FakeSender(answers, clock=self.time.clock, **kwargs)

    def run(
        self,
        sender: Sender,
        leads: Sequence[LeadRequest],
        options: DispatchOptions = QUICK,
        *,
        limiter: RateLimiter | None = None,
        gate: Gate | None = None,
        control: Callable[[Dispatcher], Awaitable[None]] | None = None,
        wrap_writer: Callable[[RunWriter], Any] | None = None,
    ) -> DispatchReport:
        """Dispatch `leads` to the end; `control` runs beside the dispatcher (to stop it, say)."""

        async def main() -> DispatchReport:
            loop = asyncio.get_running_loop()
            writer = self.checkpoint.writer(loop, self.run_id)
            dispatcher = Dispatcher(
                sender,
                writer if wrap_writer is None else wrap_writer(writer),
                limiter or self.limiter(),
                options,
                on_event=lambda event, **fields: self.events.append((event, fields)),
                gate=gate,
                clock=self.time.clock,
            )
            self.dispatcher = dispatcher
            try:
                running = asyncio.create_task(dispatcher.run(iter(leads)))
                if control is not None:
                    await control(dispatcher)
                return await running
            finally:
                await writer.aclose()

        # a hang is a failure here, not a five-minute pytest-timeout
        return asyncio.run(asyncio.wait_for(main(), timeout=10))

    def reopen(self) -> Checkpoint:
        """A fresh connection to the same file, for tests that broke the first one on purpose."""
        self.checkpoint.close()
        self.checkpoint = Checkpoint.open(self.checkpoint.path)
        return self.checkpoint

    def rows(self) -> dict[str, dict[str, Any]]:
        return {row["key"]: row for row in self.checkpoint.states().iter_rows(named=True)}

    def statuses(self) -> dict[str, str]:
        """Each lead's status; a lead with no row was never claimed, which is pending by definition."""
        return {key: row["status"] for key, row in self.rows().items()}

    def stop(self) -> None:
        assert self.dispatcher is not None
        self.dispatcher.stop(StopReason.INTERRUPTED, "stopped by the test")

    def named(self, event: str) -> list[dict[str, Any]]:
        return [fields for name, fields in self.events if name == event]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """A fresh checkpoint in tmp_path with one run started; closed at the end of the test."""
    checkpoint = Checkpoint.open(tmp_path / "campaign.checkpoint")
    rig = Rig(checkpoint, checkpoint.start_run("test", "fp", "fp"))
    try:
        yield rig
    finally:
        rig.checkpoint.close()


# -- the happy path


def test_every_lead_is_sent_once_and_recorded_placed(rig: Rig) -> None:
    """Twelve leads over four workers: each sent exactly once, each `placed` with its own callId."""
    sender = rig.sender()

    report = rig.run(sender, _leads(12), _options(max_concurrency=4))

    assert sorted(sender.calls) == sorted(_keys(12))
    rows = rig.rows()
    assert {key: (row["status"], row["call_id"], row["attempts"]) for key, row in rows.items()} == {
        key: ("placed", f"call-{key}", 1) for key in _keys(12)
    }
    assert (report.sent, report.leads, dict(report.outcomes)) == (12, 12, {"placed": 12})
    assert report.stop_reason is None


# -- pacing: 429 and Retry-After


@pytest.mark.parametrize(
    ("headers", "pause"),
    [({"Retry-After": "3"}, 3.0), (None, 2.0)],
    ids=["retry-after", "no-retry-after"],
)
def test_429_pauses_the_limiter_and_is_retried(
    rig: Rig, headers: dict[str, str] | None, pause: float
) -> None:
    """A 429 holds later sends for Retry-After (else the first backoff step), halves the rate, is retried."""
    limiter = rig.limiter(rate=10)
    sender = rig.sender({"k0": [_http(429, headers=headers)]})

    report = rig.run(sender, _leads(2), _options(backoff_initial_s=2.0, backoff_max_s=30.0), limiter=limiter)

    assert sender.calls == ["k0", "k0", "k1"]
    # the retry waits out the pause; the next lead then waits one interval of the halved rate (1/5 s)
    assert sender.times == pytest.approx([START, START + pause, START + pause + 0.2])
    assert limiter.rate == pytest.approx(5.0)
    assert rig.statuses() == {"k0": "placed", "k1": "placed"}
    assert rig.rows()["k0"]["attempts"] == 2
    assert report.stop_reason is None


def test_429_holds_back_every_worker(rig: Rig) -> None:
    """With three workers in real time, no send of any worker leaves until Retry-After (0.1 s) has passed."""
    answered_429: list[float] = []

    def script(key: str, n: int) -> Answer:
        if not answered_429:
            answered_429.append(time.monotonic())
            return _http(429, headers={"Retry-After": "0.1"})
        return _placed(key)

    sender = FakeSender(script=script, clock=time.monotonic)
    limiter = RateLimiter(FAST, sleep=asyncio.sleep)  # real clock: several workers wait at once

    rig.run(sender, _leads(6), _options(max_concurrency=3), limiter=limiter)

    assert len(sender.calls) == 7  # six leads and one retry
    assert all(sent >= answered_429[0] + 0.1 for sent in sender.times[1:])
    assert set(rig.statuses().values()) == {"placed"}


def test_too_many_consecutive_429_stop_the_run(rig: Rig) -> None:
    """More than max_consecutive_429 429s in a row stop the run (RATE_LIMITED); unsent leads stay pending."""
    sender = rig.sender(script=lambda key, n: _http(429, headers={"Retry-After": "0"}))

    report = rig.run(sender, _leads(3), _options(max_consecutive_429=3, max_attempts=10))

    assert sender.calls == ["k0"] * 4
    assert report.stop_reason is StopReason.RATE_LIMITED
    assert "4 times in a row" in report.stop_message
    # k0 goes back to pending (a 429 proves nothing was placed); k1 and k2 were never claimed
    assert rig.statuses() == {"k0": "pending"}
    assert rig.rows()["k0"]["http_status"] == 429


def test_429s_separated_by_a_success_are_not_in_a_row(rig: Rig) -> None:
    """The 429 streak restarts at every other answer: two 429s per lead never reach a limit of two."""
    too_fast = _http(429, headers={"Retry-After": "0"})
    sender = rig.sender({"k0": [too_fast, too_fast], "k1": [too_fast, too_fast], "k2": [too_fast, too_fast]})

    report = rig.run(sender, _leads(3), _options(max_consecutive_429=2, max_attempts=10))

    assert len(sender.calls) == 9
    assert rig.statuses() == {"k0": "placed", "k1": "placed", "k2": "placed"}
    assert report.stop_reason is None


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_beyond_the_maximum_stops_the_run_at_once(rig: Rig, status: int) -> None:
    """A Retry-After over max_retry_after_s stops the run at the first answer, without waiting it out."""
    sender = rig.sender({"k0": [_http(status, headers={"Retry-After": "600"})]})

    report = rig.run(sender, _leads(3), _options(max_retry_after_s=60.0))

    assert sender.calls == ["k0"]
    assert report.stop_reason is StopReason.RATE_LIMITED
    assert "600 s" in report.stop_message
    assert rig.time.now - START < 1.0  # the limiter was never paused for 600 s
    assert rig.statuses() == {"k0": "pending"}


# -- answers that settle a lead or stop the run


@pytest.mark.parametrize("status", [401, 403, 404])
def test_fatal_answer_stops_the_run_and_releases_the_lead(rig: Rig, status: int) -> None:
    """A 401/403/404 stops the run (API); that lead goes back to pending, and nothing more is sent."""
    sender = rig.sender({"k0": [_http(status, "nope")]})

    report = rig.run(sender, _leads(3), _options(max_attempts=5))

    assert sender.calls == ["k0"]
    assert report.stop_reason is StopReason.API
    assert f"({status})" in report.stop_message
    row = rig.rows()["k0"]
    assert (row["status"], row["http_status"]) == ("pending", status)
    assert rig.statuses() == {"k0": "pending"}


def test_400_fails_the_lead_without_retrying_it(rig: Rig) -> None:
    """A 400 marks the lead failed with the server's words after one send; the run goes on."""
    sender = rig.sender({"k0": [_http(400, "phoneNumber is not valid")]})

    report = rig.run(sender, _leads(2), _options(max_attempts=5))

    assert sender.calls == ["k0", "k1"]
    row = rig.rows()["k0"]
    assert (row["status"], row["error"], row["http_status"], row["attempts"]) == (
        "failed",
        "phoneNumber is not valid",
        400,
        1,
    )
    assert rig.statuses()["k1"] == "placed"
    assert report.stop_reason is None
    assert dict(report.outcomes) == {"failed": 1, "placed": 1}


@pytest.mark.parametrize(
    "answer",
    [READ_TIMEOUT, _http(500), _http(502, "bad gateway")],
    ids=["read-timeout", "500", "502"],
)
def test_ambiguous_answer_ends_unknown_and_is_never_retried(rig: Rig, answer: Answer) -> None:
    """No answer or a 5xx may have rung the phone: the lead is sent once, ends unknown, the run goes on."""
    sender = rig.sender({"k0": [answer]})

    report = rig.run(sender, _leads(2), _options(max_attempts=5))

    assert sender.count("k0") == 1
    assert rig.statuses() == {"k0": "unknown", "k1": "placed"}
    assert "may have been placed" in rig.rows()["k0"]["error"]
    assert report.stop_reason is None


@pytest.mark.parametrize(
    ("answers", "sends"),
    [
        ([READ_TIMEOUT, READ_TIMEOUT, READ_TIMEOUT], 3),
        ([_http(500), _http(500), _http(500)], 3),
        ([READ_TIMEOUT, _http(400, "invalid")], 2),
        ([READ_TIMEOUT, CONNECT_ERROR, CONNECT_ERROR], 3),
        ([READ_TIMEOUT, _http(401)], 2),
        ([READ_TIMEOUT, _http(429, headers={"Retry-After": "600"})], 2),
        ([_http(500), Answer(200, b'{"success": false}')], 2),
    ],
    ids=[
        "timeouts",
        "500s",
        "then-400",
        "then-connect-errors",
        "then-401",
        "then-long-retry-after",
        "then-no-callid",
    ],
)
def test_retry_ambiguous_ends_unknown_unless_a_call_id_comes_back(
    rig: Rig, answers: list[Answer], sends: int
) -> None:
    """retry_ambiguous: a lead that may have rung ends unknown (never failed/pending) unless a callId came."""
    sender = rig.sender({"k0": answers})

    rig.run(sender, _leads(1), _options(retry_ambiguous=True, max_attempts=3))

    assert sender.count("k0") == sends
    row = rig.rows()["k0"]
    assert row["status"] == "unknown"
    assert "an earlier attempt may have placed the call" in row["error"]


def test_retry_ambiguous_is_settled_by_a_call_id(rig: Rig) -> None:
    """Under retry_ambiguous a retry that returns a callId settles the lead as placed."""
    sender = rig.sender({"k0": [READ_TIMEOUT, _placed("k0")]})

    rig.run(sender, _leads(1), _options(retry_ambiguous=True, max_attempts=3))

    row = rig.rows()["k0"]
    assert (row["status"], row["call_id"], row["attempts"]) == ("placed", "call-k0", 2)


def test_connect_error_is_retried_then_failed(rig: Rig) -> None:
    """A request that never left is resent up to max_attempts, then failed: "gave up after N attempts"."""
    sender = rig.sender(script=lambda key, n: CONNECT_ERROR if key == "k0" else _placed(key))

    report = rig.run(sender, _leads(2), _options(max_attempts=3))

    assert sender.calls == ["k0", "k0", "k0", "k1"]
    row = rig.rows()["k0"]
    assert row["status"] == "failed"
    assert row["error"].startswith("gave up after 3 attempts: request not sent: ConnectError")
    assert row["attempts"] == 3
    assert rig.statuses()["k1"] == "placed"
    assert report.sent == 4


def test_connect_error_then_success_is_placed(rig: Rig) -> None:
    """Connect errors followed by a callId end placed, with every attempt counted."""
    sender = rig.sender({"k0": [CONNECT_ERROR, CONNECT_ERROR]})

    rig.run(sender, _leads(1), _options(max_attempts=3))

    row = rig.rows()["k0"]
    assert (row["status"], row["call_id"], row["attempts"]) == ("placed", "call-k0", 3)


# -- the circuit breaker


def test_breaker_stops_on_the_same_failure_repeated(rig: Rig) -> None:
    """More than breaker_ratio * breaker_window identical failures in the window stop the run (API)."""
    sender = rig.sender(script=lambda key, n: _http(400, "the agent has no phone number"))

    report = rig.run(sender, _leads(6), _options(breaker_window=4, breaker_ratio=0.5))

    assert sender.calls == ["k0", "k1", "k2"]  # 3 > 0.5 * 4
    assert report.stop_reason is StopReason.API
    assert "circuit breaker: 3 of the last 3 leads failed" in report.stop_message
    assert rig.statuses() == {"k0": "failed", "k1": "failed", "k2": "failed"}


def test_breaker_ignores_failures_that_differ(rig: Rig) -> None:
    """Failures with different messages are per-lead problems: the breaker lets the whole list through."""
    sender = rig.sender(script=lambda key, n: _http(400, f"bad number in {key}"))

    report = rig.run(sender, _leads(6), _options(breaker_window=4, breaker_ratio=0.5))

    assert sender.calls == _keys(6)
    assert report.stop_reason is None


def test_too_many_unknowns_in_a_row_stop_the_run(rig: Rig) -> None:
    """More than max_consecutive_unknown unknowns in a row stop the run (API)."""
    sender = rig.sender(script=lambda key, n: READ_TIMEOUT)

    report = rig.run(sender, _leads(6), _options(max_consecutive_unknown=2))

    assert sender.calls == ["k0", "k1", "k2"]
    assert report.stop_reason is StopReason.API
    assert "3 calls in a row ended unknown" in report.stop_message
    assert rig.statuses() == {"k0": "unknown", "k1": "unknown", "k2": "unknown"}


def test_a_placed_call_resets_the_unknown_streak(rig: Rig) -> None:
    """Unknowns separated by a placed call are not "in a row": the run goes on."""
    unknown = {"k0", "k1", "k3", "k4"}
    sender = rig.sender(script=lambda key, n: READ_TIMEOUT if key in unknown else _placed(key))

    report = rig.run(sender, _leads(6), _options(max_consecutive_unknown=2))

    assert sender.calls == _keys(6)
    assert report.stop_reason is None


# -- stopping


def test_stop_lets_calls_in_flight_finish_and_sends_nothing_new(rig: Rig) -> None:
    """After stop(), the three calls in flight finish and are recorded placed; no other lead is sent."""
    sender = HeldSender(expected=3)

    async def control(dispatcher: Dispatcher) -> None:
        await sender.all_in.wait()
        dispatcher.stop(StopReason.INTERRUPTED, "stopped by the test")
        sender.release.set()

    report = rig.run(sender, _leads(6), _options(max_concurrency=3), control=control)

    assert sender.calls == ["k0", "k1", "k2"]
    assert sender.cancelled == []
    assert rig.statuses() == {"k0": "placed", "k1": "placed", "k2": "placed"}
    assert {row["call_id"] for row in rig.rows().values()} == {"call-k0", "call-k1", "call-k2"}
    assert report.stop_reason is StopReason.INTERRUPTED
    assert report.leads == 3


def test_abort_cancels_calls_in_flight_and_marks_them_unknown(rig: Rig) -> None:
    """abort() cancels requests in flight; their leads end unknown (may have rung); nothing else is sent."""
    sender = HeldSender(expected=3)

    async def control(dispatcher: Dispatcher) -> None:
        await sender.all_in.wait()
        dispatcher.abort()

    report = rig.run(sender, _leads(6), _options(max_concurrency=3), control=control)

    assert sender.calls == ["k0", "k1", "k2"]
    assert sorted(sender.cancelled) == ["k0", "k1", "k2"]
    rows = rig.rows()
    assert {key: row["status"] for key, row in rows.items()} == {
        "k0": "unknown",
        "k1": "unknown",
        "k2": "unknown",
    }
    assert {row["error"] for row in rows.values()} == {"interrupted while the request was in flight"}
    assert report.stop_reason is StopReason.INTERRUPTED
    assert report.outcomes["unknown"] == 3


def test_stop_cuts_a_long_backoff_short(rig: Rig) -> None:
    """A stop wakes a worker sleeping out a 30 s backoff at once; the unsent lead goes back to pending."""
    sender = rig.sender(script=lambda key, n: CONNECT_ERROR)

    async def control(dispatcher: Dispatcher) -> None:
        await sender.first_send.wait()
        await asyncio.sleep(0.01)  # the worker is now in its backoff sleep
        dispatcher.stop(StopReason.INTERRUPTED, "stopped by the test")

    started = time.monotonic()
    report = rig.run(sender, _leads(2), _options(backoff_initial_s=30.0, backoff_max_s=30.0), control=control)

    assert time.monotonic() - started < 5.0
    assert sender.calls == ["k0"]
    row = rig.rows()["k0"]
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert report.stop_reason is StopReason.INTERRUPTED


def test_stop_while_waiting_for_a_send_slot_sends_nothing(rig: Rig) -> None:
    """A stop that arrives while a worker waits for its send slot: that lead is neither claimed nor sent."""

    async def sleep_then_stop(seconds: float) -> None:
        rig.stop()
        await rig.time.sleep(seconds)

    limiter = RateLimiter(FAST, sleep=sleep_then_stop, clock=rig.time.clock)  # k0's slot is free, k1 waits
    sender = rig.sender()

    report = rig.run(sender, _leads(3), limiter=limiter)

    assert sender.calls == ["k0"]
    assert rig.statuses() == {"k0": "placed"}
    assert report.stop_reason is StopReason.INTERRUPTED


def test_stop_after_the_claim_releases_the_lead_unsent(rig: Rig) -> None:
    """A stop that arrives while the claim is written: the lead is not sent and goes back to pending."""

    def stop_at_k1(claim: Claim) -> None:
        if claim.key == "k1":
            rig.stop()

    sender = rig.sender()

    report = rig.run(sender, _leads(3), wrap_writer=lambda w: HookedWriter(w, on_claim=stop_at_k1))

    assert sender.calls == ["k0"]
    row = rig.rows()["k1"]
    assert (row["status"], row["attempts"], row["error"]) == ("pending", 0, "stopped before sending")
    assert rig.statuses() == {"k0": "placed", "k1": "pending"}
    assert report.stop_reason is StopReason.INTERRUPTED


# -- what is sent at all: --limit, the calling-hours gate, the checkpoint's refusals


def test_limit_sends_exactly_n_leads(rig: Rig) -> None:
    """limit=2 over six leads and three workers: exactly two sent, the stop reason is LIMIT."""
    sender = rig.sender()

    report = rig.run(sender, _leads(6), _options(max_concurrency=3, limit=2))

    assert sorted(sender.calls) == ["k0", "k1"]
    assert rig.statuses() == {"k0": "placed", "k1": "placed"}
    assert report.stop_reason is StopReason.LIMIT


@pytest.mark.parametrize("limit", [6, 10])
def test_limit_not_reached_is_not_a_stop(rig: Rig, limit: int) -> None:
    """A limit at or above the list's length sends everyone and reports no stop."""
    sender = rig.sender()

    report = rig.run(sender, _leads(6), _options(limit=limit))

    assert sender.calls == _keys(6)
    assert report.stop_reason is None


def test_limit_counts_only_leads_the_gate_lets_through(rig: Rig) -> None:
    """Leads outside their calling hours do not use up the limit."""
    sender = rig.sender()

    report = rig.run(sender, _leads(6), _options(limit=2), gate=lambda lead: lead.key not in {"k0", "k1"})

    assert sender.calls == ["k2", "k3"]
    assert report.stop_reason is StopReason.LIMIT


def test_gate_keeps_closed_leads_unsent_and_counts_them(rig: Rig) -> None:
    """Leads the gate refuses are never sent nor claimed, and report.outside_hours counts them."""
    sender = rig.sender()

    report = rig.run(sender, _leads(5), gate=lambda lead: lead.key not in {"k1", "k3"})

    assert sender.calls == ["k0", "k2", "k4"]
    assert rig.statuses() == {"k0": "placed", "k2": "placed", "k4": "placed"}
    assert report.outside_hours == 2
    assert report.stop_reason is None


@pytest.mark.parametrize("open_checks", [1, 2, 3])
def test_gate_closing_before_the_send_keeps_the_lead_unsent(rig: Rig, open_checks: int) -> None:
    """A window that closes between picking a lead and sending it: not sent, left pending (or unclaimed)."""
    checks: list[str] = []

    def gate(lead: LeadRequest) -> bool:
        if lead.key != "k1":
            return True
        checks.append(lead.key)
        return len(checks) <= open_checks

    sender = rig.sender()

    report = rig.run(sender, _leads(3), gate=gate)

    assert sender.calls == ["k0", "k2"]
    assert rig.statuses().get("k1", "pending") == "pending"
    assert report.outside_hours == 1


@pytest.mark.parametrize("earlier", [Status.PLACED, Status.FAILED, Status.UNKNOWN, Status.IN_FLIGHT])
def test_claim_refused_by_the_checkpoint_is_skipped(rig: Rig, earlier: Status) -> None:
    """A lead the checkpoint already settled (or another run holds) is skipped unsent; the run goes on."""
    rig.checkpoint.claim_now([Claim("k1", "+14155550001", "k1")], rig.run_id)
    if earlier is not Status.IN_FLIGHT:
        rig.checkpoint.record_now([Result("k1", earlier, 1, call_id="call-earlier")])
    before = rig.rows()["k1"]
    sender = rig.sender()

    report = rig.run(sender, _leads(3))

    assert sender.calls == ["k0", "k2"]
    assert rig.rows()["k1"] == before
    assert [fields["row"] for fields in rig.named("claim_refused")] == [3]
    assert report.stop_reason is None


def _placed_before(rig: Rig, key: str) -> None:
    """Leave `key` placed by an earlier run, with one call behind it."""
    rig.checkpoint.claim_now([Claim(key, "+14155550001", key)], rig.run_id)
    rig.checkpoint.record_now([Result(key, Status.PLACED, 1, call_id="call-earlier")])


def _recycled(lead: LeadRequest, of_calls: int) -> LeadRequest:
    return lead._replace(recycle_of_calls=of_calls)


def test_recycled_lead_is_called_again_and_counted(rig: Rig) -> None:
    """A recycle of a placed lead with the call count it was decided on is sent once more: two calls."""
    _placed_before(rig, "k0")
    sender = rig.sender()

    rig.run(sender, [_recycled(_leads(1)[0], of_calls=1)])

    assert sender.calls == ["k0"]
    row = rig.rows()["k0"]
    assert (row["status"], row["call_id"], row["calls"]) == ("placed", "call-k0", 2)


@pytest.mark.parametrize("of_calls", [0, 2])
def test_recycle_decided_on_another_call_count_is_refused(rig: Rig, of_calls: int) -> None:
    """A recycle decided on a stale call count is refused by the checkpoint: not sent, row untouched."""
    _placed_before(rig, "k0")
    before = rig.rows()["k0"]
    sender = rig.sender()

    report = rig.run(sender, [_recycled(_leads(1)[0], of_calls=of_calls)])

    assert sender.calls == []
    assert rig.rows()["k0"] == before
    assert len(rig.named("claim_refused")) == 1
    assert report.stop_reason is None


@pytest.mark.parametrize("how", ["stop-before-send", "401"])
def test_recycle_that_never_left_goes_back_to_placed(rig: Rig, how: str) -> None:
    """A recycle stopped before sending, or answered 401, is released: placed again, no call counted."""
    _placed_before(rig, "k0")

    def stop_on_claim(claim: Claim) -> None:
        if how == "stop-before-send":
            rig.stop()

    sender = rig.sender({"k0": [_http(401)]})

    rig.run(
        sender,
        [_recycled(_leads(1)[0], of_calls=1)],
        wrap_writer=lambda w: HookedWriter(w, on_claim=stop_on_claim),
    )

    assert sender.calls == ([] if how == "stop-before-send" else ["k0"])
    row = rig.rows()["k0"]
    assert (row["status"], row["call_id"], row["calls"]) == ("placed", "call-earlier", 1)


# -- the checkpoint cannot be written


def test_checkpoint_unwritable_from_the_start_stops_the_run_before_any_send(rig: Rig) -> None:
    """If the first claim cannot be written, the run stops (CHECKPOINT) and no request is sent."""
    rig.checkpoint.close()  # a real fault: every write the writer tries now fails in SQLite
    sender = rig.sender()

    report = rig.run(sender, _leads(4), _options(max_concurrency=3))

    assert sender.calls == []
    assert report.stop_reason is StopReason.CHECKPOINT
    assert "cannot write the checkpoint" in report.stop_message
    assert rig.named("claim_failed")
    rig.reopen()
    assert rig.statuses() == {}


def test_result_that_cannot_be_written_stops_the_run(rig: Rig) -> None:
    """A result that cannot be written stops the run; the lead stays in_flight, so no rerun dials it again."""

    def script(key: str, n: int) -> Answer:
        rig.checkpoint.close()  # the claim is committed; the disk goes away while the call rings
        return _placed(key)

    sender = rig.sender(script=script)

    report = rig.run(sender, _leads(3))

    assert sender.calls == ["k0"]
    assert report.stop_reason is StopReason.CHECKPOINT
    assert [fields["result"].call_id for fields in rig.named("record_failed")] == ["call-k0"]
    # the answer is kept for the campaign to write once it can, and to log for the next run
    assert [(u.row, u.result.status, u.result.call_id) for u in report.unrecorded] == [
        (2, "placed", "call-k0")
    ]
    rig.reopen()
    assert rig.statuses() == {"k0": "in_flight"}


def test_claim_failing_mid_run_stops_the_run(rig: Rig) -> None:
    """A claim failing after two leads were placed stops the run; nothing more is sent, the two stay."""
    claims: list[str] = []

    def break_on_third(claim: Claim) -> None:
        claims.append(claim.key)
        if len(claims) == 3:
            rig.checkpoint.close()  # a real fault: SQLite refuses this write and every later one

    sender = rig.sender()

    report = rig.run(sender, _leads(5), wrap_writer=lambda w: HookedWriter(w, on_claim=break_on_third))

    assert sender.calls == ["k0", "k1"]
    assert report.stop_reason is StopReason.CHECKPOINT
    assert [fields["row"] for fields in rig.named("claim_failed")] == [4]
    rig.reopen()
    assert rig.statuses() == {"k0": "placed", "k1": "placed"}


def test_a_result_write_failing_once_stops_the_run(rig: Rig) -> None:
    """One failed result write stops the run even if later writes would work: a placed call is unrecorded."""
    failures: list[str] = []

    def fail_once(result: Result) -> None:
        if not failures:
            failures.append(result.key)
            raise CheckpointWriteFailed("campaign.checkpoint: cannot write the checkpoint (disk I/O error)")

    sender = rig.sender()

    report = rig.run(sender, _leads(3), wrap_writer=lambda w: HookedWriter(w, on_record=fail_once))

    assert sender.calls == ["k0"]
    assert report.stop_reason is StopReason.CHECKPOINT
    assert "disk I/O error" in report.stop_message
    assert rig.statuses() == {"k0": "in_flight"}  # the next run's recovery makes it unknown, never redials


# -- a bug in one worker, an abort during a claim


def test_a_bug_in_one_worker_stops_every_worker(rig: Rig) -> None:
    """An unexpected exception stops the whole run: nobody dials on, the leads in flight end unknown."""
    sender = HeldSender(expected=2)

    def explode(key: str) -> None:
        raise ZeroDivisionError(f"bug while handling {key}")

    class Buggy:
        async def place_call(self, body: dict[str, Any]) -> Answer:
            if body["referenceId"] == "k2":
                explode("k2")
            return await sender.place_call(body)

    with pytest.raises(ZeroDivisionError):
        rig.run(Buggy(), _leads(8), _options(max_concurrency=3))

    assert sorted(sender.calls) == ["k0", "k1"]  # nobody after the bug
    assert rig.statuses() == {"k0": "unknown", "k1": "unknown", "k2": "unknown"}


def test_abort_while_a_claim_commits_leaves_no_lead_in_flight(rig: Rig) -> None:
    """A claim that commits while abort() runs still ends settled (unknown), never left in_flight."""

    def abort_now(claim: Claim) -> None:
        assert rig.dispatcher is not None
        rig.dispatcher.abort()

    report = rig.run(
        rig.sender(),
        _leads(3),
        wrap_writer=lambda writer: HookedWriter(writer, on_claim=abort_now),
    )

    assert report.stop_reason is StopReason.INTERRUPTED
    assert "in_flight" not in rig.statuses().values()
    assert rig.statuses() == {"k0": "unknown"}
    assert (report.leads, report.outcomes["unknown"]) == (1, 1)


def test_only_a_call_again_can_be_released_to_placed(rig: Rig) -> None:
    """The checkpoint refuses to release a first call to placed: a lead never sent is never placed."""
    from dialer.lead_state import IllegalMove

    rig.checkpoint.claim_now([Claim("k0", "+14155550000", None)], rig.run_id)
    with pytest.raises(IllegalMove):
        rig.checkpoint.record_now([Result("k0", Status.PLACED, 0, released=True)])
    with pytest.raises(IllegalMove):
        rig.checkpoint.record_now([Result("k0", Status.PENDING, 0, released=True)])

    assert rig.statuses() == {"k0": "in_flight"}
