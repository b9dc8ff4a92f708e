"""The stages wired together: what `dialer run`, `validate`, `export` and `status` do.

Everything here is plain functions over Settings; the CLI only parses arguments, calls one of
these and maps the result to an exit code and a summary.
"""

from __future__ import annotations

import asyncio
import gc
import glob
import hashlib
import json
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from dialer import logs
from dialer.checkpoint import DONE, Checkpoint, Identity, RunLock, Status
from dialer.client import KyzoClient, Outcome
from dialer.config import Settings
from dialer.dispatch import Dispatcher, DispatchOptions, DispatchReport, StopReason
from dialer.errors import CheckpointError, OutputError, ResultsNotWritten
from dialer.export import (
    build_results,
    check_outputs,
    errors_only,
    status_counts,
    write_atomic,
)
from dialer.hours import Window, zones_for_lead
from dialer.leads import (
    KEY,
    PHONE,
    PRE_STATUS,
    REASON,
    ROW,
    LeadRequest,
    LeadTable,
    RequestSpec,
    file_fingerprint,
    iter_requests,
    load_do_not_call,
    load_lead_list,
    prepare,
)
from dialer.limiter import RateLimiter

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_USAGE = 2
EXIT_API = 3
EXIT_STOPPED = 4
EXIT_LOCKED = 5
EXIT_MEANINGS = {
    EXIT_OK: "every lead placed or skipped",
    EXIT_INCOMPLETE: "finished; some leads failed, were rejected or are unknown",
    EXIT_USAGE: "usage, config or input error",
    EXIT_API: "stopped by the API's answers",
    EXIT_STOPPED: "stopped early; resumable",
    EXIT_LOCKED: "another run holds the checkpoint",
}


@dataclass(frozen=True)
class RunOptions:
    limit: int | None = None
    dry_run: bool = False
    retry_failed: bool = False
    redial_unknown: bool = False
    new_campaign: bool = False
    progress: bool = False
    command: str = "dialer run"
    ignore_calling_hours: bool = False
    clock: Callable[[], datetime] | None = None  # injected in tests; UTC wall clock otherwise


@dataclass
class RunSummary:
    campaign: str
    exit_code: int
    counts: dict[str, int]
    results_path: Path
    errors_path: Path
    checkpoint_path: Path | None
    report: DispatchReport = field(default_factory=DispatchReport)
    dry_run: bool = False
    resume_command: str = ""
    notes: list[str] = field(default_factory=list)
    next_window: str | None = None

    @classmethod
    def of(cls, settings: Settings, exit_code: int, counts: dict[str, int], **extra: Any) -> RunSummary:
        """A summary with the campaign's name and file paths filled in."""
        return cls(
            campaign=settings.campaign.name,
            exit_code=exit_code,
            counts=counts,
            results_path=settings.results_path,
            errors_path=settings.errors_path,
            checkpoint_path=extra.pop("checkpoint_path", settings.checkpoint_path),
            **extra,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "exit_code": self.exit_code,
            "counts": self.counts,
            "sent_requests": self.report.sent,
            "duration_s": round(self.report.duration_s, 3),
            "calls_per_second": round(self.report.calls_per_second, 3),
            "stop_reason": self.report.stop_reason.value if self.report.stop_reason else None,
            "stop_message": self.report.stop_message,
            "results_path": str(self.results_path),
            "errors_path": str(self.errors_path),
        }


def load_table(
    settings: Settings, *, clock: Callable[[], datetime] | None = None, ignore_calling_hours: bool = False
) -> LeadTable:
    """Load, map and validate the lead list (no network, no checkpoint)."""
    leads = settings.leads
    frame = load_lead_list(settings.leads_path, delimiter=leads.delimiter, encoding=leads.encoding)
    dnc = load_do_not_call(leads.do_not_call, leads.default_region) if leads.do_not_call else frozenset()
    table = prepare(frame, leads, settings.leads_path, do_not_call=dnc)
    if settings.file.calling_hours is not None and not ignore_calling_hours:
        table = reject_never_open(settings, table, (clock or _utc_now)())
    return table


NEVER_OPEN = (
    "its calling window never opens: [calling_hours] is not open at the same time in all of its "
    "number's time zones; add a time-zone column (leads.columns.timezone) or widen the window"
)


