"""What the campaign report shows, as numbers: gathered once from the list, the checkpoint and
the outcomes, then drawn (`report_charts`) and written (`report`).

Personal data stays out by construction: counts, row numbers and masked phone numbers only;
an outcome value is shown only when at least MIN_SHOWN leads share it (a free-text field would
otherwise print what one person said).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from dialer import logs
from dialer.config import Settings
from dialer.config_schema import NO_OUTCOME
from dialer.export import STATUS as RESULT_STATUS
from dialer.gate import ZoneWait, waiting_by_zone, zone_inputs
from dialer.lead_state import ROW_STATUSES, RowStatus, Status
from dialer.leads import LeadTable
from dialer.outcomes import FIELD_PREFIX, STATUS
from dialer.preflight import ReasonGroup, rejected_summary
from dialer.selection import OutcomeView, Record, leads_to_dial
from dialer.timestamps import stamp_to_time

MIN_SHOWN = 5  # a value seen fewer times is counted under "other", never shown
MAX_ROWS = 12  # rows of a table before "N more"
# Outcome statuses that mean nobody was reached; any other received status counts as reached.
NOT_REACHED = frozenset(
    {"no-answer", "busy", "voicemail", "failed", "canceled", "cancelled", "error", NO_OUTCOME}
)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


@dataclass(frozen=True)
class Step:
    label: str
    count: int


@dataclass(frozen=True)
class Distribution:
    """One outcome field: bars of shared values, or a histogram of numbers."""

    name: str
    numeric: bool
    bars: list[tuple[str, int]] = field(default_factory=list)  # value, leads (text fields)
    values: list[float] = field(default_factory=list)  # numbers, for the histogram
    hidden: int = 0  # leads whose value is shared by fewer than MIN_SHOWN: counted, not shown


@dataclass(frozen=True)
class RunRow:
    number: int
    started: str
    ended: str
    exit_code: int | None
    sent: int | None
    placed: int | None
    duration: str
    config: str


@dataclass(frozen=True)
class History:
    """What the checkpoint says of the campaign's past: its runs, and its calls over time."""

    runs: list[dict[str, Any]]
    timeline: pl.DataFrame  # bucket (datetime), calls
    bucket: str  # "second", "minute" or "hour"
    bucket_s: int


@dataclass(frozen=True)
class ReportData:
    campaign: str
    generated_at: str
    rows: int
    counts: dict[str, int]  # per results status, as `dialer status` counts them
    called: int  # placed + failed + unknown: leads a request went out for
    headline: str
    next_step: str
    funnel: list[Step]
    beside: list[Step]  # rejected, skipped, failed, unknown: off the main path
    timeline: pl.DataFrame  # bucket (datetime), calls
    bucket: str  # "second", "minute" or "hour"
    bucket_s: int
    rate_per_bucket: float  # the configured rate, in calls per bucket
    runs: list[RunRow]
    runs_more: int  # earlier runs not in the table
    run_spans: list[tuple[datetime, datetime]]
    pauses: pl.DataFrame  # at (datetime), seconds
    reasons: list[ReasonGroup]
    reasons_more: int
    zones: list[ZoneWait]
    zones_more: int
    outcomes: dict[str, int] | None  # per received status (None without [outcomes])
    distributions: list[Distribution]
    recycle: dict[str, int] | None
    last_exit: int | None


def gather(
    settings: Settings,
    table: LeadTable,
    record: Record,
    results: pl.DataFrame,
    view: OutcomeView | None,
    history: History,
    now: datetime,
) -> ReportData:
    table = table.verdicts_only(settings.leads.columns.timezone)  # zones need the tz cell, nothing else
    counts = {status.value: 0 for status in ROW_STATUSES}
    counts.update({s: int(n) for s, n in results[RESULT_STATUS].value_counts().iter_rows()})
    called = counts[RowStatus.PLACED] + counts[RowStatus.FAILED] + counts[RowStatus.UNKNOWN]
    dialable = table.count_dialable()
    todo = leads_to_dial(table, record.states, frozenset({Status.PENDING}), columns=zone_inputs(settings))
    zones = waiting_by_zone(settings, todo, lambda: now)
    waiting = sum(zone.leads for zone in zones if zone.opens != "open now")
    received = _received(view) if view is not None else None
    funnel = [
        Step("rows in the list", table.rows),
        Step("dialable", dialable),
        Step("placed", counts[RowStatus.PLACED]),
    ]
    if received is not None:
        reached = sum(n for status, n in received.items() if status not in NOT_REACHED)
        funnel.append(Step("reached", reached))
        funnel += [Step(status, n) for status, n in sorted(received.items(), key=lambda item: -item[1])]
    beside = [Step(status, counts[status]) for status in ("rejected", "skipped", "failed", "unknown")]
    runs = history.runs
    per_second = settings.limits.calls_per_second
    reasons = rejected_summary(table)
    last_exit = runs[-1]["exit_code"] if runs else None
    plan = view.recycle if view is not None else None
    return ReportData(
        campaign=settings.campaign.name,
        generated_at=f"{now:%Y-%m-%d %H:%M} UTC",
        rows=table.rows,
        counts=counts,
        called=called,
        headline=_headline(table.rows, called, waiting, zones),
        next_step=_next_step(
            last_exit, counts, waiting, plan is not None and (plan.due_now.height + plan.due_later) > 0
        ),
        funnel=funnel,
        beside=beside,
        timeline=history.timeline,
        bucket=history.bucket,
        bucket_s=history.bucket_s,
        rate_per_bucket=per_second * history.bucket_s,
        runs=[_run_row(run) for run in runs[-MAX_ROWS:]],
        runs_more=max(0, len(runs) - MAX_ROWS),
        run_spans=_spans(runs),
        pauses=record.pauses.select(stamp_to_time("at").alias("at"), "seconds")
        if record.pauses.height
        else record.pauses,
        reasons=[_scrubbed(group) for group in reasons[:MAX_ROWS]],
        reasons_more=max(0, len(reasons) - MAX_ROWS),
        zones=zones[:MAX_ROWS],
        zones_more=max(0, len(zones) - MAX_ROWS),
        outcomes=received,
        distributions=_distributions(view) if view is not None else [],
        recycle=None
        if plan is None
        else {"due now": plan.due_now.height, "due later": plan.due_later, "out of calls": plan.exhausted},
        last_exit=last_exit,
    )


