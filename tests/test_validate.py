"""`dialer validate`: the preflight marketing ops read before a campaign, on a messy CRM export."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import KyzoServer
from helpers import API_KEY, lead_rows, run_cli, write_config, write_leads

DATA = Path(__file__).parent / "data"


def _crm_config(
    folder: Path, base_url: str, agent_id: str = "agent_demo", do_not_call: Path = DATA / "do_not_call.txt"
) -> Path:
    text = f"""
[api]
base_url = "{base_url}"
organization_id = "org_demo"

[campaign]
name = "crm"
agent_id = "{agent_id}"
from_phone_number_id = "pn_demo"

[leads]
path = "{DATA / "crm_export.csv"}"
default_region = "US"
allowed_regions = ["US", "CA"]
required = ["first_name"]
do_not_call = "{do_not_call}"

[leads.columns]
phone = "Mobile Phone"
email = "Email"
reference_id = "Record ID"

[leads.agent_params]
first_name = "First Name"
last_name = "Last Name"

[[tools]]
tool_type = "webhook"
execution_order = 0
[tools.args]
webhook_url = "https://crm.example.com/hook"
method = "POST"
headers = {{ Authorization = "Bearer ${{env:HOOK_TOKEN}}" }}

[output]
path = "{folder / "results.csv"}"
errors_path = "{folder / "errors.csv"}"
checkpoint = "{folder / "checkpoint.db"}"
"""
    path = folder / "crm.toml"
    path.write_text(text)
    return path


def test_crm_export_with_every_mess_at_once(tmp_path: Path) -> None:
    """BOM, CRLF, `;`, quoted newlines, padded headers, Excel numbers, dupes, DNC: each row judged right."""
    config = _crm_config(tmp_path, "http://127.0.0.1:9")

    result = run_cli(["validate", str(config), "--offline", "--json"], env={"HOOK_TOKEN": "hook-secret-991"})

    assert result.exit_code == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["rows"] == 12
    assert report["dialable"] == 5
    assert report["rejected"] == {
        "missing required value in column 'First Name'": 1,
        "phone number region GB is not allowed (allowed: CA, US)": 1,
        "invalid email in column 'Email'": 1,
        "impossible phone number (wrong number of digits)": 1,
        "missing phone number": 1,
    }
    assert report["skipped"] == {"duplicate": 1, "do-not-call": 1}
    first = report["first_request"]
    assert first["phoneNumber"] == "+14155550132"
    assert first["referenceId"] == "CRM-001"
    assert first["agentParams"] == {"first_name": "Ana", "last_name": "Silva"}
    assert first["tools"][0]["args"]["headers"]["Authorization"] == "Bearer ***"
    assert "hook-secret-991" not in result.stdout + result.stderr


def test_validate_text_names_rows_and_reasons(tmp_path: Path) -> None:
    """The human report lists each reason with its count and first row numbers."""
    config = _crm_config(tmp_path, "http://127.0.0.1:9")

    result = run_cli(["validate", str(config), "--offline"], env={"HOOK_TOKEN": "t0ken-abc"})

    assert result.exit_code == 0
    assert "12 rows" in result.stdout
    assert "dialable now: 5" in result.stdout
    assert "skipped 1: duplicate (rows 8)" in result.stdout
    assert "skipped 1: do-not-call (rows 9)" in result.stdout
    assert "rejected 1: missing phone number (rows 11)" in result.stdout
    assert '"phoneNumber": "+14155550132"' in result.stdout


def test_run_on_crm_export_dials_only_the_good_rows(kyzo: KyzoServer, tmp_path: Path) -> None:
    """The same messy file through `dialer run`: five calls, the errors file holds the five bad rows."""
    config = _crm_config(tmp_path, kyzo.base_url)

    result = run_cli(["run", str(config)], env={"HOOK_TOKEN": "t0ken-abc"})

    assert result.exit_code == 1
    phones = sorted(c["phoneNumber"] for c in kyzo.calls())
    assert phones == ["+13125550101", "+14155550123", "+14155550132", "+14155550178", "+16045550190"]
    errors = (tmp_path / "errors.csv").read_text().splitlines()
    assert len([line for line in errors if line.startswith("CRM-")]) == 5


def test_do_not_call_csv_export_is_read_from_its_mobile_column(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A CRM opt-out export (`Contact;Mobile Phone;...`) blocks its numbers, not its names."""
    config = _crm_config(tmp_path, kyzo.base_url, do_not_call=DATA / "do_not_call_crm.csv")

    check = run_cli(["validate", str(config), "--offline", "--json"], env={"HOOK_TOKEN": "t0ken-abc"})
    result = run_cli(["run", str(config)], env={"HOOK_TOKEN": "t0ken-abc"})

    assert check.exit_code == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["skipped"] == {"duplicate": 1, "do-not-call": 1}
    assert result.exit_code == 1
    assert len(kyzo.calls()) == 5
    assert "+16175550166" not in [c["phoneNumber"] for c in kyzo.calls()]


def test_validate_checks_the_agent_exists(kyzo: KyzoServer, tmp_path: Path) -> None:
    """Online, validate asks Get Agents: a wrong agent id is a problem (exit 2); the right one is found."""
    good = run_cli(["validate", str(_crm_config(tmp_path, kyzo.base_url)), "--json"], env={"HOOK_TOKEN": "x"})
    bad = run_cli(
        ["validate", str(_crm_config(tmp_path, kyzo.base_url, agent_id="agent_x")), "--json"],
        env={"HOOK_TOKEN": "x"},
    )

    assert good.exit_code == 0
    assert "found" in json.loads(good.stdout)["api"]
    assert bad.exit_code == 2
    assert "agent 'agent_x'" in json.loads(bad.stdout)["problems"][0]
    assert kyzo.calls() == []


def test_validate_counts_leads_already_done(kyzo: KyzoServer, tmp_path: Path) -> None:
    """After a partial run, validate reports what the checkpoint already settled."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(8))
    config = write_config(tmp_path, kyzo.base_url, leads)
    run_cli(["run", str(config), "--limit", "3"])

    report = json.loads(run_cli(["validate", str(config), "--offline", "--json"]).stdout)

    assert report["dialable"] == 5
    assert report["already_done"] == 3


def test_validate_with_nothing_dialable_exits_2(tmp_path: Path) -> None:
    """A list where no row can be dialed fails the preflight."""
    rows = lead_rows(2)
    for row in rows:
        row["phone"] = "n/a"
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_config(tmp_path, "http://127.0.0.1:9", leads)

    result = run_cli(["validate", str(config), "--offline", "--json"], api_key=API_KEY)

    assert result.exit_code == 2
    assert json.loads(result.stdout)["dialable"] == 0
