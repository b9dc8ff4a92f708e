"""The campaign report: one self-contained HTML file, written by `dialer report` and by every run,
checked as a file and in a real browser (Debian's chromium through Playwright)."""

from __future__ import annotations

import json
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from campaign_builder import campaign_tables, write_campaign
from conftest import KyzoServer
from helpers import (
    OUTCOMES_ENV,
    free_port,
    lead_rows,
    run_cli,
    settings_for,
    write_leads,
    write_outcomes_config,
)

from dialer.mock_outcomes import OutcomeSettings
from dialer.report import report_campaign

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Chromium reaches for Google's hosts on its own unless told not to: no name resolves, every
# proxied request goes to a dead end on 127.0.0.1, background services are off.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
]
EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_NEW_YORK_NOW = datetime.now(ZoneInfo("America/New_York"))
# open all day but one hour that starts an hour from now (a window across midnight when it must):
# a fixed 00:00-23:59 would be closed to a suite that runs at 23:59 in New York
HOURS = {
    "start": f"{_NEW_YORK_NOW + timedelta(hours=2):%H:%M}",
    "end": f"{_NEW_YORK_NOW + timedelta(hours=1):%H:%M}",
    "days": EVERY_DAY,
    "timezone": "America/New_York",
}


@dataclass
class Campaign:
    config: Path
    rows: list[dict[str, str]]
    report: Path


def _rows(count: int) -> list[dict[str, str]]:
    rows = lead_rows(count, seed=5)
    for i, row in enumerate(rows):
        row["first_name"] = f"Zyxwa{i:03d}"  # a name no chart or label could contain by chance
        row["city"] = f"Qvillе{i:03d}"
    rows[3]["phone"] = "12345"  # rejected
    rows[7]["phone"] = rows[1]["phone"]  # skipped: duplicate
    rows[9]["email"] = "not-an-email"  # rejected
    return rows


@pytest.fixture
def campaign(start_server: Callable[..., KyzoServer], tmp_path: Path) -> Campaign:
    """A campaign called partly (--limit), with outcomes collected, 429 pauses and calling hours."""
    server = start_server(
        rate_limit=25,
        retry_after=0.2,
        outcomes=OutcomeSettings(call_seconds=0.2, duplicate_rate=0.2, backoff_s=0.05),
    )
    rows = _rows(60)
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_outcomes_config(
        tmp_path,
        server.base_url,
        leads,
        free_port(),
        limits={"calls_per_second": 40, "max_attempts": 10},
        calling_hours=HOURS,
        output={"report": str(tmp_path / "report.html")},
    )
    result = run_cli(
        ["run", str(config), "--collect", "--wait-outcomes", "20s", "--limit", "40"], env=OUTCOMES_ENV
    )
    assert result.exit_code == 4, result.stdout + result.stderr  # 14 leads left to call
    assert f"report:  {tmp_path / 'report.html'}" in result.stdout
    return Campaign(config, rows, tmp_path / "report.html")


def _status(config: Path) -> dict[str, Any]:
    result = run_cli(["status", str(config), "--json"], env=OUTCOMES_ENV)
    assert result.exit_code == 0, result.stderr
    return dict(json.loads(result.stdout))


# ---------------------------------------------------------------- the file


def test_every_run_writes_the_report_private_and_whole(campaign: Campaign) -> None:
    """The run's end writes output.report: 0600, no temporary file left beside it, one HTML page."""
    html = campaign.report.read_text(encoding="utf-8")

    assert stat.S_IMODE(campaign.report.stat().st_mode) == 0o600
    assert [p.name for p in campaign.report.parent.glob(".report.html.*")] == []
    assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert "<title>Campaign test-campaign: report</title>" in html
    assert "1 run shaded" in html and not re.search(r"\b1 (runs|pauses)\b", html)  # the chart's alt


def test_report_is_self_contained(campaign: Campaign) -> None:
    """No script, stylesheet, font or image is fetched: everything is inline, charts are SVG."""
    html = campaign.report.read_text(encoding="utf-8")

    assert "<script" not in html.lower()
    assert not re.search(r"<link\b|@import|\bsrc\s*=|url\(\s*['\"]?https?:", html, re.IGNORECASE)
    # the only URLs are XML namespace names, which are identifiers, never fetched
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls
    assert html.count("<svg") >= 4  # funnel, timeline, zones, at least one outcome field


def test_report_carries_no_phone_name_email_or_agent_param(campaign: Campaign) -> None:
    """Counts and row numbers only: no lead's phone (any form), name, e-mail or agentParams value."""
    html = campaign.report.read_text(encoding="utf-8")

    for row in campaign.rows:
        digits = re.sub(r"\D", "", row["phone"])
        for value in (
            row["phone"],
            digits[-10:],
            row["first_name"],
            row["city"],
            row["email"],
            row["crm_id"],
        ):
            if len(value) >= 5:
                assert value not in html, value
    assert not re.search(r"\+1\d{10}", html)
    assert "@example.com" not in html


