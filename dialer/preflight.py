"""`dialer validate`: what a run would send, what it would not and why; sends no call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import httpx
import polars as pl

from dialer import logs
from dialer.account import check_account
from dialer.client import place_call_path
from dialer.config import Settings
from dialer.gate import HoursReport, calling_hours_report
from dialer.lead_state import RowStatus, Status
from dialer.leads import DUPLICATE_OF, KEY, PRE_STATUS, REASON, ROW, LeadTable
from dialer.request_bodies import RequestSpec, iter_requests
from dialer.selection import existing_states, leads_to_dial, load_table

EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class ReasonGroup:
    """Rows left out for one reason, with the first few row numbers to look at."""

    status: str  # rejected, skipped, or "done" (settled in the checkpoint)
    reason: str
    count: int
    rows: list[int]


@dataclass(frozen=True)
class ValidationReport:
    config: str
    input: str
    rows: int
    dialable: int  # a run would send now: with calling hours, only leads inside their window
    eligible: int  # would be sent once their window opens
    already_done: int
    rejected: dict[str, int]
    skipped: dict[str, int]
    groups: list[ReasonGroup]
    first_request: dict[str, Any] | None
    endpoint: str
    api: str
    problems: list[str] = field(default_factory=list)
    calling_hours: HoursReport | None = None
    read_from_storage: list[str] = field(default_factory=list)  # each object read: size, date, ETag

    @property
    def ok(self) -> bool:
        # Leads waiting for their window are fine: a preflight at 08:55 must not fail the cron line.
        return self.eligible > 0 and not self.problems

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def rejected_summary(table: LeadTable, examples: int = EXAMPLE_ROWS) -> list[ReasonGroup]:
    """Rejected and skipped rows grouped by reason (every duplicate under one), first rows first."""
    frame = table.frame.filter(pl.col(PRE_STATUS).is_not_null())
    reason = pl.when(pl.col(DUPLICATE_OF).is_not_null()).then(pl.lit("duplicate")).otherwise(pl.col(REASON))
    grouped = (
        frame.with_columns(reason.alias("__why"))
        .group_by(PRE_STATUS, "__why")
        .agg(pl.len().alias("count"), pl.col(ROW).head(examples).alias("rows"))
        .sort(["count", "__why"], descending=[True, False])
    )
    return [ReasonGroup(s, why, n, rows) for s, why, n, rows in grouped.iter_rows()]


def validate_campaign(
    settings: Settings,
    *,
    offline: bool,
    clock: Callable[[], datetime] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ValidationReport:
    table = load_table(settings, clock=clock)
    spec = RequestSpec.build(settings, table.input_columns)
    states = existing_states(settings.checkpoint_path)
    todo = leads_to_dial(table, states, frozenset({Status.PENDING}), columns=spec.needed_columns())
    groups = rejected_summary(table)
    already = table.count_dialable() - todo.height
    if already:
        dialable = table.dialable(ROW, KEY)
        done_rows = dialable.join(todo.select(KEY), on=KEY, how="anti")[ROW].head(EXAMPLE_ROWS).to_list()
        groups.append(
            ReasonGroup("done", "already handled in this campaign's checkpoint", already, done_rows)
        )
    first = next(iter_requests(todo.head(1), spec), None)
    hours = calling_hours_report(settings, todo, clock)
    api_note, problems = "not checked (--offline)", []
    if not offline:
        check = check_account(settings, transport)
        api_note, problems = check.note, check.problems
    rejected: dict[str, int] = {}
    skipped: dict[str, int] = {}
    for group in groups:
        target = rejected if group.status == RowStatus.REJECTED else skipped
        target[group.reason] = target.get(group.reason, 0) + group.count
    path = place_call_path(settings.api.organization_id, settings.campaign.agent_id)
    return ValidationReport(
        config=str(settings.source),
        input=str(settings.shown("leads", settings.leads_path)),
        rows=table.rows,
        dialable=hours.callable_now if hours else todo.height,
        eligible=todo.height,
        already_done=already,
        rejected=rejected,
        skipped=skipped,
        groups=groups,
        first_request=logs.redact_tree(first.body) if first else None,
        endpoint=logs.redact(f"POST {settings.api.base_url}{path} (x-api-key: {logs.REDACTED})"),
        api=api_note,
        problems=problems,
        calling_hours=hours,
        read_from_storage=[fetched.describe() for fetched in settings.fetched.values()],
    )
