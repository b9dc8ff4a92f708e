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
from functools import cache, lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from phonenumbers import timezone as phone_timezone
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAYS = DAY_NAMES[:5]
HORIZON = timedelta(days=8)
UNKNOWN_ZONE = "Etc/Unknown"

_HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
# Loadable keys that are not places: `localtime` is whatever the host is set to.
_NOT_PLACES = frozenset({"localtime", "posixrules", "Factory"})
# Offsets are sampled this often to find DST transitions; real zones change at most twice a year.
_TRANSITION_STEP = timedelta(hours=6)
_DAY_SECONDS = 86_400


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


def zones_for_phone(e164: str, fallback: str) -> tuple[str, ...]:
    """IANA zones for an E.164 number; the fallback when phonenumbers knows none.

    Exactly `time_zones_for_number(parse(e164))`: canonical `+DIGITS` strings take a precompiled
    path (~3 µs instead of ~40 µs, see `_fast_zones`), anything else the library itself. The fast
    path is not cached: a cache big enough for a million-row list costs ~200 MB to save ~3 s.
    The tuples returned are phonenumbers' own, shared by every number of an area.
    """
    zones = _fast_zones(e164)
    if zones is None:
        zones = _library_zones(e164)
    return _checked(zones, fallback)


@lru_cache(maxsize=4096)
def _checked(zones: tuple[str, ...], fallback: str) -> tuple[str, ...]:
    """The fallback for an unknown answer; every zone loadable. Few distinct zone sets: cached."""
    if not zones or UNKNOWN_ZONE in zones:
        load_zone(fallback)
        return (fallback,)
    for zone in zones:
        # A zone this host's tz database lacks must not be skipped: the lead could be rung at night.
        load_zone(zone)
    return zones


@lru_cache(maxsize=65_536)
def _library_zones(e164: str) -> tuple[str, ...]:
    """The reference answer, straight from phonenumbers; cached since it costs ~45 µs."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"cannot find a time zone for {e164!r}: not an E.164 number ({exc})") from exc
    return tuple(phone_timezone.time_zones_for_number(number))


# --- phonenumbers' zone lookup, precompiled -----------------------------------------------------
#
# `time_zones_for_number` spends its time in `parse` (~20 µs) and in `number_type` (~20 µs: for
# +1 it tries region after region, each a handful of separate regex matches). Neither can be
# keyed on a prefix, since the type depends on every digit. So the same decision is compiled
# per calling code, region and length into ONE regex whose named group says which branch of
# `_number_type_helper` matched first. A number the fast path is not sure about returns None and
# goes to the library; every step below names the library code it mirrors.

_UNKNOWN, _COUNTRY, _PLACE = 0, 1, 2  # zones: none; the calling code's; the number's prefix
_MAX_CODE = 3  # `_MAX_LENGTH_COUNTRY_CODE`
_MIN_NSN, _MAX_NSN = 2, 17  # `_MIN_LENGTH_FOR_NSN`, `_MAX_LENGTH_FOR_NSN`
# Patterns are embedded in a bigger regex: only syntax whose meaning cannot change when wrapped
# in `(?:...)` (no back-references, flags, anchors other than `$`, named groups or look-arounds).
_SAFE_PATTERN = re.compile(r"(?:\\d|[0-9\[\]()|?:{},$*+\-])*")
_NEVER = "(?!)"
_TZ_DATA: dict[str, tuple[str, ...]] | None = getattr(phone_timezone, "TIMEZONE_DATA", None)
_TZ_LONGEST: int | None = getattr(phone_timezone, "TIMEZONE_LONGEST_PREFIX", None)
_GEO_MOBILE: frozenset[int] | None = getattr(phonenumbers.phonenumberutil, "_GEO_MOBILE_COUNTRIES", None)


def _codes_by_head() -> dict[str, str]:
    """`_extract_country_code` as a dict: the first three digits decide the calling code.

    It takes the shortest leading digits that are a calling code, and never one starting "0".
    """
    codes = {str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}
    found = {}
    for head in map(str, range(100, 1000)):
        code = next((head[:size] for size in range(1, _MAX_CODE + 1) if head[:size] in codes), None)
        if code is not None:
            found[head] = code
    return found


_CODE_OF = _codes_by_head()


class _Unsure(Exception):
    """Metadata the fast path does not mirror exactly; its calling code is left to the library."""


class _Region:
    """One region's `_number_type_helper`, reduced to the kind of zones it leads to."""

    def __init__(self, metadata: phonenumbers.PhoneMetadata, geo_mobile: bool) -> None:
        self._metadata = metadata
        self._mobile = _PLACE if geo_mobile else _COUNTRY  # `is_number_type_geographical`
        leading = metadata.leading_digits
        self.leading = None if leading is None else re.compile(_safe(leading))
        self._by_length: dict[int, re.Pattern[str] | None] = {}

    def kind(self, nsn: str) -> int:
        """_UNKNOWN, _COUNTRY or _PLACE, as `time_zones_for_number` branches on `number_type`."""
        size = len(nsn)
        try:
            matcher = self._by_length[size]
        except KeyError:
            matcher = self._by_length[size] = self._matcher(size)
        found = None if matcher is None else matcher.fullmatch(nsn)
        if found is None:
            return _UNKNOWN
        if found["other"] is not None:
            return _COUNTRY
        return _PLACE if found["fixed"] is not None else self._mobile

    def _matcher(self, size: int) -> re.Pattern[str] | None:
        """One regex for every type a number of this length can be, in the helper's order.

        Python's `re` tries alternatives left to right and backtracks into the next one until
        the whole string matches, so the group that matched is the first type that fullmatches.
        """
        meta = self._metadata
        general = _pattern(meta.general_desc, size)
        if general is None:
            return None
        other = [
            _pattern(desc, size)
            for desc in (
                meta.premium_rate,
                meta.toll_free,
                meta.shared_cost,
                meta.voip,
                meta.personal_number,
                meta.pager,
                meta.uan,
                meta.voicemail,
            )
        ]
        fixed = _pattern(meta.fixed_line, size)
        # A fixed-line match is FIXED_LINE(_OR_MOBILE) either way; mobile is tried only after it,
        # and not at all when the two share a pattern.
        mobile = None if meta.same_mobile_and_fixed_line_pattern else _pattern(meta.mobile, size)
        others = "|".join(f"(?:{body})" for body in other if body is not None) or _NEVER
        kinds = f"(?P<other>{others})|(?P<fixed>{fixed or _NEVER})|(?P<mobile>{mobile or _NEVER})"
        # The look-ahead is the general desc's full match, which every type needs first.
        return re.compile(rf"(?=(?:{general})\Z)(?:{kinds})")


