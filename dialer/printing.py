"""What the commands print on stdout for a person: the run summary, the preflight, the status.

Scripts use `--json` instead; these lines may change wording, the JSON keys may not.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from dialer import logs

if TYPE_CHECKING:  # the reports' types only: printing a status must not load what a run needs
    from dialer.gate import HoursReport
    from dialer.preflight import ValidationReport
    from dialer.status import OutcomeCounts, StatusReport
    from dialer.summary import RunSummary


def print_counts(counts: dict[str, int]) -> None:
    typer.echo("  " + "  ".join(f"{name} {count}" for name, count in counts.items()))


def print_summary(summary: RunSummary) -> None:
    title = "dry run" if summary.dry_run else summary.exit_code.verdict
    typer.echo(f"Campaign {summary.campaign}: {title} (exit {summary.exit_code:d})")
    print_counts(summary.counts)
    report = summary.report
    if report.sent:
        rate = f"{report.calls_per_second:.2f} calls/s"
        typer.echo(f"  sent {report.sent} requests in {report.duration_s:.1f} s ({rate})")
    if report.stop_message:
        typer.echo(f"  reason: {logs.redact(report.stop_message)}")
    for note in summary.notes:
        typer.echo(f"  {note}")
    typer.echo(f"  results: {summary.results_path}")
    typer.echo(f"  errors:  {summary.errors_path}")
    if summary.report_path:
        typer.echo(f"  report:  {summary.report_path}")
    if summary.checkpoint_path:
        typer.echo(f"  checkpoint: {summary.checkpoint_path}")
    if summary.next_window:
        typer.echo(f"  next window opens {summary.next_window}")
    if summary.next_recycle:
        typer.echo(f"  recycling: {summary.next_recycle}")
    if summary.resume_command:
        typer.echo(f"  resume with: {summary.resume_command}")


def print_validation(report: ValidationReport) -> None:
    for read in report.read_from_storage:
        typer.echo(f"Read {read}")
    typer.echo(f"Lead list {report.input}: {report.rows} rows")
    waiting = report.eligible - report.dialable
    later = f" (and {waiting} more once their calling window opens)" if waiting else ""
    typer.echo(f"  dialable now: {report.dialable}{later}")
    for group in report.groups:
        rows = ", ".join(str(r) for r in group.rows)
        more = ", ..." if group.count > len(group.rows) else ""
        typer.echo(f"  {group.status} {group.count}: {group.reason} (rows {rows}{more})")
    for problem in report.problems:
        typer.echo(f"  problem: {problem}")
    print_hours(report.calling_hours)
    if report.api:
        typer.echo(f"  API: {report.api}")
    typer.echo(f"  request: {report.endpoint}")
    if report.first_request is not None:
        typer.echo("  first request body:")
        body = json.dumps(report.first_request, indent=2, ensure_ascii=False)
        typer.echo("    " + body.replace("\n", "\n    "))


def print_status(report: StatusReport) -> None:
    typer.echo(f"Campaign {report.campaign} ({report.checkpoint})")
    print_counts(report.counts)
    typer.echo("  runs:")
    for run in report.runs:
        exit_code = run["exit_code"] if run["exit_code"] is not None else "-"
        typer.echo(
            f"    #{run['id']} {run['started_at']} -> {run['ended_at'] or '(no end recorded)'} "
            f"exit {exit_code} {run['counts'] or ''}"
        )
        config_fp, input_fp = str(run["config_fingerprint"])[:12], str(run["input_fingerprint"])
        input_fp = input_fp if "://" in input_fp else input_fp[:12]  # an object: URL, ETag and size
        typer.echo(f"       config {config_fp}, input {input_fp}  ({run['command']})")
    print_hours(report.calling_hours)
    print_outcomes(report.outcomes)
    if report.last_errors:
        typer.echo("  most common errors:")
        for item in report.last_errors:
            typer.echo(f"    {item.count} x {item.error}")


def print_hours(hours: HoursReport | None) -> None:
    if hours is None:
        return
    line = f"  calling hours: {hours.callable_now} callable now, {hours.outside_hours} outside their window"
    if hours.next_window:
        line += f" (next window opens {hours.next_window})"
    if hours.never_open:
        line += f"; {hours.never_open} never open (their zones' windows do not overlap)"
    typer.echo(line)


def print_outcomes(outcomes: OutcomeCounts | None) -> None:
    if outcomes is None:
        return
    received = "  ".join(f"{name} {count}" for name, count in outcomes.statuses.items()) or "none yet"
    typer.echo(f"  outcomes: {received}")
    line = f"    awaiting {outcomes.awaiting}, unmatched payloads {outcomes.unmatched}"
    if outcomes.no_outcome:
        line += f", no outcome after recycle.silent_after {outcomes.no_outcome}"
    typer.echo(line)
    recycle = outcomes.recycle
    if recycle is not None:
        when = f", next at {recycle.next_due}" if recycle.next_due and not recycle.due_now else ""
        typer.echo(
            f"    to call again: {recycle.due_now} due now, {recycle.due_later} later{when}; "
            f"{recycle.exhausted} out of calls (recycle.max_calls)"
        )
