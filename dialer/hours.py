"""Calling hours: whether a lead may be rung now, judged by the wall clock where the lead is.

A lead's zones come from its tz column when the list has one, else from its phone number; a
number that maps to several zones is callable only while the window is open in every one of
them. Nothing here reads a clock: the instant is always passed in, so every rule is testable.

Rules, each pinned by a test:
- The window is half-open, [start, end), in local wall-clock time. `end < start` crosses
  midnight and belongs to the day it started on (Fri 22:00-Sat 02:00 counts as Friday).
- Daylight saving time is judged by the wall clock too: on a fall-back day a wall time that
  happens twice is inside the window both times; on a spring-forward day the skipped wall
  times are never open, and a window whose start was skipped opens at the jump, if the clock
  lands before `end`. The window is never open while the local clock reads outside it.
- `next_open` only ever returns an instant that `is_open` accepts; a candidate it failed to
  consider could make it later, never outside the window.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Loadable keys that are not places: `localtime` is whatever the host is set to.
_NOT_PLACES = frozenset({"localtime", "posixrules", "Factory"})
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAYS = DAY_NAMES[:5]
HORIZON = timedelta(days=8)

_HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
# Offsets are sampled this often to find DST transitions; real zones change at most twice a year.
_TRANSITION_STEP = timedelta(hours=6)
_DAY_SECONDS = 86_400


@lru_cache(maxsize=1024)
def load_zone(name: str) -> ZoneInfo:
    """The zone for an IANA name; ValueError naming it (with a suggestion) when unknown."""
    if name not in _NOT_PLACES:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise ValueError(f"unknown time zone {name!r}{_suggest(name)}")


@lru_cache(maxsize=1)
def _places() -> list[str]:
    return sorted(available_timezones() - _NOT_PLACES)


def _suggest(name: str) -> str:
    places = _places()
    by_case = {place.lower(): place for place in places}
    if name.strip().lower() in by_case:
        return f" (did you mean {by_case[name.strip().lower()]!r}?)"
    close = difflib.get_close_matches(name, places, n=1, cutoff=0.8)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f" ({hint}use an IANA name such as 'America/New_York')"


class CallingHours(BaseModel):
    """The `[calling_hours]` table: a weekly window in each lead's local time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str
    end: str
    days: list[str] = Field(default_factory=lambda: list(WEEKDAYS))
    timezone: str

    @field_validator("start", "end", mode="before")
    @classmethod
    def _clock(cls, value: Any) -> Any:
        if isinstance(value, time):
            # TOML has a bare time type; `start = 09:00:00` arrives as a time, not a string.
            raise ValueError(f'write the time as a quoted string, e.g. "{value:%H:%M}"')
        if isinstance(value, str) and not _HHMM.fullmatch(value):
            raise ValueError(f'{value!r} is not a 24-hour "HH:MM" time, e.g. "09:00" or "20:30"')
        return value

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"must name at least one day of {', '.join(DAY_NAMES)}")
        unknown = [day for day in value if day not in DAY_NAMES]
        if unknown:
            names = ", ".join(repr(day) for day in unknown)
            raise ValueError(f"unknown day {names}: use lowercase {', '.join(DAY_NAMES)}")
        repeated = sorted({day for day in value if value.count(day) > 1}, key=DAY_NAMES.index)
        if repeated:
            raise ValueError(f"day listed more than once: {', '.join(repeated)}")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone_name(cls, value: str) -> str:
        load_zone(value)
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> CallingHours:
        if self.start == self.end:
            raise ValueError(
                f"start and end are both {self.start}: the window is ambiguous. "
                'For a window across midnight make end earlier than start, e.g. "22:00" to "02:00"'
            )
        return self


