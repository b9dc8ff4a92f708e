"""Call outcomes through the real receiver over HTTP: `dialer collect` as a process, `run --collect`.

What a webhook sender gets told (401, 413, 400, 200) and what the checkpoint keeps because of it;
how payloads merge into the results file; that the bearer token is never written anywhere.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from conftest import KyzoServer
from helpers import (
    API_KEY,
    OUTCOMES_ENV,
    OUTCOMES_TOKEN,
    Collector,
    free_port,
    lead_rows,
    post_outcome,
    read_results,
    run_cli,
    settings_for,
    stored_payloads,
    wait_until,
    write_leads,
    write_outcomes_config,
)

from dialer.checkpoint import Checkpoint
from dialer.lead_writes import Claim
from dialer.leads import KEY, PHONE
from dialer.mock_outcomes import OutcomeSettings
from dialer.outcomes import key_paths
from dialer.receiver import MAX_BODY_BYTES
from dialer.selection import load_table


@dataclass
class Placed:
    """A campaign whose leads were all called once (the server posts no outcomes itself)."""

    folder: Path
    config: Path
    base_url: str
    port: int
    calls: list[dict[str, Any]]  # the server's ledger, in the order the calls were placed
    leads: Path

    def call(self, index: int) -> dict[str, Any]:
        """The ledger entry of lead `index` (crm_id CRM-00000i)."""
        return next(c for c in self.calls if c["referenceId"] == f"CRM-{index:06d}")

    def rewrite(self, **outcomes: Any) -> None:
        """The same campaign with other [outcomes] keys (paths, fields)."""
        write_outcomes_config(self.folder, self.base_url, self.leads, self.port, outcomes=outcomes)

    def results(self) -> pl.DataFrame:
        return read_results(self.folder / "results.csv")

    def row(self, index: int) -> dict[str, Any]:
        return self.results().filter(pl.col("crm_id") == f"CRM-{index:06d}").to_dicts()[0]


def _export(config: Path) -> None:
    result = run_cli(["export", str(config)], env=OUTCOMES_ENV)
    assert result.exit_code == 0, result.stdout + result.stderr


def _status(config: Path) -> dict[str, Any]:
    result = run_cli(["status", str(config), "--json"], env=OUTCOMES_ENV)
    assert result.exit_code == 0, result.stdout + result.stderr
    outcomes: dict[str, Any] = json.loads(result.stdout)["outcomes"]
    return outcomes


@pytest.fixture
def placed(kyzo: KyzoServer, tmp_path: Path) -> Placed:
    leads = write_leads(tmp_path / "leads.csv", lead_rows(4))
    port = free_port()
    config = write_outcomes_config(tmp_path, kyzo.base_url, leads, port)
    result = run_cli(["run", str(config)], env=OUTCOMES_ENV)
    assert result.exit_code == 0, result.stdout + result.stderr
    calls = kyzo.calls()
    assert len(calls) == 4
    return Placed(tmp_path, config, kyzo.base_url, port, calls, leads)


@pytest.fixture
def collector(placed: Placed) -> Iterator[Collector]:
    with Collector(placed.config, placed.port) as running:
        yield running


def test_refused_posts_store_nothing(placed: Placed) -> None:
    """401 (bad token), 413 (over 1 MiB), 400 (not a JSON object) store nothing; 1 MiB exactly is stored."""
    call_id = placed.call(0)["callId"]
    good = {"callId": call_id, "status": "completed"}
    checkpoint = placed.folder / "checkpoint.db"
    oversized = json.dumps({"callId": call_id, "pad": "x" * MAX_BODY_BYTES}).encode()

    def streamed() -> Iterator[bytes]:  # chunked: no Content-Length to refuse it by
        yield oversized[:1000]
        yield oversized[1000:]

    url = f"http://127.0.0.1:{placed.port}/kyzo/outcomes"
    bearer = {"Authorization": f"Bearer {OUTCOMES_TOKEN}"}
    http = httpx.Client(trust_env=False, timeout=10)
    with http, Collector(placed.config, placed.port) as collect:
        answers = {
            "no token": post_outcome(placed.port, good, token=None).status_code,
            "wrong token": post_outcome(placed.port, good, token=OUTCOMES_TOKEN[:-1] + "0").status_code,
            "token with a suffix": post_outcome(placed.port, good, token=OUTCOMES_TOKEN + "x").status_code,
            "no Bearer": http.post(url, json=good, headers={"Authorization": OUTCOMES_TOKEN}).status_code,
            "declared over 1 MiB": post_outcome(placed.port, content=oversized).status_code,
            "streamed over 1 MiB": http.post(url, content=streamed(), headers=bearer).status_code,
            "not JSON": post_outcome(placed.port, content=b"callId=1&status=done").status_code,
            "empty body": post_outcome(placed.port, content=b"").status_code,
            "not UTF-8": post_outcome(placed.port, content=b'{"callId": "\xff\xfe"}').status_code,
            "JSON array": post_outcome(placed.port, [good]).status_code,
            "JSON string": post_outcome(placed.port, "completed").status_code,
            "JSON null": post_outcome(placed.port, None).status_code,
            "nested too deep": post_outcome(placed.port, content=b"[" * 100_000).status_code,
            "other path": http.post(url + "x", json=good, headers=bearer).status_code,
            "GET": http.get(url, headers=bearer).status_code,
        }
        assert answers == {
            "no token": 401,
            "wrong token": 401,
            "token with a suffix": 401,
            "no Bearer": 401,
            "declared over 1 MiB": 413,
            "streamed over 1 MiB": 413,
            "not JSON": 400,
            "empty body": 400,
            "not UTF-8": 400,
            "JSON array": 400,
            "JSON string": 400,
            "JSON null": 400,
            "nested too deep": 400,
            "other path": 404,
            "GET": 405,
        }
        assert stored_payloads(checkpoint) == []
        assert _status(placed.config)["unmatched"] == 0
        assert http.get(f"http://127.0.0.1:{placed.port}/healthz").json() == {"ok": True, "stored": 0}

        # the boundary, and proof the receiver was storing all along: 1 MiB exactly is taken
        exact = {"callId": call_id, "status": "completed", "pad": ""}
        exact["pad"] = "x" * (MAX_BODY_BYTES - len(json.dumps(exact).encode()))
        assert len(json.dumps(exact).encode()) == MAX_BODY_BYTES
        assert post_outcome(placed.port, exact).status_code == 200
        assert len(stored_payloads(checkpoint)) == 1
    refusals = [line for line in collect.logs() if line["event"] == "outcome_refused"]
    assert sorted(line["http_status"] for line in refusals) == [400] * 7 + [401] * 4 + [413] * 2


def test_duplicates_are_stored_once_and_two_phases_merge(placed: Placed, collector: Collector) -> None:
    """A resent payload is stored once; two phases merge either way: latest status, earlier fields kept."""
    a, b, c = (placed.call(i) for i in range(3))
    checkpoint = placed.folder / "checkpoint.db"
    sends: list[tuple[dict[str, Any] | bytes, int]] = [
        # lead 0: ended, then analyzed
        ({"event": "call.ended", "callId": a["callId"], "status": "in_progress", "duration": 48}, 1),
        (
            {
                "event": "call.analyzed",
                "callId": a["callId"],
                "status": "Completed",
                "duration": 48,
                "analysis": {"sentiment": "positive"},
                "extracted": {"budget": 420000},
            },
            2,
        ),
        # lead 1: analyzed, then ended (later payload lacks the analysis and the budget)
        (
            {
                "event": "call.analyzed",
                "callId": b["callId"],
                "status": "completed",
                "duration": 30,
                "analysis": {"sentiment": "negative"},
                "extracted": {"budget": 1000},
            },
            3,
        ),
        ({"event": "call.ended", "callId": b["callId"], "status": "Hung Up", "duration": 31}, 4),
        # lead 2: the same payload three times
        ({"event": "call.ended", "callId": c["callId"], "status": "no_answer", "duration": 0}, 5),
        ({"event": "call.ended", "callId": c["callId"], "status": "no_answer", "duration": 0}, 5),
        (
            f'{{ "duration" : 0,\n "status": "no_answer", "callId": "{c["callId"]}", '
            '"event":"call.ended" }'.encode(),
            5,
        ),
    ]
    for body, stored in sends:
        if isinstance(body, bytes):
            response = post_outcome(placed.port, content=body)
        else:
            response = post_outcome(placed.port, body)
        assert response.status_code == 200, response.text
        # answered 200 only once committed: the checkpoint holds it at that moment
        assert len(stored_payloads(checkpoint)) == stored

    _export(placed.config)

    results = placed.results()
    assert results.columns[-7:] == [
        "dialer_updated_at",
        "dialer_calls",
        "outcome_status",
        "outcome_received_at",
        "outcome_duration_s",
        "outcome_sentiment",
        "outcome_budget",
    ]
    columns = ["outcome_status", "outcome_duration_s", "outcome_sentiment", "outcome_budget", "dialer_calls"]
    assert [{k: placed.row(i)[k] for k in columns} for i in range(4)] == [
        {
            "outcome_status": "completed",
            "outcome_duration_s": "48",
            "outcome_sentiment": "positive",
            "outcome_budget": "420000",
            "dialer_calls": "1",
        },
        {
            "outcome_status": "hung-up",
            "outcome_duration_s": "31",
            "outcome_sentiment": "negative",
            "outcome_budget": "1000",
            "dialer_calls": "1",
        },
        {
            "outcome_status": "no-answer",
            "outcome_duration_s": "0",
            "outcome_sentiment": None,
            "outcome_budget": None,
            "dialer_calls": "1",
        },
        {
            "outcome_status": None,
            "outcome_duration_s": None,
            "outcome_sentiment": None,
            "outcome_budget": None,
            "dialer_calls": "1",
        },
    ]
    assert all(placed.row(i)["outcome_received_at"] for i in range(3))
    assert placed.row(3)["outcome_received_at"] is None
    status = _status(placed.config)
    assert status["statuses"] == {"completed": 1, "hung-up": 1, "no-answer": 1}
    assert (status["awaiting"], status["unmatched"]) == (1, 0)


def test_unmatched_payload_is_kept_and_counted_and_logged_by_its_keys_only(placed: Placed) -> None:
    """A payload naming no call: 200, kept, counted unmatched; its debug line shows its keys, no value."""
    personal = ("Zebediah Quuxworth", "zq.private@example.org", "wants a callback on Tuesday", "REF-NOPE-77")
    stray = {
        "callId": "call-from-another-campaign",
        "referenceId": personal[3],
        "status": "completed",
        "customer": {"name": personal[0], "email": personal[1]},
        "notes": [{"text": personal[2]}],
    }
    matched = {"callId": placed.call(0)["callId"], "status": "voicemail"}
    with Collector(placed.config, placed.port, log_level="debug") as collect:
        assert post_outcome(placed.port, stray).status_code == 200
        assert post_outcome(placed.port, matched).status_code == 200
        assert len(stored_payloads(placed.folder / "checkpoint.db")) == 2
        status = _status(placed.config)
    assert (status["unmatched"], status["statuses"], status["awaiting"]) == (1, {"voicemail": 1}, 3)

    lines = collect.logs()
    [unmatched] = [line for line in lines if line["event"] == "outcome_unmatched"]
    assert unmatched["keys"] == sorted(
        ["callId", "referenceId", "status", "customer.name", "customer.email", "notes.0.text"]
    )
    [received] = [line for line in lines if line["event"] == "outcome_received"]
    assert received["call_id"] == placed.call(0)["callId"]
    text = "\n".join(collect.stderr + collect.stdout)
    leaked = [value for value in (*personal, "completed", "voicemail") if value in text]
    assert leaked == []


def test_another_platforms_shape_is_read_through_configured_paths_and_re_read_on_export(
    placed: Placed,
) -> None:
    """Another platform's shape is read through configured paths; a corrected path re-derives on export."""
    a, b = placed.call(0), placed.call(1)

    def retell(event: str, call_id: str, reference: str, **call: Any) -> dict[str, Any]:
        return {
            "event": event,
            "call": {"call_id": call_id, "metadata": {"crm_id": reference}, "duration_ms": 48200, **call},
        }

    analysis = {"user_sentiment": "Positive", "call_successful": True, "in_voicemail": False}
    payloads = [
        retell("call_ended", a["callId"], a["referenceId"], call_status="ended"),
        retell("call_analyzed", a["callId"], a["referenceId"], call_status="ended", call_analysis=analysis),
        # Retell's own id, which this campaign never saw: only the echoed referenceId matches
        retell("call_ended", "retell_9f8e7d", b["referenceId"], call_status="error", duration_ms=0),
    ]
    # as first written: status read from the envelope, the sentiment and the reference mistyped
    placed.rewrite(
        call_id="call.call_id",
        reference_id="call.metadata.crm",
        status="event",
        fields={"sentiment": "call.call_analysis.sentiment", "duration_ms": "call.duration_ms"},
    )
    with Collector(placed.config, placed.port):
        for payload in payloads:
            assert post_outcome(placed.port, payload).status_code == 200
    _export(placed.config)

    assert {k: placed.row(0)[k] for k in ("outcome_status", "outcome_sentiment", "outcome_duration_ms")} == {
        "outcome_status": "call-analyzed",
        "outcome_sentiment": None,
        "outcome_duration_ms": "48200",
    }
    assert placed.row(1)["outcome_status"] is None
    assert _status(placed.config)["unmatched"] == 1

    placed.rewrite(
        call_id="call.call_id",
        reference_id=["call.metadata.crm_id", "call.metadata.referenceId"],
        status="call.call_status",
        fields={"sentiment": "call.call_analysis.user_sentiment", "duration_ms": "call.duration_ms"},
    )
    _export(placed.config)

    assert {k: placed.row(0)[k] for k in ("outcome_status", "outcome_sentiment", "outcome_duration_ms")} == {
        "outcome_status": "ended",
        "outcome_sentiment": "Positive",
        "outcome_duration_ms": "48200",
    }
    assert {k: placed.row(1)[k] for k in ("outcome_status", "outcome_sentiment", "outcome_duration_ms")} == {
        "outcome_status": "error",
        "outcome_sentiment": None,
        "outcome_duration_ms": "0",
    }
    assert "outcome_budget" not in placed.results().columns
    status = _status(placed.config)
    assert (status["unmatched"], status["statuses"]) == (0, {"ended": 1, "error": 1})


