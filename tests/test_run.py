"""`dialer run` end to end against the real local Kyzo server over HTTP."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import httpx
import polars as pl
import pytest
from conftest import KyzoServer
from helpers import (
    ForwardingTransport,
    json_logs,
    lead_rows,
    read_results,
    run_cli,
    settings_for,
    write_config,
    write_leads,
)

from dialer.export import OUTPUT_COLUMNS
from dialer.run_lock import RunLock


def _mixed_rows() -> list[dict[str, str]]:
    rows = lead_rows(12)
    rows[2]["phone"] = "12345"  # rejected: too short
    rows[5]["phone"] = ""  # rejected: missing
    rows[8]["phone"] = rows[1]["phone"]  # skipped: duplicate of row 2
    rows[9]["phone"] = "0" + rows[9]["phone"][2:]  # rejected, and its leading zero kept as text
    return rows


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_every_valid_lead_is_called_once_and_results_match_ledger(
    kyzo: KyzoServer, tmp_path: Path, suffix: str
) -> None:
    """Each valid lead is called exactly once; the results keep every input row, column and value."""
    rows = _mixed_rows()
    leads = write_leads(tmp_path / f"leads{suffix}", rows)
    config = write_config(tmp_path, kyzo.base_url, leads, results_suffix=suffix)

    result = run_cli(["run", str(config)])

    assert result.exit_code == 1, result.stdout + result.stderr
    calls = kyzo.calls()
    assert len(calls) == 8
    assert max(Counter(c["phoneNumber"] for c in calls).values()) == 1
    results = read_results(tmp_path / f"results{suffix}")
    assert results.columns == [*rows[0].keys(), *OUTPUT_COLUMNS]
    assert results.select(rows[0].keys()).to_dicts() == rows
    statuses = results["dialer_status"].to_list()
    assert statuses.count("placed") == 8
    assert statuses[2] == statuses[5] == statuses[9] == "rejected"
    assert statuses[8] == "skipped"
    assert results["dialer_error"][8] == "duplicate of row 2"
    assert results["phone"][9] == rows[9]["phone"]  # a leading zero kept as written
    by_reference = {c["referenceId"]: c["callId"] for c in calls}
    placed = results.filter(pl.col("dialer_status") == "placed")
    assert dict(zip(placed["crm_id"], placed["dialer_call_id"], strict=True)) == by_reference
    errors = read_results(tmp_path / f"errors{suffix}")
    assert errors["crm_id"].to_list() == [rows[i]["crm_id"] for i in (2, 5, 9)]


def test_request_body_carries_mapped_fields(kyzo: KyzoServer, tmp_path: Path) -> None:
    """agentParams, referenceId, email and templated tool args reach the server as configured."""
    rows = lead_rows(1)
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_config(tmp_path, kyzo.base_url, leads)

    assert run_cli(["run", str(config)]).exit_code == 0
    [call] = kyzo.calls()
    assert call["referenceId"] == rows[0]["crm_id"]
    assert call["phoneNumber"] == rows[0]["phone"]


def test_second_run_sends_nothing(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A rerun on a finished campaign resumes from the checkpoint and dials no one again."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(20))
    config = write_config(tmp_path, kyzo.base_url, leads)

    assert run_cli(["run", str(config)]).exit_code == 0
    first = read_results(tmp_path / "results.csv")
    again = run_cli(["run", str(config)])

    assert again.exit_code == 0
    assert len(kyzo.calls()) == 20
    assert (
        read_results(tmp_path / "results.csv")["dialer_call_id"].to_list()
        == first["dialer_call_id"].to_list()
    )


def test_limit_then_rerun_completes_the_list(kyzo: KyzoServer, tmp_path: Path) -> None:
    """--limit N sends N leads and exits 4; a plain rerun finishes the rest, nobody twice."""
    rows = lead_rows(25)
    rows[0]["phone"] = "bad"
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_config(tmp_path, kyzo.base_url, leads)

    limited = run_cli(["run", str(config), "--limit", "10"])

    assert limited.exit_code == 4, limited.stdout
    assert len(kyzo.calls()) == 10
    assert "resume with: dialer run" in limited.stdout
    assert "--limit" not in limited.stdout.split("resume with:")[1]
    statuses = Counter(read_results(tmp_path / "results.csv")["dialer_status"].to_list())
    assert statuses == {"placed": 10, "pending": 14, "rejected": 1}

    rest = run_cli(["run", str(config)])

    assert rest.exit_code == 1
    calls = kyzo.calls()
    assert len(calls) == 24
    assert len({c["phoneNumber"] for c in calls}) == 24


def test_dry_run_sends_nothing_and_writes_pending(kyzo: KyzoServer, tmp_path: Path) -> None:
    """--dry-run builds every request, writes results with status pending and sends nothing."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(5))
    config = write_config(tmp_path, kyzo.base_url, leads)

    result = run_cli(["run", str(config), "--dry-run"], api_key=None)

    assert result.exit_code == 4
    assert kyzo.calls() == []
    assert set(read_results(tmp_path / "results.csv")["dialer_status"]) == {"pending"}
    assert "built 5 request bodies" in result.stdout
    assert not (tmp_path / "checkpoint.db").exists()


