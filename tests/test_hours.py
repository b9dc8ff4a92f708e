"""Calling hours: the window in each lead's local wall time, its zones, DST, and the config table."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers.tzdata
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dialer.hours import DAY_NAMES, HORIZON, CallingHours, Window, load_zone
from dialer.zones import zones_for_lead, zones_for_phone

NY = "America/New_York"
LA = "America/Los_Angeles"
CHICAGO = "America/Chicago"
LONDON = "Europe/London"
EVERY_DAY = list(DAY_NAMES)

OFFICE = Window(CallingHours(start="09:00", end="20:00", timezone=NY))


def at(zone: str, stamp: str, fold: int = 0) -> datetime:
    """The UTC instant at which `zone`'s wall clock reads `stamp` ("YYYY-MM-DD HH:MM[:SS[.ffffff]]")."""
    wall = datetime.fromisoformat(stamp).replace(tzinfo=ZoneInfo(zone), fold=fold)
    return wall.astimezone(UTC)


def utc(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC)


def window(start: str, end: str, days: list[str] | None = None) -> Window:
    fields: dict[str, Any] = {"start": start, "end": end, "timezone": NY}
    if days is not None:
        fields["days"] = days
    return Window(CallingHours(**fields))


# --- is_open: one zone --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("2026-11-23 08:59:59.999999", False),
        ("2026-11-23 08:59:59", False),
        ("2026-11-23 09:00", True),
        ("2026-11-23 13:00", True),
        ("2026-11-23 19:59:59", True),
        ("2026-11-23 19:59:59.999999", True),
        ("2026-11-23 20:00", False),
        ("2026-11-23 23:30", False),
        ("2026-11-23 00:00", False),
    ],
)
def test_window_is_half_open_in_local_time(local: str, expected: bool) -> None:
    """09:00-20:00 is open from 09:00:00 up to but not including 20:00:00, local time."""
    assert OFFICE.is_open([NY], at(NY, local)) is expected


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("2026-11-27 12:00", True),  # Friday
        ("2026-11-28 12:00", False),  # Saturday
        ("2026-11-29 12:00", False),  # Sunday
        ("2026-11-30 12:00", True),  # Monday
    ],
)
def test_weekend_is_closed_by_default(local: str, expected: bool) -> None:
    """The default days are mon-fri: Saturday and Sunday are closed all day."""
    assert OFFICE.is_open([NY], at(NY, local)) is expected


def test_weekday_is_the_leads_not_utcs() -> None:
    """Friday 21:00 in Los Angeles is already Saturday in UTC; the lead's own day (Friday) decides."""
    late = window("09:00", "22:00")
    friday_night = at(LA, "2026-11-27 21:00")
    assert friday_night.weekday() == 5
    assert late.is_open([LA], friday_night)


def test_now_in_any_offset_names_the_same_instant() -> None:
    """An aware `now` in another offset is the same instant as its UTC form."""
    instant = at(NY, "2026-11-23 09:00")
    assert OFFICE.is_open([NY], instant.astimezone(ZoneInfo("Asia/Tokyo")))
    assert not OFFICE.is_open([NY], (instant - timedelta(seconds=1)).astimezone(ZoneInfo("Asia/Tokyo")))


@pytest.mark.parametrize("method", ["is_open", "next_open", "describe_next"])
def test_naive_now_is_refused(method: str) -> None:
    """A naive `now` is ambiguous (host time or UTC?): every query refuses it."""
    with pytest.raises(ValueError, match="timezone-aware"):
        getattr(OFFICE, method)([NY], datetime(2026, 11, 23, 12, 0))


@pytest.mark.parametrize("method", ["is_open", "next_open", "describe_next"])
def test_no_zones_is_refused_not_vacuously_open(method: str) -> None:
    """An empty zone list would be 'open in all of none': it is an error, never a call."""
    with pytest.raises(ValueError, match="at least one time zone"):
        getattr(OFFICE, method)([], utc("2026-11-23 15:00"))


