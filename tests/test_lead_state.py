"""The lead state machine as one table, and the real checkpoint refusing every move outside it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dialer.checkpoint import Checkpoint
from dialer.lead_state import ClaimRefused, IllegalMove, Status, check_move, claimable_from, is_legal
from dialer.lead_writes import Claim, Result

PENDING, IN_FLIGHT, PLACED, FAILED, UNKNOWN = (
    Status.PENDING,
    Status.IN_FLIGHT,
    Status.PLACED,
    Status.FAILED,
    Status.UNKNOWN,
)

# Written out by hand, not derived from LEGAL_MOVES: a row is the status a lead is in, a column
# the status it would move to; X is a legal move.
X, _ = True, False
COLUMNS = (PENDING, IN_FLIGHT, PLACED, FAILED, UNKNOWN)
# fmt: off
TABLE: dict[Status, tuple[bool, ...]] = {
    #            pending  in_flight  placed  failed  unknown
    PENDING:    (_,       X,         _,      _,      _),  # claimed before its request leaves
    IN_FLIGHT:  (X,       _,         X,      X,      X),  # the answer; pending only if never sent
    PLACED:     (_,       _,         _,      _,      _),  # final: a placed call is never redialled
    FAILED:     (_,       X,         _,      _,      _),  # only with --retry-failed
    UNKNOWN:    (_,       X,         _,      _,      _),  # only with --redial-unknown
}
# fmt: on
MOVES = [(source, target, TABLE[source][i]) for source in TABLE for i, target in enumerate(COLUMNS)]

# The statuses a lead can be in before a claim; None is a lead the checkpoint has never seen.
LEAD_STATES: list[Status | None] = [None, PENDING, IN_FLIGHT, PLACED, FAILED, UNKNOWN]
# What each run option allows a claim from, written out by hand as well.
CLAIMABLE: dict[tuple[Status, ...], set[Status | None]] = {
    (): {None, PENDING},
    (FAILED,): {None, PENDING, FAILED},
    (UNKNOWN,): {None, PENDING, UNKNOWN},
    (FAILED, UNKNOWN): {None, PENDING, FAILED, UNKNOWN},
}


def _name(status: Status | None) -> str:
    return "absent" if status is None else status.value


# -- the table


def test_the_table_covers_every_status() -> None:
    """The table has a row and a column for each status, so a new status cannot slip past it."""
    assert set(TABLE) == set(Status) == set(COLUMNS)
    assert len(MOVES) == 25


@pytest.mark.parametrize(("source", "target", "legal"), MOVES, ids=[f"{s}->{t}" for s, t, _l in MOVES])
def test_move(source: Status, target: Status, legal: bool) -> None:
    """is_legal and check_move agree with the hand-written table for this (from, to) pair."""
    assert is_legal(source, target) is legal
    if legal:
        check_move(source, target)
    else:
        with pytest.raises(IllegalMove, match=f"from {source} to {target}"):
            check_move(source, target)


# A recycle (dialing a placed lead again, under [recycle]) allows exactly one move.
RECYCLE_MOVES = [
    (source, target, (source, target) == (PLACED, IN_FLIGHT)) for source in COLUMNS for target in COLUMNS
]


@pytest.mark.parametrize(
    ("source", "target", "legal"), RECYCLE_MOVES, ids=[f"{s}->{t}" for s, t, _l in RECYCLE_MOVES]
)
def test_recycle_move(source: Status, target: Status, legal: bool) -> None:
    """As a recycle, only placed -> in_flight is legal; every other pair is refused."""
    assert is_legal(source, target, recycle=True) is legal
    if not legal:
        with pytest.raises(IllegalMove, match="by a recycle"):
            check_move(source, target, recycle=True)


@pytest.mark.parametrize("target", COLUMNS)
def test_a_lead_never_seen_moves_like_a_pending_one(target: Status) -> None:
    """No status at all (a lead not in the checkpoint yet) has exactly the moves of pending."""
    assert is_legal(None, target) is TABLE[PENDING][COLUMNS.index(target)]


# -- claimable_from


@pytest.mark.parametrize("extra", [(), (FAILED,), (UNKNOWN,), (FAILED, UNKNOWN), (PENDING, FAILED)])
def test_claimable_from_always_includes_pending(extra: tuple[Status, ...]) -> None:
    """claimable_from is pending plus exactly the extra statuses asked for."""
    assert claimable_from(extra) == {PENDING, *extra}


@pytest.mark.parametrize(
    "asked",
    [(PLACED,), (IN_FLIGHT,), (FAILED, PLACED), (PENDING, IN_FLIGHT)],
    ids=["placed", "in_flight", "failed+placed", "pending+in_flight"],
)
def test_claimable_from_refuses_a_status_with_no_move_to_in_flight(asked: tuple[Status, ...]) -> None:
    """A status that cannot move to in_flight is refused as a claim source, even beside legal ones."""
    with pytest.raises(IllegalMove, match="in_flight"):
        claimable_from(asked)


# -- the same rules, enforced by the real checkpoint


@pytest.fixture
def checkpoint(tmp_path: Path) -> Iterator[Checkpoint]:
    """A fresh checkpoint in tmp_path, closed at the end of the test."""
    opened = Checkpoint.open(tmp_path / "campaign.checkpoint")
    try:
        yield opened
    finally:
        opened.close()


def _put(checkpoint: Checkpoint, key: str, status: Status | None) -> None:
    """Bring a lead into `status` through the public API: claim, then record that result."""
    if status is None:
        return
    run_id = checkpoint.start_run("setup", "fp", "fp")
    checkpoint.claim_now([Claim(key, "+14155550100", f"ref-{key}")], run_id)
    results = {
        PENDING: Result(key, PENDING, 0, error="stopped before sending"),
        PLACED: Result(key, PLACED, 1, call_id=f"call-{key}", http_status=200),
        FAILED: Result(key, FAILED, 1, error="refused (400)", http_status=400),
        UNKNOWN: Result(key, UNKNOWN, 1, error="no answer, the call may have been placed"),
    }
    if status is not IN_FLIGHT:
        checkpoint.record_now([results[status]])


def _rows(checkpoint: Checkpoint) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in checkpoint.states().iter_rows(named=True)}


def test_put_reaches_every_status(checkpoint: Checkpoint) -> None:
    """The setup helper really leaves each lead in the status asked for (or absent)."""
    for status in LEAD_STATES:
        _put(checkpoint, _name(status), status)

    assert {key: row["status"] for key, row in _rows(checkpoint).items()} == {
        _name(s): _name(s) for s in LEAD_STATES if s is not None
    }


@pytest.mark.parametrize("claimable", list(CLAIMABLE), ids=lambda c: "+".join(c) or "default")
@pytest.mark.parametrize("status", LEAD_STATES, ids=_name)
def test_claim(checkpoint: Checkpoint, status: Status | None, claimable: tuple[Status, ...]) -> None:
    """A claim from an allowed status makes the lead in_flight; others raise ClaimRefused, row untouched."""
    _put(checkpoint, "lead", status)
    before = _rows(checkpoint)
    run_id = checkpoint.start_run("test", "fp", "fp")
    claim = Claim("lead", "+14155550100", "ref-lead")

    if status in CLAIMABLE[claimable]:
        checkpoint.claim_now([claim], run_id, claimable)
        row = _rows(checkpoint)["lead"]
        assert (row["status"], row["error"], row["http_status"]) == ("in_flight", None, None)
    else:
        with pytest.raises(ClaimRefused, match=f"is {status}"):
            checkpoint.claim_now([claim], run_id, claimable)
        assert _rows(checkpoint) == before


@pytest.mark.parametrize("of_calls", [0, 1, 2])
@pytest.mark.parametrize("status", LEAD_STATES, ids=_name)
def test_recycle_claim(checkpoint: Checkpoint, status: Status | None, of_calls: int) -> None:
    """A recycle claim succeeds only on a placed lead with exactly the calls it was decided on (one here)."""
    _put(checkpoint, "lead", status)
    before = _rows(checkpoint)
    run_id = checkpoint.start_run("test", "fp", "fp")
    claim = Claim("lead", "+14155550100", "ref-lead", recycle_of_calls=of_calls)

    if status is PLACED and of_calls == 1:
        checkpoint.claim_now([claim], run_id)
        row = _rows(checkpoint)["lead"]
        assert (row["status"], row["calls"], row["call_id"]) == ("in_flight", 1, "call-lead")
    else:
        with pytest.raises(ClaimRefused):
            checkpoint.claim_now([claim], run_id)
        assert _rows(checkpoint) == before


def test_released_recycle_is_placed_as_before(checkpoint: Checkpoint) -> None:
    """A recycle that never left is released: placed again, its callId and call count as they were."""
    _put(checkpoint, "lead", PLACED)
    run_id = checkpoint.start_run("test", "fp", "fp")
    checkpoint.claim_now([Claim("lead", "+14155550100", "ref-lead", recycle_of_calls=1)], run_id)

    checkpoint.record_now([Result("lead", PLACED, 0, released=True)])

    row = _rows(checkpoint)["lead"]
    assert (row["status"], row["call_id"], row["calls"], row["attempts"]) == ("placed", "call-lead", 1, 1)


@pytest.mark.parametrize("result", list(Status), ids=str)
@pytest.mark.parametrize("status", [None, PENDING, PLACED, FAILED, UNKNOWN], ids=_name)
def test_result_on_a_lead_not_in_flight_is_refused(
    checkpoint: Checkpoint, status: Status | None, result: Status
) -> None:
    """Recording any result on a lead that is not in_flight raises IllegalMove and changes nothing."""
    _put(checkpoint, "lead", status)
    before = _rows(checkpoint)

    with pytest.raises(IllegalMove) as refused:
        checkpoint.record_now([Result("lead", result, 1, call_id="call-late", error="late")])

    assert not isinstance(refused.value, ClaimRefused)
    assert _rows(checkpoint) == before


@pytest.mark.parametrize(
    ("result", "calls"),
    [(PLACED, 1), (UNKNOWN, 1), (FAILED, 0), (PENDING, 0)],
    ids=["placed", "unknown", "failed", "pending"],
)
def test_result_on_a_lead_in_flight_is_recorded(checkpoint: Checkpoint, result: Status, calls: int) -> None:
    """Each legal outcome of an in_flight lead is recorded; placed and unknown (may have rung) add a call."""
    _put(checkpoint, "lead", IN_FLIGHT)

    checkpoint.record_now([Result("lead", result, 1, call_id="call-1", error="why", http_status=299)])

    row = _rows(checkpoint)["lead"]
    assert (
        row["status"],
        row["call_id"],
        row["error"],
        row["http_status"],
        row["attempts"],
        row["calls"],
    ) == (
        result.value,
        "call-1",
        "why",
        299,
        1,
        calls,
    )


def test_in_flight_cannot_be_recorded_in_flight_again(checkpoint: Checkpoint) -> None:
    """in_flight -> in_flight is not an outcome: refused, row untouched."""
    _put(checkpoint, "lead", IN_FLIGHT)
    before = _rows(checkpoint)

    with pytest.raises(IllegalMove):
        checkpoint.record_now([Result("lead", IN_FLIGHT, 1)])

    assert _rows(checkpoint) == before


def test_recover_interrupted_turns_only_in_flight_into_unknown(checkpoint: Checkpoint) -> None:
    """After a crash, in_flight leads become unknown and count one more call; no other row changes."""
    for status in LEAD_STATES:
        _put(checkpoint, _name(status), status)
    _put(checkpoint, "in_flight_too", IN_FLIGHT)
    before = _rows(checkpoint)

    assert checkpoint.recover_interrupted("the previous run died") == 2

    after = _rows(checkpoint)
    for key in ("in_flight", "in_flight_too"):
        expected = {
            **before[key],
            "status": "unknown",
            "error": "the previous run died",
            "calls": before[key]["calls"] + 1,
            "updated_at": after[key]["updated_at"],
        }
        assert after[key] == expected
    untouched = {key for key in before if key not in {"in_flight", "in_flight_too"}}
    assert {key: after[key] for key in untouched} == {key: before[key] for key in untouched}
    assert checkpoint.recover_interrupted("again") == 0
    assert _rows(checkpoint) == after


def test_checkpoint_refuses_an_illegal_claim_source_before_writing(checkpoint: Checkpoint) -> None:
    """Asking to claim from placed fails with IllegalMove (not ClaimRefused) in claim_now and writer()."""
    _put(checkpoint, "lead", PLACED)
    before = _rows(checkpoint)
    run_id = checkpoint.start_run("test", "fp", "fp")

    with pytest.raises(IllegalMove) as refused:
        checkpoint.claim_now([Claim("lead", "+14155550100", None)], run_id, [PLACED])
    assert not isinstance(refused.value, ClaimRefused)

    async def open_writer() -> None:
        checkpoint.writer(asyncio.get_running_loop(), run_id, [PLACED])

    with pytest.raises(IllegalMove):
        asyncio.run(open_writer())
    assert _rows(checkpoint) == before
