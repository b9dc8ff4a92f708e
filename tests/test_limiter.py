"""The send-slot limiter on a fake clock: pacing, stalls, pauses and AIMD, with no real waiting."""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import math
import random
from collections.abc import Callable

import pytest

from dialer.limiter import CUT_COOLDOWN_S, RateLimiter

START = 1000.0  # an arbitrary monotonic reading: nothing may depend on the clock starting at 0


class FakeTime:
    """A clock that only moves when the limiter sleeps or the test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _limiter(rate: float, fake: FakeTime, events: list[tuple[str, float]] | None = None) -> RateLimiter:
    on_change = None if events is None else (lambda event, rate: events.append((event, rate)))
    return RateLimiter(rate, sleep=fake.sleep, clock=fake.clock, on_change=on_change)


def _book(limiter: RateLimiter, fake: FakeTime, leads: int) -> list[float]:
    """Reserve slots for `leads` senders arriving at the same instant; return their send times."""
    return [fake.now + limiter.reserve() for _ in range(leads)]


def _gaps(sends: list[float]) -> list[float]:
    ordered = sorted(sends)
    return [b - a for a, b in itertools.pairwise(ordered)]


def test_no_start_up_burst() -> None:
    """The first slot is immediate and each next slot comes exactly 1/rate later."""
    fake = FakeTime()

    async def run() -> None:
        limiter = _limiter(10, fake)
        for _ in range(100):
            await limiter.acquire()

    asyncio.run(run())

    assert fake.now - START == pytest.approx(9.9)
    assert len(fake.sleeps) == 99  # the first acquire did not sleep
    assert fake.sleeps == pytest.approx([0.1] * 99)


def test_concurrent_reservations_are_spaced() -> None:
    """Many senders reserving at the same instant get slots 0, 1/rate, 2/rate, ... from now."""
    fake = FakeTime()
    limiter = _limiter(4, fake)

    delays = [limiter.reserve() for _ in range(8)]

    assert delays == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75])


def _simulate(rate: float, seed: int, duration: float = 60.0) -> list[float]:
    """Concurrent senders with random answer latency, stalls and 429s; returns every send time."""
    rng = random.Random(seed)
    fake = FakeTime()
    limiter = _limiter(rate, fake)
    senders = 3 * math.ceil(rate) + 5  # enough to keep the limiter the bottleneck
    ready = [(fake.now, sender) for sender in range(senders)]  # everyone starts at once
    heapq.heapify(ready)
    mishap = 1.0 / (rate * 15.0)  # per send: about one stall and one 429 or 503 every 15 s
    sends: list[float] = []
    while fake.now < START + duration:
        when, sender = heapq.heappop(ready)
        fake.now = max(fake.now, when)
        if rng.random() < mishap:
            fake.advance(rng.uniform(0.0, 5.0))  # an event-loop stall
        if rng.random() < mishap:
            limiter.pause(rng.uniform(0.0, 2.0), cut_rate=rng.random() < 0.5)
        send = fake.now + limiter.reserve()
        sends.append(send)
        heapq.heappush(ready, (send + rng.uniform(0.0, 2.0 / rate), sender))
    return sorted(sends)


@pytest.mark.parametrize("rate", [0.5, 1, 3, 7.5, 100])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_one_second_window_exceeds_the_rate(rate: float, seed: int) -> None:
    """Over any 1-second window, concurrent senders never send more than ceil(rate) + 1 calls."""
    sends = _simulate(rate, seed)

    busiest = max(bisect.bisect_right(sends, start + 1.0) - i for i, start in enumerate(sends))

    assert busiest <= math.ceil(rate) + 1
    assert busiest >= max(1, math.floor(rate))  # the limiter was saturated: the check is not vacuous
    assert min(_gaps(sends)) >= 1.0 / rate - 1e-9


@pytest.mark.parametrize("stall", [5.0, 0.3])
def test_stall_does_not_cause_catch_up_burst(stall: float) -> None:
    """After the clock jumps, slots resume 1/rate apart from the later of now and the previous slot."""
    fake = FakeTime()
    limiter = _limiter(4, fake)
    before = _book(limiter, fake, 3)  # slots at +0, +0.25, +0.5; the next is booked for +0.75
    previous_next = before[-1] + 0.25

    fake.advance(stall)
    after = _book(limiter, fake, 10)

    first = max(fake.now, previous_next)
    assert after == pytest.approx([first + 0.25 * k for k in range(10)])
    assert min(_gaps(before + after)) >= 0.25 - 1e-9


def test_stall_between_acquires_gives_no_catch_up() -> None:
    """Sequential acquires after a 5 s stall start at once and then wait a full interval each."""
    fake = FakeTime()
    limiter = _limiter(2, fake)

    async def run() -> list[float]:
        sends = []
        for _ in range(3):
            await limiter.acquire()
            sends.append(fake.now)
        fake.advance(5.0)
        for _ in range(4):
            await limiter.acquire()
            sends.append(fake.now)
        return sends

    sends = asyncio.run(run())

    assert sends[3] == pytest.approx(START + 1.0 + 5.0)  # no wait right after the stall
    assert sends[3:] == pytest.approx([sends[3] + 0.5 * k for k in range(4)])
    assert min(_gaps(sends)) >= 0.5 - 1e-9


def test_pause_without_cut_delays_and_keeps_rate() -> None:
    """pause(2, cut_rate=False) holds the next slot until now+2 and leaves the rate unchanged."""
    fake = FakeTime()
    events: list[tuple[str, float]] = []
    limiter = _limiter(10, fake, events)
    _book(limiter, fake, 3)
    fake.advance(3.0)

    limiter.pause(2.0, cut_rate=False)
    limiter.pause(0.5, cut_rate=False)  # a shorter pause never shortens a longer one
    sends = _book(limiter, fake, 3)

    assert sends == pytest.approx([fake.now + 2.0, fake.now + 2.1, fake.now + 2.2])
    assert limiter.rate == 10
    assert events == []


def test_pause_does_not_move_slots_already_later() -> None:
    """A pause shorter than the booked backlog leaves the next slot where it was."""
    fake = FakeTime()
    limiter = _limiter(1, fake)
    _book(limiter, fake, 5)  # the next free slot is now+5

    limiter.pause(2.0, cut_rate=False)

    assert limiter.reserve() == pytest.approx(5.0)


def test_cut_rate_halves_down_to_half_a_percent_of_target() -> None:
    """Each 429 event halves the rate (multiplicative decrease) but never below 0.5% of the target.

    Low enough for a server limited 100x below the configured rate (1/s against 100/s).
    """
    fake = FakeTime()
    events: list[tuple[str, float]] = []
    limiter = _limiter(10, fake, events)

    rates = []
    for _ in range(10):
        limiter.pause(0.0, cut_rate=True)
        rates.append(limiter.rate)
        fake.advance(CUT_COOLDOWN_S)  # separate congestion events, no reserve to climb in between

    assert rates == pytest.approx([5.0, 2.5, 1.25, 0.625, 0.3125, 0.15625, 0.078125, 0.05, 0.05, 0.05])
    assert limiter.target == 10
    assert [event for event, _ in events] == ["decrease"] * 8  # no event once at the floor


def test_climb_back_is_reported_about_once_a_second() -> None:
    """Each change of pace is logged: the climb in 5%-of-target steps, then "restored"."""
    fake = FakeTime()
    events: list[tuple[str, float]] = []
    limiter = _limiter(10, fake, events)
    limiter.pause(0.0, cut_rate=True)

    for _ in range(50):
        fake.advance(0.25)
        limiter.reserve()

    names = [event for event, _ in events]
    assert names[0] == "decrease" and names[-1] == "restored"
    assert names[1:-1] == ["increase"] * 9  # 5.0 -> 10.0 in steps of 0.5
    assert [rate for _, rate in events[1:-1]] == pytest.approx([5.5 + 0.5 * i for i in range(9)])


def test_cut_rate_slows_the_slots() -> None:
    """After a cut the slots are spaced by the new, slower interval."""
    fake = FakeTime()
    limiter = _limiter(10, fake)

    limiter.pause(1.0, cut_rate=True)

    assert [limiter.reserve() for _ in range(3)] == pytest.approx([1.0, 1.2, 1.4])


def test_burst_of_429s_cuts_the_rate_once() -> None:
    """429s arriving within the cool-down describe one congestion event: the rate is halved once."""
    fake = FakeTime()
    events: list[tuple[str, float]] = []
    limiter = _limiter(10, fake, events)

    for _ in range(10):  # every request in flight answers 429 at about the same time
        limiter.pause(1.0, cut_rate=True)
        fake.advance(0.05)

    assert limiter.rate == 5.0
    assert events == [("decrease", 5.0)]


def test_rate_climbs_back_additively_to_target() -> None:
    """Without another 429 the rate climbs linearly, monotonically, to the target in about 10-20 s."""
    fake = FakeTime()
    limiter = _limiter(10, fake)
    limiter.pause(1.0, cut_rate=True)
    assert limiter.rate == 5.0

    samples: list[tuple[float, float]] = []
    for _ in range(60):
        fake.advance(0.5)
        limiter.reserve()
        samples.append((fake.now - START, limiter.rate))

    rates = [rate for _, rate in samples]
    assert rates == sorted(rates)  # monotone non-decreasing
    assert all(rate < 10 for elapsed, rate in samples if elapsed < 10.0)  # not back too soon
    assert all(rate == 10 for elapsed, rate in samples if elapsed >= 20.0)  # back within ~20 s
    climbing = [rate for elapsed, rate in samples if 1.0 <= elapsed <= 11.0]
    assert _gaps(climbing) == pytest.approx([0.25] * (len(climbing) - 1))  # additive: 5% of target/s


def test_no_climb_during_the_pause() -> None:
    """The rate does not start climbing back until the 429's pause is over."""
    fake = FakeTime()
    limiter = _limiter(10, fake)
    limiter.pause(4.0, cut_rate=True)

    fake.advance(3.9)
    limiter.reserve()

    assert limiter.rate == 5.0


