"""The run-end webhook (`[notify]`): one short message for whoever watches the campaign.

Counts, exit code and file paths only: no phone number, no secret, and a failure to post is
logged, never fatal (the run's own outcome matters more than its announcement).
"""

from __future__ import annotations

from typing import Any

from dialer import logs
from dialer.config import Settings
from dialer.exits import meaning_of
from dialer.summary import RunSummary


def notify(url: str, summary: RunSummary, *, timeout_s: float) -> bool:
    """Post the run summary once."""
    counts = ", ".join(f"{status} {count}" for status, count in summary.counts.items() if count)
    text = (
        f"kyzo-dialer campaign {summary.campaign}: exit {summary.exit_code:d} "
        f"({summary.exit_code.meaning}); {counts or 'no leads'}; "
        f"{summary.report.duration_s:.0f} s; results: {summary.results_path}"
    )
    if summary.next_window:
        text += f"; next window opens {summary.next_window}"
    if summary.report_path:
        text += f"; report: {summary.report_path}"
    fields = summary.as_dict()
    if fields["stop_message"]:  # the API's words: may echo a number or an id from ${env:}
        fields["stop_message"] = logs.scrub(fields["stop_message"])
    return _post(url, {"text": text, **fields, "next_window": summary.next_window}, timeout_s)


def notify_failure(settings: Settings, exit_code: int, message: str) -> bool:
    """A run that ended in an error (bad list, disk, a bug) is news too for whoever watches cron."""
    if settings.file.notify is None:
        return False
    name = settings.campaign.name
    text = f"kyzo-dialer campaign {name}: exit {exit_code} ({meaning_of(exit_code)}): {logs.scrub(message)}"
    payload = {"text": text, "campaign": name, "exit_code": exit_code}
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