def test_a_bare_string_is_not_a_zone_list() -> None:
    """Passing "America/New_York" instead of a sequence of names is a TypeError, not 16 one-letter zones."""
    with pytest.raises(TypeError, match="sequence"):
        OFFICE.is_open(NY, utc("2026-11-23 15:00"))


def test_unknown_zone_in_query_names_it() -> None:
    """A zone name the tz database lacks is a ValueError naming it."""
    with pytest.raises(ValueError, match="Mars/Olympus"):
        OFFICE.is_open([NY, "Mars/Olympus"], utc("2026-11-23 15:00"))


def test_window_is_immutable() -> None:
    """A Window cannot be changed after it is built."""
    with pytest.raises(AttributeError):
        OFFICE.hours = CallingHours(start="00:00", end="23:59", timezone=NY)  # type: ignore[misc]


# --- across midnight ----------------------------------------------------------------------------

NIGHT_FRIDAY = window("22:00", "02:00", days=["fri"])


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("2026-11-27 21:59:59", False),  # Friday, before start
        ("2026-11-27 22:00", True),  # Friday start
        ("2026-11-27 23:00", True),
        ("2026-11-28 00:00", True),  # Saturday, but the window started Friday
        ("2026-11-28 01:00", True),
        ("2026-11-28 01:59:59", True),
        ("2026-11-28 02:00", False),  # end is exclusive
        ("2026-11-28 22:00", False),  # Saturday's own window: sat is not a day
        ("2026-11-28 23:00", False),
        ("2026-11-27 01:00", False),  # Friday early: that window started Thursday
        ("2026-11-26 23:00", False),  # Thursday
        ("2026-11-27 12:00", False),  # Friday midday: between end and start
    ],
)
def test_window_across_midnight_counts_the_day_it_started(local: str, expected: bool) -> None:
    """22:00-02:00 on fri is open Fri 22:00 to Sat 01:59:59, and not on Friday's early morning."""
    assert NIGHT_FRIDAY.is_open([NY], at(NY, local)) is expected


@pytest.mark.parametrize(
    ("local", "expected"),
    [("2026-11-27 23:59:59", True), ("2026-11-28 00:00", False), ("2026-11-27 08:59:59", False)],
)
def test_end_at_midnight_means_until_midnight(local: str, expected: bool) -> None:
    """09:00-00:00 is open until the end of the start day, and not into Saturday."""
    assert window("09:00", "00:00", days=["fri"]).is_open([NY], at(NY, local)) is expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-11-28 23:00", "2026-12-04 22:00"),  # Saturday night -> next Friday
        ("2026-11-27 01:00", "2026-11-27 22:00"),  # Friday early (Thursday's window) -> tonight
        ("2026-11-28 01:30", "2026-11-28 01:30"),  # still inside Friday's window
    ],
)
def test_next_open_across_midnight(now: str, expected: str) -> None:
    """next_open of a window across midnight is the start-day's start, or now while it is open."""
    assert NIGHT_FRIDAY.next_open([NY], at(NY, now)) == at(NY, expected)


# --- several zones ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ny_local", "expected"),
    [
        ("2026-11-23 09:30", False),  # 06:30 in Los Angeles
        ("2026-11-23 11:59:59", False),
        ("2026-11-23 12:00", True),  # 09:00 in Los Angeles
        ("2026-11-23 19:59:59", True),
        ("2026-11-23 20:00", False),  # New York closes
    ],
)
def test_several_zones_open_only_where_all_are(ny_local: str, expected: bool) -> None:
    """New York + Los Angeles with 09:00-20:00 is open 12:00-20:00 New York time, in either order."""
    instant = at(NY, ny_local)
    assert OFFICE.is_open([NY, LA], instant) is expected
    assert OFFICE.is_open([LA, NY], instant) is expected


def test_next_open_of_several_zones_is_the_latest_opening() -> None:
    """At 09:30 New York, NY + LA next opens at 12:00 New York, i.e. 09:00 in Los Angeles."""
    now = at(NY, "2026-11-23 09:30")
    assert OFFICE.next_open([NY, LA], now) == at(NY, "2026-11-23 12:00")
    assert OFFICE.describe_next([NY, LA], now) == "2026-11-23 09:00 America/Los_Angeles"


