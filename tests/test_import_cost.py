"""What `dialer --help` pays for before it prints: the interpreter and the CLI library, not the
dataframe, HTTP or config stack a command loads when it runs (issue 15's fixed costs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import KyzoServer
from helpers import API_KEY, lead_rows, run_cli, settings_for, write_config, write_leads

# (pydantic is not here: typer itself imports it to coerce a command's options)
HEAVY = ("polars", "httpx", "aiohttp", "structlog", "matplotlib", "phonenumbers")
PROBE = """
import json, sys
from dialer.cli import main
sys.argv = ["dialer", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})), file=sys.stderr)
"""


def _imported(*args: str) -> set[str]:
    env = {"KYZO_API_KEY": API_KEY, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(args))],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "args", [["--help"], ["run", "--help"], ["status", "--help"], ["mock-server", "--help"]]
)
def test_help_imports_none_of_the_heavy_libraries(args: list[str]) -> None:
    """`dialer --help` (and a command's --help) loads no dataframe, HTTP, logging or chart library."""
    assert _imported(*args) & set(HEAVY) == set()


def test_the_probe_sees_a_heavy_import_when_there_is_one() -> None:
    """The check above can fail: a command that runs (validate of a missing file) does import them."""
    assert {"polars", "structlog"} <= _imported("validate", "/nonexistent/campaign.toml")


def test_status_of_a_run_campaign_imports_no_dataframe_or_http_library(
    kyzo: KyzoServer, tmp_path: Path
) -> None:
    """`dialer status` after a run answers from SQLite: polars, httpx and aiohttp stay unloaded."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(20))
    config = write_config(tmp_path, kyzo.base_url, leads)
    assert run_cli(["run", str(config), "--limit", "12"]).exit_code == 4

    loaded = _imported("--log-format", "json", "status", str(config), "--json")

    assert loaded & {"polars", "httpx", "aiohttp", "matplotlib"} == set()


def test_run_of_a_finished_unchanged_campaign_imports_no_dataframe_or_http_library(
    kyzo: KyzoServer, tmp_path: Path
) -> None:
    """Cron's run of a finished campaign answers from the checkpoint before the full run is
    imported; once the list changes, the next run loads polars and httpx again (the probe can fail)."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(12))
    config = write_config(tmp_path, kyzo.base_url, leads)
    assert run_cli(["run", str(config)]).exit_code == 0
    run = ("--log-format", "json", "run", str(config), "--no-progress")

    assert _imported(*run) & {"polars", "httpx", "aiohttp", "matplotlib"} == set()

    leads.write_text(leads.read_text() + "CRM-999,Late,Springfield,+14155550199,late@example.com\n")
    assert {"polars", "httpx", "aiohttp"} <= _imported(*run)
    assert len(kyzo.calls()) == 13  # the added lead was called, once, by the full run


def test_status_carried_forward_equals_counting_again(kyzo: KyzoServer, tmp_path: Path) -> None:
    """The counts status carries forward from the last run equal the ones the whole list gives,
    after the checkpoint moved on (a lead claimed, one placed); an edited list is counted again."""
    from dialer.checkpoint import Checkpoint
    from dialer.lead_state import Status
    from dialer.lead_writes import Claim, Result
    from dialer.leads import KEY, PHONE
    from dialer.selection import existing_states, leads_to_dial, load_table
    from dialer.status import full_status, quick_status

    rows = lead_rows(30)
    rows[3]["phone"] = "12345"  # rejected
    rows[8]["phone"] = rows[2]["phone"]  # skipped: a duplicate
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_config(tmp_path, kyzo.base_url, leads)
    assert run_cli(["run", str(config), "--limit", "10"]).exit_code == 4
    settings = settings_for(config)
    quick = quick_status(settings)
    assert quick is not None and quick.counts == full_status(settings).counts

    todo = leads_to_dial(
        load_table(settings), existing_states(settings.checkpoint_path), frozenset({Status.PENDING})
    )
    (first_key, first_phone), (second_key, second_phone) = todo.select(KEY, PHONE).head(2).iter_rows()
    checkpoint = Checkpoint.open(settings.checkpoint_path)
    run = checkpoint.start_run("test", "fp", "fp")
    checkpoint.claim_now([Claim(first_key, first_phone, None), Claim(second_key, second_phone, None)], run)
    checkpoint.record_now([Result(first_key, Status.PLACED, 1, call_id="c-1")])
    checkpoint.close()

    moved = quick_status(settings)
    assert moved is not None and moved.counts == full_status(settings).counts
    assert moved.counts["unknown"] == 1 and moved.counts["placed"] == 11

    leads.write_text(leads.read_text() + "CRM-999,Late,Springfield,+14155550199,late@example.com\n")
    assert quick_status(settings) is None  # another list: counted again, from the list


def test_dialer_sets_its_allocator_option_over_an_inherited_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """polars exports its allocator default to every child of a process that imported it; the
    dialer's own (return freed pages at once) must win, or the 1M-lead paths keep their peaks."""
    from dialer import cli

    monkeypatch.setenv("_RJEM_MALLOC_CONF", "dirty_decay_ms:500,muzzy_decay_ms:1000")
    monkeypatch.setattr(sys, "argv", ["dialer", "--help"])
    with pytest.raises(SystemExit):
        cli.main()
    name, value = cli.ALLOCATOR_CONF
    assert os.environ[name] == value == "dirty_decay_ms:0,muzzy_decay_ms:0"


def test_dialer_leaves_its_objects_to_the_end_of_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the command, its objects are frozen when it returns: the interpreter's last
    collections would otherwise walk all of them (0.1 s for matplotlib's alone) for nothing."""
    import gc

    from dialer import cli

    gc.unfreeze()
    monkeypatch.setattr(sys, "argv", ["dialer", "--help"])
    with pytest.raises(SystemExit):
        cli.main()
    assert gc.get_freeze_count() > 0
