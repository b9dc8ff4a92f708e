"""Pacing, retries and the circuit breaker, seen from the local server's side."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import KyzoServer
from helpers import (
    dialer_subprocess,
    json_logs,
    lead_rows,
    read_results,
    run_cli,
    write_config,
    write_leads,
)


def test_rate_never_exceeds_the_configured_limit(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """At 25 calls/s the server never sees more than 26 calls in any 1-second window.

    The dialer runs as a process of its own: sharing the server thread's interpreter (and its
    GIL) would delay the server's own timestamps, which are what is counted."""
    server = start_server()
    leads = write_leads(tmp_path / "leads.csv", lead_rows(75))
    config = write_config(
        tmp_path, server.base_url, leads, limits={"calls_per_second": 25, "max_concurrency": 10}
    )

    process = dialer_subprocess(["run", str(config), "--no-progress"])
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 0, stderr[-2000:]
    metrics = server.metrics()
    assert metrics["placed"] == 75
    assert metrics["max_accepted_in_any_1s_window"] <= 26
    assert max(metrics["accepted_per_second"].values()) <= 26
    achieved = next(e for e in json_logs(stderr) if e["event"] == "run_end")["calls_per_second"]
    # the pace between first and last send, as the summary reports it: never above the rate;
    # below it only by what a busy machine's late wake-ups cost (the bench measures it closely)
    assert 20.0 <= achieved <= 25.0


def test_fractional_rate(start_server: Callable[..., KyzoServer], tmp_path: Path) -> None:
    """0.5 calls/s spaces calls two seconds apart."""
    server = start_server()
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    config = write_config(tmp_path, server.base_url, leads, limits={"calls_per_second": 0.5})

    assert run_cli(["run", str(config)]).exit_code == 0
    stamps = sorted(call["ts"] for call in server.calls())
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(gap >= 1.9 for gap in gaps), gaps