def reject_never_open(settings: Settings, table: LeadTable, now: datetime) -> LeadTable:
    """A lead no window will ever reach is rejected, not left pending: else cron exits 4 forever."""
    hours = settings.file.calling_hours
    assert hours is not None
    window = Window(hours)
    column = settings.leads.columns.timezone
    zone = (pl.col(column) if column else pl.lit(None, dtype=pl.String)).fill_null("").alias("__zone")
    pairs = table.dialable().select(pl.col(PHONE), zone).unique()
    verdicts: dict[tuple[str, ...], bool] = {}  # per zone set: a list has few distinct ones
    closed: list[tuple[str, str]] = []
    for phone, cell in pairs.iter_rows():
        zones = zones_for_lead(phone, cell or None, hours.timezone)
        if zones not in verdicts:
            verdicts[zones] = window.next_open(zones, now) is None
        if verdicts[zones]:
            closed.append((phone, cell))
    if not closed:
        return table
    marks = pl.DataFrame(closed, schema={PHONE: pl.String, "__zone": pl.String}, orient="row").with_columns(
        pl.lit(True).alias("__never")
    )
    never = pl.col("__never").fill_null(False) & pl.col(PRE_STATUS).is_null()
    frame = (
        table.frame.with_columns(zone)
        .join(marks, on=[PHONE, "__zone"], how="left", maintain_order="left")
        .with_columns(
            pl.when(never).then(pl.lit("rejected")).otherwise(pl.col(PRE_STATUS)).alias(PRE_STATUS),
            pl.when(never).then(pl.lit(NEVER_OPEN)).otherwise(pl.col(REASON)).alias(REASON),
        )
        .drop("__zone", "__never")
    )
    return replace(table, frame=frame)


def identity_of(settings: Settings) -> Identity:
    def kept(value: str) -> str:
        """An id built from ${env:} is a secret: the checkpoint keeps a digest that still tells change."""
        if any(secret in value for secret in settings.secrets if len(secret) >= 4):
            return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]
        return value

    return Identity(
        organization_id=kept(settings.api.organization_id),
        agent_id=kept(settings.campaign.agent_id),
        from_phone_number_id=kept(settings.campaign.from_phone_number_id),
        dedupe=settings.leads.dedupe,
    )


def claimable_statuses(options: RunOptions) -> frozenset[Status]:
    allowed = {Status.PENDING}
    if options.retry_failed:
        allowed.add(Status.FAILED)
    if options.redial_unknown:
        allowed.add(Status.UNKNOWN)
    return frozenset(allowed)


class CallingGate:
    """May this lead be called right now? Remembers the earliest opening among closed leads."""

    def __init__(self, window: Window, fallback: str, clock: Callable[[], datetime]) -> None:
        self._window = window
        self._fallback = fallback
        self._clock = clock
        self._noted: set[tuple[str, ...]] = set()
        self.next_open: datetime | None = None
        self.next_open_text: str | None = None

    def zones(self, phone: str, zone_cell: str | None) -> tuple[str, ...]:
        return zones_for_lead(phone, zone_cell, self._fallback)

    def __call__(self, lead: LeadRequest) -> bool:
        zones = self.zones(lead.phone, lead.timezone)
        now = self._clock()
        if self._window.is_open(zones, now):
            return True
        self.note_closed(zones, now)
        return False

    def note_closed(self, zones: tuple[str, ...], now: datetime) -> datetime | None:
        if zones in self._noted:
            return None
        self._noted.add(zones)
        opens = self._window.next_open(zones, now)
        if opens is not None and (self.next_open is None or opens < self.next_open):
            self.next_open = opens
            self.next_open_text = self._window.describe_next(zones, now)
        return opens


def calling_hours_report(
    settings: Settings, todo: pl.DataFrame, clock: Callable[[], datetime] | None = None
) -> dict[str, Any] | None:
    """How many of these leads may be called now, and when the others open."""
    hours = settings.file.calling_hours
    if hours is None:
        return None
    window = Window(hours)
    gate = CallingGate(window, hours.timezone, clock or _utc_now)
    now = (clock or _utc_now)()
    zone_column = settings.leads.columns.timezone
    zone_expr = pl.col(zone_column) if zone_column else pl.lit(None, dtype=pl.String)
    pairs = todo.group_by(pl.col(PHONE), zone_expr.alias("__zone")).len()
    per_zones: dict[tuple[str, ...], int] = {}
    for phone, zone, count in pairs.iter_rows():
        zones = gate.zones(phone, zone)
        per_zones[zones] = per_zones.get(zones, 0) + count
    callable_now = never = 0
    for zones, count in per_zones.items():
        if window.is_open(zones, now):
            callable_now += count
        elif gate.note_closed(zones, now) is None:
            never += count
    return {
        "callable_now": callable_now,
        "outside_hours": todo.height - callable_now,
        "never_open": never,
        "next_window": gate.next_open_text,
    }


