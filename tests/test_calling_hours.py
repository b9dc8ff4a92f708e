"""Calling hours end to end: cron-style runs on an injected clock, checked from the server's ledger."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import KyzoServer
from helpers import API_KEY, lead_rows, read_results, run_cli, settings_for, write_config, write_leads

from dialer import logs
from dialer.campaign import RunOptions, run_campaign
from dialer.config import load_settings
from dialer.gate import NEVER_OPEN
from dialer.preflight import validate_campaign
from dialer.printing import print_summary
from dialer.status import campaign_status

HOURS = """
[calling_hours]
start = "09:00"
end = "20:00"
days = ["mon", "tue", "wed", "thu", "fri"]
timezone = "America/New_York"
"""


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _coast_to_coast(count: int) -> list[dict[str, str]]:
    """Half New York (212) numbers, half San Francisco (415) numbers."""
    rows = [r for r in lead_rows(count * 6, seed=9) if r["phone"][2:5] in ("212", "415")]
    east = [r for r in rows if r["phone"][2:5] == "212"][: count // 2]
    west = [r for r in rows if r["phone"][2:5] == "415"][: count // 2]
    return east + west


def _run(config: Path, now: str, **options: object) -> int:
    logs.configure("json", "warning", io.StringIO())
    settings = load_settings(config, env={"KYZO_API_KEY": API_KEY})
    summary = run_campaign(settings, RunOptions(clock=lambda: _at(now), **options))  # type: ignore[arg-type]
    return summary.exit_code


def test_cron_runs_across_windows_never_call_outside_hours(kyzo: KyzoServer, tmp_path: Path) -> None:
    """Three cron runs (before 9 NY, 10 NY/7 LA, 13 NY/10 LA): each lead is called once, in its window."""
    rows = _coast_to_coast(20)
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_config(tmp_path, kyzo.base_url, leads, extra=HOURS)
    east = {r["phone"] for r in rows[:10]}
    west = {r["phone"] for r in rows[10:]}

    assert _run(config, "2026-11-27T13:00:00") == 4  # Friday 08:00 New York: nobody
    assert kyzo.calls() == []
    assert _run(config, "2026-11-27T15:00:00") == 4  # 10:00 New York, 07:00 San Francisco
    assert {c["phoneNumber"] for c in kyzo.calls()} == east
    assert _run(config, "2026-11-27T18:00:00") == 0  # 13:00 New York, 10:00 San Francisco
    calls = kyzo.calls()
    assert len(calls) == 20
    assert {c["phoneNumber"] for c in calls[10:]} == west
    assert set(read_results(tmp_path / "results.csv")["dialer_status"]) == {"placed"}


def test_closed_run_says_when_the_next_window_opens(kyzo: KyzoServer, tmp_path: Path) -> None:
    """On a Saturday nothing is sent; the summary names Monday 09:00 in the lead's zone."""
    rows = _coast_to_coast(4)
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_config(tmp_path, kyzo.base_url, leads, extra=HOURS)
    logs.configure("json", "warning", io.StringIO())
    settings = load_settings(config, env={"KYZO_API_KEY": API_KEY})

    summary = run_campaign(settings, RunOptions(clock=lambda: _at("2026-11-28T16:00:00")))

    assert summary.exit_code == 4
    assert summary.next_window == "2026-11-30 09:00 America/New_York"
    assert summary.counts["pending"] == 4
    assert kyzo.calls() == []


def test_ignore_calling_hours_must_be_explicit(kyzo: KyzoServer, tmp_path: Path) -> None:
    """--ignore-calling-hours dials regardless of the window; without it a closed window sends nothing."""
    leads = write_leads(tmp_path / "leads.csv", _coast_to_coast(4))
    config = write_config(tmp_path, kyzo.base_url, leads, extra=HOURS)

    assert _run(config, "2026-11-29T03:00:00") == 4  # Sunday night
    assert kyzo.calls() == []
    assert _run(config, "2026-11-29T03:00:00", ignore_calling_hours=True) == 0
    assert len(kyzo.calls()) == 4


def test_validate_and_status_report_the_window(kyzo: KyzoServer, tmp_path: Path) -> None:
    """validate counts who is callable now and when the rest open; status does the same for pending."""
    rows = _coast_to_coast(6)
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_config(tmp_path, kyzo.base_url, leads, extra=HOURS)
    settings = load_settings(config, env={"KYZO_API_KEY": API_KEY})
    ten_in_new_york = _at("2026-11-27T15:00:00")

    report = validate_campaign(settings, offline=True, clock=lambda: ten_in_new_york).as_dict()

    assert report["calling_hours"] == {
        "callable_now": 3,
        "outside_hours": 3,
        "never_open": 0,
        "next_window": "2026-11-27 09:00 America/Los_Angeles",
    }
    assert (report["dialable"], report["eligible"]) == (3, 6)  # "a run would send now": 3
    _run(config, "2026-11-27T15:00:00")
    status = campaign_status(settings, clock=lambda: ten_in_new_york)
    assert status.counts["placed"] == 3
    assert status.calling_hours is not None
    assert status.calling_hours.outside_hours == 3


