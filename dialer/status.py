"""`dialer status`: where a campaign stands, from its checkpoint (and its list, when readable)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from dialer import logs
from dialer.checkpoint import Checkpoint
from dialer.config import Settings
from dialer.errors import DialerError
from dialer.export import build_results, status_counts
from dialer.gate import HoursReport, calling_hours_report
from dialer.lead_state import Status
from dialer.selection import existing_states, leads_to_dial, load_table


@dataclass(frozen=True)
class ErrorCount:
    error: str
    count: int


@dataclass(frozen=True)
class StatusReport:
    campaign: str
    checkpoint: str
    identity: dict[str, str]
    counts: dict[str, int]
    runs: list[dict[str, Any]]
    last_errors: list[ErrorCount] = field(default_factory=list)
    calling_hours: HoursReport | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def campaign_status(settings: Settings, clock: Callable[[], datetime] | None = None) -> StatusReport:
    """Counts per status, the runs so far, the most common errors."""
    checkpoint = Checkpoint.open_readonly(settings.checkpoint_path)
    try:
        states = checkpoint.states()
        runs = checkpoint.runs()
        meta = checkpoint.meta()
    finally:
        checkpoint.close()
    hours: HoursReport | None = None
    try:
        table = load_table(settings, clock=clock)
        counts = status_counts(build_results(table, states))
        hours = calling_hours_report(
            settings, leads_to_dial(table, states, frozenset({Status.PENDING})), clock
        )
    except (DialerError, OSError, ValueError, pl.exceptions.PolarsError) as exc:
        # status must work even if the list moved or no longer reads
        counts = {s: int(n) for s, n in states["status"].value_counts().iter_rows()}
        logs.get_logger().warning("lead_list_unavailable", error=str(exc))
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
    )


def unfinished_leads(settings: Settings) -> int | None:
    """Leads still to be called (pending, or in flight when a run died); None without the list."""
    if not settings.leads_path.exists():
        return None
    counts = status_counts(build_results(load_table(settings), existing_states(settings.checkpoint_path)))
    return counts["pending"]
