"""What a campaign stands at: the list's verdicts, what the checkpoint settled, the outcomes
received, and from these, which leads a run would dial (first calls, then calls again)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from dialer.checkpoint import Checkpoint
from dialer.config import Settings
from dialer.do_not_call import load_do_not_call
from dialer.errors import LeadsError
from dialer.gate import reject_never_open, utc_now
from dialer.lead_files import load_lead_list
from dialer.lead_state import SETTLED, Status
from dialer.leads import KEY, PRE_STATUS, RECYCLE_OF_CALLS, ROW, LeadTable, prepare
from dialer.outcome_store import CALLS_SCHEMA, PAUSES_SCHEMA, PAYLOADS_SCHEMA, empty_frame
from dialer.outcomes import Reading, latest_calls, outcomes_of_calls
from dialer.recycle import RecyclePlan, plan, with_silence
from dialer.staging import as_named


def load_table(
    settings: Settings, *, clock: Callable[[], datetime] | None = None, ignore_calling_hours: bool = False
) -> LeadTable:
    """Load, map and validate the lead list (no network, no checkpoint)."""
    leads = settings.leads
    try:
        frame = load_lead_list(settings.leads_path, delimiter=leads.delimiter, encoding=leads.encoding)
        dnc = load_do_not_call(leads.do_not_call, leads.default_region) if leads.do_not_call else frozenset()
        table = prepare(frame, leads, settings.leads_path, do_not_call=dnc)
    except LeadsError as exc:
        raise LeadsError(as_named(settings, str(exc))) from None
    if settings.file.calling_hours is not None and not ignore_calling_hours:
        table = reject_never_open(settings, table, (clock or utc_now)())
    return table


@dataclass(frozen=True)
class Record:
    """What the checkpoint holds about a campaign, read at one moment."""

    states: pl.DataFrame  # one row per lead ever claimed
    calls: pl.DataFrame  # one row per call (a lead called again has several); with [outcomes]
    payloads: pl.DataFrame  # every outcome payload received; with [outcomes]
    pauses: pl.DataFrame  # every pause the API imposed

    @classmethod
    def empty(cls) -> Record:
        return cls(
            Checkpoint.empty_states(),
            empty_frame(CALLS_SCHEMA),
            empty_frame(PAYLOADS_SCHEMA),
            empty_frame(PAUSES_SCHEMA),
        )

    @classmethod
    def read(cls, checkpoint: Checkpoint, settings: Settings) -> Record:
        """Calls and payloads only matter with [outcomes]: without it they are not read at all."""
        if settings.outcomes is None:  # nor the leads' phones and referenceIds, kept for outcomes
            empty = cls.empty()
            states = checkpoint.states(without=("phone", "reference_id"))
            return cls(states, empty.calls, empty.payloads, checkpoint.pauses())
        return cls(checkpoint.states(), checkpoint.calls(), checkpoint.payloads(), checkpoint.pauses())


def existing_record(settings: Settings) -> Record:
    """The checkpoint's record, read-only; empty when the campaign has not run yet."""
    if not settings.checkpoint_path.exists():
        return Record.empty()
    checkpoint = Checkpoint.open_readonly(settings.checkpoint_path)
    try:
        return Record.read(checkpoint, settings)
    finally:
        checkpoint.close()


@dataclass(frozen=True)
class OutcomeView:
    """Each lead's latest call and its outcome, the payloads that matched nothing, the recycling."""

    reading: Reading
    latest: pl.DataFrame  # key, call id/time/status, outcome columns (no-outcome applied)
    unmatched: int
    recycle: RecyclePlan | None

    def columns(self) -> pl.DataFrame:
        """Per lead key, the outcome columns the results file shows."""
        return self.latest.select("key", *self.reading.columns)


def outcome_view(
    settings: Settings, record: Record, now: datetime, table: LeadTable | None = None
) -> OutcomeView | None:
    """None for a campaign without [outcomes]. With the lead table, only leads it still lets be
    called (not rejected, skipped or on the do-not-call list now) can be due again."""
    if settings.outcomes is None:
        return None
    reading = Reading.of(settings.outcomes)
    leads = record.states.select("key", "reference_id")
    found = outcomes_of_calls(record.payloads, record.calls, leads, reading)
    latest = with_silence(latest_calls(found.calls), settings.recycle, now)
    callable_keys = table.dialable(KEY).rename({KEY: "key"}) if table is not None else None
    recycling = (
        plan(latest, record.states, settings.recycle, now, callable_keys) if settings.recycle else None
    )
    return OutcomeView(reading, latest, found.unmatched, recycling)


def leads_to_dial(
    table: LeadTable,
    states: pl.DataFrame,
    claimable: frozenset[Status],
    due: pl.DataFrame | None = None,
    columns: Sequence[str] = (),
) -> pl.DataFrame:
    """Dialable rows not yet settled (first calls), then those due to be called again.

    `due` (key, calls) comes from the recycling plan; those rows carry RECYCLE_OF_CALLS, the
    call count the claim will insist on, so a lead called meanwhile is not called twice.
    With `columns`, only those (and the row and key) are kept: what the caller will read.
    """
    settled_statuses = [s.value for s in (SETTLED - claimable)] + [Status.IN_FLIGHT.value]
    settled = states.lazy().filter(pl.col("status").is_in(settled_statuses)).select("key")
    dialable = table.frame.lazy().filter(pl.col(PRE_STATUS).is_null())
    if columns:
        dialable = dialable.select(list(dict.fromkeys([ROW, KEY, *columns])))
    first = dialable.join(settled, left_on=KEY, right_on="key", how="anti", maintain_order="left")
    if due is None or due.is_empty():
        return first.collect()
    again = dialable.join(
        due.lazy().select(pl.col("key"), pl.col("calls").alias(RECYCLE_OF_CALLS)),
        left_on=KEY,
        right_on="key",
        how="inner",
        maintain_order="left",
    )
    first = first.with_columns(pl.lit(None, dtype=due["calls"].dtype).alias(RECYCLE_OF_CALLS))
    return pl.concat([first, again]).sort(ROW).collect()


def existing_states(path: Path) -> pl.DataFrame:
    """The checkpoint's leads, read-only; none when the campaign has not run yet."""
    if not path.exists():
        return Checkpoint.empty_states()
    checkpoint = Checkpoint.open_readonly(path)
    try:
        return checkpoint.states()
    finally:
        checkpoint.close()