def test_lead_time_zone_column_wins_and_bad_zone_is_rejected(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A tz column overrides the phone's zone; an unknown zone name rejects that row."""
    rows = _coast_to_coast(4)
    rows[0]["tz"] = "Asia/Tokyo"  # a New York number whose lead lives in Tokyo
    rows[1]["tz"] = ""
    rows[2]["tz"] = "Mars/Olympus"
    rows[3]["tz"] = "America/New_York"  # a San Francisco number whose lead lives in New York
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_config(tmp_path, kyzo.base_url, leads, extra=HOURS)
    config.write_text(
        config.read_text().replace('reference_id = "crm_id"', 'reference_id = "crm_id"\ntimezone = "tz"')
    )

    assert _run(config, "2026-11-27T15:00:00") == 4  # Friday 10:00 NY = Saturday 00:00 Tokyo: pending

    results = read_results(tmp_path / "results.csv")
    assert results["dialer_status"].to_list() == ["pending", "placed", "rejected", "placed"]
    assert "Mars/Olympus" in results["dialer_error"][2]


def test_calling_hours_config_errors_name_the_key(tmp_path: Path) -> None:
    """A bad window (25:00, unknown zone) is a config error naming calling_hours."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(1))
    bad = HOURS.replace('"20:00"', '"25:00"').replace("America/New_York", "America/Nowhere")
    config = write_config(tmp_path, "http://127.0.0.1:9", leads, extra=bad)

    result = run_cli(["validate", str(config), "--offline"])

    assert result.exit_code == 2
    message = json.loads(result.stderr.splitlines()[-1])["message"]
    assert "calling_hours.end" in message
    assert "calling_hours.timezone" in message


def test_limit_counts_only_leads_sent(kyzo: KyzoServer, tmp_path: Path) -> None:
    """--limit N sends N leads even when closed leads come first in the list."""
    rows = _coast_to_coast(10)
    leads = write_leads(tmp_path / "leads.csv", rows[5:] + rows[:5])  # San Francisco first
    config = write_config(tmp_path, kyzo.base_url, leads, extra=HOURS)

    assert _run(config, "2026-11-27T15:00:00", limit=3) == 4  # 10:00 New York, 07:00 San Francisco

    assert {c["phoneNumber"] for c in kyzo.calls()} == {r["phone"] for r in rows[:3]}


def test_a_lead_whose_window_never_opens_is_rejected_not_pending(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A +7 mobile spans zones 10 hours apart: a 09:00-10:00 window never holds in all of them.

    Left pending, every cron run would exit 4 forever; rejected, it lands in the errors file.
    """
    rows = _coast_to_coast(2)
    rows.append({**rows[0], "crm_id": "RU-1", "phone": "+7 912 345 67 89"})
    leads = write_leads(tmp_path / "leads.csv", rows)
    narrow = HOURS.replace('end = "20:00"', 'end = "10:00"').replace(
        'days = ["mon", "tue", "wed", "thu", "fri"]',
        'days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]',
    )
    config = write_config(tmp_path, kyzo.base_url, leads, extra=narrow)

    settings = load_settings(config, env={"KYZO_API_KEY": API_KEY})
    report = validate_campaign(settings, offline=True, clock=lambda: _at("2026-11-27T14:30:00"))
    assert report.rejected == {NEVER_OPEN: 1}
    assert _run(config, "2026-11-27T14:30:00") == 4  # 09:30 New York: the 212 lead; 415 waits
    assert _run(config, "2026-11-27T17:30:00") == 1  # 09:30 San Francisco: done, RU rejected
    results = read_results(tmp_path / "results.csv")
    assert results["dialer_status"].to_list() == ["placed", "placed", "rejected"]
    assert results["dialer_error"][2] == NEVER_OPEN
    assert len(kyzo.calls()) == 2


def test_cli_summary_names_the_next_window(
    kyzo: KyzoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a cron mail shows: exit 4 and the line saying when to come back."""
    leads = write_leads(tmp_path / "leads.csv", _coast_to_coast(2))
    settings = settings_for(write_config(tmp_path, kyzo.base_url, leads, extra=HOURS))
    saturday = RunOptions(clock=lambda: _at("2026-11-28T16:00:00"))
    summary = run_campaign(settings, saturday)
    print_summary(summary)

    assert summary.exit_code == 4
    assert "next window opens 2026-11-30 09:00 America/New_York" in capsys.readouterr().out
    assert kyzo.calls() == []
