"""What a run (or an export) reports when it ends: for the CLI, the log, the webhook."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialer.config import Settings
from dialer.dispatch_options import DispatchReport, StopReason
from dialer.exits import ExitCode
from dialer.lead_state import ERROR_ROW_STATUSES, RowStatus


@dataclass
class RunSummary:
    campaign: str
    exit_code: ExitCode
    counts: dict[str, int]
    results_path: Path | str  # a URL when the file is in object storage
    errors_path: Path | str
    checkpoint_path: Path | None
    report: DispatchReport = field(default_factory=DispatchReport)
    dry_run: bool = False
    resume_command: str = ""
    notes: list[str] = field(default_factory=list)
    next_window: str | None = None
    next_recycle: str | None = None  # "12 leads to call again, next due ..." while some wait
    report_path: Path | str | None = None  # the campaign report written at the end of the run

    @classmethod
    def of(cls, settings: Settings, exit_code: ExitCode, counts: dict[str, int], **extra: Any) -> RunSummary:
        """A summary with the campaign's name and file paths filled in."""
        return cls(
            campaign=settings.campaign.name,
            exit_code=exit_code,
            counts=counts,
            results_path=settings.shown("results", settings.results_path),
            errors_path=settings.shown("errors", settings.errors_path),
            checkpoint_path=extra.pop("checkpoint_path", settings.checkpoint_path),
            **extra,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "exit_code": int(self.exit_code),
            "counts": self.counts,
            "sent_requests": self.report.sent,
            "duration_s": round(self.report.duration_s, 3),
            "calls_per_second": round(self.report.calls_per_second, 3),
            "stop_reason": self.report.stop_reason.value if self.report.stop_reason else None,
            "stop_message": self.report.stop_message,
            "results_path": str(self.results_path),
            "errors_path": str(self.errors_path),
            "next_recycle": self.next_recycle,
            "report_path": str(self.report_path) if self.report_path else None,
        }


def exit_code_for(
    counts: dict[str, int], report: DispatchReport, *, recycle_waiting: bool = False
) -> ExitCode:
    """The first of 3, 4, 1, 0 that applies (5 and 2 never get this far).

    Leads due to be called again (now or later) keep a campaign unfinished, as pending ones do.
    """
    if report.stop_reason is StopReason.API:
        return ExitCode.API
    if counts.get(RowStatus.PENDING, 0) > 0 or recycle_waiting:
        return ExitCode.STOPPED
    if any(counts.get(status, 0) for status in ERROR_ROW_STATUSES):
        return ExitCode.INCOMPLETE
    return ExitCode.OK