def calling_gate(settings: Settings, options: RunOptions) -> CallingGate | None:
    hours = settings.file.calling_hours
    if hours is None or options.ignore_calling_hours:
        return None
    return CallingGate(Window(hours), hours.timezone, options.clock or _utc_now)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def leads_to_dial(table: LeadTable, states: pl.DataFrame, claimable: frozenset[Status]) -> pl.DataFrame:
    """Dialable rows minus those the checkpoint says are settled (never re-dialed by default)."""
    settled = states.filter(
        pl.col("status").is_in([s.value for s in (DONE - claimable)] + [Status.IN_FLIGHT.value])
    )
    return table.dialable().join(
        settled.select("key"), left_on=KEY, right_on="key", how="anti", maintain_order="left"
    )


def exit_code_for(counts: dict[str, int], report: DispatchReport) -> int:
    """The first of 3, 4, 1, 0 that applies (5 and 2 never get this far)."""
    if report.stop_reason is StopReason.API:
        return EXIT_API
    if counts.get("pending", 0) > 0:
        return EXIT_STOPPED
    if any(counts.get(s, 0) for s in ("failed", "rejected", "unknown")):
        return EXIT_INCOMPLETE
    return EXIT_OK


@contextmanager
def _campaign_lock(settings: Settings) -> Iterator[Callable[[], None]]:
    """The checkpoint lock, taken as early as it can matter and no earlier.

    A run can only be live if its lock file exists: then the lock comes first, so a busy
    checkpoint says so (exit 5) before anything else can fail. Otherwise it is taken by the
    returned function once the input has been checked, so a refused run leaves nothing behind.
    """
    lock = RunLock(settings.checkpoint_path)
    with ExitStack() as stack:
        if lock.path.exists():
            stack.enter_context(lock)

        def ensure() -> None:
            if not lock.held:
                stack.enter_context(lock)

        yield ensure


def run_campaign(settings: Settings, options: RunOptions) -> RunSummary:
    with _campaign_lock(settings) as ensure_locked:
        table = load_table(settings, clock=options.clock, ignore_calling_hours=options.ignore_calling_hours)
        spec = RequestSpec.build(settings, table.input_columns)
        need = 2 * settings.leads_path.stat().st_size
        check_outputs(
            settings.leads_path,
            [settings.results_path, settings.errors_path],
            checkpoint=None if options.dry_run else settings.checkpoint_path,
            need_bytes=need,
        )
        api_key = None if options.dry_run else settings.require_api_key()
        ensure_locked()  # a dry run never rewrites the files of a live run either
        if api_key is None:
            return _dry_run(settings, table, spec)
        checkpoint = _open_for_run(settings, options)
        try:
            summary = _run_with_checkpoint(
                settings, options, checkpoint, table, spec, api_key.get_secret_value()
            )
        finally:
            checkpoint.close()
    logs.get_logger().info("run_end", **summary.as_dict(), next_window=summary.next_window)
    if settings.file.notify is not None:
        notify(settings.file.notify.url, summary, timeout_s=settings.file.notify.timeout_s)
    return summary