def test_exit_0_when_every_lead_placed(kyzo: KyzoServer, tmp_path: Path) -> None:
    """All placed: exit 0, summary on stdout, JSON log lines on stderr."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    config = write_config(tmp_path, kyzo.base_url, leads)

    result = run_cli(["run", str(config)])

    assert result.exit_code == 0
    assert "placed 3" in result.stdout
    events = [line["event"] for line in json_logs(result.stderr)]
    assert events[0] == "run_start"
    assert events[-1] == "run_end"


def test_exit_2_config_error_sends_nothing(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A config typo is exit 2, names the key, and no call is sent."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    config = write_config(tmp_path, kyzo.base_url, leads, limits={"calls_per_secnd": 3})

    result = run_cli(["run", str(config)])

    assert result.exit_code == 2
    assert "limits.calls_per_secnd" in result.stderr
    assert "calls_per_second" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert kyzo.calls() == []


def test_exit_2_missing_column_names_it(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A mapped column absent from the list stops before any call and lists the file's columns."""
    rows = [{k if k != "phone" else "Phone": v for k, v in r.items()} for r in lead_rows(3)]
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_config(tmp_path, kyzo.base_url, leads)

    result = run_cli(["run", str(config)])

    assert result.exit_code == 2
    message = json_logs(result.stderr)[-1]["message"]
    assert "'phone'" in message
    assert "did you mean 'Phone'" in message
    assert "crm_id, first_name, city, Phone, email" in message
    assert kyzo.calls() == []


def test_exit_2_without_api_key(kyzo: KyzoServer, tmp_path: Path) -> None:
    """No KYZO_API_KEY in the environment: exit 2 naming the variable."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(2))
    config = write_config(tmp_path, kyzo.base_url, leads)

    result = run_cli(["run", str(config)], api_key=None)

    assert result.exit_code == 2
    assert "KYZO_API_KEY" in result.stderr


def test_exit_3_wrong_key_leaves_leads_pending(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A 401 stops the whole run at once: exit 3, nothing placed, every lead still pending."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(30))
    config = write_config(tmp_path, kyzo.base_url, leads)

    result = run_cli(["run", str(config)], api_key="wrong-key-123")

    assert result.exit_code == 3
    assert "API key was rejected" in result.stdout
    assert kyzo.metrics()["status_counts"].get("401", 0) <= 8  # at most what was in flight
    assert set(read_results(tmp_path / "results.csv")["dialer_status"]) == {"pending"}
    assert "wrong-key-123" not in result.stdout + result.stderr


def test_exit_3_unknown_agent(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A 404 (unknown agent) stops the run with exit 3; a fixed config then dials everyone."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(5))
    config = write_config(tmp_path, kyzo.base_url, leads, agent_id="agent_nope")

    result = run_cli(["run", str(config)])

    assert result.exit_code == 3
    assert "organization or agent not found (404)" in result.stdout
    assert "organization_id 'org_demo', agent_id 'agent_nope'" in result.stdout
    assert kyzo.calls() == []
    assert set(read_results(tmp_path / "results.csv")["dialer_status"]) == {"pending"}
    # The fixed agent is another campaign for the checkpoint: --new-campaign sets the old one aside.
    fixed = write_config(tmp_path, kyzo.base_url, leads)
    assert run_cli(["run", str(fixed)]).exit_code == 2
    assert run_cli(["run", str(fixed), "--new-campaign"]).exit_code == 0
    assert len(kyzo.calls()) == 5


def test_exit_5_when_checkpoint_locked(kyzo: KyzoServer, tmp_path: Path) -> None:
    """Another run holding the checkpoint lock: exit 5 naming its pid, nothing sent."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    config = write_config(tmp_path, kyzo.base_url, leads)

    with RunLock(tmp_path / "checkpoint.db"):
        result = run_cli(["run", str(config)])

    assert result.exit_code == 5
    assert "pid" in result.stderr
    assert kyzo.calls() == []