def test_each_zone_judges_its_own_weekday() -> None:
    """Friday 17:00 New York is Saturday in Auckland: closed until Mon 15:00 New York = Tue 09:00 Auckland."""
    auckland = "Pacific/Auckland"
    now = at(NY, "2026-11-27 17:00")
    assert OFFICE.is_open([NY], now)
    assert not OFFICE.is_open([NY, auckland], now)
    # Monday 09:00 Auckland is Sunday 15:00 New York, a closed day there: the first shared hour
    # is when New York's Monday overlaps Auckland's Tuesday morning.
    assert OFFICE.next_open([NY, auckland], now) == at(NY, "2026-11-30 15:00")
    assert OFFICE.describe_next([NY, auckland], now) == "2026-12-01 09:00 Pacific/Auckland"


def test_zones_that_never_overlap_have_no_next_open() -> None:
    """09:00-10:00 in Kiritimati (UTC+14) and Pago Pago (UTC-11) touch but never overlap: None."""
    hour = window("09:00", "10:00", days=EVERY_DAY)
    zones = ["Pacific/Kiritimati", "Pacific/Pago_Pago"]
    now = utc("2026-11-23 00:00")
    assert hour.is_open(zones[:1], utc("2026-11-23 19:59:59"))
    assert hour.is_open(zones[1:], utc("2026-11-23 20:00"))
    assert hour.next_open(zones, now) is None
    assert hour.describe_next(zones, now) == (
        "no opening within 8 days in Pacific/Kiritimati, Pacific/Pago_Pago"
    )


def test_us_and_european_dst_weeks_shift_the_overlap() -> None:
    """NY + London overlap from 13:00 London while only the US is on summer time, from 14:00 after."""
    zones = [NY, LONDON]
    assert OFFICE.is_open(zones, at(LONDON, "2026-03-10 13:30"))  # US on EDT, UK still on GMT
    assert not OFFICE.is_open(zones, at(LONDON, "2026-03-31 13:30"))  # both on summer time
    assert OFFICE.next_open(zones, at(LONDON, "2026-03-31 08:00")) == at(LONDON, "2026-03-31 14:00")


# --- next_open ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-11-27 20:00", "2026-11-30 09:00"),  # Friday evening -> Monday
        ("2026-11-28 10:00", "2026-11-30 09:00"),  # Saturday -> Monday
        ("2026-11-23 08:00", "2026-11-23 09:00"),  # Monday early -> Monday
        ("2026-11-23 20:00", "2026-11-24 09:00"),  # Monday at close -> Tuesday
        ("2026-11-23 08:59:59.5", "2026-11-23 09:00"),
    ],
)
def test_next_open_is_the_next_local_start(now: str, expected: str) -> None:
    """When closed, next_open is the next allowed day's 09:00 New York, as a UTC datetime."""
    found = OFFICE.next_open([NY], at(NY, now))
    assert found == at(NY, expected)
    assert found is not None
    assert found.tzinfo is UTC


def test_next_open_is_now_while_open() -> None:
    """While open, next_open returns `now` itself, to the microsecond, in UTC."""
    now = at(NY, "2026-11-23 10:11:12.131415")
    assert OFFICE.next_open([NY], now.astimezone(ZoneInfo(CHICAGO))) == now


@pytest.mark.parametrize(
    ("now", "zones", "expected"),
    [
        (at(CHICAGO, "2026-11-26 21:00"), [CHICAGO], "2026-11-27 09:00 America/Chicago"),
        (at(NY, "2026-11-23 10:00"), [LA, NY], "2026-11-23 09:00 America/Los_Angeles"),
        (at(NY, "2026-11-23 13:05"), [NY, LA], "2026-11-23 10:05 America/Los_Angeles"),
        (at(NY, "2026-11-27 20:00"), [NY, CHICAGO], "2026-11-30 09:00 America/Chicago"),
    ],
)
def test_describe_next_names_the_zone_that_opens_last(now: datetime, zones: list[str], expected: str) -> None:
    """describe_next gives "YYYY-MM-DD HH:MM Zone" in the zone whose window opened last."""
    assert OFFICE.describe_next(zones, now) == expected


