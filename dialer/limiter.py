"""Pacing: a burst-free slot scheduler with a global pause and AIMD after 429s.

Each `acquire` takes the next send slot. Slots are spaced 1/rate apart and scheduled from the
later of now and the previous slot, so a late wake-up (an event-loop stall) never turns into a
catch-up burst. The clock and the sleep are injected: tests run on a fake clock.
"""

from __future__ import annotations

import bisect
import itertools
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

DECREASE_FACTOR = 0.5
# Low enough to get under a server limit 100x below the configured rate.
MIN_RATE_FRACTION = 0.005
# The climb back is logged in steps of this share of the target (about once a second).
REPORT_STEP = 0.05
# 429s answered to requests already in flight describe one congestion event, not several:
# cut the rate at most once per this many seconds.
CUT_COOLDOWN_S = 1.0
# The send-time cap counts over slightly more than a second: requests that leave on time can
# still reach the server up to ~10 ms apart from their neighbours (scheduling on a busy box),
# and a server counting by its own clock must still see at most ceil(rate) + 1 per second.
# It costs at most 1% of the rate.
WINDOW_S = 1.01
# A slot missed by more than this was not missed by a busy event loop (milliseconds) but by a
# process that stood still (SIGSTOP, a frozen container, swapping): it is booked again.
# Sends released this close before a stall may have waited for the wire until it ended,
# so they count as sent when it did.
STALL_S = 0.25


@dataclass
class RateLimiter:
    """Hands out send slots at `rate` per second; `pause` stops everyone for a while."""

    rate: float
    sleep: Sleep
    clock: Clock = time.monotonic
    on_change: Callable[[str, float], None] | None = None
    target: float = field(init=False)
    _next_slot: float = field(init=False, default=0.0)
    _paused_until: float = field(init=False, default=0.0)
    _last_increase: float = field(init=False, default=0.0)
    _reported_rate: float = field(init=False, default=0.0)
    _last_cut: float = field(init=False, default=float("-inf"))
    _pauses: int = field(init=False, default=0)
    _released: deque[float] = field(init=False, default_factory=deque)
    # When each sender sleeping here is due to wake: one overdue by STALL_S means the process
    # stood still (a sender that merely has nothing to send leaves no such trace).
    _wake_times: list[float] = field(init=False, default_factory=list)
    _stall_handled: float = field(init=False, default=float("-inf"))

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("rate must be positive")
        self.target = self.rate
        self._last_increase = self.clock()

    @property
    def interval(self) -> float:
        return 1.0 / self.rate

    def reserve(self) -> float:
        """Book the next slot and return how long to wait for it (pure, no sleeping)."""
        now = self.clock()
        return self._book(now) - now

    def _book(self, now: float) -> float:
        self._notice_stall(now)
        self._climb(now)
        slot = max(now, self._next_slot, self._paused_until)
        self._next_slot = slot + self.interval
        return slot

    @property
    def window_cap(self) -> int:
        """Most sends allowed in any one-second window: the rate, rounded up."""
        return max(1, math.ceil(self.rate - 1e-9))

    async def acquire(self) -> float:
        """Wait for a slot and return its time; a pause that starts while we wait voids the slot
        booked before it, and so does a stall (see `admit`).

        Slots stay on their schedule, so a wake-up that is a little late costs nothing.
        """
        while True:
            pauses = self._pauses
            now = self.clock()
            slot = self._book(now)
            if slot > now:
                await self._sleep_until(slot, now)
            if self.clock() - slot > STALL_S:
                continue  # the process stood still past its slot: book again from now
            if self._pauses == pauses or self.clock() >= self._paused_until:
                return slot

    async def admit(self, slot: float | None = None) -> None:
        """Call right before the request leaves: at most `window_cap` sends per sliding second.

        Anything between the slot and the wire (the checkpoint's commit, an event-loop stall)
        can bunch requests that left their slots on time; this bound holds on real send times.
        A slot that passed more than STALL_S ago (the process was stopped, the VM paused) is not
        honoured late: it is booked again from now, so a stall never becomes a catch-up burst.
        Senders held here by the same pause or a full window would all leave at the instant it
        ends, so each takes a fresh slot after waiting.
        """
        due = slot
        while True:
            if due is not None and self.clock() - due > STALL_S:
                due = await self.acquire()  # the moment it waited for passed long ago: book anew
            now = self.clock()
            wait = max(self._paused_until - now, self._window_wait(now))
            if wait <= 0:
                self._released.append(now)
                return
            await self._sleep_until(now + wait, now)
            due = await self.acquire()

    async def _sleep_until(self, wake: float, now: float) -> None:
        bisect.insort(self._wake_times, wake)
        try:
            await self.sleep(wake - now)
            self._notice_stall(self.clock())
        finally:
            self._wake_times.remove(wake)

    def _notice_stall(self, now: float) -> None:
        """Whoever runs first after a stall (often not a sleeper here) sees it, once."""
        if not self._wake_times or self._wake_times[0] < self._stall_handled:
            return
        if now - self._wake_times[0] > STALL_S:
            self._stall_handled = now
            self._carry_across_stall(now)

    def _carry_across_stall(self, now: float) -> None:
        """Count the sends released just before a stall as sent when it ended.

        A request released right before the process stood still reaches the server only when it
        moves again, beside the sends booked afresh; counted at its release time, it would let
        the first second after a SIGSTOP hold the rate plus those stragglers.
        """
        before = [sent for sent in self._released if sent <= now - STALL_S]
        if not before:
            return
        kept = [sent for sent in before if sent <= before[-1] - STALL_S]
        after = list(itertools.islice(self._released, len(before), None))
        self._released = deque(kept + after + [now] * (len(before) - len(kept)))

    def _window_wait(self, now: float) -> float:
        self._notice_stall(now)
        while self._released and now - self._released[0] >= WINDOW_S:
            self._released.popleft()
        if len(self._released) < self.window_cap:
            return 0.0
        return self._released[-self.window_cap] + WINDOW_S - now

    def pause(self, seconds: float, *, cut_rate: bool) -> None:
        """Hold every sender for `seconds`; a 429 also halves the rate (multiplicative decrease).

        The climb back starts when the pause ends, whichever 429 of a burst came last.
        """
        now = self.clock()
        until = now + max(0.0, seconds)
        if until > self._paused_until:
            self._pauses += 1
            self._paused_until = until
            self._next_slot = max(self._next_slot, until)
        if cut_rate and now - self._last_cut >= CUT_COOLDOWN_S:
            self._last_cut = now
            floor = self.target * MIN_RATE_FRACTION
            new_rate = max(floor, self.rate * DECREASE_FACTOR)
            if new_rate < self.rate:
                self.rate = new_rate
                self._reported_rate = new_rate
                self._notify("decrease", new_rate)
        if cut_rate:
            self._last_increase = max(self._last_increase, now, until)

    def _climb(self, now: float) -> None:
        """Additive increase: regain 5% of the target per second without a 429."""
        if self.rate >= self.target:
            self._last_increase = now
            return
        elapsed = now - self._last_increase
        if elapsed <= 0:
            return
        step = self.target * 0.05 * elapsed
        self.rate = min(self.target, self.rate + step)
        self._last_increase = now
        if self.rate >= self.target:
            self._notify("restored", self.rate)
        elif self.rate - self._reported_rate >= self.target * REPORT_STEP - 1e-9:
            self._reported_rate = self.rate
            self._notify("increase", self.rate)

    def _notify(self, event: str, rate: float) -> None:
        if self.on_change is not None:
            self.on_change(event, rate)
