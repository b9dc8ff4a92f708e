"""Calling hours applied to a campaign: which leads may be rung now, which later, which never.

`hours` and `zones` say what the window is and where a lead is; this module applies them to
the lead table (before a run), to each lead at the moment of sending (`CallingGate`), and to
what is left to call (the counts `validate` and `status` show).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import polars as pl

from dialer.config import Settings
from dialer.hours import Window
from dialer.lead_state import RowStatus
from dialer.leads import PHONE, PRE_STATUS, REASON, LeadTable
from dialer.request_bodies import LeadRequest
from dialer.zones import zones_for_lead

Clock = Callable[[], datetime]

NEVER_OPEN = (
    "its calling window never opens: [calling_hours] is not open at the same time in all of its "
    "number's time zones; add a time-zone column (leads.columns.timezone) or widen the window"
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def zone_inputs(settings: Settings) -> list[str]:
    """The columns a lead's zones are read from: its number, and its tz cell when the list has one."""
    column = settings.leads.columns.timezone
    return [PHONE, column] if column else [PHONE]


def _zone_column(settings: Settings) -> pl.Expr:
    column = settings.leads.columns.timezone
    return pl.col(column) if column else pl.lit(None, dtype=pl.String)


def reject_never_open(settings: Settings, table: LeadTable, now: datetime) -> LeadTable:
    """A lead no window will ever reach is rejected, not left pending: else cron exits 4 forever."""
    hours = settings.file.calling_hours
    assert hours is not None
    window = Window(hours)
    zone = _zone_column(settings).fill_null("").alias("__zone")
    pairs = table.dialable(*zone_inputs(settings)).select(pl.col(PHONE), zone).unique()
    verdicts: dict[tuple[str, ...], bool] = {}  # per zone set: a list has few distinct ones
    closed: list[tuple[str, str]] = []
    for phone, cell in pairs.iter_rows():
        zones = zones_for_lead(phone, cell or None, hours.timezone)
        if zones not in verdicts:
            verdicts[zones] = window.next_open(zones, now) is None
        if verdicts[zones]:
            closed.append((phone, cell))
    if not closed:
        return table
    marks = pl.DataFrame(closed, schema={PHONE: pl.String, "__zone": pl.String}, orient="row").with_columns(
        pl.lit(True).alias("__never")
    )
    never = pl.col("__never").fill_null(False) & pl.col(PRE_STATUS).is_null()
    frame = (
        table.frame.with_columns(zone)
        .join(marks, on=[PHONE, "__zone"], how="left", maintain_order="left")
        .with_columns(
            pl.when(never)
            .then(pl.lit(RowStatus.REJECTED.value))
            .otherwise(pl.col(PRE_STATUS))
            .alias(PRE_STATUS),
            pl.when(never).then(pl.lit(NEVER_OPEN)).otherwise(pl.col(REASON)).alias(REASON),
        )
        .drop("__zone", "__never")
    )
    return replace(table, frame=frame)


class CallingGate:
    """May this lead be called right now? Remembers the earliest opening among closed leads."""

    def __init__(self, window: Window, fallback: str, clock: Clock) -> None:
        self._window = window
        self._fallback = fallback
        self._clock = clock
        self._noted: set[tuple[str, ...]] = set()
        self.next_open: datetime | None = None
        self.next_open_text: str | None = None

    def zones(self, phone: str, zone_cell: str | None) -> tuple[str, ...]:
        return zones_for_lead(phone, zone_cell, self._fallback)

    def __call__(self, lead: LeadRequest) -> bool:
        zones = self.zones(lead.phone, lead.timezone)
        now = self._clock()
        if self._window.is_open(zones, now):
            return True
        self.note_closed(zones, now)
        return False

    def note_closed(self, zones: tuple[str, ...], now: datetime) -> datetime | None:
        if zones in self._noted:
            return None
        self._noted.add(zones)
        opens = self._window.next_open(zones, now)
        if opens is not None and (self.next_open is None or opens < self.next_open):
            self.next_open = opens
            self.next_open_text = self._window.describe_next(zones, now)
        return opens


def calling_gate(settings: Settings, *, ignore: bool, clock: Clock | None) -> CallingGate | None:
    hours = settings.file.calling_hours
    if hours is None or ignore:
        return None
    return CallingGate(Window(hours), hours.timezone, clock or utc_now)


@dataclass(frozen=True)
class HoursReport:
    """How many of the leads left may be called now, and when the others open."""

    callable_now: int
    outside_hours: int
    never_open: int
    next_window: str | None


def calling_hours_report(
    settings: Settings, todo: pl.DataFrame, clock: Clock | None = None
) -> HoursReport | None:
    hours = settings.file.calling_hours
    if hours is None:
        return None
    window = Window(hours)
    gate = CallingGate(window, hours.timezone, clock or utc_now)
    now = (clock or utc_now)()
    callable_now = never = 0
    for zones, count in leads_per_zones(settings, todo, gate).items():
        if window.is_open(zones, now):
            callable_now += count
        elif gate.note_closed(zones, now) is None:
            never += count
    return HoursReport(
        callable_now=callable_now,
        outside_hours=todo.height - callable_now,
        never_open=never,
        next_window=gate.next_open_text,
    )


@dataclass(frozen=True)
class ZoneWait:
    """Leads of one set of time zones still to call, and when their window opens."""

    zones: str  # "America/Chicago", or "America/Chicago + America/Denver" for a boundary area
    leads: int
    opens: str  # "open now", or e.g. "2026-12-01 09:00 America/Chicago"


def waiting_by_zone(settings: Settings, todo: pl.DataFrame, clock: Clock | None = None) -> list[ZoneWait]:
    """Per zone set, most leads first; empty without [calling_hours]."""
    hours = settings.file.calling_hours
    if hours is None:
        return []
    window = Window(hours)
    now = (clock or utc_now)()
    gate = CallingGate(window, hours.timezone, clock or utc_now)
    waits = [
        ZoneWait(
            " + ".join(zones),
            count,
            "open now" if window.is_open(zones, now) else window.describe_next(zones, now),
        )
        for zones, count in leads_per_zones(settings, todo, gate).items()
    ]
    return sorted(waits, key=lambda wait: (-wait.leads, wait.zones))


def leads_per_zones(settings: Settings, todo: pl.DataFrame, gate: CallingGate) -> dict[tuple[str, ...], int]:
    """How many leads of `todo` fall in each set of zones (distinct phone and tz cell once)."""
    pairs = todo.group_by(pl.col(PHONE), _zone_column(settings).alias("__zone")).len()
    per_zones: dict[tuple[str, ...], int] = {}
    for phone, zone, count in pairs.iter_rows():
        zones = gate.zones(phone, zone)
        per_zones[zones] = per_zones.get(zones, 0) + count
    return per_zones