def test_describe_next_shortens_a_long_zone_list() -> None:
    """When nothing opens, a lead with many zones is summarised by count, not listed."""
    zones = ["Pacific/Kiritimati", "Pacific/Pago_Pago", NY, LA]
    message = window("09:00", "10:00").describe_next(zones, utc("2026-11-23 00:00"))
    assert message == "no opening within 8 days in all 4 zones of this lead"


# --- daylight saving time -----------------------------------------------------------------------

EARLY = window("01:00", "03:00", days=EVERY_DAY)

# (zone, local date of the change, minutes the 01:00-03:00 window is really open that day)
DST_DAYS = [
    (NY, "2026-03-08", 60),  # 02:00 EST -> 03:00 EDT: only 01:00-01:59 happens
    (NY, "2026-11-01", 180),  # 02:00 EDT -> 01:00 EST: 01:00-01:59 happens twice
    (LONDON, "2026-03-29", 60),  # 01:00 GMT -> 02:00 BST: only 02:00-02:59 happens
    (LONDON, "2026-10-25", 180),  # 02:00 BST -> 01:00 GMT: 01:00-01:59 happens twice
]


@pytest.mark.parametrize(("zone", "day", "open_minutes"), DST_DAYS)
def test_dst_day_is_open_exactly_while_the_wall_clock_reads_inside(
    zone: str, day: str, open_minutes: int
) -> None:
    """On DST days, 01:00-03:00 is open at every instant whose local clock reads 01:00-02:59, and no other."""
    first = at(zone, f"{day} 00:00") - timedelta(hours=6)
    opened = 0
    for step in range(36 * 60 * 2):
        instant = first + timedelta(seconds=30 * step)
        wall = instant.astimezone(ZoneInfo(zone)).time()
        inside = time(1, 0) <= wall < time(3, 0)
        assert EARLY.is_open([zone], instant) is inside, instant
        if inside and instant.astimezone(ZoneInfo(zone)).date().isoformat() == day:
            opened += 1
    assert opened == open_minutes * 2


@pytest.mark.parametrize(
    ("zone", "now", "expected", "local_clock"),
    [
        # New York spring: 01:00 EST is 06:00 UTC; the window closes at the jump to 03:00 EDT.
        (NY, utc("2026-03-08 05:00"), utc("2026-03-08 06:00"), "01:00"),
        (NY, utc("2026-03-08 07:00"), utc("2026-03-09 05:00"), "01:00"),
        # London spring: 01:00-01:59 is skipped; the window opens at the jump, reading 02:00 BST.
        (LONDON, utc("2026-03-29 00:30"), utc("2026-03-29 01:00"), "02:00"),
        (LONDON, utc("2026-03-29 02:00"), utc("2026-03-30 00:00"), "01:00"),
        # Autumn: open through both 01:00 hours, then 02:00-02:59 of the later offset.
        (NY, utc("2026-11-01 05:30"), utc("2026-11-01 05:30"), "01:30"),
        (NY, utc("2026-11-01 06:30"), utc("2026-11-01 06:30"), "01:30"),
        (NY, utc("2026-11-01 08:00"), utc("2026-11-02 06:00"), "01:00"),
        (LONDON, utc("2026-10-24 23:00"), utc("2026-10-25 00:00"), "01:00"),
    ],
)
def test_next_open_on_dst_days(zone: str, now: datetime, expected: datetime, local_clock: str) -> None:
    """01:00-03:00 on a DST day opens at the first instant the wall clock reads inside it."""
    found = EARLY.next_open([zone], now)
    assert found == expected
    assert f"{expected.astimezone(ZoneInfo(zone)):%H:%M}" == local_clock