def test_on_change_reports_decrease_and_restored() -> None:
    """on_change hears "decrease" with the cut rate and "restored" once the target is reached."""
    fake = FakeTime()
    events: list[tuple[str, float]] = []
    limiter = _limiter(10, fake, events)

    limiter.pause(1.0, cut_rate=True)
    fake.advance(30.0)
    limiter.reserve()
    fake.advance(30.0)
    limiter.reserve()

    assert events == [("decrease", 5.0), ("restored", 10.0)]


@pytest.mark.parametrize("rate", [0, -1, -0.001])
def test_non_positive_rate_is_refused(rate: float) -> None:
    """A zero or negative rate raises ValueError."""
    fake = FakeTime()
    with pytest.raises(ValueError, match="rate must be positive"):
        _limiter(rate, fake)


def test_acquire_sleeps_only_when_there_is_a_delay() -> None:
    """acquire awaits the injected sleep for the exact delay, and not at all when the slot is free."""
    fake = FakeTime()
    limiter = _limiter(4, fake)

    async def run() -> list[list[float]]:
        seen = []
        await limiter.acquire()  # free slot
        seen.append(list(fake.sleeps))
        await limiter.acquire()  # one interval later
        seen.append(list(fake.sleeps))
        fake.advance(10.0)
        await limiter.acquire()  # the slot is long free again
        seen.append(list(fake.sleeps))
        limiter.pause(2.0, cut_rate=False)
        await limiter.acquire()  # held by the pause
        seen.append(list(fake.sleeps))
        return seen

    seen = asyncio.run(run())

    assert seen == [[], [0.25], [0.25], [0.25, 2.0]]


