"""`dialer run`: the lock, the finished campaign's quick answer, then the full run.

A cron line that runs a finished campaign every few minutes is answered from the checkpoint
(`unchanged_run`) without loading the list, polars or the HTTP stack: the full run
(`full_run`) is imported only when there is work to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from dialer import logs
from dialer.checkpoint_files import purge_targets
from dialer.config import Settings
from dialer.lead_state import Status, claimable_from
from dialer.notify import notify
from dialer.run_lock import campaign_lock
from dialer.summary import RunSummary
from dialer.unchanged_run import unchanged_run

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class RunOptions:
    limit: int | None = None
    dry_run: bool = False
    retry_failed: bool = False
    redial_unknown: bool = False
    new_campaign: bool = False
    progress: bool = False
    command: str = "dialer run"  # as typed, for the run log
    resume_command: str = "dialer run"  # what to type to go on: the same, without --limit
    ignore_calling_hours: bool = False
    clock: Callable[[], datetime] | None = None  # injected in tests; UTC wall clock otherwise
    log_file: Path | None = None  # where this run logs: an answer it cannot record is taken back from there
    collect: bool = False  # receive outcomes during the run (the receiver of `dialer collect`)
    wait_outcomes_s: float | None = None  # after the last call, wait this long for outcomes

    def now(self) -> datetime:
        return self.clock() if self.clock is not None else datetime.now(UTC)

    @property
    def claimable(self) -> frozenset[Status]:
        extra = {Status.FAILED} if self.retry_failed else set()
        if self.redial_unknown:
            extra.add(Status.UNKNOWN)
        return claimable_from(extra)


def run_campaign(
    settings: Settings,
    options: RunOptions,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    before_commit: Callable[[], None] | None = None,
) -> RunSummary:
    """Dial what is left of the campaign. Tests' seams: `transport` replaces the network,
    `before_commit` runs before each checkpoint commit (and may fail it, as a full disk does)."""
    with campaign_lock(settings.checkpoint_path) as ensure_locked:
        summary = unchanged_run(settings, options, ensure_locked, before_commit)
        if summary is None:
            from dialer.full_run import run_full  # polars, httpx, the dispatcher: only now

            summary = run_full(
                settings, options, ensure_locked, transport=transport, before_commit=before_commit
            )
    return _ended(settings, summary)


def _ended(settings: Settings, summary: RunSummary) -> RunSummary:
    logs.get_logger().info("run_end", **summary.as_dict(), next_window=summary.next_window)
    if settings.file.notify is not None:
        notify(settings.file.notify.url, summary, timeout_s=settings.file.notify.timeout_s)
    return summary


def campaign_files(settings: Settings) -> list[Path]:
    """What `purge` deletes: the checkpoint's files and the outputs, never an input list."""
    inputs = [p for p in (settings.leads_path, settings.leads.do_not_call) if p is not None]
    return purge_targets(settings.checkpoint_path, [settings.results_path, settings.errors_path], inputs)