@pytest.mark.parametrize(
    ("start", "end", "now", "now_fold", "expected"),
    [
        # Closed at 01:45 EDT; the clock falls back to 01:00 EST (06:00 UTC), which is the start.
        ("01:00", "01:30", "2026-11-01 01:45", 0, "2026-11-01 01:00"),
        # Open 01:30-01:59 EDT, closed 01:00-01:29 EST, open again from the second 01:30.
        ("01:30", "02:30", "2026-11-01 01:10", 1, "2026-11-01 01:30"),
    ],
)
def test_next_open_reaches_the_repeated_hour(
    start: str, end: str, now: str, now_fold: int, expected: str
) -> None:
    """On fall-back day a window in the repeated hour reopens when the second pass reaches its start."""
    repeated = window(start, end, days=EVERY_DAY)
    first_pass = at(NY, "2026-11-01 01:45", fold=0)
    assert repeated.is_open([NY], first_pass) is (start == "01:30")
    found = repeated.next_open([NY], at(NY, now, fold=now_fold))
    assert found == at(NY, expected, fold=1)
    assert found is not None
    assert f"{found.astimezone(ZoneInfo(NY)):%H:%M %Z}" == f"{expected[-5:]} EST"


def test_next_open_when_the_clock_falls_back_into_the_window() -> None:
    """00:30-01:30 on fall-back day: at 01:45 EDT it is closed; the clock falls back to 01:00 and it opens."""
    late = window("00:30", "01:30", days=EVERY_DAY)
    now = at(NY, "2026-11-01 01:45", fold=0)
    assert late.next_open([NY], now) == utc("2026-11-01 06:00")


@pytest.mark.parametrize(
    ("start", "end", "expected_local"),
    [
        ("02:30", "04:00", "2026-03-08 03:00"),  # start skipped: opens at the jump, reading 03:00
        ("02:00", "02:45", "2026-03-09 02:00"),  # the whole window is skipped: next day
    ],
)
def test_window_starting_in_the_spring_gap(start: str, end: str, expected_local: str) -> None:
    """A start time that does not exist opens at the jump if the clock lands before end, else next day."""
    gap = window(start, end, days=EVERY_DAY)
    assert gap.next_open([NY], utc("2026-03-08 05:00")) == at(NY, expected_local)


@pytest.mark.parametrize(
    ("zone", "friday_evening", "monday_nine_utc"),
    [
        (NY, "2026-03-06 20:00", "2026-03-09 13:00"),  # EST on Friday, EDT on Monday
        (NY, "2026-10-30 20:00", "2026-11-02 14:00"),  # EDT on Friday, EST on Monday
        (LONDON, "2026-03-27 20:00", "2026-03-30 08:00"),  # GMT -> BST
        (LONDON, "2026-10-23 20:00", "2026-10-26 09:00"),  # BST -> GMT
    ],
)
def test_next_open_across_a_dst_change_lands_at_local_nine(
    zone: str, friday_evening: str, monday_nine_utc: str
) -> None:
    """Over a weekend with a DST change, next_open is Monday 09:00 local, whatever the new offset."""
    found = OFFICE.next_open([zone], at(zone, friday_evening))
    assert found == utc(monday_nine_utc)
    assert found is not None
    assert f"{found.astimezone(ZoneInfo(zone)):%a %H:%M}" == "Mon 09:00"


# --- next_open against a brute-force scan -------------------------------------------------------

SCAN_ZONES = [NY, LA, LONDON, "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Kiritimati", "America/St_Johns"]


@settings(max_examples=40, deadline=None)
@given(
    start=st.integers(0, 24 * 60 - 1),
    length=st.integers(1, 24 * 60 - 1),
    days=st.sets(st.sampled_from(DAY_NAMES), min_size=1),
    zones=st.lists(st.sampled_from(SCAN_ZONES), min_size=1, max_size=3, unique=True),
    now=st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
)
def test_next_open_is_the_first_open_minute(
    start: int, length: int, days: set[str], zones: list[str], now: datetime
) -> None:
    """next_open is open, not before now, and no whole minute between now and it is open."""
    end = (start + length) % (24 * 60)
    hours = Window(
        CallingHours(
            start=f"{start // 60:02d}:{start % 60:02d}",
            end=f"{end // 60:02d}:{end % 60:02d}",
            days=sorted(days, key=DAY_NAMES.index),
            timezone=NY,
        )
    )
    found = hours.next_open(zones, now)
    limit = now + HORIZON if found is None else found
    if found is not None:
        assert now <= found <= now + HORIZON
        assert hours.is_open(zones, found)
    elif hours.is_open(zones, now):
        pytest.fail("open now, but next_open found nothing")
    minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while minute < limit:
        assert not hours.is_open(zones, minute), minute
        minute += timedelta(minutes=1)