class VirtualTime:
    """Time for many concurrent senders: each sleep wakes at its own instant, in order, and the
    clock jumps from one wake-up to the next (once, `stall_s` further: the process stood still)."""

    def __init__(self, stall_at: float, stall_s: float) -> None:
        self.now = START
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._stall_at, self._stall_s = stall_at, stall_s
        self.stalled = False

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._order), wake))
        await wake

    async def drive(self, finished: Callable[[], bool]) -> None:
        while not finished():
            for _ in range(20):  # let every runnable sender reach its next sleep
                await asyncio.sleep(0)
            if not self._sleepers:
                continue
            when, _, wake = heapq.heappop(self._sleepers)
            self.now = max(self.now, when)
            if not self.stalled and self.now >= self._stall_at:
                self.stalled = True
                self.now += self._stall_s  # every sleeper wakes this much late
            wake.set_result(None)


def test_a_stall_is_not_paid_back_as_a_burst() -> None:
    """Slots that passed while the process stood still (SIGSTOP, a paused VM) are booked again
    from the moment it wakes: after a 4 s stall, 50 senders at 50/s keep the configured spacing."""
    time_ = VirtualTime(stall_at=START + 1.0, stall_s=4.0)
    limiter = RateLimiter(50, sleep=time_.sleep, clock=time_.clock)
    sends: list[float] = []

    async def sender() -> None:
        for _ in range(6):
            slot = await limiter.acquire()
            await limiter.admit(slot)
            sends.append(time_.now)

    async def run() -> None:
        senders = [asyncio.create_task(sender()) for _ in range(50)]
        await time_.drive(lambda: all(task.done() for task in senders))
        await asyncio.gather(*senders)

    asyncio.run(run())

    after = sorted(t for t in sends if t >= START + 5.0)
    assert time_.stalled and len(sends) == 300 and len(after) > 200
    assert min(_gaps(after)) >= 1 / 50 - 1e-9  # no two sends closer than the rate allows
    ordered = sorted(sends)
    assert max(bisect.bisect_left(ordered, t + 1.0) - i for i, t in enumerate(ordered)) <= 50


@pytest.mark.parametrize("stall_at", [0.503, 2.503, 3.003])
def test_sends_caught_on_the_way_to_the_wire_by_a_stall_count_after_it(stall_at: float) -> None:
    """A request released just before the process stood still reaches the server only when it
    moves again; with those stragglers, no second after a 4 s stall holds more than the rate."""
    time_ = VirtualTime(stall_at=START + stall_at, stall_s=4.0)
    limiter = RateLimiter(50, sleep=time_.sleep, clock=time_.clock)
    sends: list[tuple[float, float]] = []  # (released, reached the wire)

    async def sender() -> None:
        for _ in range(6):
            slot = await limiter.acquire()
            await limiter.admit(slot)
            released = time_.now
            await time_.sleep(0.005)  # JSON, the pool, the socket: the stall lands in between
            sends.append((released, time_.now))

    async def run() -> None:
        senders = [asyncio.create_task(sender()) for _ in range(50)]
        await time_.drive(lambda: all(task.done() for task in senders))
        await asyncio.gather(*senders)

    asyncio.run(run())

    stragglers = [s for s in sends if s[0] < START + stall_at and s[1] > START + stall_at + 4.0]
    assert time_.stalled and len(sends) == 300 and stragglers  # the stall caught one on the way
    wire = sorted(reached for _, reached in sends)
    assert max(bisect.bisect_left(wire, t + 1.0) - i for i, t in enumerate(wire)) <= 50
