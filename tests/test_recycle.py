"""Calling leads again ([recycle]) against the real local server, every ring checked in its ledger.

A lead is called again only on a received outcome that `statuses` names (or none at all for
`silent_after`), `after` its last call, while it has had fewer than `max_calls` calls; never
from `unknown`, never on the do-not-call list, never twice for one decision.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from conftest import KyzoServer
from helpers import (
    OUTCOMES_ENV,
    OUTCOMES_TOKEN,
    Collector,
    free_port,
    lead_rows,
    read_results,
    run_cli,
    settings_for,
    stored_payloads,
    wait_until,
    write_leads,
    write_outcomes_config,
)

from dialer import logs
from dialer.campaign import RunOptions, run_campaign
from dialer.checkpoint import Checkpoint
from dialer.lead_state import ClaimRefused, Status
from dialer.lead_writes import Claim, Result
from dialer.mock_outcomes import OutcomeSettings
from dialer.status import campaign_status

RECYCLED = ["no-answer", "busy", "voicemail"]


def _run(config: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return run_cli(["run", str(config), *args], env={**OUTCOMES_ENV, **(env or {})})


def _collecting_run(config: Path, wait: str = "10s") -> Any:
    return _run(config, "--collect", "--wait-outcomes", wait)


def _status(config: Path) -> dict[str, Any]:
    result = run_cli(["status", str(config), "--json"], env=OUTCOMES_ENV)
    assert result.exit_code == 0, result.stdout + result.stderr
    outcomes: dict[str, Any] = json.loads(result.stdout)["outcomes"]
    return outcomes


def _due_now(config: Path, count: int, timeout: float = 10) -> None:
    """Poll `dialer status` until exactly `count` leads are due to be called again."""
    wait_until(lambda: _status(config)["recycle"]["due_now"] == count, timeout, f"{count} leads due", 0.1)


def _rings(server: KyzoServer) -> Counter[str]:
    return Counter(call["phoneNumber"] for call in server.calls())


def _outcomes(calls: list[dict[str, Any]]) -> dict[str, str | None]:
    """Phone -> the outcome the server drew for its call (None: never posted)."""
    return {call["phoneNumber"]: call["outcome"] for call in calls}


def _placed_at(checkpoint: Path) -> list[datetime]:
    db = sqlite3.connect(f"{checkpoint.resolve().as_uri()}?mode=ro", uri=True)
    try:
        stamps = [row[0] for row in db.execute("SELECT placed_at FROM calls ORDER BY id")]
    finally:
        db.close()
    return [datetime.fromisoformat(stamp) for stamp in stamps]


def test_recycle_calls_again_exactly_the_named_outcomes_after_the_delay_up_to_max_calls(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """Only named outcomes are called again, only once `after` has passed, never past max_calls."""
    weights = {"completed": 1, "no-answer": 1, "busy": 1, "voicemail": 1}
    server = start_server(outcomes=OutcomeSettings(call_seconds=0.2, weights=weights), seed=11)
    leads = write_leads(tmp_path / "leads.csv", lead_rows(16, seed=4))
    # `after` leaves a busy machine time to check that nothing is due before it passes
    recycle = {"statuses": ["No Answer", "busy", "VOICEMAIL"], "after": "5s", "max_calls": 2}
    port = free_port()
    config = write_outcomes_config(tmp_path, server.base_url, leads, port, recycle=recycle)

    with Collector(config, port):  # outcomes come in beside the runs, as from a service
        first = _run(config)
        # 0 when it ends before any outcome is in (none due yet), 4 when one came in time
        assert first.exit_code in (0, 4), first.stdout + first.stderr
        calls = server.calls()
        assert len(calls) == 16
        wait_until(lambda: _status(config)["awaiting"] == 0, 10, "every outcome", 0.1)
        again = {phone for phone, outcome in _outcomes(calls).items() if outcome in RECYCLED}
        assert 0 < len(again) < 16

        right_away = _run(config)
        assert time.time() < min(c["ts"] for c in calls) + 5, "too slow to check before `after` passed"
        assert right_away.exit_code == 4, right_away.stdout
        assert f"recycling: {len(again)} leads to call again" in right_away.stdout
        assert len(server.calls()) == 16

        _due_now(config, len(again))
        third = _run(config)
        assert third.exit_code == 0, third.stdout + third.stderr
        redials = server.calls()[16:]
        assert sorted(c["phoneNumber"] for c in redials) == sorted(again)
        first_ring = {c["phoneNumber"]: c["ts"] for c in calls}
        assert all(c["ts"] >= first_ring[c["phoneNumber"]] + 5 for c in redials)
        wait_until(lambda: _status(config)["awaiting"] == 0, 10, "the second outcomes", 0.1)

    time.sleep(max(0.0, max(c["ts"] for c in redials) + 6.0 - time.time()))  # `after` again, with room
    fourth = _run(config)
    assert fourth.exit_code == 0, fourth.stdout
    assert "recycling" not in fourth.stdout
    rings = _rings(server)
    assert max(rings.values()) == 2
    assert {phone for phone, n in rings.items() if n == 2} == again
    exhausted = sum(1 for c in redials if c["outcome"] in RECYCLED)
    assert _status(config)["recycle"] == {
        "due_now": 0,
        "due_later": 0,
        "exhausted": exhausted,
        "next_due": None,
    }
    results = read_results(tmp_path / "results.csv")
    second = {c["callId"]: c["outcome"] for c in redials}
    for row in results.iter_rows(named=True):
        assert row["dialer_calls"] == ("2" if row["phone"] in again else "1")
        if row["phone"] in again:  # the results show the latest call and its outcome
            assert row["outcome_status"] == second[row["dialer_call_id"]]


def test_a_lead_without_an_outcome_is_never_called_again(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """A call whose outcome never comes (no silent_after) is never followed by another to that lead."""
    settings = OutcomeSettings(call_seconds=0.2, weights={"no-answer": 1}, silent_rate=0.5)
    server = start_server(outcomes=settings, seed=5)
    leads = write_leads(tmp_path / "leads.csv", lead_rows(12, seed=6))
    recycle = {"statuses": ["no-answer"], "after": "1s", "max_calls": 3}
    config = write_outcomes_config(tmp_path, server.base_url, leads, free_port(), recycle=recycle)

    assert _collecting_run(config, "1s").exit_code == 4
    first = _outcomes(server.calls())
    silent = {phone for phone, outcome in first.items() if outcome is None}
    heard = set(first) - silent
    assert silent and heard
    status = _status(config)
    assert (status["awaiting"], status["statuses"], status["no_outcome"]) == (
        len(silent),
        {"no-answer": len(heard)},
        0,
    )

    _due_now(config, len(heard))
    assert _collecting_run(config, "1s").exit_code in (0, 4)
    second = _outcomes(server.calls()[12:])
    assert set(second) == heard
    heard_twice = {phone for phone, outcome in second.items() if outcome is not None}

    _due_now(config, len(heard_twice))
    assert _collecting_run(config, "1s").exit_code == 0
    rings = _rings(server)
    assert {phone for phone, n in rings.items() if n == 1} == silent
    assert {phone for phone, n in rings.items() if n == 2} == heard - heard_twice
    assert {phone for phone, n in rings.items() if n == 3} == heard_twice
    latest = {c["phoneNumber"]: c["outcome"] for c in server.calls()}  # each lead's last call
    assert _status(config)["awaiting"] == sum(outcome is None for outcome in latest.values())


def test_silent_after_calls_a_lead_without_outcome_again_only_once_it_has_passed(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """A lead without outcome counts as no-outcome, and is called again, only silent_after its call."""
    settings = OutcomeSettings(call_seconds=0.2, weights={"completed": 1}, silent_rate=0.5)
    server = start_server(outcomes=settings, seed=8)
    leads = write_leads(tmp_path / "leads.csv", lead_rows(10, seed=8))
    recycle = {"statuses": ["no-outcome"], "after": "1s", "silent_after": "2s", "max_calls": 2}
    config = write_outcomes_config(tmp_path, server.base_url, leads, free_port(), recycle=recycle)

    assert _collecting_run(config, "1s").exit_code == 4
    calls = server.calls()
    silent = {phone for phone, outcome in _outcomes(calls).items() if outcome is None}
    assert 0 < len(silent) < 10
    logs.configure("json")  # in-process from here: the CLI runner's stderr is closed
    settings_ = settings_for(config, OUTCOMES_ENV)
    last_call = max(_placed_at(tmp_path / "checkpoint.db"))

    # past `after`, before `silent_after`: read at a fixed moment, so however slow the machine
    between = last_call + timedelta(seconds=1.9)
    outcomes = campaign_status(settings_, clock=lambda: between).outcomes
    assert outcomes is not None and outcomes.recycle is not None
    assert (outcomes.awaiting, outcomes.no_outcome, outcomes.statuses) == (
        len(silent),
        0,
        {"completed": 10 - len(silent)},
    )
    assert (outcomes.recycle.due_now, outcomes.recycle.due_later) == (0, len(silent))
    summary = run_campaign(settings_, RunOptions(clock=lambda: between))
    assert summary.exit_code == 4
    assert summary.report.sent == 0
    assert len(server.calls()) == 10

    _due_now(config, len(silent))
    status = _status(config)
    assert (status["no_outcome"], status["awaiting"]) == (len(silent), 0)
    assert _run(config).exit_code == 0
    redials = server.calls()[10:]
    assert sorted(c["phoneNumber"] for c in redials) == sorted(silent)
    first_ring = {c["phoneNumber"]: c["ts"] for c in calls}
    assert all(c["ts"] >= first_ring[c["phoneNumber"]] + 2 for c in redials)


def test_an_unknown_lead_is_never_called_again_even_with_an_outcome(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """An unknown lead is never recycled, even once its outcome arrives by referenceId."""
    settings = OutcomeSettings(call_seconds=0.2, weights={"no-answer": 1}, backoff_s=0.2, backoff_max_s=0.5)
    server = start_server(outcomes=settings, drop_rate=1.0)
    leads = write_leads(tmp_path / "leads.csv", lead_rows(4, seed=9))
    port = free_port()
    recycle = {"statuses": ["no-answer"], "after": "1s", "max_calls": 3}
    config = write_outcomes_config(tmp_path, server.base_url, leads, port, recycle=recycle)

    assert _run(config).exit_code == 1
    assert len(server.calls()) == 4
    with Collector(config, port):
        wait_until(lambda: len(stored_payloads(tmp_path / "checkpoint.db")) == 4, 15, "4 outcomes")
    # `after`, counted from the checkpoint's commit, which lands a little after the server's stamp
    time.sleep(max(0.0, max(c["ts"] for c in server.calls()) + 2.0 - time.time()))

    status = _status(config)
    assert status["statuses"] == {"no-answer": 4}
    assert status["recycle"] == {"due_now": 0, "due_later": 0, "exhausted": 0, "next_due": None}
    assert _collecting_run(config, "1s").exit_code == 1
    assert len(server.calls()) == 4
    results = read_results(tmp_path / "results.csv")
    assert set(results["dialer_status"]) == {"unknown"}
    assert set(results["outcome_status"]) == {"no-answer"}


def test_recycling_obeys_the_do_not_call_list_as_it_is_now(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """A lead put on the do-not-call list after its call is not called again; the others due are."""
    server = start_server(outcomes=OutcomeSettings(call_seconds=0.2, weights={"no-answer": 1}))
    rows = lead_rows(6, seed=12)
    leads = write_leads(tmp_path / "leads.csv", rows)
    port = free_port()
    recycle = {"statuses": ["no-answer"], "after": "1s", "max_calls": 2}
    config = write_outcomes_config(tmp_path, server.base_url, leads, port, recycle=recycle)
    assert _collecting_run(config).exit_code == 4
    assert len(server.calls()) == 6

    blocked = {rows[1]["phone"], rows[4]["phone"]}
    dnc = tmp_path / "do_not_call.txt"
    dnc.write_text("phone\n" + "\n".join(sorted(blocked)) + "\n")
    config = write_outcomes_config(
        tmp_path, server.base_url, leads, port, recycle=recycle, leads_table={"do_not_call": str(dnc)}
    )
    # `after`, counted from the checkpoint's commit, which lands a little after the server's stamp
    time.sleep(max(0.0, max(c["ts"] for c in server.calls()) + 2.0 - time.time()))
    assert _collecting_run(config).exit_code == 0  # the listed leads are not left due

    redialed = {c["phoneNumber"] for c in server.calls()[6:]}
    assert redialed == {row["phone"] for row in rows} - blocked
    assert len(server.calls()) == 10
    results = read_results(tmp_path / "results.csv")
    listed = results.filter(pl.col("phone").is_in(sorted(blocked)))
    assert set(listed["dialer_status"]) == {"placed"}
    assert set(listed["dialer_calls"]) == {"1"}
    assert set(listed["outcome_status"]) == {"no-answer"}


def test_checkpoint_refuses_a_recycle_claim_made_on_a_stale_call_count(tmp_path: Path) -> None:
    """A recycle claim on a call count that no longer holds is refused (ClaimRefused), nothing changed."""
    path = tmp_path / "checkpoint.db"
    one, two = Checkpoint.open(path), Checkpoint.open(path)  # two runs on one checkpoint
    try:
        run = one.start_run("dialer run", "config", "input")
        one.claim_now([Claim("a", "+14155550101", "A"), Claim("u", "+14155550102", "U")], run)
        one.record_now([Result("a", Status.PLACED, 1, "call-1"), Result("u", Status.UNKNOWN, 1)])

        def lead(key: str) -> tuple[str, int]:
            row = one.states().filter(pl.col("key") == key).row(0, named=True)
            return row["status"], row["calls"]

        assert lead("a") == ("placed", 1)
        with pytest.raises(ClaimRefused):
            one.claim_now([Claim("a", "+14155550101", "A", recycle_of_calls=0)], run)
        with pytest.raises(ClaimRefused):
            one.claim_now([Claim("u", "+14155550102", "U", recycle_of_calls=1)], run)
        with pytest.raises(ClaimRefused):
            one.claim_now([Claim("never", "+14155550103", "N", recycle_of_calls=0)], run)
        assert (lead("a"), lead("u")) == (("placed", 1), ("unknown", 1))

        # both runs saw one call and decided to call again: the first claim wins, the second is refused
        one.claim_now([Claim("a", "+14155550101", "A", recycle_of_calls=1)], run)
        with pytest.raises(ClaimRefused, match="in_flight after 1 calls"):
            two.claim_now([Claim("a", "+14155550101", "A", recycle_of_calls=1)], run)
        one.record_now([Result("a", Status.PLACED, 1, "call-2")])
        assert lead("a") == ("placed", 2)
        # and once called again, the decision made on one call is stale
        with pytest.raises(ClaimRefused, match="placed after 2 calls"):
            two.claim_now([Claim("a", "+14155550101", "A", recycle_of_calls=1)], run)
        assert lead("a") == ("placed", 2)
        assert one.calls()["call_id"].to_list() == ["call-1", None, "call-2"]
    finally:
        one.close()
        two.close()


def test_a_do_not_call_lead_due_again_does_not_keep_the_campaign_unfinished(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """Due leads that are all on the do-not-call list leave nothing to do: the run exits 0."""
    server = start_server(outcomes=OutcomeSettings(call_seconds=0.2, weights={"no-answer": 1}))
    rows = lead_rows(3, seed=13)
    leads = write_leads(tmp_path / "leads.csv", rows)
    port = free_port()
    recycle = {"statuses": ["no-answer"], "after": "1s", "max_calls": 2}
    config = write_outcomes_config(tmp_path, server.base_url, leads, port, recycle=recycle)
    assert _collecting_run(config).exit_code == 4
    dnc = tmp_path / "do_not_call.txt"
    dnc.write_text("\n".join(row["phone"] for row in rows) + "\n")
    config = write_outcomes_config(
        tmp_path, server.base_url, leads, port, recycle=recycle, leads_table={"do_not_call": str(dnc)}
    )
    logs.configure("json")
    later = datetime.now(UTC) + timedelta(seconds=5)  # `after` has passed for every lead

    summary = run_campaign(settings_for(config, OUTCOMES_ENV), RunOptions(clock=lambda: later))

    assert summary.report.sent == 0
    assert len(server.calls()) == 3
    assert summary.next_recycle is None
    assert summary.exit_code == 0


def test_an_outcome_matched_by_reference_is_not_taken_for_a_later_call(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """A referenceId-only match from before a lead's second call is not that call's outcome."""
    settings = OutcomeSettings(call_seconds=0.2, weights={"no-answer": 1}, backoff_s=0.2, backoff_max_s=0.5)
    dropping = start_server(outcomes=settings, drop_rate=1.0)  # placed, answer lost: unknown
    quiet = start_server()  # places the second calls and never posts their outcome
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3, seed=14))
    port = free_port()
    recycle = {"statuses": ["no-answer"], "after": "1s", "max_calls": 3}
    config = write_outcomes_config(tmp_path, dropping.base_url, leads, port, recycle=recycle)
    assert _run(config).exit_code == 1
    with Collector(config, port):  # the first calls' outcomes: callIds the dialer never got
        wait_until(lambda: len(stored_payloads(tmp_path / "checkpoint.db")) == 3, 15, "3 outcomes")
    redial = _run(config, "--redial-unknown", "--yes", env={"KYZO_BASE_URL": quiet.base_url})
    assert redial.exit_code in (0, 4)
    assert len(quiet.calls()) == 3
    logs.configure("json")  # in-process from here: the CLI runner's stderr is closed
    later = datetime.now(UTC) + timedelta(seconds=5)  # `after` has passed for the second calls

    settings_ = settings_for(config, {**OUTCOMES_ENV, "KYZO_BASE_URL": quiet.base_url})
    summary = run_campaign(settings_, RunOptions(clock=lambda: later))

    assert len(quiet.calls()) == 3, "rung a third time with no outcome for the second call"
    assert summary.report.sent == 0
    assert _status(config)["awaiting"] == 3


class _OutcomeBeforeRecord(httpx.AsyncBaseTransport):
    """The real transport to the local server; once the server has placed the call and before the
    dialer has read the answer, the call's outcome is posted to the receiver (a fast outcome)."""

    def __init__(self, port: int) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._port = port

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        body = json.loads(await request.aread())
        payload = {"referenceId": body["referenceId"], "status": "completed"}
        url = f"http://127.0.0.1:{self._port}/kyzo/outcomes"
        async with httpx.AsyncClient(trust_env=False) as client:
            answer = await client.post(
                url, json=payload, headers={"Authorization": f"Bearer {OUTCOMES_TOKEN}"}
            )
        assert answer.status_code == 200
        await asyncio.sleep(0.01)  # the dialer reads the answer and commits it a moment later
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def test_an_outcome_received_while_its_call_is_in_flight_is_that_calls(
    kyzo: KyzoServer, tmp_path: Path
) -> None:
    """An outcome (referenceId only) that arrives before the dialer has recorded its call is that call's."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(1, seed=15))
    port = free_port()
    recycle = {"statuses": ["no-outcome"], "after": "1s", "silent_after": "1s", "max_calls": 2}
    outcomes = {"call_id": "platform.call_id"}  # a platform that does not echo the dialer's callId
    config = write_outcomes_config(tmp_path, kyzo.base_url, leads, port, outcomes=outcomes, recycle=recycle)
    logs.configure("json")
    settings = settings_for(config, OUTCOMES_ENV)

    with Collector(config, port):
        summary = run_campaign(settings, RunOptions(), transport=_OutcomeBeforeRecord(port))
    assert summary.report.sent == len(kyzo.calls()) == 1
    later = datetime.now(UTC) + timedelta(seconds=5)  # past `after` and `silent_after`

    again = run_campaign(settings, RunOptions(clock=lambda: later))

    assert len(kyzo.calls()) == 1, "called again as no-outcome although its outcome was received"
    assert again.report.sent == 0
    outcomes_now = campaign_status(settings, clock=lambda: later).outcomes
    assert outcomes_now is not None
    assert (outcomes_now.unmatched, outcomes_now.statuses) == (0, {"completed": 1})