def _safe(pattern: str) -> str:
    # `(?` other than `(?:` could be a conditional on a group number, which wrapping would shift.
    if not _SAFE_PATTERN.fullmatch(pattern) or "(?" in pattern.replace("(?:", ""):
        raise _Unsure(pattern)
    return pattern


def _pattern(desc: phonenumbers.PhoneNumberDesc | None, size: int) -> str | None:
    """The desc's pattern if `_is_number_matching_desc` can accept this length, else None."""
    if desc is None or not desc.national_number_pattern:
        return None  # `_match_national_number`: no pattern matches nothing
    if desc.possible_length and size not in desc.possible_length:
        return None
    return _safe(desc.national_number_pattern)


class _Plan:
    """What `parse` and `time_zones_for_number` need for one calling code."""

    def __init__(self, code: str) -> None:
        if _TZ_DATA is None or _TZ_LONGEST is None or _GEO_MOBILE is None:
            raise _Unsure("phonenumbers internals moved")
        number = int(code)
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[number]
        main = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
            number, phonenumbers.region_code_for_country_code(number)
        )
        if main is None:
            raise _Unsure(code)
        # `parse` strips a national prefix even after `+CC`, if what is left has a possible length.
        prefix = main.national_prefix_for_parsing
        self._prefix = re.compile(prefix) if prefix else None
        self._transform = bool(main.national_prefix_transform_rule)
        # `_test_number_length` for UNKNOWN reads only the length and the general desc.
        test_length = getattr(phonenumbers.phonenumberutil, "_test_number_length", None)
        if test_length is None:
            raise _Unsure("phonenumbers internals moved")
        result = phonenumbers.ValidationResult
        refused = (result.TOO_SHORT, result.IS_POSSIBLE_LOCAL_ONLY, result.INVALID_LENGTH)
        self._strip_kept = frozenset(
            size for size in range(_MAX_NSN + 1) if test_length("0" * size, main) not in refused
        )
        geo_mobile = number in _GEO_MOBILE
        self.single = len(regions) == 1
        listed: list[_Region] = []
        for region in regions:
            # `_region_code_for_number_from_list` reads this; `number_type` the other: same object.
            metadata = phonenumbers.PhoneMetadata.metadata_for_region(region.upper(), None)
            typed = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(number, region)
            if self.single:
                metadata = typed
            elif metadata is not typed:
                raise _Unsure(region)
            if metadata is not None:
                listed.append(_Region(metadata, geo_mobile))
            elif self.single:
                raise _Unsure(region)  # no metadata: UNKNOWN, rare enough for the library
        self.regions = tuple(listed)
        self.country = tuple(
            phone_timezone._country_level_time_zones_for_number(phonenumbers.PhoneNumber(country_code=number))
        )
        # `time_zones_for_geographical_number` takes the longest tz-data key that starts the
        # digits; only keys of these lengths can.
        self.sizes = tuple(
            sorted(
                {
                    len(key)
                    for key in _TZ_DATA
                    if len(key) <= _TZ_LONGEST and (key.startswith(code) or code.startswith(key))
                },
                reverse=True,
            )
        )

    def keeps(self, nsn: str) -> bool:
        """True if `parse` leaves the digits after the calling code as they are; False if unsure."""
        if self._prefix is None:
            return True
        found = self._prefix.match(nsn)
        if found is None:
            return True
        if self._transform:
            groups = found.groups()
            if not groups or groups[-1] is not None:
                return False  # the prefix is rewritten (`national_prefix_transform_rule`)
        # Stripped only if the rest has a length `parse` accepts (else it may still be refused).
        return found.end() == 0 or len(nsn) - found.end() not in self._strip_kept

    def kind(self, nsn: str) -> int:
        """`number_type` via `region_code_for_number`; None region means UNKNOWN."""
        if self.single:
            return self.regions[0].kind(nsn)
        for region in self.regions:
            if region.leading is not None:
                if region.leading.match(nsn):
                    return region.kind(nsn)
            else:
                found = region.kind(nsn)
                if found != _UNKNOWN:
                    return found
        return _UNKNOWN

    def zones(self, digits: str, nsn: str) -> tuple[str, ...]:
        kind = self.kind(nsn)
        if kind == _PLACE:
            assert _TZ_DATA is not None  # checked when the plan was built
            for size in self.sizes:
                zones = _TZ_DATA.get(digits[:size])
                if zones is not None:
                    return zones
        elif kind == _COUNTRY:
            return self.country
        return phone_timezone._UNKNOWN_TIME_ZONE_LIST