def _received(view: OutcomeView) -> dict[str, int]:
    statuses = view.latest.filter(pl.col(STATUS).is_not_null()).group_by(STATUS).len()
    return {status: int(n) for status, n in statuses.iter_rows()}


def _headline(rows: int, called: int, waiting: int, zones: list[ZoneWait]) -> str:
    text = f"{called:,} of {rows:,} leads called"
    if waiting:
        opening = min((zone.opens for zone in zones if zone.opens != "open now"), default=None)
        text += f"; {waiting:,} waiting for their calling window" + (
            f", next opens {opening}" if opening else ""
        )
    return text


def _next_step(last_exit: int | None, counts: dict[str, int], waiting: int, recycling: bool) -> str:
    if last_exit is None:
        return "No run yet: run `dialer validate`, then `dialer run`."
    if last_exit == 3:
        return (
            "The last run was stopped by the API's answers: check the key, agent and account, then run again."
        )
    if counts[RowStatus.PENDING] or waiting:
        return (
            "Leads are still to be called: the next run (or the cron line) carries on where this one stopped."
        )
    if recycling:
        return "Some leads will be called back ([recycle]): keep the cron line running."
    if counts[RowStatus.REJECTED] or counts[RowStatus.FAILED] or counts[RowStatus.UNKNOWN]:
        return "Finished. Fix the rows in the errors file and re-upload them, or leave them."
    return "Finished: every lead was called or skipped."


def _spans(runs: list[dict[str, Any]]) -> list[tuple[datetime, datetime]]:
    spans = []
    for run in runs:
        started = _parse(run["started_at"])
        ended = _parse(run["ended_at"]) if run["ended_at"] else None
        if started is not None:
            spans.append((started, ended or started))
    return spans


def _parse(stamp: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None
    except ValueError:
        return None


def _run_row(run: dict[str, Any]) -> RunRow:
    started, ended = _parse(run["started_at"]), _parse(run["ended_at"])
    duration = str(ended - started).split(".")[0] if started and ended else "(no end recorded)"
    return RunRow(
        number=run["id"],
        started=f"{started:%Y-%m-%d %H:%M:%S}" if started else "",
        ended=f"{ended:%Y-%m-%d %H:%M:%S}" if ended else "",
        exit_code=run["exit_code"],
        sent=run.get("sent"),
        placed=run.get("placed"),
        duration=duration,
        config=str(run["config_fingerprint"])[:12],
    )


def _scrubbed(group: ReasonGroup) -> ReasonGroup:
    """A reason quotes the list's own words at times (a bad zone name): no number, no address."""
    text = _EMAIL.sub("***@***", logs.scrub(group.reason))[:200]
    return ReasonGroup(group.status, text, group.count, group.rows)


def _distributions(view: OutcomeView) -> list[Distribution]:
    found = []
    for name in view.reading.fields:
        column = view.latest[FIELD_PREFIX + name].drop_nulls()
        numbers = column.cast(pl.Float64, strict=False)
        if column.len() and numbers.null_count() == 0:
            found.append(Distribution(name, numeric=True, values=numbers.to_list()))
            continue
        counted = column.value_counts(sort=True, name="n")
        shown = counted.filter(pl.col("n") >= MIN_SHOWN)
        bars = [(str(value)[:40], int(n)) for value, n in shown.head(MAX_ROWS).iter_rows()]
        found.append(
            Distribution(name, numeric=False, bars=bars, hidden=int(column.len() - sum(n for _, n in bars)))
        )
    return found
