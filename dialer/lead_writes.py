"""A lead's moves in the checkpoint: the claim written before its request leaves, the result
after the answer, each one SQL statement whose WHERE enforces the state machine (`lead_state`),
and the run's writer that queues them to the group commit.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from dialer import outcome_store
from dialer.group_commit import GroupCommitWriter
from dialer.lead_state import ClaimRefused, IllegalMove, Status, check_move
from dialer.timestamps import utc_now


@dataclass(frozen=True)
class Claim:
    key: str
    phone: str
    reference_id: str | None
    # A recycle claim: the lead must still be `placed` with exactly this many calls behind it.
    recycle_of_calls: int | None = None


@dataclass(frozen=True)
class Result:
    key: str
    status: Status
    attempts: int
    call_id: str | None = None
    error: str | None = None
    http_status: int | None = None
    released: bool = False  # never sent: back to where the claim took it from, nothing counted


class ApplyClaim(Protocol):
    def __call__(self, db: sqlite3.Connection, *, claim: Claim) -> None: ...


class RunWriter:
    """Claims and results of a run, through the group-commit writer."""

    def __init__(self, commits: GroupCommitWriter, apply_claim: ApplyClaim) -> None:
        self._commits = commits
        self._apply_claim = apply_claim

    def claim(self, claim: Claim) -> asyncio.Future[None]:
        return self._commits.submit(partial(self._apply_claim, claim=claim))

    def record(self, result: Result) -> asyncio.Future[None]:
        return self._commits.submit(partial(apply_result, result=result))

    def note_pause(self, run_id: int, seconds: float, http_status: int | None) -> None:
        """For the report; nobody waits on it, and a failure shows up on the next claim anyway."""
        done = self._commits.submit(
            partial(outcome_store.store_pause, run_id=run_id, seconds=seconds, http_status=http_status)
        )
        done.add_done_callback(lambda future: future.cancelled() or future.exception())

    async def aclose(self) -> None:
        await self._commits.aclose()


# The claim's time is kept (claimed_at): a call rings from then on, whatever time its answer is
# recorded, so an outcome posted in between is matched to it (outcomes.attach).
_CLAIM_SQL = (
    "INSERT INTO leads(key, phone, reference_id, status, attempts, updated_at, run_id, claimed_at)"
    " VALUES (?, ?, ?, 'in_flight', 0, ?, ?, ?)"
    " ON CONFLICT(key) DO UPDATE SET status = 'in_flight', error = NULL, http_status = NULL,"
    " updated_at = excluded.updated_at, run_id = excluded.run_id, claimed_at = excluded.claimed_at"
    " WHERE leads.status IN ({sources})"
)
_RECYCLE_CLAIM_SQL = (
    "UPDATE leads SET status = 'in_flight', error = NULL, http_status = NULL, updated_at = ?, run_id = ?,"
    " claimed_at = ? WHERE key = ? AND status = 'placed' AND calls = ?"
)
_RESULT_SQL = (
    "UPDATE leads SET status = ?, call_id = coalesce(?, call_id), error = ?, http_status = ?,"
    " attempts = attempts + ?, updated_at = ?, calls = calls + ? WHERE key = ? AND status = 'in_flight'"
)
# Only a call again is released to `placed`: a lead with calls behind it, whose claim never sent.
_RELEASE_SQL = (
    "UPDATE leads SET status = ?, updated_at = ? WHERE key = ? AND status = 'in_flight' AND calls > 0"
)
_CALL_SQL = (
    "INSERT INTO calls(key, call_id, claimed_at, placed_at, run_id, status)"
    " SELECT key, ?, coalesce(claimed_at, ?), ?, run_id, ? FROM leads WHERE key = ?"
)
# A lead that leaves in_flight in one of these may have rung: it is a call.
_CALLED = frozenset({Status.PLACED, Status.UNKNOWN})


def apply_claim(db: sqlite3.Connection, *, claim: Claim, run_id: int, sources: frozenset[Status]) -> None:
    """Claim a lead: new or in one of `sources` (checked legal by `claimable_from`), or a recycle.

    The database enforces the move in the same statement, so two runs can never both claim
    a lead; a statement whose WHERE fails changes nothing, so a refused claim needs no rollback.
    """
    if claim.recycle_of_calls is not None:
        check_move(Status.PLACED, Status.IN_FLIGHT, recycle=True)
        now = utc_now()
        cursor = db.execute(_RECYCLE_CLAIM_SQL, (now, run_id, now, claim.key, claim.recycle_of_calls))
    else:
        ordered = sorted(sources)
        sql = _CLAIM_SQL.format(sources=", ".join("?" * len(ordered)))
        now = utc_now()
        cursor = db.execute(sql, (claim.key, claim.phone, claim.reference_id, now, run_id, now, *ordered))
    if cursor.rowcount != 1:
        row = db.execute("SELECT status, calls FROM leads WHERE key = ?", (claim.key,)).fetchone()
        state = f"{row[0]} after {row[1]} calls" if row else "absent"
        raise ClaimRefused(f"lead {claim.key!r} is {state}; it may not be claimed")


def apply_result(db: sqlite3.Connection, *, result: Result) -> None:
    check_move(Status.IN_FLIGHT, result.status)
    now = utc_now()
    if result.released:
        if result.status is not Status.PLACED:
            raise IllegalMove(f"lead {result.key!r}: only a call again is released, and back to placed")
        cursor = db.execute(_RELEASE_SQL, (result.status, now, result.key))
    else:
        called = result.status in _CALLED
        cursor = db.execute(
            _RESULT_SQL,
            (
                result.status,
                result.call_id,
                result.error,
                result.http_status,
                result.attempts,
                now,
                int(called),
                result.key,
            ),
        )
        if cursor.rowcount == 1 and called:
            db.execute(_CALL_SQL, (result.call_id, now, now, result.status, result.key))
    if cursor.rowcount != 1:
        raise IllegalMove(f"lead {result.key!r} is not in flight; its outcome was refused")