def _run_with_checkpoint(
    settings: Settings,
    options: RunOptions,
    checkpoint: Checkpoint,
    table: LeadTable,
    spec: RequestSpec,
    api_key: str,
) -> RunSummary:
    log = logs.get_logger()
    recovered = checkpoint.recover_interrupted("a previous run stopped while this call was in flight")
    if recovered:
        log.warning("recovered_in_flight", leads=recovered, status="unknown")
    input_fp = file_fingerprint(settings.leads_path)
    run_id = checkpoint.start_run(options.command, settings.fingerprint, input_fp)
    claimable = claimable_statuses(options)
    states = checkpoint.states()
    todo = leads_to_dial(table, states, claimable)
    log.info(
        "run_start",
        campaign=settings.campaign.name,
        rows=table.rows,
        to_dial=todo.height,
        calls_per_second=settings.limits.calls_per_second,
        max_concurrency=settings.limits.max_concurrency,
    )
    report = DispatchReport()
    gate = calling_gate(settings, options)
    if todo.height:
        # Long-lived objects (libraries, the lead table's wrappers) go out of the
        # collector's reach: a full collection mid-run would stall sends for tens of ms.
        gc.collect()
        gc.freeze()
        report = asyncio.run(
            _dispatch(settings, options, api_key, checkpoint, run_id, claimable, todo, spec, gate)
        )
        states = checkpoint.states()  # (with nothing dispatched, what was read before holds)
    try:
        summary = _finish(settings, table, states, report, options, gate)
    except OutputError as exc:
        if report.sent == 0:
            checkpoint.end_run(run_id, EXIT_USAGE, {})
            raise
        # Calls went out: their outcomes are safe in the checkpoint, only the files are missing.
        # Never exit 2 ("nothing sent") here; say how to get the files back.
        checkpoint.end_run(run_id, EXIT_STOPPED, {})
        raise ResultsNotWritten(
            f"{exc} The {report.sent} calls sent in this run are recorded in the checkpoint; "
            f"fix the problem and run: dialer export {settings.source}"
        ) from None
    checkpoint.end_run(run_id, summary.exit_code, summary.counts)
    return summary


def notify(url: str, summary: RunSummary, *, timeout_s: float) -> bool:
    """Post the run summary once; no personal data, no secrets; a failure is logged, never fatal."""
    counts = ", ".join(f"{status} {count}" for status, count in summary.counts.items() if count)
    text = (
        f"kyzo-dialer campaign {summary.campaign}: exit {summary.exit_code} "
        f"({EXIT_MEANINGS.get(summary.exit_code, 'finished')}); {counts or 'no leads'}; "
        f"{summary.report.duration_s:.0f} s; results: {summary.results_path}"
    )
    if summary.next_window:
        text += f"; next window opens {summary.next_window}"
    fields = summary.as_dict()
    if fields["stop_message"]:  # the API's words: may echo a number or an id from ${env:}
        fields["stop_message"] = logs.scrub(fields["stop_message"])
    return _post(url, {"text": text, **fields, "next_window": summary.next_window}, timeout_s)


def notify_failure(settings: Settings, exit_code: int, message: str) -> bool:
    """A run that ended in an error (bad list, disk, a bug) is news too for whoever watches cron."""
    if settings.file.notify is None:
        return False
    meaning = EXIT_MEANINGS.get(exit_code, "internal error")
    name = settings.campaign.name
    text = f"kyzo-dialer campaign {name}: exit {exit_code} ({meaning}): {logs.scrub(message)}"
    payload = {"text": text, "campaign": settings.campaign.name, "exit_code": exit_code}
    return _post(settings.file.notify.url, payload, settings.file.notify.timeout_s)


def _post(url: str, payload: dict[str, Any], timeout_s: float) -> bool:
    import httpx

    try:
        response = httpx.post(url, json=payload, timeout=timeout_s, follow_redirects=False, trust_env=False)
    except httpx.HTTPError as exc:
        logs.get_logger().warning("notify_failed", error=logs.redact(f"{type(exc).__name__}: {exc}"))
        return False
    if response.status_code >= 300:
        logs.get_logger().warning("notify_failed", http_status=response.status_code)
        return False
    logs.get_logger().info("notified", http_status=response.status_code)
    return True


def _open_for_run(settings: Settings, options: RunOptions) -> Checkpoint:
    path = settings.checkpoint_path
    identity = identity_of(settings)
    checkpoint = Checkpoint.open(path)
    try:
        if options.new_campaign and checkpoint.belongs_to(identity):
            # Only another campaign's checkpoint is set aside: a --new-campaign left in a
            # crontab must not start the same campaign afresh (and re-dial everyone) every run.
            logs.get_logger().warning(
                "new_campaign_ignored",
                reason="the checkpoint already belongs to this campaign: resuming it",
                path=str(path),
            )
        elif options.new_campaign:
            checkpoint.close()
            aside = _set_aside(path)
            logs.get_logger().warning("checkpoint_set_aside", path=str(aside))
            checkpoint = Checkpoint.open(path)
        checkpoint.bind_identity(identity)
    except CheckpointError:
        checkpoint.close()
        raise
    return checkpoint