@pytest.mark.slow
def test_server_limit_below_configured_rate_places_everyone(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """Configured 40/s against a server allowing 20/s: all placed, under 5% 429s, nobody failed."""
    server = start_server(rate_limit=20, retry_after=0.5)
    leads = write_leads(tmp_path / "leads.csv", lead_rows(200))
    config = write_config(
        tmp_path,
        server.base_url,
        leads,
        limits={"calls_per_second": 40, "max_concurrency": 10, "max_attempts": 10},
    )

    result = run_cli(["run", str(config)])

    assert result.exit_code == 0, result.stdout
    metrics = server.metrics()
    assert metrics["placed"] == 200
    share = metrics["status_counts"].get("429", 0) / metrics["requests"]
    assert share < 0.05, metrics["status_counts"]
    assert metrics["max_accepted_in_any_1s_window"] <= 20
    pace = [e for e in json_logs(result.stderr) if e["event"] == "pace_change"]
    assert pace and pace[0]["change"] == "decrease"


def test_random_server_errors_end_unknown_and_ledger_agrees(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """Random 500/502/504 (after placing) end unknown, are never retried, and the ledger has them all."""
    server = start_server(error_rate=0.3, error_statuses=(500, 502, 504), error_after_place=True, seed=11)
    rows = lead_rows(60)
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_config(tmp_path, server.base_url, leads, limits={"max_concurrency": 1})

    result = run_cli(["run", str(config)])

    results = read_results(tmp_path / "results.csv")
    statuses = Counter(results["dialer_status"].to_list())
    assert result.exit_code == 1
    assert statuses["unknown"] > 5
    assert statuses["placed"] + statuses["unknown"] == 60
    assert server.metrics()["requests"] == 60  # nothing retried
    ledger = {c["referenceId"] for c in server.calls()}
    assert ledger == set(results["crm_id"])  # every call, answered or not, was placed
    errored = {c["referenceId"] for c in server.calls() if "error_status" in c}
    unknown = set(results.filter(results["dialer_status"] == "unknown")["crm_id"])
    assert errored == unknown


def test_systematic_400_trips_the_breaker(start_server: Callable[..., KyzoServer], tmp_path: Path) -> None:
    """Every lead refused with the same message: the run stops (exit 3) within the window, rest pending."""
    server = start_server()
    leads = write_leads(tmp_path / "leads.csv", lead_rows(150))
    config = write_config(
        tmp_path, server.base_url, leads, from_phone_number_id="pn_typo", limits={"max_concurrency": 2}
    )

    result = run_cli(["run", str(config)])

    assert result.exit_code == 3
    assert "circuit breaker" in result.stdout
    statuses = Counter(read_results(tmp_path / "results.csv")["dialer_status"].to_list())
    assert 41 <= statuses["failed"] <= 43
    assert statuses["pending"] == 150 - statuses["failed"]


def test_consecutive_unknown_trips_the_breaker(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """More than 10 unknown outcomes in a row stop the run with exit 3."""
    server = start_server(error_rate=1.0, error_statuses=(500,))
    leads = write_leads(tmp_path / "leads.csv", lead_rows(60))
    config = write_config(tmp_path, server.base_url, leads, limits={"max_concurrency": 1})

    result = run_cli(["run", str(config)])

    assert result.exit_code == 3
    statuses = Counter(read_results(tmp_path / "results.csv")["dialer_status"].to_list())
    assert statuses["unknown"] == 11
    assert statuses["pending"] == 49


def test_long_retry_after_stops_resumably(start_server: Callable[..., KyzoServer], tmp_path: Path) -> None:
    """A Retry-After above limits.max_retry_after_s stops the run with exit 4; leads stay pending."""
    server = start_server(error_rate=1.0, error_statuses=(429,), retry_after=600)
    leads = write_leads(tmp_path / "leads.csv", lead_rows(10))
    config = write_config(
        tmp_path, server.base_url, leads, limits={"calls_per_second": 50, "max_concurrency": 1}
    )

    result = run_cli(["run", str(config)])

    assert result.exit_code == 4
    assert "Retry-After" in result.stdout
    statuses = Counter(read_results(tmp_path / "results.csv")["dialer_status"].to_list())
    assert statuses == {"pending": 10}  # a 429 placed nothing: the lead waits with the others
    assert server.metrics()["requests"] == 1  # nobody else was tried after the long pause was asked


def test_503_with_retry_after_is_retried(start_server: Callable[..., KyzoServer], tmp_path: Path) -> None:
    """503 with Retry-After is retried until placed; nobody twice.

    Even with --error-after-place the server answers 503 before placing (RFC 9110: not processed),
    which is the premise that makes the retry safe.
    """
    server = start_server(
        error_rate=0.4, error_statuses=(503,), retry_after=0.05, error_after_place=True, seed=3
    )
    leads = write_leads(tmp_path / "leads.csv", lead_rows(30))
    config = write_config(tmp_path, server.base_url, leads, limits={"max_attempts": 20})

    assert run_cli(["run", str(config)]).exit_code == 0
    calls = server.calls()
    assert len(calls) == 30
    assert len({c["phoneNumber"] for c in calls}) == 30
    assert server.metrics()["status_counts"].get("503", 0) > 0


def test_retry_ambiguous_gives_up_as_unknown_never_failed(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """api.retry_ambiguous retries 500s, but a lead that never got a callId ends unknown, not failed.

    `failed` would let --retry-failed ring it again without asking; the server placed every one.
    """
    server = start_server(error_rate=0.5, error_statuses=(500,), error_after_place=True, seed=7)
    leads = write_leads(tmp_path / "leads.csv", lead_rows(20))
    config = write_config(tmp_path, server.base_url, leads, limits={"max_concurrency": 2, "max_attempts": 2})
    text = config.read_text().replace(
        'transport = "aiohttp"', 'transport = "aiohttp"\nretry_ambiguous = true'
    )
    config.write_text(text)

    run_cli(["run", str(config)])

    results = read_results(tmp_path / "results.csv")
    statuses = Counter(results["dialer_status"].to_list())
    assert set(statuses) == {"placed", "unknown"}, statuses
    per_lead = Counter(c["referenceId"] for c in server.calls())
    assert max(per_lead.values()) == 2  # the option did retry
    unknown = results.filter(results["dialer_status"] == "unknown")
    assert all("may have placed the call" in e for e in unknown["dialer_error"])
    assert all(per_lead[ref] == 2 for ref in unknown["crm_id"])
    sent = server.metrics()["requests"]
    run_cli(["run", str(config), "--retry-failed"])
    assert server.metrics()["requests"] == sent


def test_429s_that_never_end_stop_the_run_resumably(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """More than limits.max_consecutive_429 429s in a row: exit 4, what the server said, leads pending."""
    server = start_server(error_rate=1.0, error_statuses=(429,), retry_after=0.02)
    leads = write_leads(tmp_path / "leads.csv", lead_rows(10))
    config = write_config(
        tmp_path,
        server.base_url,
        leads,
        limits={"max_concurrency": 1, "max_attempts": 50, "max_consecutive_429": 5},
    )

    result = run_cli(["run", str(config)])

    assert result.exit_code == 4
    assert "the API answered 429 (rate limited) 6 times in a row" in result.stdout
    assert set(read_results(tmp_path / "results.csv")["dialer_status"]) == {"pending"}
    assert server.calls() == []
    assert server.metrics()["requests"] == 6