# --- zones of a lead ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("e164", "expected"),
    [
        ("+12125550123", (NY,)),  # Manhattan: one zone
        ("+14155550123", (LA,)),
        ("+16055550123", ("America/Denver", "America/North_Dakota/Center")),  # South Dakota, split
        ("+447911123456", ("Europe/Guernsey", "Europe/Isle_of_Man", "Europe/Jersey", "Europe/London")),
        ("+80012345678", (CHICAGO,)),  # valid international freephone: Etc/Unknown -> fallback
        ("+15555550123", (CHICAGO,)),  # invalid number: Etc/Unknown -> fallback
    ],
)
def test_zones_for_phone(e164: str, expected: tuple[str, ...]) -> None:
    """A number gets phonenumbers' zones, all of them; an unknown one gets the fallback zone."""
    assert zones_for_phone(e164, CHICAGO) == expected


def test_a_split_area_code_is_open_only_where_both_zones_are() -> None:
    """+1 605 spans Mountain and Central time: 19:30 Mountain is 20:30 Central, so closed."""
    zones = zones_for_phone("+16055550123", NY)
    assert OFFICE.is_open(zones, at("America/Denver", "2026-11-23 09:30"))
    assert not OFFICE.is_open(zones, at("America/Denver", "2026-11-23 19:30"))
    assert not OFFICE.is_open(zones, at("America/Denver", "2026-11-23 08:30"))


def test_us_toll_free_number_is_held_to_every_nanp_zone() -> None:
    """+1 800 maps to every NANP zone, Guam to Pago Pago: 09:00-20:00 never opens in July."""
    zones = zones_for_phone("+18005550123", NY)
    assert {"Pacific/Guam", "Pacific/Pago_Pago", NY}.issubset(zones)
    assert OFFICE.next_open(zones, at(NY, "2026-07-06 09:00")) is None


def test_zones_for_phone_rejects_what_is_not_e164() -> None:
    """A string that is not an E.164 number is a ValueError naming it."""
    with pytest.raises(ValueError, match="2125550123"):
        zones_for_phone("2125550123", NY)


def test_zones_for_phone_checks_the_fallback() -> None:
    """An unknown fallback zone is a ValueError naming it, not a silently unusable answer."""
    with pytest.raises(ValueError, match="Nowhere/Land"):
        zones_for_phone("+80012345678", "Nowhere/Land")


def test_every_zone_phonenumbers_can_answer_is_known_here() -> None:
    """The host tz database knows every zone phonenumbers may name, so no lead's zone is dropped."""
    names = {name for zones in phonenumbers.tzdata.TIMEZONE_DATA.values() for name in zones}
    names.discard("Etc/Unknown")
    for name in sorted(names):
        load_zone(name)


@pytest.mark.parametrize(
    ("tz_cell", "expected"),
    [
        ("Europe/Paris", ("Europe/Paris",)),  # the column wins over the phone
        ("  Europe/Paris ", ("Europe/Paris",)),
        ("", (NY,)),
        ("   ", (NY,)),
        (None, (NY,)),
    ],
)
def test_zones_for_lead(tz_cell: str | None, expected: tuple[str, ...]) -> None:
    """A tz cell naming a zone wins; an empty or missing cell falls back to the phone's zones."""
    assert zones_for_lead("+12125550123", tz_cell, CHICAGO) == expected