@dataclass(frozen=True, init=False, eq=False)
class Window:
    """The calling window of a `CallingHours`, asked about explicit instants; immutable and pure."""

    hours: CallingHours
    _start: time
    _end: time
    _days: frozenset[int]

    def __init__(self, hours: CallingHours) -> None:
        object.__setattr__(self, "hours", hours)
        object.__setattr__(self, "_start", time.fromisoformat(hours.start))
        object.__setattr__(self, "_end", time.fromisoformat(hours.end))
        object.__setattr__(self, "_days", frozenset(DAY_NAMES.index(day) for day in hours.days))

    def is_open(self, zones: Sequence[str], now: datetime) -> bool:
        """True only if `now` (tz-aware) is inside the window in every one of `zones`."""
        instant = _utc(now)
        return all(self._open_in(zone, instant) for zone in _load_zones(zones))

    def next_open(self, zones: Sequence[str], now: datetime) -> datetime | None:
        """The earliest UTC instant >= now open in all zones at once; None if none within 8 days."""
        instant = _utc(now)
        loaded = _load_zones(zones)
        horizon = instant + HORIZON
        # The intersection of the zones' open intervals starts where one zone's interval starts,
        # and a zone's interval starts at its local start time (either occurrence on a fall-back
        # day) or at a DST jump that lands inside the window; or it is open already.
        candidates = {instant}
        for zone in dict.fromkeys(loaded):
            candidates.update(self._openings(zone, instant, horizon))
            candidates.update(_transitions(zone, instant, horizon))
        for candidate in sorted(candidates):
            if candidate <= horizon and all(self._open_in(zone, candidate) for zone in loaded):
                return candidate
        return None

    def describe_next(self, zones: Sequence[str], now: datetime) -> str:
        """The next opening in the zone that opens last, e.g. "2026-11-27 09:00 America/Chicago"."""
        opening = self.next_open(zones, now)
        if opening is None:
            where = ", ".join(zones) if len(zones) <= 3 else f"all {len(zones)} zones of this lead"
            return f"no opening within {HORIZON.days} days in {where}"
        start = _seconds(self._start)

        def since_start(name: str) -> int:
            return (_seconds(opening.astimezone(load_zone(name)).time()) - start) % _DAY_SECONDS

        latest = min(zones, key=since_start)
        return f"{opening.astimezone(load_zone(latest)):%Y-%m-%d %H:%M} {latest}"

    def _open_in(self, zone: ZoneInfo, instant: datetime) -> bool:
        local = instant.astimezone(zone)
        clock = local.time()
        if self._start < self._end:
            return self._start <= clock < self._end and local.weekday() in self._days
        # Across midnight: the part after midnight belongs to the day the window started.
        if clock >= self._start:
            return local.weekday() in self._days
        if clock < self._end:
            return (local.weekday() - 1) % 7 in self._days
        return False

    def _openings(self, zone: ZoneInfo, since: datetime, until: datetime) -> Iterator[datetime]:
        """Each instant in [since, until] whose local wall time is the start on an allowed day."""
        # One day of margin each side: wall dates can step back across midnight on fall-back.
        day = since.astimezone(zone).date() - timedelta(days=1)
        last = until.astimezone(zone).date() + timedelta(days=1)
        while day <= last:
            if day.weekday() in self._days:
                yield from _instants(zone, day, self._start, since, until)
            day += timedelta(days=1)


def _instants(zone: ZoneInfo, day: date, clock: time, since: datetime, until: datetime) -> Iterator[datetime]:
    """UTC instants at which the wall clock reads `clock` on `day`: both of them on a fall-back day."""
    wall = datetime.combine(day, clock)
    for fold in (0, 1):
        # A wall time skipped by spring-forward maps to instants reading another time, harmless
        # as candidates; the opening it stands for is the jump, which `_transitions` yields.
        instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if since <= instant <= until:
            yield instant


def _transitions(zone: ZoneInfo, since: datetime, until: datetime) -> Iterator[datetime]:
    """Instants in (since, until] where the zone's UTC offset changes, to the second."""
    before = since
    while before < until:
        after = min(before + _TRANSITION_STEP, until)
        if before.astimezone(zone).utcoffset() != after.astimezone(zone).utcoffset():
            yield _bisect_change(zone, before, after)
        before = after


def _bisect_change(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The first whole second in (before, after] with the offset at `after`; tz data has whole seconds."""
    target = after.astimezone(zone).utcoffset()
    low, high = math.floor(before.timestamp()), math.ceil(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, UTC).astimezone(zone).utcoffset() == target:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _load_zones(zones: Sequence[str]) -> list[ZoneInfo]:
    if isinstance(zones, str):
        raise TypeError(f"zones must be a sequence of zone names, not the string {zones!r}")
    if not zones:
        # "Open in all of no zones" would be vacuously true: never let that place a call.
        raise ValueError("at least one time zone is needed to judge calling hours")
    return [load_zone(name) for name in zones]


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
    return now.astimezone(UTC)


def _seconds(clock: time) -> int:
    return clock.hour * 3600 + clock.minute * 60 + clock.second
