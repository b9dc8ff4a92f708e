"""`dialer init` on realistic exports, the header rules, `--version` and shell completion."""

from __future__ import annotations

import json
import random
import tomllib
from pathlib import Path
from typing import Any

import phonenumbers
import polars as pl
import pytest
from conftest import KyzoServer
from helpers import API_KEY, lead_rows, run_cli, valid_numbers

from dialer.column_guess import EMAIL_HEADER, PHONE_HEADER, REFERENCE_HEADERS, snake_case
from dialer.do_not_call import header_key

IDS = ["--organization-id", "org_demo", "--agent-id", "agent_demo", "--from-phone-number-id", "pn_demo"]


@pytest.mark.parametrize(
    ("header", "phone", "email", "reference"),
    [
        ("Phone", True, False, False),
        ("Mobile Phone Number", True, False, False),
        ("phone_number", True, False, False),
        ("CELL", True, False, False),
        ("Tel", True, False, False),
        ("Telefon", True, False, False),
        ("MSISDN", True, False, False),
        ("Number 1", True, False, False),
        ("E-mail Address", False, True, False),
        ("Email", False, True, False),
        ("CRM ID", False, False, True),
        ("contact_id", False, False, True),
        ("Lead Id", False, False, True),
        ("Record ID", False, False, True),
        ("id", False, False, True),
        ("First Name", False, False, False),
        ("Hotel", False, False, False),
        ("Title", False, False, False),
        ("Company", False, False, False),
    ],
)
def test_header_recognition_rules(header: str, phone: bool, email: bool, reference: bool) -> None:
    key = header_key(header)
    assert bool(PHONE_HEADER.search(key)) is phone
    assert bool(EMAIL_HEADER.search(key)) is email
    assert (key in REFERENCE_HEADERS) is reference


@pytest.mark.parametrize(
    ("name", "key"),
    [("First Name", "first_name"), ("firstName", "first_name"), ("Lifecycle Stage", "lifecycle_stage"),
     ("ZIP/Postal code", "zip_postal_code"), ("2nd line", "col_2nd_line")],
)  # fmt: skip
def test_agent_param_keys_are_snake_case(name: str, key: str) -> None:
    assert snake_case(name) == key


def _national_de(count: int) -> list[str]:
    """Valid German numbers written the national way, as a European export has them."""
    rng, found = random.Random(5), []
    while len(found) < count:
        text = f"0151 {rng.randint(10000000, 99999999)}"
        if phonenumbers.is_valid_number(phonenumbers.parse(text, "DE")):
            found.append(text)
    return found


def _hubspot(folder: Path) -> tuple[Path, dict[str, Any]]:
    rows = lead_rows(40, seed=21)
    landlines = valid_numbers(40, seed=22)
    frame = pl.DataFrame(
        {
            "Record ID": [str(1000 + i) for i in range(40)],
            "First Name": [r["first_name"] for r in rows],
            "Last Name": ["Smith"] * 40,
            "Email": [r["email"] for r in rows],
            "Phone Number": [landlines[i] if i % 3 == 0 else "" for i in range(40)],
            "Mobile Phone Number": [r["phone"] for r in rows],
            "Company Name": ["Acme"] * 40,
            "Lifecycle Stage": ["lead"] * 40,
        }
    )
    path = folder / "hubspot-export.csv"
    frame.write_csv(path)
    expected = {"phone": "Mobile Phone Number", "email": "Email", "reference_id": "Record ID", "region": "US"}
    return path, {**expected, "dialable": 40, "also": "Phone Number", "secrets": rows}


def _salesforce(folder: Path) -> tuple[Path, dict[str, Any]]:
    rows = lead_rows(30, seed=23)
    frame = pl.DataFrame(
        {
            "Lead ID": [f"00Q{i:012d}" for i in range(30)],
            "Salutation": ["Ms."] * 30,
            "First Name": [r["first_name"] for r in rows],
            "Last Name": ["Doe"] * 30,
            "Company": ["Initech"] * 30,
            "Phone": [r["phone"] for r in rows],
            "Mobile": [""] * 30,
            "Email": [r["email"] for r in rows],
            "Lead Source": ["Web"] * 30,
        }
    )
    path = folder / "salesforce leads.csv"
    frame.write_csv(path)
    expected = {"phone": "Phone", "email": "Email", "reference_id": "Lead ID", "region": "US"}
    return path, {**expected, "dialable": 30, "also": None, "secrets": rows}


def _parquet(folder: Path) -> tuple[Path, dict[str, Any]]:
    rows = lead_rows(25, seed=24)
    frame = pl.DataFrame(
        {k: [r[k] for r in rows] for k in ("crm_id", "first_name", "city", "phone", "email")}
    )
    path = folder / "leads.parquet"
    frame.write_parquet(path)
    expected = {"phone": "phone", "email": "email", "reference_id": "crm_id", "region": "US"}
    return path, {**expected, "dialable": 25, "also": None, "secrets": rows}


def _european(folder: Path) -> tuple[Path, dict[str, Any]]:
    numbers = _national_de(20)
    lines = ["Kundennummer;Vorname;Telefon;E-Mail;Stadt"]
    secrets = []
    for i, number in enumerate(numbers):
        email = f"kunde{i}@beispiel.de"
        lines.append(f"K-{i:04d};Anna;{number};{email};Berlin")
        secrets.append({"phone": number, "email": email})
    path = folder / "kunden.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected = {"phone": "Telefon", "email": "E-Mail", "reference_id": None, "region": "DE"}
    return path, {**expected, "dialable": 20, "also": None, "secrets": secrets}