def test_export_while_collect_runs_reflects_what_is_stored_so_far(
    placed: Placed, collector: Collector
) -> None:
    """`dialer export` beside a live `dialer collect` works and shows every payload answered 200 so far."""
    a, b = placed.call(0), placed.call(1)
    assert post_outcome(placed.port, {"callId": a["callId"], "status": "busy"}).status_code == 200
    _export(placed.config)
    assert [placed.row(i)["outcome_status"] for i in range(4)] == ["busy", None, None, None]

    assert post_outcome(placed.port, {"callId": b["callId"], "status": "completed"}).status_code == 200
    _export(placed.config)
    assert [placed.row(i)["outcome_status"] for i in range(4)] == ["busy", "completed", None, None]
    assert collector.process.poll() is None  # still collecting


def test_outcome_cells_are_inert_and_bounded(placed: Placed, collector: Collector) -> None:
    """An outcome value starting with = + - @ is quoted in the results; one over 2,000 characters is cut."""
    formula = '=HYPERLINK("https://evil.example","click")'
    payload = {
        "callId": placed.call(0)["callId"],
        "status": "completed",
        "analysis": {"sentiment": formula},
        "extracted": {"budget": "x" * 5000},
    }
    assert post_outcome(placed.port, payload).status_code == 200
    _export(placed.config)

    row = placed.row(0)
    assert row["outcome_sentiment"] == "'" + formula
    assert row["outcome_budget"] == "x" * 2000