@cache
def _plan(code: str) -> _Plan | None:
    """The calling code's plan, or None if any of its metadata is outside what `_Plan` mirrors.

    Each plan is checked against the library on the metadata's own example numbers.
    """
    try:
        plan = _Plan(code)
    except (_Unsure, re.error):
        return None
    for example in _examples(int(code)):
        digits = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)[1:]
        nsn = digits[len(code) :]
        expected = tuple(phone_timezone.time_zones_for_number(phonenumbers.parse("+" + digits, None)))
        if plan.keeps(nsn) and plan.zones(digits, nsn) != expected:
            return None
    return plan


def _examples(code: int) -> Iterator[phonenumbers.PhoneNumber]:
    """The metadata's example number of every type in every region of the calling code."""
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]:
        if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
            examples = [phonenumbers.example_number_for_non_geo_entity(code)]
        else:
            # PhoneNumberType values FIXED_LINE (0) to VOICEMAIL (10)
            examples = [phonenumbers.example_number_for_type(region, kind) for kind in range(11)]
        yield from (example for example in examples if example is not None)


def _fast_zones(e164: str) -> tuple[str, ...] | None:
    """`time_zones_for_number(parse(e164))` for a canonical `+DIGITS` string; None when unsure."""
    digits = e164[1:]
    if e164[:1] != "+" or not (digits.isascii() and digits.isdigit()):
        return None
    code = _CODE_OF.get(digits[:_MAX_CODE])
    if code is None:
        return None  # too short, or no calling code: the library raises
    nsn = digits[len(code) :]
    plan = _plan(code)
    if plan is None or not _MIN_NSN <= len(nsn) <= _MAX_NSN:
        return None  # the library raises, or has metadata this path does not mirror
    if not plan.keeps(nsn):
        return None  # `parse` might strip a national prefix: let it decide
    # No prefix stripped, so the number is `code` + `nsn` and `national_significant_number`
    # gives `nsn` back (leading zeros are kept as `italian_leading_zero`).
    return plan.zones(digits, nsn)


def zones_for_lead(e164: str, tz_cell: str | None, fallback: str) -> tuple[str, ...]:
    """The lead's tz cell if it names a zone, the phone's zones if empty; ValueError for a bad name."""
    name = (tz_cell or "").strip()
    if not name:
        return zones_for_phone(e164, fallback)
    load_zone(name)
    return (name,)


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
