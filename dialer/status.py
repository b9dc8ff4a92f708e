"""`dialer status`: where a campaign stands, from its checkpoint (and its list, when readable).

Answered from SQLite alone when it can be: the counts the last run (or export) kept, carried
forward by what the checkpoint recorded since, as long as the list and the config are the ones
they were computed from. Only then does it load polars and read the whole list again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dialer.checkpoint import Checkpoint
from dialer.kept_counts import carried
from dialer.lead_state import Status

if TYPE_CHECKING:
    import polars as pl

    from dialer.config import Settings
    from dialer.gate import HoursReport
    from dialer.selection import OutcomeView


@dataclass(frozen=True)
class ErrorCount:
    error: str | None
    count: int


@dataclass(frozen=True)
class RecycleCounts:
    due_now: int
    due_later: int
    exhausted: int  # named by [recycle] statuses, but out of calls (max_calls)
    next_due: str | None


@dataclass(frozen=True)
class OutcomeCounts:
    """With [outcomes]: what each lead's latest call came to."""

    statuses: dict[str, int]  # per outcome status received
    awaiting: int  # placed, no outcome yet (it may still be ringing)
    no_outcome: int  # placed, none for recycle.silent_after: counted apart, never as received
    unmatched: int  # payloads that name no call of this campaign: kept, never dropped
    recycle: RecycleCounts | None = None


def outcome_counts(view: OutcomeView, states: pl.DataFrame) -> OutcomeCounts:
    import polars as pl

    from dialer.config_schema import NO_OUTCOME
    from dialer.outcomes import STATUS
    from dialer.timestamps import iso_utc

    latest = view.latest.join(
        states.select("key", pl.col("status").alias("lead_status")), on="key", how="left"
    )
    placed = pl.col("lead_status") == Status.PLACED.value
    received = latest.filter(pl.col(STATUS).is_not_null() & (pl.col(STATUS) != NO_OUTCOME))
    counted = received.group_by(STATUS).len().sort([STATUS])
    plan = view.recycle
    return OutcomeCounts(
        statuses={name: int(n) for name, n in counted.iter_rows()},
        awaiting=latest.filter(placed & pl.col(STATUS).is_null()).height,
        no_outcome=latest.filter(pl.col(STATUS) == NO_OUTCOME).height,
        unmatched=view.unmatched,
        recycle=None
        if plan is None
        else RecycleCounts(
            due_now=plan.due_now.height,
            due_later=plan.due_later,
            exhausted=plan.exhausted,
            next_due=iso_utc(plan.next_due) if plan.next_due else None,
        ),
    )


@dataclass(frozen=True)
class StatusReport:
    campaign: str
    checkpoint: str
    identity: dict[str, str]
    counts: dict[str, int]
    runs: list[dict[str, Any]]
    last_errors: list[ErrorCount] = field(default_factory=list)
    calling_hours: HoursReport | None = None
    outcomes: OutcomeCounts | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def campaign_status(settings: Settings, clock: Callable[[], datetime] | None = None) -> StatusReport:
    """Counts per status, the runs so far, the most common errors."""
    from dialer.staging import inputs_remote

    if not inputs_remote(settings):
        return quick_status(settings) or full_status(settings, clock)
    return _status_of_lists_in_storage(settings, clock)


def _status_of_lists_in_storage(settings: Settings, clock: Callable[[], datetime] | None) -> StatusReport:
    """A HEAD of each list decides whether the kept counts hold; only when they do not is the
    list fetched. With the bucket out of reach, the checkpoint's own counts, as for a local list
    that moved: status works without its list."""
    from dialer import logs
    from dialer.staging import looked_at, staged
    from dialer.storage import StorageError

    try:
        quick = quick_status(looked_at(settings))
        if quick is not None:
            return quick
        with staged(settings) as local:
            return full_status(local, clock)
    except StorageError as exc:
        logs.get_logger().warning("lead_list_unavailable", error=str(exc))
        return full_status(settings, clock)  # the stand-in path does not load: checkpoint counts


def quick_status(settings: Settings) -> StatusReport | None:
    """From the checkpoint alone; None when the kept counts no longer hold (or say too little)."""
    if settings.file.calling_hours is not None or settings.outcomes is not None:
        return None  # who may be called now, what the calls came to: those need the list and polars
    checkpoint = Checkpoint.open_readonly(settings.checkpoint_path)
    try:
        found = carried(checkpoint, settings)
        if found is None:
            return None
        return StatusReport(
            campaign=settings.campaign.name,
            checkpoint=str(settings.checkpoint_path),
            identity=checkpoint.meta(),
            counts=found[1],
            runs=checkpoint.runs(),
            last_errors=[ErrorCount(error, n) for error, n in checkpoint.top_errors(10)],
        )
    finally:
        checkpoint.close()


def full_status(settings: Settings, clock: Callable[[], datetime] | None = None) -> StatusReport:
    """Reading the list again: counts from scratch, calling hours, outcomes."""
    import polars as pl

    from dialer import logs
    from dialer.errors import DialerError
    from dialer.export import count_statuses
    from dialer.gate import calling_hours_report, utc_now, zone_inputs
    from dialer.leads import LeadTable
    from dialer.selection import Record, leads_to_dial, load_table, outcome_view

    checkpoint = Checkpoint.open_readonly(settings.checkpoint_path)
    try:
        record = Record.read(checkpoint, settings)
        runs = checkpoint.runs()
        meta = checkpoint.meta()
    finally:
        checkpoint.close()
    states = record.states
    now = (clock or utc_now)()
    hours: HoursReport | None = None
    try:
        table: LeadTable | None = load_table(settings, clock=clock)
    except (DialerError, OSError, ValueError, pl.exceptions.PolarsError) as exc:
        # status must work even if the list moved or no longer reads
        table = None
        logs.get_logger().warning("lead_list_unavailable", error=str(exc))
    view = outcome_view(settings, record, now, table)
    if table is not None:
        counts = count_statuses(table, states, view.columns() if view else None)
        waiting = leads_to_dial(table, states, frozenset({Status.PENDING}), columns=zone_inputs(settings))
        hours = calling_hours_report(settings, waiting, clock)
    else:
        counts = {s: int(n) for s, n in states["status"].value_counts().iter_rows()}
    errors = (
        states.filter(pl.col("status").is_in([Status.FAILED.value, Status.UNKNOWN.value]))
        .group_by("error")
        .len()
        .sort("len", descending=True)
        .head(10)
    )
    return StatusReport(
        campaign=settings.campaign.name,
        checkpoint=str(settings.checkpoint_path),
        identity=meta,
        counts=counts,
        runs=runs,
        last_errors=[ErrorCount(e, n) for e, n in errors.iter_rows()],
        calling_hours=hours,
        outcomes=outcome_counts(view, states) if view is not None else None,
    )


def unfinished_leads(settings: Settings) -> int | None:
    """Leads still to be called (pending, or in flight when a run died); None without the list."""
    from dialer.export import count_statuses
    from dialer.selection import existing_states, load_table

    if not settings.leads_path.exists():
        return None
    counts = count_statuses(load_table(settings), existing_states(settings.checkpoint_path))
    return counts["pending"]
