"""The lead state machine: every status a lead can have and the only legal moves between them.

    pending ──claim──> in_flight ──answer──> placed | failed | unknown
       ^                   │
       └──── not sent ─────┘      failed  ──claim (--retry-failed)──>  in_flight
                                  unknown ──claim (--redial-unknown)──> in_flight
                                  placed  ──recycle──> in_flight ──not sent──> placed

The recycle move is the only conditional one: a placed lead is dialed again only when
[recycle] names the outcome received for its last call (never without an outcome, never from
`unknown`), and only while its call count is the one the decision was made on.

A lead is written `in_flight` durably before its request leaves, so a crash can only leave it
`in_flight`, which the next run turns into `unknown` (it may have rung). The checkpoint asks
this module before every change: claims, results and crash recovery alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum


class Status(StrEnum):
    """A lead's status in the checkpoint."""

    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    PLACED = "placed"
    FAILED = "failed"
    UNKNOWN = "unknown"


class RowStatus(StrEnum):
    """A row's status in the results file: the checkpoint's, or the verdict of validation."""

    PLACED = "placed"
    FAILED = "failed"
    REJECTED = "rejected"  # the row itself is wrong (bad number, missing value): fix it
    SKIPPED = "skipped"  # a valid row not to call (duplicate, do-not-call)
    UNKNOWN = "unknown"
    PENDING = "pending"


# The order the results summary and `status` count them in.
ROW_STATUSES = tuple(RowStatus)
# Rows that belong in the errors file: something to look at or fix.
ERROR_ROW_STATUSES = (RowStatus.FAILED, RowStatus.REJECTED, RowStatus.UNKNOWN)
# Statuses set by validation, before any call: never stored in the checkpoint.
VERDICTS = (RowStatus.REJECTED, RowStatus.SKIPPED)

LEGAL_MOVES: Mapping[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.IN_FLIGHT}),
    # back to pending only when the request certainly never left (stopped before sending)
    Status.IN_FLIGHT: frozenset({Status.PLACED, Status.FAILED, Status.UNKNOWN, Status.PENDING}),
    Status.FAILED: frozenset({Status.IN_FLIGHT}),  # only with --retry-failed
    Status.UNKNOWN: frozenset({Status.IN_FLIGHT}),  # only with --redial-unknown (asks first)
    Status.PLACED: frozenset(),
}
# The one move allowed only as a recycle (see the module docstring).
RECYCLE_MOVE = (Status.PLACED, Status.IN_FLIGHT)
# A lead in one of these has had its turn: a run does not claim it unless told to.
SETTLED = frozenset({Status.PLACED, Status.FAILED, Status.UNKNOWN})


class IllegalMove(Exception):
    """A state change the state machine forbids: a bug, refused before anything is written."""


class ClaimRefused(IllegalMove):
    """The lead is no longer claimable (another run or an earlier attempt settled it): skip it."""


def is_legal(current: Status | None, new: Status, *, recycle: bool = False) -> bool:
    if recycle:
        return (current, new) == RECYCLE_MOVE
    return new in LEGAL_MOVES[current or Status.PENDING]


def check_move(current: Status | None, new: Status, *, recycle: bool = False) -> None:
    if not is_legal(current, new, recycle=recycle):
        how = " by a recycle" if recycle else ""
        raise IllegalMove(f"a lead cannot go from {current or Status.PENDING} to {new}{how}")


def claimable_from(allowed: Iterable[Status]) -> frozenset[Status]:
    """The statuses a run may claim from: pending always, and each extra one the options allow.

    Each must have a legal move to in_flight, so a wrong option fails here, not in the database.
    """
    sources = frozenset({Status.PENDING, *allowed})
    for status in sources:
        check_move(status, Status.IN_FLIGHT)
    return sources
