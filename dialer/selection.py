"""Which rows of the list a run would dial: the list's own verdicts, minus what the checkpoint
says is settled (never re-dialed unless an option says so)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import polars as pl

from dialer.checkpoint import Checkpoint
from dialer.config import Settings
from dialer.do_not_call import load_do_not_call
from dialer.gate import reject_never_open, utc_now
from dialer.lead_files import load_lead_list
from dialer.lead_state import SETTLED, Status
from dialer.leads import KEY, LeadTable, prepare


def load_table(
    settings: Settings, *, clock: Callable[[], datetime] | None = None, ignore_calling_hours: bool = False
) -> LeadTable:
    """Load, map and validate the lead list (no network, no checkpoint)."""
    leads = settings.leads
    frame = load_lead_list(settings.leads_path, delimiter=leads.delimiter, encoding=leads.encoding)
    dnc = load_do_not_call(leads.do_not_call, leads.default_region) if leads.do_not_call else frozenset()
    table = prepare(frame, leads, settings.leads_path, do_not_call=dnc)
    if settings.file.calling_hours is not None and not ignore_calling_hours:
        table = reject_never_open(settings, table, (clock or utc_now)())
    return table


def leads_to_dial(table: LeadTable, states: pl.DataFrame, claimable: frozenset[Status]) -> pl.DataFrame:
    """Dialable rows minus those the checkpoint says are settled (or in flight)."""
    settled_statuses = [s.value for s in (SETTLED - claimable)] + [Status.IN_FLIGHT.value]
    settled = states.filter(pl.col("status").is_in(settled_statuses))
    return table.dialable().join(
        settled.select("key"), left_on=KEY, right_on="key", how="anti", maintain_order="left"
    )


def existing_states(path: Path) -> pl.DataFrame:
    """The checkpoint's leads, read-only; none when the campaign has not run yet."""
    if not path.exists():
        return Checkpoint.empty_states()
    checkpoint = Checkpoint.open_readonly(path)
    try:
        return checkpoint.states()
    finally:
        checkpoint.close()
