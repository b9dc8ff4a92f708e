"""A run that finds a finished campaign unchanged: recorded in the run log, nothing else done.

Cron starts the same campaign every few minutes long after its last call. When the checkpoint
says nothing waits to be dialed and nothing happened since the files were written (no run, no
outcome, the same list, config and do-not-call list, the files untouched), loading the whole
list to find that out again, and rewriting three files with what they already say, is all the
run would do. So it answers from the counts kept in the checkpoint instead (`kept_counts`), in a
fraction of the time, and leaves the files as they are. Anything else takes the full run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dialer import logs
from dialer.checkpoint import Checkpoint
from dialer.config import Settings
from dialer.dispatch_options import DispatchReport
from dialer.kept_counts import carried, files_current, keep
from dialer.lead_state import RowStatus
from dialer.outputs import check_outputs
from dialer.run_checkpoint import identity_of
from dialer.staging import input_fingerprint
from dialer.summary import RunSummary, exit_code_for

if TYPE_CHECKING:
    from dialer.campaign import RunOptions

_UNCHANGED = "nothing to dial and nothing changed since the files were written: they were left as they are"


def unchanged_run(
    settings: Settings,
    options: RunOptions,
    ensure_locked: Callable[[], None],
    before_commit: Callable[[], None] | None = None,
) -> RunSummary | None:
    """The run's summary if the campaign is finished and unchanged; None for a full run.

    The full run's refusals come first, in its order after the list (outputs, then the key);
    then the lock (`ensure_locked`). --retry-failed and --redial-unknown make those leads
    dialable again; a recycle config's leads fall due as time passes: only a full run can tell."""
    if options.dry_run or options.collect or options.wait_outcomes_s or options.new_campaign:
        return None
    if not settings.checkpoint_path.exists():
        return None
    try:
        size = settings.leads_path.stat().st_size
    except OSError:
        return None  # the full run says what is wrong with the list
    check_outputs(
        settings.leads_path,
        [settings.results_path, settings.errors_path],
        checkpoint=settings.checkpoint_path,
        need_bytes=2 * size,
    )
    settings.require_api_key()
    ensure_locked()
    if settings.recycle is not None:
        return None
    checkpoint = Checkpoint.open(settings.checkpoint_path, before_commit=before_commit)
    try:
        if not checkpoint.belongs_to(identity_of(settings)):
            return None  # the full run says why, in its usual order
        try:
            listed = input_fingerprint(settings)
        except OSError:
            return None  # the full run says what is wrong with the list
        found = carried(checkpoint, settings, listed)
        if found is None:
            return None
        kept, counts = found
        if not files_current(checkpoint, kept, counts):
            return None
        if (options.retry_failed and counts.get(RowStatus.FAILED.value, 0)) or (
            options.redial_unknown and counts.get(RowStatus.UNKNOWN.value, 0)
        ):
            return None
        files = [Path(p) for p in kept.files]
        return _record(settings, checkpoint, options.command, (listed, kept.basis), counts, files)
    finally:
        checkpoint.close()


def _record(
    settings: Settings,
    checkpoint: Checkpoint,
    command: str,
    digests: tuple[str, str],  # the list's, and the counts' basis
    counts: dict[str, int],
    files: list[Path],
) -> RunSummary:
    log = logs.get_logger()
    list_digest, basis = digests
    run_id = checkpoint.start_run(command, settings.fingerprint, list_digest)
    log.info(
        "run_start",
        campaign=settings.campaign.name,
        rows=sum(counts.values()),
        to_dial=0,
        to_dial_again=0,
        calls_per_second=settings.limits.calls_per_second,
        max_concurrency=settings.limits.max_concurrency,
        unchanged=True,
    )
    report = DispatchReport()
    code = exit_code_for(counts, report)
    checkpoint.end_run(run_id, code, counts)
    keep(checkpoint, counts, basis, files)  # this run changed nothing: the files stay current
    return RunSummary.of(
        settings,
        code,
        counts,
        report=report,
        report_path=settings.report_path if str(settings.report_path) in {str(f) for f in files} else None,
        notes=[_UNCHANGED],
    )