def _set_aside(path: Path) -> Path:
    """Rename a checkpoint (and its WAL files) to a name no earlier set-aside uses."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = path.with_name(f"{path.name}.{stamp}.old")
    n = 1
    while any(Path(str(aside) + suffix).exists() for suffix in ("", "-wal", "-shm")):
        n += 1
        aside = path.with_name(f"{path.name}.{stamp}-{n}.old")
    for suffix in ("", "-wal", "-shm"):
        old = Path(str(path) + suffix)
        if old.exists():
            old.replace(Path(str(aside) + suffix))
    return aside


async def _dispatch(
    settings: Settings,
    options: RunOptions,
    api_key: str,
    checkpoint: Checkpoint,
    run_id: int,
    claimable: frozenset[Status],
    todo: pl.DataFrame,
    spec: RequestSpec,
    gate: CallingGate | None,
) -> DispatchReport:
    from pydantic import SecretStr

    log = logs.get_logger()
    limits = settings.limits
    loop = asyncio.get_running_loop()
    writer = checkpoint.writer(loop, run_id, claimable)
    expected = min(todo.height, options.limit) if options.limit else todo.height
    progress = Progress(expected, enabled=options.progress)

    def on_outcome(lead: LeadRequest, status: Status, outcome: Outcome, attempts: int) -> None:
        log.debug(
            "lead_outcome",
            row=lead.row,
            phone=logs.mask_phone(lead.phone),
            status=status.value,
            http_status=outcome.http_status,
            attempts=attempts,
            error=outcome.message or None,
        )
        progress.advance(status.value)

    def on_event(event: str, **fields: Any) -> None:
        level = log.warning if event in ("stopping", "record_failed", "claim_refused") else log.info
        level(event, **fields)

    def on_pace(event: str, rate: float) -> None:
        log.info("pace_change", change=event, calls_per_second=round(rate, 3))

    async with KyzoClient(
        settings.api.base_url,
        SecretStr(api_key),
        settings.api.organization_id,
        settings.campaign.agent_id,
        timeout_s=limits.request_timeout_s,
        max_connections=limits.max_concurrency,
        ca_bundle=settings.api.ca_bundle,
        transport_kind=settings.api.transport,
    ) as client:
        dispatcher: Dispatcher

        async def interruptible_sleep(delay: float) -> None:
            await dispatcher.sleep(delay)

        limiter = RateLimiter(rate=limits.calls_per_second, sleep=interruptible_sleep, on_change=on_pace)
        dispatcher = Dispatcher(
            client,
            writer,
            limiter,
            DispatchOptions(
                account=logs.redact(
                    f"organization_id '{settings.api.organization_id}', "
                    f"agent_id '{settings.campaign.agent_id}'"
                ),
                max_concurrency=limits.max_concurrency,
                max_attempts=limits.max_attempts,
                retry_ambiguous=settings.api.retry_ambiguous,
                max_retry_after_s=limits.max_retry_after_s,
                max_consecutive_429=limits.max_consecutive_429,
                breaker_window=limits.breaker_window,
                breaker_ratio=limits.breaker_ratio,
                limit=options.limit,
            ),
            on_outcome=on_outcome,
            on_event=on_event,
            gate=gate,
        )
        previous = _install_signal_handlers(loop, dispatcher)
        try:
            report = await dispatcher.run(iter_requests(todo, spec))
        finally:
            _remove_signal_handlers(loop, previous)
            await writer.aclose()
            progress.close()
    return report


def _install_signal_handlers(
    loop: asyncio.AbstractEventLoop, dispatcher: Dispatcher
) -> dict[signal.Signals, Any]:
    def handle(signum: int) -> None:
        name = signal.Signals(signum).name
        if dispatcher.stopping:
            logs.get_logger().warning("second_signal", signal=name, action="stopping immediately")
            dispatcher.abort()
        else:
            logs.get_logger().warning("signal", signal=name, action="finishing calls in flight")
            dispatcher.stop(StopReason.INTERRUPTED, f"stopped by {name}")

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        loop.add_signal_handler(sig, handle, sig)
    return previous


def _remove_signal_handlers(loop: asyncio.AbstractEventLoop, previous: dict[signal.Signals, Any]) -> None:
    """asyncio resets a removed handler to the default (death by SIGTERM): put back the old one."""
    for sig, handler in previous.items():
        loop.remove_signal_handler(sig)
        if handler is not None:
            signal.signal(sig, handler)


def _finish(
    settings: Settings,
    table: LeadTable,
    states: pl.DataFrame,
    report: DispatchReport,
    options: RunOptions,
    gate: CallingGate | None,
) -> RunSummary:
    counts = write_outputs(settings, table, states)
    code = exit_code_for(counts, report)
    resume = ""
    if code == EXIT_STOPPED:
        resume = (
            options.command.replace(f" --limit {options.limit}", "") if options.limit else options.command
        )
    return RunSummary.of(
        settings,
        code,
        counts,
        report=report,
        resume_command=resume,
        next_window=gate.next_open_text if gate is not None and report.outside_hours else None,
    )


def _dry_run(settings: Settings, table: LeadTable, spec: RequestSpec) -> RunSummary:
    states = _existing_states(settings.checkpoint_path)
    todo = leads_to_dial(table, states, frozenset({Status.PENDING}))
    built = sum(1 for _ in iter_requests(todo, spec))
    counts = write_outputs(settings, table, states)
    report = DispatchReport()
    code = exit_code_for(counts, report)
    return RunSummary.of(
        settings,
        code,
        counts,
        checkpoint_path=None,
        report=report,
        dry_run=True,
        notes=[f"dry run: built {built} request bodies, sent nothing"],
    )


def write_outputs(settings: Settings, table: LeadTable, states: pl.DataFrame) -> dict[str, int]:
    """The results and errors files, each written atomically; returns the counts per status."""
    results = build_results(table, states)
    write_atomic(results, settings.results_path)
    write_atomic(errors_only(results), settings.errors_path)
    return status_counts(results)


def _existing_states(path: Path) -> pl.DataFrame:
    if not path.exists():
        return Checkpoint.empty_states()
    checkpoint = Checkpoint.open_readonly(path)
    try:
        return checkpoint.states()
    finally:
        checkpoint.close()


# ---------------------------------------------------------------- export and status


def export_campaign(settings: Settings) -> RunSummary:
    """Write the results and errors files again from the checkpoint and the input list."""
    with _campaign_lock(settings) as ensure_locked:  # a live run owns these files until it ends
        table = load_table(settings)
        check_outputs(settings.leads_path, [settings.results_path, settings.errors_path])
        ensure_locked()
        counts = write_outputs(settings, table, _existing_states(settings.checkpoint_path))
    return RunSummary.of(settings, EXIT_OK, counts)


def unfinished_leads(settings: Settings) -> int | None:
    """Leads still to be called (pending, or in flight when a run died); None without the list."""
    if not settings.leads_path.exists():
        return None
    counts = status_counts(build_results(load_table(settings), _existing_states(settings.checkpoint_path)))
    return counts["pending"]


def campaign_status(settings: Settings, clock: Callable[[], datetime] | None = None) -> dict[str, Any]:
    """Counts per status (from the checkpoint and the list), the runs so far, the last errors."""
    checkpoint = Checkpoint.open_readonly(settings.checkpoint_path)
    try:
        states = checkpoint.states()
        runs = checkpoint.runs()
        meta = checkpoint.meta()
    finally:
        checkpoint.close()
    counts: dict[str, int] = {}
    hours: dict[str, Any] | None = None
    try:
        table = load_table(settings, clock=clock)
        counts = status_counts(build_results(table, states))
        hours = calling_hours_report(
            settings, leads_to_dial(table, states, frozenset({Status.PENDING})), clock
        )
    except Exception as exc:  # noqa: BLE001 - status must work even if the list moved
        counts = {s: int(n) for s, n in states["status"].value_counts().iter_rows()}
        logs.get_logger().warning("lead_list_unavailable", error=str(exc))
    errors = (
        states.filter(pl.col("status").is_in(["failed", "unknown"]))
        .group_by("error")
        .len()
        .sort("len", descending=True)
        .head(10)
    )
    return {
        "campaign": settings.campaign.name,
        "checkpoint": str(settings.checkpoint_path),
        "identity": meta,
        "counts": counts,
        "runs": runs,
        "last_errors": [{"error": e, "count": n} for e, n in errors.iter_rows()],
        "calling_hours": hours,
    }


# ---------------------------------------------------------------- progress


class Progress:
    """A tqdm bar on a TTY, nothing otherwise: callers never branch on it."""

    RATE_WINDOW_S = 10.0  # "current calls per second": the last ten seconds, not the whole run

    def __init__(self, total: int, enabled: bool, stream: Any = None) -> None:
        self._bar: Any = None
        self._counts: dict[str, int] = {}
        self._started = time.monotonic()
        self._recent: deque[float] = deque()
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="lead", file=stream or sys.stderr, dynamic_ncols=True)

    def advance(self, status: str) -> None:
        if self._bar is None:
            return
        self._counts[status] = self._counts.get(status, 0) + 1
        self._bar.update(1)
        now = time.monotonic()
        self._recent.append(now)
        while now - self._recent[0] > self.RATE_WINDOW_S:
            self._recent.popleft()
        span = max(1e-9, min(self.RATE_WINDOW_S, now - self._started))
        self._bar.set_postfix(
            placed=self._counts.get("placed", 0),
            failed=self._counts.get("failed", 0),
            cps=f"{len(self._recent) / span:.1f}",
            refresh=False,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def rejected_summary(table: LeadTable, examples: int = 5) -> list[dict[str, Any]]:
    """Rejected and skipped rows grouped by reason, with the first few row numbers."""
    frame = table.frame.filter(pl.col(PRE_STATUS).is_not_null())
    reason = pl.col(REASON).str.replace(r"^duplicate of row \d+$", "duplicate")
    grouped = (
        frame.with_columns(reason.alias("__why"))
        .group_by(PRE_STATUS, "__why")
        .agg(pl.len().alias("count"), pl.col(ROW).head(examples).alias("rows"))
        .sort(["count", "__why"], descending=[True, False])
    )
    return [{"status": s, "reason": why, "count": n, "rows": rows} for s, why, n, rows in grouped.iter_rows()]


# ---------------------------------------------------------------- validate


def validate_campaign(
    settings: Settings, *, offline: bool, clock: Callable[[], datetime] | None = None
) -> dict[str, Any]:
    """The preflight report: what would be sent, what would not and why; sends no call."""
    table = load_table(settings, clock=clock)
    spec = RequestSpec.build(settings, table.input_columns)
    states = _existing_states(settings.checkpoint_path)
    todo = leads_to_dial(table, states, frozenset({Status.PENDING}))
    dialable = table.dialable().height
    groups = rejected_summary(table)
    already = dialable - todo.height
    if already:
        done_rows = table.dialable().join(todo.select(KEY), on=KEY, how="anti")[ROW].head(5).to_list()
        groups.append(
            {
                "status": "done",
                "reason": "already handled in this campaign's checkpoint",
                "count": already,
                "rows": done_rows,
            }
        )
    first = next(iter_requests(todo.head(1), spec), None)
    hours = calling_hours_report(settings, todo, clock)
    problems: list[str] = []
    api_note = "not checked (--offline)"
    if not offline:
        api_note, api_problems = asyncio.run(_check_api(settings))
        problems += api_problems
    rejected: dict[str, int] = {}
    skipped: dict[str, int] = {}
    for group in groups:
        target = rejected if group["status"] == "rejected" else skipped
        target[group["reason"]] = target.get(group["reason"], 0) + group["count"]
    first_body = logs.redact_tree(first.body) if first else None
    return {
        "config": str(settings.source),
        "input": str(settings.leads_path),
        "rows": table.rows,
        # "a run would send now": with calling hours, only leads inside their window count
        "dialable": hours["callable_now"] if hours else todo.height,
        "eligible": todo.height,
        "already_done": already,
        "rejected": rejected,
        "skipped": skipped,
        "groups": groups,
        "first_request": first_body,
        "endpoint": logs.redact(
            f"POST {settings.api.base_url}/organizations/{settings.api.organization_id}"
            f"/agents/{settings.campaign.agent_id}/placeCall (x-api-key: {logs.REDACTED})"
        ),
        "api": api_note,
        "problems": problems,
        "calling_hours": hours,
    }


async def _check_api(settings: Settings) -> tuple[str, list[str]]:
    """Ask Get Agents whether the configured agent and caller number exist."""
    if settings.api_key is None:
        return "not checked", ["KYZO_API_KEY is not set: export the API key, or use --offline"]
    async with KyzoClient(
        settings.api.base_url,
        settings.api_key,
        settings.api.organization_id,
        settings.campaign.agent_id,
        timeout_s=min(10.0, settings.limits.request_timeout_s),
        ca_bundle=settings.api.ca_bundle,
    ) as client:
        answer = await client.list_agents()
    if answer.status is None:
        return f"not reachable ({answer.detail}); agent not checked", []
    if answer.status == 401:
        return "key rejected", ["the API key was rejected (401): check KYZO_API_KEY"]
    if answer.status == 404:
        return "organization not found", [
            f"organization '{settings.api.organization_id}' was not found (404)"
        ]
    if answer.status != 200:
        return f"answered {answer.status}; agent not checked", []
    try:
        agents = json.loads(answer.body)
    except ValueError:
        return "answered with a body that is not JSON; agent not checked", []
    ids = {str(a.get("id")): a for a in agents if isinstance(a, dict)} if isinstance(agents, list) else {}
    agent = settings.campaign.agent_id
    if agent not in ids:
        found = ", ".join(sorted(ids)) or "none"
        org = settings.api.organization_id
        return "agent not found", [f"agent '{agent}' is not in organization '{org}' (found: {found})"]
    numbers = ids[agent].get("phoneNumberIds")
    number = settings.campaign.from_phone_number_id
    if isinstance(numbers, list) and number not in numbers:
        listed = ", ".join(map(str, numbers))
        return "phone number not found", [
            f"from_phone_number_id '{number}' is not one of the agent's numbers ({listed})"
        ]
    return f"organization, agent '{agent}' and phone number id '{number}' found", []


# ---------------------------------------------------------------- account listings and purge


def list_account(settings: Settings, what: str) -> list[dict[str, Any]]:
    """Get Agents or Get Campaigns, as a list of objects; API failures are user errors."""
    from dialer.errors import UserError

    async def fetch() -> Any:
        async with KyzoClient(
            settings.api.base_url,
            settings.require_api_key(),
            settings.api.organization_id,
            settings.campaign.agent_id,
            timeout_s=min(30.0, settings.limits.request_timeout_s),
            ca_bundle=settings.api.ca_bundle,
        ) as client:
            return await (client.list_agents() if what == "agents" else client.list_campaigns())

    answer = asyncio.run(fetch())
    if answer.status is None:
        raise UserError(f"the API at {settings.api.base_url} is not reachable: {answer.detail}")
    if answer.status == 401:
        raise UserError("the API key was rejected (401): check KYZO_API_KEY")
    if answer.status != 200:
        said = answer.body[:200].decode("utf-8", "replace").strip() or "no message"
        raise UserError(f"the API answered {answer.status} to Get {what.title()}: {logs.scrub(said)}")
    try:
        items = json.loads(answer.body)
    except ValueError:
        raise UserError(f"the API answered Get {what.title()} with a body that is not JSON") from None
    if not isinstance(items, list):
        raise UserError(f"the API answered Get {what.title()} with something other than a list")
    return [item for item in items if isinstance(item, dict)]


def purge_targets(settings: Settings) -> list[Path]:
    """Every file the dialer wrote for this campaign: checkpoint (and set-aside ones), outputs.

    Never the lead list or the do-not-call list, even when a config points an output at them.
    """
    checkpoint = settings.checkpoint_path
    names = [checkpoint, *(Path(f"{checkpoint}{suffix}") for suffix in ("-wal", "-shm", ".lock"))]
    if checkpoint.parent.exists():
        names += sorted(checkpoint.parent.glob(f"{glob.escape(checkpoint.name)}.*.old*"))
    names += [settings.results_path, settings.errors_path]
    inputs = {p.resolve() for p in (settings.leads_path, settings.leads.do_not_call) if p is not None}
    return [path for path in dict.fromkeys(names) if path.exists() and path.resolve() not in inputs]


def purge_campaign(settings: Settings, lock: RunLock) -> list[Path]:
    """Delete the campaign's files; the caller holds its lock, so no run is writing them."""
    targets = [p for p in purge_targets(settings) if p != lock.path]
    for path in targets:
        path.unlink(missing_ok=True)
    lock.path.unlink(missing_ok=True)
    return [*targets, lock.path]