@pytest.mark.parametrize(
    "args, api_key",
    [
        (["run"], None),  # no API key: 2 on its own, but 5 comes first
        (["run", "--input", "missing.csv"], "k"),  # a bad input: same
        (["run", "--dry-run"], "k"),  # would rewrite the live run's files
        (["export"], "k"),  # same
    ],
)
def test_a_held_lock_wins_over_other_errors_and_guards_the_files(
    kyzo: KyzoServer, tmp_path: Path, args: list[str], api_key: str | None
) -> None:
    """Exit precedence puts 5 first; dry runs and export never write over a live run's files."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    config = write_config(tmp_path, kyzo.base_url, leads)

    with RunLock(tmp_path / "checkpoint.db"):
        result = run_cli([args[0], str(config), *args[1:]], api_key=api_key)

    assert result.exit_code == 5
    assert not (tmp_path / "results.csv").exists()


def test_results_unwritable_after_calls_exits_4_and_export_recovers(kyzo: KyzoServer, tmp_path: Path) -> None:
    """Calls went out but the results cannot be written: not 2 ("nothing sent"); the run is closed."""
    from dialer.campaign import RunOptions, run_campaign
    from dialer.errors import ResultsNotWritten

    leads = write_leads(tmp_path / "leads.csv", lead_rows(4))
    config = write_config(tmp_path, kyzo.base_url, leads)
    in_the_way = tmp_path / "results.csv"

    def block_the_results_file(request: httpx.Request) -> None:
        # once calls are going out, a folder takes the results file's name: its rename fails
        in_the_way.mkdir(exist_ok=True)
        (in_the_way / "keep").touch()

    with pytest.raises(ResultsNotWritten) as caught:
        run_campaign(
            settings_for(config), RunOptions(), transport=ForwardingTransport(block_the_results_file)
        )

    assert caught.value.exit_code == 4
    assert "The 4 calls sent in this run are recorded in the checkpoint" in str(caught.value)
    assert f"dialer export {config}" in str(caught.value)
    status = json.loads(run_cli(["status", str(config), "--json"]).stdout)
    assert status["runs"][-1]["exit_code"] == 4
    shutil.rmtree(in_the_way)
    assert run_cli(["export", str(config)]).exit_code == 0
    assert read_results(in_the_way)["dialer_status"].to_list() == ["placed"] * 4


def test_400_marks_lead_failed_with_server_message(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A 400 records the lead failed with the server's message and does not retry it."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    config = write_config(tmp_path, kyzo.base_url, leads, from_phone_number_id="pn_unknown")

    result = run_cli(["run", str(config)])

    assert result.exit_code == 1
    results = read_results(tmp_path / "results.csv")
    assert set(results["dialer_status"]) == {"failed"}
    assert all("fromPhoneNumberId" in e for e in results["dialer_error"])
    assert set(results["dialer_attempts"]) == {"1"}
    assert kyzo.metrics()["requests"] == 3


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_server_errors_end_unknown_and_are_not_retried(start_server, tmp_path: Path, transport: str) -> None:  # type: ignore[no-untyped-def]
    """5xx answers mark leads unknown (the call may exist) and are never sent again, on either transport."""
    server = start_server(error_rate=1.0, error_statuses=(500, 502), error_after_place=True)
    leads = write_leads(tmp_path / "leads.csv", lead_rows(6))
    config = write_config(tmp_path, server.base_url, leads, transport=transport)

    result = run_cli(["run", str(config)])

    assert result.exit_code == 1
    assert set(read_results(tmp_path / "results.csv")["dialer_status"]) == {"unknown"}
    assert server.metrics()["requests"] == 6
    assert len(server.calls()) == 6
    assert run_cli(["run", str(config)]).exit_code == 1
    assert server.metrics()["requests"] == 6


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_dropped_connections_end_unknown(start_server, tmp_path: Path, transport: str) -> None:  # type: ignore[no-untyped-def]
    """A connection dropped after the server read the request leaves the lead unknown, on either transport."""
    server = start_server(drop_rate=1.0)
    leads = write_leads(tmp_path / "leads.csv", lead_rows(4))
    config = write_config(tmp_path, server.base_url, leads, transport=transport)

    result = run_cli(["run", str(config)])

    assert result.exit_code == 1
    results = read_results(tmp_path / "results.csv")
    assert set(results["dialer_status"]) == {"unknown"}
    assert len(server.calls()) == 4
    assert server.metrics()["requests"] == 4


def test_rate_limited_server_still_places_everyone(start_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """429s are retried after a pause; every lead ends placed, once."""
    server = start_server(rate_limit=20, retry_after=0.2)
    leads = write_leads(tmp_path / "leads.csv", lead_rows(40))
    config = write_config(
        tmp_path, server.base_url, leads, limits={"calls_per_second": 30, "max_attempts": 10}
    )

    result = run_cli(["run", str(config)])

    assert result.exit_code == 0, result.stdout
    calls = server.calls()
    assert len(calls) == 40
    assert len({c["phoneNumber"] for c in calls}) == 40
    assert server.metrics()["max_accepted_in_any_1s_window"] <= 20


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_unreachable_api_ends_failed_and_retry_failed_resends(
    kyzo: KyzoServer, tmp_path: Path, transport: str
) -> None:
    """Connection refused is a safe retry, then failed; --retry-failed sends those leads again."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    dead = write_config(
        tmp_path, "http://127.0.0.1:9", leads, limits={"max_attempts": 2}, transport=transport
    )

    first = run_cli(["run", str(dead)])

    assert first.exit_code == 1
    results = read_results(tmp_path / "results.csv")
    assert set(results["dialer_status"]) == {"failed"}
    assert results["dialer_error"][0].startswith("gave up after 2 attempts: request not sent")

    live = write_config(tmp_path, kyzo.base_url, leads)
    assert run_cli(["run", str(live)]).exit_code == 1
    assert kyzo.calls() == []
    assert run_cli(["run", str(live), "--retry-failed"]).exit_code == 0
    assert len(kyzo.calls()) == 3