def _number_1(folder: Path) -> tuple[Path, dict[str, Any]]:
    rows = lead_rows(15, seed=25)
    frame = pl.DataFrame(
        {
            "Name": [r["first_name"] for r in rows],
            "Number 1": [r["phone"] for r in rows],
            "Notes": ["call"] * 15,
        }
    )
    path = folder / "numbers.csv"
    frame.write_csv(path)
    expected = {"phone": "Number 1", "email": None, "reference_id": None, "region": "US"}
    return path, {**expected, "dialable": 15, "also": None, "secrets": rows}


def _by_content(folder: Path) -> tuple[Path, dict[str, Any]]:
    """No header names the phone or e-mail: the values decide."""
    rows = lead_rows(15, seed=26)
    frame = pl.DataFrame(
        {
            "Who": [r["first_name"] for r in rows],
            "Reach": [r["phone"] for r in rows],
            "Contact": [r["email"] for r in rows],
        }
    )
    path = folder / "plain.csv"
    frame.write_csv(path)
    expected = {"phone": "Reach", "email": "Contact", "reference_id": None, "region": "US"}
    return path, {**expected, "dialable": 15, "also": None, "secrets": rows}


@pytest.mark.parametrize("export", [_hubspot, _salesforce, _parquet, _european, _number_1, _by_content])
def test_init_maps_a_real_export_and_validate_accepts_it(
    export: Any, kyzo: KyzoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    leads, expected = export(tmp_path)
    config = tmp_path / "campaign.toml"

    made = run_cli(
        ["init", str(leads), "--output", str(config), "--base-url", kyzo.base_url, *IDS], api_key=None
    )

    assert made.exit_code == 0, made.stdout + made.stderr
    document = tomllib.loads(config.read_text())
    columns = document["leads"]["columns"]
    assert columns["phone"] == expected["phone"]
    assert columns.get("email") == expected["email"]
    assert columns.get("reference_id") == expected["reference_id"]
    assert document["leads"]["default_region"] == expected["region"]
    assert f"phone: column '{expected['phone']}'" in made.stdout
    if expected["also"]:
        assert f"also qualified: '{expected['also']}'" in config.read_text()
    text = config.read_text()
    for row in expected["secrets"]:
        assert row["phone"] not in text and row["email"] not in text  # masked, never whole

    report = json.loads(run_cli(["validate", str(config), "--offline", "--json"]).stdout)
    assert report["dialable"] == expected["dialable"]
    assert kyzo.calls() == []

    again = run_cli(["init", str(leads), "--output", str(config), *IDS])
    assert again.exit_code == 2 and f"{config}: already exists" in again.stderr
    assert run_cli(["init", str(leads), "--output", str(config), "--force", *IDS]).exit_code == 0


def test_init_without_ids_writes_unset_values_that_validate_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    leads = tmp_path / "q4 leads.csv"
    pl.DataFrame(lead_rows(5)).write_csv(leads)

    made = run_cli(["init", str(leads)], api_key=None)

    config = tmp_path / "configs" / "q4 leads.toml"  # configs/ exists: the file goes there
    assert made.exit_code == 0 and config.exists()
    assert tomllib.loads(config.read_text())["campaign"]["name"] == "q4-leads"
    result = run_cli(["validate", str(config), "--offline"], api_key=None)
    assert result.exit_code == 2
    for key in ("api.base_url", "api.organization_id", "campaign.agent_id", "campaign.from_phone_number_id"):
        assert f"{key}: is not set yet: give " in result.stderr


def test_init_asks_the_account_for_its_only_agent_with_a_key_and_nothing_without(
    kyzo: KyzoServer, tmp_path: Path
) -> None:
    leads = tmp_path / "leads.csv"
    pl.DataFrame(lead_rows(5)).write_csv(leads)
    config = tmp_path / "campaign.toml"
    base = [
        "init",
        str(leads),
        "--output",
        str(config),
        "--base-url",
        kyzo.base_url,
        "--organization-id",
        "org_demo",
    ]

    quiet = run_cli(base, api_key=None)
    assert quiet.exit_code == 0 and kyzo.metrics()["requests"] == 0  # without the key nothing is sent
    assert "<unset:" in tomllib.loads(config.read_text())["campaign"]["agent_id"]

    asked = run_cli([*base, "--force"], api_key=API_KEY)
    assert asked.exit_code == 0, asked.stderr
    campaign = tomllib.loads(config.read_text())["campaign"]
    assert campaign["agent_id"] == "agent_demo"
    assert "agent_id: agent_demo (the organization's only agent)" in asked.stdout
    assert run_cli(["validate", str(config)]).exit_code == 0  # online: the agent and number exist


def test_version_and_completion() -> None:
    from dialer import __version__

    assert run_cli(["--version"]).stdout.strip() == f"kyzo-dialer {__version__}"
    versions = json.loads(run_cli(["version", "--json"]).stdout)
    assert versions["kyzo-dialer"] == __version__
    assert {"python", "polars", "httpx", "aiohttp"} <= versions.keys() and all(versions.values())
    script = run_cli(["--show-completion", "bash"]).stdout
    assert "_DIALER_COMPLETE" in script or "complete" in script