def test_run_collect_on_a_port_already_taken_is_exit_2_with_nothing_sent(
    placed: Placed, collector: Collector, kyzo: KyzoServer
) -> None:
    """`run --collect` while `dialer collect` holds the outcomes port is exit 2 before any call."""
    write_leads(placed.leads, lead_rows(6))  # two more leads to call

    result = run_cli(["run", str(placed.config), "--collect"], env=OUTCOMES_ENV)

    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{placed.port}" in result.stderr
    assert len(kyzo.calls()) == 4


def _token_leaks(artefacts: dict[str, bytes]) -> list[str]:
    return [name for name, data in artefacts.items() if OUTCOMES_TOKEN.encode() in data]


def test_token_is_written_nowhere_even_when_a_payload_echoes_it(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """The token is in no log, results, errors or checkpoint byte, even echoed; validate shows Bearer ***."""
    server = start_server(ledger_bodies=True, outcomes=OutcomeSettings(call_seconds=0.2))
    leads = write_leads(tmp_path / "leads.csv", lead_rows(4))
    port = free_port()
    fields = {"sentiment": "analysis.sentiment", "echo": "echo.token", "echoed": "echo"}
    config = write_outcomes_config(tmp_path, server.base_url, leads, port, outcomes={"fields": fields})
    debug = ["--log-level", "debug"]
    commands = [
        [*debug, "validate", str(config), "--offline"],
        [*debug, "validate", str(config), "--offline", "--json"],
        [*debug, "run", str(config), "--collect", "--wait-outcomes", "10s"],
    ]
    results = [run_cli(command, env=OUTCOMES_ENV) for command in commands]
    assert [r.exit_code for r in results] == [0] * 3, results[2].stdout + results[2].stderr
    calls = server.calls()
    # the token went where it belongs: the Authorization header of the webhook tool of each call
    assert all(
        c["body"]["tools"][-1]["args"]["headers"] == {"Authorization": f"Bearer {OUTCOMES_TOKEN}"}
        for c in calls
    )

    echo = {"token": OUTCOMES_TOKEN, "header": f"Bearer {OUTCOMES_TOKEN}"}
    echoing = [
        {"callId": calls[0]["callId"], "status": "completed", "echo": echo},
        {
            "callId": calls[1]["callId"],
            "status": "completed",
            "raw": json.dumps({"Authorization": echo["header"]}),
        },
        {"callId": "not-ours", "status": "x", "url": f"https://hooks.example/cb?token={OUTCOMES_TOKEN}"},
    ]
    snapshots: dict[str, bytes] = {}
    with Collector(config, port, log_level="debug") as collect:
        for payload in echoing:
            assert post_outcome(port, payload).status_code == 200
        assert post_outcome(port, echoing[0], token=OUTCOMES_TOKEN + "-wrong").status_code == 401
        assert post_outcome(port, echoing[0], token=OUTCOMES_TOKEN[:8]).status_code == 401
        for suffix in ("", "-wal", "-shm"):  # while the receiver holds them open
            path = tmp_path / f"checkpoint.db{suffix}"
            if path.exists():
                snapshots[f"live {path.name}"] = path.read_bytes()
    assert "live checkpoint.db-wal" in snapshots
    after = [
        [*debug, "export", str(config)],
        [*debug, "status", str(config)],
        [*debug, "status", str(config), "--json"],
    ]
    commands += after
    results += [run_cli(command, env=OUTCOMES_ENV) for command in after]
    assert [r.exit_code for r in results] == [0] * 6

    assert '"Authorization": "Bearer ***"' in results[0].stdout
    webhook = json.loads(results[1].stdout)["first_request"]["tools"][-1]
    assert webhook["tool_type"] == "webhook"
    assert webhook["args"]["headers"] == {"Authorization": "Bearer ***"}
    rows = read_results(tmp_path / "results.csv")
    assert rows["outcome_echo"][0] == "***"
    assert json.loads(rows["outcome_echoed"][0]) == {"header": "Bearer ***", "token": "***"}
    artefacts = dict(snapshots)
    artefacts["collect stdout"] = "\n".join(collect.stdout).encode()
    artefacts["collect stderr"] = "\n".join(collect.stderr).encode()
    for command, result in zip(commands, results, strict=True):
        artefacts[f"{' '.join(command)} stdout"] = result.stdout_bytes
        artefacts[f"{' '.join(command)} stderr"] = result.stderr_bytes
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.name.startswith("ledger-"):  # the server's record of the bodies
            artefacts[str(path)] = path.read_bytes()
    assert {"results.csv", "errors.csv", "checkpoint.db"} <= {Path(name).name for name in artefacts}
    assert any(b"outcome_unmatched" in data for data in artefacts.values())
    assert _token_leaks(artefacts) == []
    assert [name for name, data in artefacts.items() if API_KEY.encode() in data] == []


def test_token_written_in_the_config_or_too_short_is_refused_without_echoing_it(
    kyzo: KyzoServer, tmp_path: Path
) -> None:
    """A token written in the file, or too short, is exit 2 naming outcomes.token, never showing it."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(2))
    port = free_port()
    literal = "literal-outcomes-token-0123456789"
    config = write_outcomes_config(tmp_path, kyzo.base_url, leads, port, outcomes={"token": literal})
    for command in (["validate", str(config), "--offline"], ["collect", str(config)], ["run", str(config)]):
        result = run_cli(command, env=OUTCOMES_ENV)
        assert result.exit_code == 2, command
        assert "outcomes.token" in result.stderr
        assert "${env:NAME}" in result.stderr
        assert literal not in result.stdout + result.stderr
    assert kyzo.calls() == []

    short = "short-token-1"
    config = write_outcomes_config(tmp_path, kyzo.base_url, leads, port)
    result = run_cli(["run", str(config)], env={"KYZO_OUTCOMES_TOKEN": short})
    assert result.exit_code == 2
    assert "outcomes.token" in result.stderr
    assert short not in result.stdout + result.stderr
    assert kyzo.calls() == []


def _all_delivered(server: KyzoServer) -> bool:
    counts = server.metrics()["outcomes"]
    return bool(counts["delivered"] == counts["scheduled"])


def test_every_outcome_delivered_during_run_collect_lands_in_the_results(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """run --collect, 40 leads, posts late, twice, reordered: each drawn outcome is in the results."""
    settings = OutcomeSettings(call_seconds=0.3, duplicate_rate=0.3, backoff_s=0.2, backoff_max_s=1.0)
    server = start_server(outcomes=settings, seed=7)
    leads = write_leads(tmp_path / "leads.csv", lead_rows(40, seed=3))
    port = free_port()
    config = write_outcomes_config(tmp_path, server.base_url, leads, port)

    started = time.monotonic()
    result = run_cli(["run", str(config), "--collect", "--wait-outcomes", "30s"], env=OUTCOMES_ENV)
    waited = time.monotonic() - started

    assert result.exit_code == 0, result.stdout + result.stderr
    assert waited < 10
    calls = server.calls()
    assert len(calls) == 40
    drawn = {c["callId"]: c["outcome"] for c in calls}
    assert None not in drawn.values()
    results = read_results(tmp_path / "results.csv")
    assert dict(zip(results["dialer_call_id"], results["outcome_status"], strict=True)) == drawn
    assert set(results["dialer_calls"]) == {"1"}
    metrics = server.metrics()["outcomes"]
    assert metrics["given_up"] == 0
    if metrics["delivered"] < metrics["scheduled"]:
        # the run stops waiting once each lead has a first payload: an analysis posted after its
        # last look is retried by the sender until a receiver answers, here `dialer collect`
        with Collector(config, port):
            wait_until(lambda: _all_delivered(server), 20, "the analysis payloads still on their way")
        _export(config)
        results = read_results(tmp_path / "results.csv")
    # each completed call's analysis (sentiment, budget) merged into its row, each other call has none
    completed = results.filter(pl.col("outcome_status") == "completed")
    assert completed.height == sum(1 for c in calls if c["outcome"] == "completed") > 0
    assert set(completed["outcome_sentiment"]) <= {"positive", "neutral", "negative"}
    assert all(int(budget) % 1000 == 0 for budget in completed["outcome_budget"])
    assert all(20 <= int(seconds) <= 300 for seconds in completed["outcome_duration_s"])
    others = results.filter(pl.col("outcome_status") != "completed")
    assert others["outcome_sentiment"].null_count() == others["outcome_budget"].null_count() == others.height
    assert set(others["outcome_duration_s"]) == {"0"}
    status = _status(config)
    assert (status["awaiting"], status["unmatched"]) == (0, 0)
    assert sum(status["statuses"].values()) == 40
    # every payload answered 200 is in the checkpoint, each once however often it was sent
    stored = stored_payloads(tmp_path / "checkpoint.db")
    assert len({json.dumps(p, sort_keys=True) for p in stored}) == len(stored)
    assert {p["callId"] for p in stored} == set(drawn)


def _kill_collect_mid_stream(server: KyzoServer, folder: Path, seed: int) -> None:
    """60 calls whose outcomes come over 1-3 s; collect killed once 15 are stored, back 1 s later."""
    leads = write_leads(folder / "leads.csv", lead_rows(60, seed=seed))
    port = free_port()
    config = write_outcomes_config(folder, server.base_url, leads, port)
    checkpoint = folder / "checkpoint.db"

    first = Collector(config, port)
    try:
        result = run_cli(["run", str(config)], env=OUTCOMES_ENV)
        assert result.exit_code == 0, result.stdout + result.stderr
        wait_until(lambda: len(stored_payloads(checkpoint)) >= 15, 20, "the first outcomes")
    finally:
        assert first.kill() == -9
    at_kill = len(stored_payloads(checkpoint))
    time.sleep(1.0)  # the receiver is down: deliveries fail and are retried
    with Collector(config, port):
        wait_until(lambda: _all_delivered(server), 25, "every outcome delivered")
    _export(config)

    drawn = {c["callId"]: c["outcome"] for c in server.calls()}
    assert len(drawn) == 60
    results = read_results(folder / "results.csv")
    assert dict(zip(results["dialer_call_id"], results["outcome_status"], strict=True)) == drawn
    completed = results.filter(pl.col("outcome_status") == "completed")
    assert completed["outcome_budget"].null_count() == 0
    stored = stored_payloads(checkpoint)
    # one ended payload per call and one analyzed per completed call, each stored once
    assert len(stored) == 60 + completed.height
    assert len({json.dumps(p, sort_keys=True) for p in stored}) == len(stored)
    metrics = server.metrics()["outcomes"]
    assert at_kill < len(stored), "the kill came after the last delivery"
    assert metrics["attempts"] > metrics["delivered"], "no delivery met the outage"
    assert metrics["given_up"] == 0


@pytest.mark.slow
def test_collect_killed_mid_stream_loses_no_outcome(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """collect killed -9 mid-stream, restarted a second later: after retries no outcome is missing."""
    for round_ in range(3):
        settings = OutcomeSettings(call_seconds=2.0, duplicate_rate=0.2, backoff_s=0.2, backoff_max_s=1.0)
        folder = tmp_path / f"round-{round_}"
        folder.mkdir()
        _kill_collect_mid_stream(start_server(outcomes=settings, seed=round_), folder, seed=10 + round_)


def test_debug_keys_name_a_list_of_plain_values() -> None:
    """The key paths an unmatched payload is logged by include a key holding a list of strings."""
    assert sorted(key_paths({"callId": "x", "tags": ["vip", "callback"]})) == ["callId", "tags.0"]


def test_token_echoed_as_a_key_is_not_stored(placed: Placed) -> None:
    """A payload that echoes the token as an object key leaves it in no checkpoint or results byte."""
    placed.rewrite(fields={"echoed": "echo"})
    payload = {"callId": placed.call(0)["callId"], "status": "completed", "echo": {OUTCOMES_TOKEN: "seen"}}
    with Collector(placed.config, placed.port):
        assert post_outcome(placed.port, payload).status_code == 200
    _export(placed.config)
    files = {p.name: p.read_bytes() for p in placed.folder.iterdir() if p.is_file() and p.suffix != ".jsonl"}
    assert _token_leaks(files) == []


def test_the_outcome_of_a_call_a_crash_left_in_flight_is_that_calls(tmp_path: Path) -> None:
    """An outcome received between a run's crash and the next run's recovery belongs to the recovered call."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(1, seed=17))
    port = free_port()
    config = write_outcomes_config(tmp_path, "http://127.0.0.1:9", leads, port)  # Kyzo's own shape
    settings = settings_for(config, OUTCOMES_ENV)
    lead = load_table(settings).dialable().row(0, named=True)
    checkpoint = Checkpoint.open(settings.checkpoint_path)
    try:
        run = checkpoint.start_run("dialer run", settings.fingerprint, "input")
        checkpoint.claim_now([Claim(lead[KEY], lead[PHONE], "CRM-000000")], run)  # sent; then the run died
        with Collector(config, port):  # the call rang: its outcome comes, with a callId never recorded
            payload = {
                "callId": "kyzo-call-the-dialer-never-read",
                "referenceId": "CRM-000000",
                "status": "completed",
            }
            assert post_outcome(port, payload).status_code == 200
        time.sleep(0.01)
        assert checkpoint.recover_interrupted("a previous run stopped while this call was in flight") == 1
    finally:
        checkpoint.close()
    _export(config)

    assert read_results(tmp_path / "results.csv").select("dialer_status", "outcome_status").row(0) == (
        "unknown",
        "completed",
    )
    assert _status(config)["unmatched"] == 0
