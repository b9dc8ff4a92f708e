"""Answers a run could not write to its checkpoint, taken back from its log by the next run.

When the checkpoint's disk fills mid-run, the leads in flight still get their answers: each is
kept in memory, and logged as `record_failed` with the result the run meant to write (its status,
callId, attempts) and the lead's tag (never its number). The next run, given the same
`--log-file`, records them from there before anything else: a placed call comes back `placed`
with its callId instead of `unknown`, and a lead stopped before it was sent comes back `pending`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dialer.checkpoint import Checkpoint
from dialer.lead_state import Status
from dialer.lead_writes import Result

EVENT = "record_failed"


@dataclass(frozen=True)
class LoggedAnswer:
    status: Status
    call_id: str | None
    attempts: int
    http_status: int | None
    error: str | None


# What a run writes when a lead leaves in_flight; `pending` only when it was certainly not sent.
_SETTLING = frozenset({Status.PLACED, Status.FAILED, Status.UNKNOWN, Status.PENDING})


def answers_in_log(path: Path) -> dict[str, LoggedAnswer]:
    """Results a run logged but could not record, by lead tag (the latest wins)."""
    found: dict[str, LoggedAnswer] = {}
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if EVENT not in line:  # a months-long cron log: most lines are not worth parsing
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict) or event.get("event") != EVENT:
                continue
            lead, status, call_id = event.get("lead"), event.get("status"), event.get("call_id")
            if not isinstance(lead, str) or status not in _SETTLING:
                continue
            if status == Status.PLACED and not isinstance(call_id, str):
                continue  # placed without its callId is no answer to take back
            attempts, http, error = event.get("attempts"), event.get("http_status"), event.get("result_error")
            found[lead] = LoggedAnswer(
                Status(status),
                call_id if isinstance(call_id, str) else None,
                attempts if isinstance(attempts, int) else 0,
                http if isinstance(http, int) else None,
                error if isinstance(error, str) else None,
            )
    return found


def take_back(checkpoint: Checkpoint, log: Path | None) -> int:
    """Record the results the log holds for leads left in flight, as the run meant to; how many."""
    waiting = checkpoint.in_flight_keys()
    if not waiting or log is None or not log.is_file():
        return 0
    answers = answers_in_log(log)
    tag = checkpoint.tagger()
    results = [
        Result(key, answer.status, answer.attempts, answer.call_id, answer.error, answer.http_status)
        for key in waiting
        if (answer := answers.get(tag(key))) is not None
    ]
    if results:
        checkpoint.record_now(results)
    return len(results)
