"""A run of a finished, unchanged campaign answers from the checkpoint and leaves the files alone;
anything that could change a lead's row (a run since, an outcome, the list, the do-not-call list,
the config, a touched file, a flag that makes leads dialable) takes the full run."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import KyzoServer
from helpers import (
    OUTCOMES_ENV,
    free_port,
    lead_rows,
    read_results,
    run_cli,
    write_config,
    write_leads,
    write_outcomes_config,
)

from dialer.checkpoint import Checkpoint

UNCHANGED = "nothing to dial and nothing changed since the files were written"


def _stamps(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {
        name: ((folder / name).stat().st_mtime_ns, (folder / name).read_bytes())
        for name in ("results.csv", "errors.csv", "report.html")
    }


def _finished(kyzo: KyzoServer, tmp_path: Path, count: int = 12, **tables: object) -> tuple[Path, Path]:
    """A campaign run to its end: one rejected row, the rest placed (exit 1)."""
    rows = lead_rows(count)
    rows[4]["phone"] = "12345"
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_config(tmp_path, kyzo.base_url, leads, **tables)  # type: ignore[arg-type]
    assert run_cli(["run", str(config)]).exit_code == 1
    return config, leads


def test_rerun_of_finished_campaign_leaves_files_and_logs_the_run(kyzo: KyzoServer, tmp_path: Path) -> None:
    config, _ = _finished(kyzo, tmp_path)
    before = _stamps(tmp_path)

    again = run_cli(["run", str(config)])

    assert again.exit_code == 1  # the same exit as the run that finished it
    assert UNCHANGED in again.stdout
    assert "placed 11" in again.stdout and "rejected 1" in again.stdout
    assert _stamps(tmp_path) == before
    assert len(kyzo.calls()) == 11
    status = json.loads(run_cli(["status", str(config), "--json"]).stdout)
    assert [run["exit_code"] for run in status["runs"]] == [1, 1]
    assert status["counts"]["placed"] == 11 and status["counts"]["rejected"] == 1

    # and again: a no-op run keeps the files current for the next one
    assert UNCHANGED in run_cli(["run", str(config)]).stdout
    assert _stamps(tmp_path) == before


def test_unchanged_answer_equals_the_full_run(kyzo: KyzoServer, tmp_path: Path) -> None:
    """Same exit code, counts and report path as a run that reads the list again."""
    config, _ = _finished(kyzo, tmp_path)
    quick = run_cli(["run", str(config)])
    (tmp_path / "errors.csv").unlink()  # a file gone: the full run writes it again

    full = run_cli(["run", str(config)])

    assert UNCHANGED in quick.stdout and UNCHANGED not in full.stdout
    assert (tmp_path / "errors.csv").exists()
    assert quick.exit_code == full.exit_code
    counts = [line for line in quick.stdout.splitlines() if "placed" in line]
    assert counts and all(line in full.stdout for line in counts)
    assert str(tmp_path / "report.html") in quick.stdout and str(tmp_path / "report.html") in full.stdout


def _edit_list(tmp_path: Path, leads: Path, config: Path) -> None:
    extra = lead_rows(14)[12]
    line = ",".join(extra[c] for c in ("crm_id", "first_name", "city", "phone", "email"))
    leads.write_text(leads.read_text() + line + "\n")


def _change_config(tmp_path: Path, leads: Path, config: Path) -> None:
    config.write_text(config.read_text().replace("calls_per_second = 10000", "calls_per_second = 9000"))


def _touch_results(tmp_path: Path, leads: Path, config: Path) -> None:
    results = tmp_path / "results.csv"
    results.write_bytes(results.read_bytes())  # the same bytes, another mtime: someone opened and saved it


def _a_run_that_died(tmp_path: Path, leads: Path, config: Path) -> None:
    checkpoint = Checkpoint.open(tmp_path / "checkpoint.db")
    try:
        checkpoint.start_run("dialer run", "fp", "fp")  # started, never ended
    finally:
        checkpoint.close()


def _an_outcome_arrived(tmp_path: Path, leads: Path, config: Path) -> None:
    db = sqlite3.connect(tmp_path / "checkpoint.db")
    with db:
        db.execute(
            "INSERT INTO payloads(digest, received_at, call_id, reference_id, body) VALUES (?, ?, ?, ?, ?)",
            ("d" * 64, "2026-11-30T12:00:00Z", "nobody", None, "{}"),
        )
    db.close()


@pytest.mark.parametrize(
    "change",
    [_edit_list, _change_config, _touch_results, _a_run_that_died, _an_outcome_arrived],
    ids=["list-edited", "config-changed", "results-touched", "run-since", "outcome-since"],
)
def test_any_change_takes_the_full_run(
    kyzo: KyzoServer, tmp_path: Path, change: Callable[[Path, Path, Path], None]
) -> None:
    config, leads = _finished(kyzo, tmp_path)
    change(tmp_path, leads, config)
    written = (tmp_path / "results.csv").stat().st_mtime_ns

    result = run_cli(["run", str(config)])

    assert UNCHANGED not in result.stdout
    assert (tmp_path / "results.csv").stat().st_mtime_ns != written
    calls = kyzo.calls()
    assert len({c["phoneNumber"] for c in calls}) == len(calls)  # nobody twice, whichever path
    assert len(calls) == (12 if change is _edit_list else 11)


def test_changed_do_not_call_list_is_read_again(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A number added to the do-not-call list is a new count for status and a full run."""
    rows = lead_rows(12)
    leads = write_leads(tmp_path / "leads.csv", rows)
    dnc = tmp_path / "dnc.csv"
    dnc.write_text(f"phone\n{lead_rows(13)[12]['phone']}\n")  # a number not in the list
    config = write_config(tmp_path, kyzo.base_url, leads)
    config.write_text(
        config.read_text().replace('default_region = "US"', f'default_region = "US"\ndo_not_call = "{dnc}"')
    )
    assert run_cli(["run", str(config), "--limit", "6"]).exit_code == 4
    run_cli(["export", str(config)])  # counts kept for status with the list as it was
    dialed = {c["phoneNumber"] for c in kyzo.calls()}
    blocked = next(r["phone"] for r in rows if r["phone"] not in dialed)
    dnc.write_text(f"phone\n{blocked}\n")

    status = json.loads(run_cli(["status", str(config), "--json"]).stdout)
    assert status["counts"]["pending"] == 5

    assert run_cli(["run", str(config)]).exit_code == 0
    assert UNCHANGED in run_cli(["run", str(config)]).stdout
    assert blocked not in {c["phoneNumber"] for c in kyzo.calls()}
    assert len(kyzo.calls()) == 11
    results = read_results(tmp_path / "results.csv")
    assert results.filter(results["phone"] == blocked)["dialer_status"].to_list() == ["skipped"]

    dnc.write_text(f"phone\n{blocked}\n{lead_rows(14)[13]['phone']}\n")  # edited once more
    assert UNCHANGED not in run_cli(["run", str(config)]).stdout


