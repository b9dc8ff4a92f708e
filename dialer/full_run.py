"""The run that loads the lead list: preflight, dialing, the files and the report; and `export`.

    lead list (load, map, validate) -> checkpoint -> dispatch -> results, errors, report

`campaign` enters here, with the lock held, once it knows the run has work to do: this module
brings in polars, httpx and the dispatcher, which a finished campaign's run never needs.
Each stage lives in its own module; this one decides their order and turns what happened into a
`RunSummary` with its exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import polars as pl

from dialer import logs
from dialer.campaign import RunOptions
from dialer.checkpoint import Checkpoint
from dialer.config import Settings
from dialer.dial_session import dial, receiver_socket
from dialer.dispatch_options import DispatchReport, StopReason
from dialer.errors import (
    CheckpointUnwritable,
    CheckpointWriteFailed,
    OutputError,
    ResultsNotWritten,
)
from dialer.exits import ExitCode
from dialer.export import STATUS, build_results, errors_only, status_counts
from dialer.gate import CallingGate, calling_gate, utc_now
from dialer.kept_counts import counts_basis, keep
from dialer.lead_state import Status
from dialer.leads import LeadTable
from dialer.log_recovery import take_back
from dialer.outputs import check_outputs, write_atomic
from dialer.request_bodies import RequestSpec, iter_requests
from dialer.run_checkpoint import open_for_run
from dialer.run_lock import campaign_lock
from dialer.selection import OutcomeView, Record, existing_record, leads_to_dial, load_table, outcome_view
from dialer.staging import input_fingerprint as listed_input
from dialer.staging import outputs_local, publish
from dialer.summary import RunSummary, exit_code_for


def run_full(
    settings: Settings,
    options: RunOptions,
    ensure_locked: Callable[[], None],
    *,
    transport: httpx.AsyncBaseTransport | None,
    before_commit: Callable[[], None] | None,
) -> RunSummary:
    """Load the list, check the outputs, then dial (or, for a dry run, build the bodies only)."""
    table = load_table(settings, clock=options.clock, ignore_calling_hours=options.ignore_calling_hours)
    spec = RequestSpec.build(settings, table.input_columns)
    check_outputs(
        settings.leads_path,
        [settings.results_path, settings.errors_path],
        checkpoint=None if options.dry_run else settings.checkpoint_path,
        need_bytes=2 * settings.leads_path.stat().st_size,
    )
    api_key = None if options.dry_run else settings.require_api_key()
    ensure_locked()  # a dry run never rewrites the files of a live run either
    if api_key is None:
        return _dry_run(settings, table, spec, options)
    with ExitStack() as stack:
        # bound before any call: a port already taken is exit 2 with nothing sent
        listening = stack.enter_context(receiver_socket(settings)) if options.collect else None
        checkpoint = open_for_run(settings, new_campaign=options.new_campaign, before_commit=before_commit)
        stack.callback(checkpoint.close)
        return _run_with_checkpoint(settings, options, checkpoint, table, spec, transport, listening)


def export_campaign(settings: Settings) -> RunSummary:
    """Write the results and errors files again from the checkpoint and the input list."""
    with (
        campaign_lock(settings.checkpoint_path) as ensure_locked,  # a live run owns these files until it ends
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-record") as pool,
    ):
        reading = None
        if settings.checkpoint_path.exists():
            ensure_locked()  # what is read must not change under the export
            # SQLite reads the record (off the GIL) while polars loads the list
            reading = pool.submit(existing_record, settings)
        table = load_table(settings)
        check_outputs(settings.leads_path, [settings.results_path, settings.errors_path])
        ensure_locked()
        record = reading.result() if reading is not None else Record.empty()
        written = write_outputs(settings, table, record, utc_now())
        if settings.checkpoint_path.exists():  # the counts `status` can then give without the list
            checkpoint = Checkpoint.open(settings.checkpoint_path)
            try:
                # no files kept current: the report was not written (the next run writes all three)
                keep(checkpoint, written.counts, counts_basis(settings), [])
            finally:
                checkpoint.close()
    return RunSummary.of(settings, ExitCode.OK, written.counts)


@dataclass(frozen=True)
class Written:
    """What the results files were written from: kept for the report and the exit code."""

    statuses: pl.DataFrame  # the status column alone: the report needs no more of the results
    counts: dict[str, int]
    view: OutcomeView | None


def write_outputs(settings: Settings, table: LeadTable, record: Record, now: datetime) -> Written:
    """The results and errors files, each written atomically."""
    view = outcome_view(settings, record, now, table)
    results = build_results(table, record.states, view.columns() if view else None)
    write_atomic(results, settings.results_path)
    write_atomic(errors_only(results), settings.errors_path)
    publish(settings, "results", settings.results_path)  # in object storage: uploaded whole, once
    publish(settings, "errors", settings.errors_path)
    return Written(results.select(STATUS), status_counts(results), view)


def _run_with_checkpoint(
    settings: Settings,
    options: RunOptions,
    checkpoint: Checkpoint,
    table: LeadTable,
    spec: RequestSpec,
    transport: httpx.AsyncBaseTransport | None,
    listening: socket.socket | None,
) -> RunSummary:
    log = logs.get_logger()
    taken = take_back(checkpoint, options.log_file)  # answers a full disk kept out, from the log
    if taken:
        log.warning("taken_back_from_log", leads=taken, status="placed", log_file=str(options.log_file))
    recovered = checkpoint.recover_interrupted("a previous run stopped while this call was in flight")
    if recovered:
        log.warning("recovered_in_flight", leads=recovered, status="unknown")
    input_fingerprint = listed_input(settings)
    basis = counts_basis(settings, input_fingerprint)  # the list is read (hashed) once
    run_id = checkpoint.start_run(options.command, settings.fingerprint, input_fingerprint)
    record = Record.read(checkpoint, settings)
    view = outcome_view(settings, record, options.now(), table)
    due = view.recycle.due_now if view is not None and view.recycle is not None else None
    todo = leads_to_dial(table, record.states, options.claimable, due, spec.needed_columns())
    log.info(
        "run_start",
        campaign=settings.campaign.name,
        rows=table.rows,
        to_dial=todo.height,
        to_dial_again=0 if due is None else due.height,
        calls_per_second=settings.limits.calls_per_second,
        max_concurrency=settings.limits.max_concurrency,
    )
    report = DispatchReport()
    gate = calling_gate(settings, ignore=options.ignore_calling_hours, clock=options.clock)
    if todo.height or options.wait_outcomes_s:
        # Long-lived objects (libraries, the lead table's wrappers) go out of the
        # collector's reach: a full collection mid-run would stall sends for tens of ms.
        gc.collect()
        gc.freeze()
        session = dial(settings, options, checkpoint, run_id, todo, spec, gate, transport, listening)
        _import_meanwhile("dialer.report")  # the report's libraries load while calls are in flight
        report = asyncio.run(session)
        if report.stop_reason is StopReason.CHECKPOINT or report.unrecorded:
            _checkpoint_unwritable(settings, options, checkpoint, table, report, gate)
        record = Record.read(checkpoint, settings)  # (with nothing dispatched, what was read before holds)
    try:
        summary, written = _finish(settings, table, record, report, options, gate)
    except OutputError as exc:
        if report.sent == 0:
            checkpoint.end_run(run_id, ExitCode.USAGE, {})
            raise
        # Calls went out: their outcomes are safe in the checkpoint, only the files are missing.
        # Never exit 2 ("nothing sent") here; say how to get the files back.
        checkpoint.end_run(run_id, ExitCode.STOPPED, {})
        raise ResultsNotWritten(
            f"{exc} The {report.sent} calls sent in this run are recorded in the checkpoint; "
            f"fix the problem and run: dialer export {settings.source}"
        ) from None
    placed = report.outcomes.get(Status.PLACED.value, 0)
    try:
        checkpoint.end_run(run_id, summary.exit_code, summary.counts, sent=report.sent, placed=placed)
        summary.report_path = _run_report(settings, table, record, written, checkpoint, options.now())
        # with the report too, the three files are current: a run that changes nothing keeps them
        files = (
            [settings.results_path, settings.errors_path, settings.report_path]
            if summary.report_path and outputs_local(settings)
            else []  # a file in storage cannot be checked untouched: the next run writes it again
        )
        keep(checkpoint, summary.counts, basis, files)
    except CheckpointWriteFailed as exc:
        raise CheckpointUnwritable(
            f"{exc}; the run's calls are recorded. {_free_and_rerun(options)}"
        ) from None
    return summary


def _checkpoint_unwritable(
    settings: Settings,
    options: RunOptions,
    checkpoint: Checkpoint,
    table: LeadTable,
    report: DispatchReport,
    gate: CallingGate | None,
) -> None:
    """The checkpoint stopped taking writes mid-run (a full disk, an I/O error, the file gone):
    nothing more was sent. Answers kept in memory are written if the disk allows by now; the
    files are written if their disk allows; then exit 4, saying what to do, whatever else fails."""
    unrecorded = list(report.unrecorded)
    if unrecorded:
        try:
            checkpoint.record_now(u.result for u in unrecorded)
            logs.get_logger().info("unrecorded_written", leads=len(unrecorded))
            unrecorded = []
        except CheckpointWriteFailed:
            pass  # still no room: they stay in the log
    with contextlib.suppress(OutputError, CheckpointWriteFailed):
        _finish(settings, table, Record.read(checkpoint, settings), report, options, gate)
    lost = [u for u in unrecorded if u.result.call_id]
    said = f"{report.stop_message}; the run stopped and sent nothing more."
    if lost:
        where = options.log_file or "the log on stderr (the cron mail)"
        rows = ", ".join(str(u.row) for u in lost[:10]) + (", ..." if len(lost) > 10 else "")
        said += (
            f" {len(lost)} answered calls could not be recorded (rows {rows}); their callIds are in {where}"
            + (
                ", and the next run with the same --log-file takes them back from there."
                if options.log_file
                else "."
            )
        )
    raise CheckpointUnwritable(f"{said} {_free_and_rerun(options)}")


def _import_meanwhile(module: str) -> None:
    """Import `module` on a thread: a run waiting on the network has the CPU to spare, and the
    report's plotting stack takes a third of a second to load. Any failure is left to the real
    import, which raises it where it matters."""

    def load() -> None:
        with contextlib.suppress(Exception):
            importlib.import_module(module)

    threading.Thread(target=load, name=f"import-{module}", daemon=True).start()


def _free_and_rerun(options: RunOptions) -> str:
    return f"Free some space on its disk (or fix the file), then run: {options.resume_command}"


def _run_report(
    settings: Settings,
    table: LeadTable,
    record: Record,
    written: Written,
    checkpoint: Checkpoint,
    now: datetime,
) -> Path | str | None:
    """The report at the end of every run; a report that cannot be written never changes the exit."""
    from dialer.report import write_report
    from dialer.report_data import History

    history = History(checkpoint.runs(), *checkpoint.calls_timeline())
    try:
        return write_report(settings, table, record, written.statuses, written.view, history, now)
    except OutputError as exc:
        logs.get_logger().warning("report_not_written", error=str(exc))
        return None


def _finish(
    settings: Settings,
    table: LeadTable,
    record: Record,
    report: DispatchReport,
    options: RunOptions,
    gate: CallingGate | None,
) -> tuple[RunSummary, Written]:
    written = write_outputs(settings, table, record, options.now())
    recycling = _recycling(written.view)
    code = exit_code_for(written.counts, report, recycle_waiting=recycling is not None)
    summary = RunSummary.of(
        settings,
        code,
        written.counts,
        report=report,
        resume_command=options.resume_command if code is ExitCode.STOPPED else "",
        next_window=gate.next_open_text if gate is not None and report.outside_hours else None,
        next_recycle=recycling,
    )
    return summary, written


def _recycling(view: OutcomeView | None) -> str | None:
    """ "12 leads, next due 2026-12-01 09:30 UTC" while leads wait to be called again."""
    plan = view.recycle if view is not None else None
    if plan is None or not (plan.due_now.height or plan.due_later):
        return None
    waiting = plan.due_now.height + plan.due_later
    when = "now" if plan.due_now.height or plan.next_due is None else f"{plan.next_due:%Y-%m-%d %H:%M} UTC"
    return f"{waiting} leads to call again, next due {when}"


def _dry_run(settings: Settings, table: LeadTable, spec: RequestSpec, options: RunOptions) -> RunSummary:
    record = existing_record(settings)
    now = options.now()
    view = outcome_view(settings, record, now, table)
    due = view.recycle.due_now if view is not None and view.recycle is not None else None
    todo = leads_to_dial(table, record.states, frozenset({Status.PENDING}), due, spec.needed_columns())
    # the files are written (in polars, off the GIL) while the bodies are built (in Python)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dry-run-outputs") as pool:
        writing = pool.submit(write_outputs, settings, table, record, now)
        built = sum(1 for _ in iter_requests(todo, spec))
        written = writing.result()
    report = DispatchReport()
    return RunSummary.of(
        settings,
        exit_code_for(written.counts, report, recycle_waiting=_recycling(written.view) is not None),
        written.counts,
        checkpoint_path=None,
        report=report,
        dry_run=True,
        notes=[f"dry run: built {built} request bodies, sent nothing"],
    )