def test_cli_report_honours_output_and_matches_status(campaign: Campaign, tmp_path: Path) -> None:
    """`dialer report --output` writes there; its counts are the ones `dialer status --json` gives."""
    target = tmp_path / "elsewhere" / "q3.html"
    result = run_cli(["report", str(campaign.config), "--output", str(target)], env=OUTCOMES_ENV)

    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"report: {target}"
    html = target.read_text(encoding="utf-8")
    for name, count in _status(campaign.config)["counts"].items():
        assert f'data-count="{name}">{count:,}<' in html


def test_outcome_values_shown_only_when_five_leads_share_them(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A value fewer than 5 leads gave stays hidden (free text would leak); shared ones are shown, escaped."""
    import sqlite3

    from dialer.checkpoint import Checkpoint
    from dialer.lead_state import Status
    from dialer.lead_writes import Claim, Result
    from dialer.leads import KEY
    from dialer.selection import load_table

    rows = lead_rows(12)
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_outcomes_config(
        tmp_path, kyzo.base_url, leads, free_port(), outcomes={"fields": {"said": "said"}}
    )
    settings = settings_for(config, OUTCOMES_ENV)
    keys = load_table(settings).dialable()[KEY].to_list()
    checkpoint = Checkpoint.open(settings.checkpoint_path)
    run = checkpoint.start_run("test", "fp", "fp")
    checkpoint.claim_now([Claim(k, k, None) for k in keys], run)
    checkpoint.record_now([Result(k, Status.PLACED, 1, call_id=f"c{i}") for i, k in enumerate(keys)])
    checkpoint.close()
    db = sqlite3.connect(settings.checkpoint_path)
    for i in range(12):
        said = "<script>alert(1)</script>" if i < 6 else f"my secret plan {i}"
        body = json.dumps({"callId": f"c{i}", "status": "completed", "said": said})
        db.execute(
            "INSERT INTO payloads(digest, received_at, call_id, body) VALUES (?, ?, ?, ?)",
            (f"d{i}", "2026-11-30T10:00:00.000Z", f"c{i}", body),
        )
    db.commit()
    db.close()

    path = report_campaign(settings, tmp_path / "r.html", lambda: datetime(2026, 11, 30, 12, tzinfo=UTC))
    html = path.read_text(encoding="utf-8")

    assert "secret plan" not in html
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shared by 6: shown, as text
    assert "other values (each fewer than 5 leads)" in html


def test_report_without_a_run_says_what_to_do(
    kyzo: KyzoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before any run the report still opens, at out/<campaign>.report.html, and says what to do first."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(5))
    tables = campaign_tables(base_url=kyzo.base_url, leads=leads, folder=tmp_path)
    del tables["output"]["report"]  # the default, out/<campaign>.report.html, is what is tested
    config = write_campaign(tmp_path / "campaign.toml", tables)
    monkeypatch.chdir(tmp_path)

    result = run_cli(["report", str(config)])

    assert result.exit_code == 0, result.stderr
    html = (tmp_path / "out" / "test-campaign.report.html").read_text(encoding="utf-8")
    assert "No run yet: run `dialer validate`, then `dialer run`." in html
    assert "No call has been placed yet." in html


# ---------------------------------------------------------------- in a real browser


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, unable to reach anything but 127.0.0.1 and files."""
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium): browser checks not run")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def test_report_in_a_real_browser(campaign: Campaign, browser: Any) -> None:
    """The page loads with no console error and no request but its own file; every chart shows and is
    not empty; the headline counts equal `dialer status --json`; a full-page screenshot is kept."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))

    page.goto(campaign.report.as_uri())
    page.wait_for_load_state("load")

    assert problems == []
    assert requests == [campaign.report.as_uri()]
    charts = page.locator("figure .chart")
    assert charts.count() >= 4
    for index in range(charts.count()):
        chart = charts.nth(index)
        box = chart.bounding_box()
        assert chart.is_visible() and box is not None and box["width"] > 100 and box["height"] > 50
        assert chart.get_attribute("aria-label")  # the alt text
        assert chart.locator("svg path, svg rect, svg use").count() > 3  # something drawn in it
    status = _status(campaign.config)
    shown = {
        name: int(page.locator(f'dd[data-count="{name}"]').inner_text().replace(",", ""))
        for name in status["counts"]
    }
    assert shown == status["counts"]
    assert page.locator("h1").inner_text() == "Campaign test-campaign"
    called = sum(status["counts"][name] for name in ("placed", "failed", "unknown"))
    assert page.locator("#headline").inner_text().startswith(f"{called:,} of 60 leads called")
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    page.screenshot(path=str(out / "report-screenshot.png"), full_page=True)
    assert (out / "report-screenshot.png").stat().st_size > 10_000


def test_report_reads_on_a_phone_screen(campaign: Campaign, browser: Any) -> None:
    """At 390 px wide nothing spills sideways: the page is as wide as the screen, charts shrink to fit."""
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(campaign.report.as_uri())

    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for box in (page.locator("figure .chart svg").nth(i).bounding_box() for i in range(3)):
        assert box is not None and box["width"] <= 390