@pytest.mark.parametrize(
    ("tz_cell", "message"),
    [
        ("Mars/Olympus", "'Mars/Olympus'"),
        ("america/new_york", "did you mean 'America/New_York'"),
        ("America/New_Yrok", "did you mean 'America/New_York'"),
        ("localtime", "'localtime'"),  # the host's zone, not the lead's
        ("EST+5", "'EST\\+5'"),
        ("/etc/localtime", "'/etc/localtime'"),
    ],
)
def test_zones_for_lead_rejects_a_bad_name(tz_cell: str, message: str) -> None:
    """A tz cell that is not an IANA zone is a ValueError naming the value."""
    with pytest.raises(ValueError, match=message):
        zones_for_lead("+12125550123", tz_cell, CHICAGO)


# --- the [calling_hours] table ------------------------------------------------------------------


def test_issue_example_table_is_valid() -> None:
    """The table from the issue parses, with the four fields as written."""
    table = tomllib.loads(
        """
        [calling_hours]
        start = "09:00"
        end = "20:00"
        days = ["mon", "tue", "wed", "thu", "fri"]
        timezone = "America/New_York"
        """
    )["calling_hours"]
    hours = CallingHours.model_validate(table)
    assert (hours.start, hours.end, hours.days, hours.timezone) == ("09:00", "20:00", list(DAY_NAMES[:5]), NY)


def test_days_default_to_weekdays() -> None:
    """Without `days`, calls are allowed Monday to Friday."""
    assert CallingHours(start="09:00", end="20:00", timezone=NY).days == ["mon", "tue", "wed", "thu", "fri"]


@pytest.mark.parametrize(("start", "end"), [("22:00", "02:00"), ("00:00", "23:59"), ("09:00", "00:00")])
def test_valid_windows(start: str, end: str) -> None:
    """Any two different HH:MM times make a window, including across midnight."""
    assert CallingHours(start=start, end=end, timezone=NY).start == start


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"start": "25:00"}, "start", "'25:00' is not a 24-hour"),
        ({"end": "24:00"}, "end", "'24:00' is not a 24-hour"),
        ({"start": "9am"}, "start", "'9am' is not a 24-hour"),
        ({"start": "9:00"}, "start", "'9:00' is not a 24-hour"),
        ({"start": "09:60"}, "start", "'09:60' is not a 24-hour"),
        ({"start": "09:00:00"}, "start", "is not a 24-hour"),
        ({"start": "０９:００"}, "start", "is not a 24-hour"),
        ({"start": time(9, 0)}, "start", 'quoted string, e.g. "09:00"'),
        ({"start": 9}, "start", "valid string"),
        ({"days": ["mon", "funday"]}, "days", "unknown day 'funday'"),
        ({"days": ["Mon"]}, "days", "unknown day 'Mon': use lowercase"),
        ({"days": []}, "days", "at least one day"),
        ({"days": ["mon", "tue", "mon"]}, "days", "more than once: mon"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone 'Mars/Olympus'"),
        ({"timezone": "US/Easten"}, "timezone", "'US/Easten'"),
        ({"timezone": ""}, "timezone", "unknown time zone ''"),
        ({"end": "09:00"}, None, "start and end are both 09:00"),
        ({"weekends": True}, "weekends", "Extra inputs"),
    ],
)
def test_calling_hours_validation(changes: dict[str, Any], field: str | None, message: str) -> None:
    """Each bad value is rejected with a message that names it and the field it is in."""
    fields: dict[str, Any] = {"start": "09:00", "end": "20:00", "timezone": NY, **changes}
    with pytest.raises(ValidationError) as caught:
        CallingHours(**fields)
    errors = caught.value.errors()
    assert len(errors) == 1
    assert errors[0]["loc"] == ((field,) if field else ())
    assert message in errors[0]["msg"]


def test_timezone_is_required() -> None:
    """The fallback zone has no default: it must be written down."""
    with pytest.raises(ValidationError, match="timezone"):
        CallingHours(start="09:00", end="20:00")  # type: ignore[call-arg]


def test_calling_hours_is_frozen() -> None:
    """The validated table cannot be changed afterwards."""
    hours = CallingHours(start="09:00", end="20:00", timezone=NY)
    with pytest.raises(ValidationError):
        hours.start = "08:00"  # type: ignore[misc]