def test_retry_failed_with_failed_leads_takes_the_full_run(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    refusing = start_server(error_rate=1.0, error_statuses=(400,))
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    assert run_cli(["run", str(write_config(tmp_path, refusing.base_url, leads))]).exit_code == 1
    healthy = start_server()
    config = write_config(tmp_path, healthy.base_url, leads)
    assert UNCHANGED not in run_cli(["run", str(config)]).stdout  # another base_url: another config
    assert UNCHANGED in run_cli(["run", str(config)]).stdout  # failed leads stay failed without the flag
    assert healthy.calls() == []

    retried = run_cli(["run", str(config), "--retry-failed"])

    assert UNCHANGED not in retried.stdout
    assert retried.exit_code == 0
    assert len(healthy.calls()) == 3


def test_recycling_campaign_always_takes_the_full_run(kyzo: KyzoServer, tmp_path: Path) -> None:
    """Leads fall due for recycling as time passes: the checkpoint alone cannot say nothing changed."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(4))
    recycle = {"statuses": ["no-answer"], "after": "1h", "max_calls": 2}
    config = write_outcomes_config(tmp_path, kyzo.base_url, leads, free_port(), recycle=recycle)
    first = run_cli(["run", str(config)], env=OUTCOMES_ENV)
    assert len(kyzo.calls()) == 4

    again = run_cli(["run", str(config)], env=OUTCOMES_ENV)

    assert UNCHANGED not in again.stdout
    assert again.exit_code == first.exit_code
    assert len(kyzo.calls()) == 4
