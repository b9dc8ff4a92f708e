"""Never call twice, never lose a result: real processes, real signals, real crashes."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from conftest import KyzoServer
from helpers import (
    API_KEY,
    dialer_subprocess,
    lead_rows,
    read_ledger,
    read_results,
    run_cli,
    write_config,
    write_leads,
)

from dialer.run_lock import RunLock


def _wait_for_calls(ledger: Path, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while len(read_ledger(ledger)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"the ledger did not reach {count} calls in {timeout} s")
        time.sleep(0.02)


def _assert_results_match_ledger(results: pl.DataFrame, ledger: list[dict[str, str]]) -> None:
    """Every placed row has its callId in the ledger; every ledger call is a placed or unknown row."""
    phones = Counter(call["phoneNumber"] for call in ledger)
    assert max(phones.values(), default=0) <= 1, "a phone number was called twice"
    by_call_id = {call["callId"]: call for call in ledger}
    placed = results.filter(pl.col("dialer_status") == "placed")
    for reference, call_id in zip(placed["crm_id"], placed["dialer_call_id"], strict=True):
        assert by_call_id[call_id]["referenceId"] == reference
    settled = dict(zip(results["crm_id"], results["dialer_status"], strict=True))
    for call in ledger:
        assert settled[call["referenceId"]] in ("placed", "unknown"), call


@pytest.mark.slow
def test_sigkill_at_random_moments_never_calls_twice(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """Killed with SIGKILL at 12 random moments of a 2,000-lead run, resumed each time: nobody twice."""
    server = start_server(latency_ms=30, latency_jitter_ms=10)
    # 20 s of dialing at 100 calls/s: twelve runs of at most 1.6 s each cannot finish the list,
    # so every kill lands mid-list however fast the machine.
    rows = lead_rows(2000, seed=5)
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_config(
        tmp_path, server.base_url, leads, limits={"max_concurrency": 8, "calls_per_second": 100}
    )
    rng = random.Random(20261126)
    kills = 0
    for _ in range(12):
        process = dialer_subprocess(["run", str(config), "--no-progress"])
        time.sleep(rng.uniform(0.4, 1.6))
        if process.poll() is not None:  # finished before this kill: the checks below still apply
            process.communicate()
            break
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=10)
        kills += 1
    final = dialer_subprocess(["run", str(config), "--no-progress"])
    out, err = final.communicate(timeout=120)

    assert kills == 12
    assert final.returncode in (0, 1), out + err
    ledger = read_ledger(server.ledger)
    results = read_results(tmp_path / "results.csv")
    statuses = Counter(results["dialer_status"].to_list())
    assert set(statuses) <= {"placed", "unknown"}
    assert statuses["unknown"] <= kills * 8  # at most what was in flight at each kill
    assert statuses["placed"] + statuses["unknown"] == 2000
    _assert_results_match_ledger(results, ledger)
    assert len(ledger) >= statuses["placed"]


def test_sigterm_stops_gracefully_and_resume_finishes(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """SIGTERM mid-run: exit 4 with a complete results file; a rerun finishes the list."""
    server = start_server(latency_ms=30)
    leads = write_leads(tmp_path / "leads.csv", lead_rows(400))
    config = write_config(
        tmp_path, server.base_url, leads, limits={"calls_per_second": 100, "max_concurrency": 4}
    )
    process = dialer_subprocess(["run", str(config)])
    _wait_for_calls(server.ledger, 20)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)

    assert process.returncode == 4, out + err
    assert "resume with: dialer run" in out
    results = read_results(tmp_path / "results.csv")
    assert results.height == 400
    statuses = Counter(results["dialer_status"].to_list())
    assert set(statuses) == {"placed", "pending"}
    assert statuses["placed"] == len(read_ledger(server.ledger))

    assert run_cli(["run", str(config)]).exit_code == 0
    final = read_results(tmp_path / "results.csv")
    assert set(final["dialer_status"]) == {"placed"}
    _assert_results_match_ledger(final, read_ledger(server.ledger))
    assert len(read_ledger(server.ledger)) == 400


def test_second_sigint_stops_at_once_and_in_flight_become_unknown(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """A second Ctrl-C does not wait: requests on the wire end unknown, never pending."""
    server = start_server(latency_ms=3000)
    leads = write_leads(tmp_path / "leads.csv", lead_rows(6))
    config = write_config(tmp_path, server.base_url, leads, limits={"max_concurrency": 3})
    process = dialer_subprocess(["run", str(config)])
    deadline = time.monotonic() + 20
    while server.metrics()["requests"] < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    stderr: list[str] = []
    first_seen = threading.Event()

    def read_stderr() -> None:  # the second Ctrl-C only once the first was handled: never merged
        assert process.stderr is not None
        for line in process.stderr:
            stderr.append(line)
            if '"event": "signal"' in line:
                first_seen.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    process.send_signal(signal.SIGINT)
    assert first_seen.wait(10), "".join(stderr)
    process.send_signal(signal.SIGINT)
    with process:  # closes both pipes
        assert process.stdout is not None
        out = process.stdout.read()
        process.wait(timeout=10)
        reader.join(5)
    err = "".join(stderr)

    assert process.returncode == 4, out + err
    statuses = Counter(read_results(tmp_path / "results.csv")["dialer_status"].to_list())
    assert statuses == {"unknown": 3, "pending": 3}
    run_cli(["run", str(config)])
    assert server.metrics()["requests"] == 6  # the 3 unknown were not sent again


def test_two_runs_at_once_one_waits_out_with_exit_5(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """Two `dialer run` on one checkpoint at once: one dials, the other exits 5; no duplicates."""
    server = start_server(latency_ms=10)
    leads = write_leads(tmp_path / "leads.csv", lead_rows(300))
    # Paced so the first run lasts ~10 s: long enough for the second to start while it dials.
    config = write_config(
        tmp_path, server.base_url, leads, limits={"max_concurrency": 4, "calls_per_second": 30}
    )
    first = dialer_subprocess(["run", str(config)])
    _wait_for_calls(server.ledger, 5)
    second = dialer_subprocess(["run", str(config)])
    _, second_err = second.communicate(timeout=60)
    assert first.poll() is None, "the first run ended before the second started: the test proves nothing"
    first.communicate(timeout=60)

    assert first.returncode == 0
    assert second.returncode == 5
    assert f"pid {first.pid}" in second_err
    _assert_results_match_ledger(read_results(tmp_path / "results.csv"), read_ledger(server.ledger))
    assert len(read_ledger(server.ledger)) == 300


def test_stale_lock_of_a_dead_process_is_taken_over(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A lock left by a process killed with SIGKILL does not block the next run."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    config = write_config(tmp_path, kyzo.base_url, leads)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from dialer.run_lock import RunLock; "
            "RunLock(Path(sys.argv[1])).acquire(); print('locked', flush=True); time.sleep(60)",
            str(tmp_path / "checkpoint.db"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    assert run_cli(["run", str(config)]).exit_code == 5
    holder.kill()
    holder.wait()
    holder.stdout.close()

    assert run_cli(["run", str(config)]).exit_code == 0
    assert len(kyzo.calls()) == 3


def test_server_restart_mid_run_loses_nothing(tmp_path: Path) -> None:
    """The API goes away for a second mid-run and comes back: the run finishes, nobody twice."""
    ledger = tmp_path / "ledger.jsonl"

    def start(port: int) -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "dialer", "mock-server", "--port", str(port), "--ledger", str(ledger)],
            env={**os.environ, "KYZO_API_KEY": API_KEY},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on" in line, line
        return process, line.rsplit(" ", 1)[1].strip()

    server, url = start(0)
    port = int(url.rsplit(":", 1)[1])
    leads = write_leads(tmp_path / "leads.csv", lead_rows(300))
    config = write_config(
        tmp_path, url, leads, limits={"calls_per_second": 60, "max_concurrency": 4, "max_attempts": 8}
    )
    dialer = dialer_subprocess(["run", str(config)])
    try:
        _wait_for_calls(ledger, 40)
        server.terminate()
        server.communicate(timeout=10)
        time.sleep(1.0)
        server, _ = start(port)
        out, err = dialer.communicate(timeout=120)
    finally:
        server.terminate()
        server.communicate(timeout=10)

    assert dialer.returncode in (0, 1, 4), out + err
    results = read_results(tmp_path / "results.csv")
    statuses = Counter(results["dialer_status"].to_list())
    assert statuses["placed"] + statuses["unknown"] + statuses["pending"] == 300
    assert statuses["failed"] == 0
    _assert_results_match_ledger(results, read_ledger(ledger))


def test_foreign_or_corrupt_checkpoint_is_refused_untouched(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A checkpoint path holding another file: exit 2, clear message, file byte-identical, no call."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    config = write_config(tmp_path, kyzo.base_url, leads)
    checkpoint = tmp_path / "checkpoint.db"
    import sqlite3

    other = sqlite3.connect(checkpoint)
    other.execute("CREATE TABLE notes (x TEXT)")
    other.commit()
    other.close()
    for content in (checkpoint.read_bytes(), b"this is not a database at all" * 10):
        checkpoint.write_bytes(content)
        before = hashlib.sha256(checkpoint.read_bytes()).hexdigest()

        result = run_cli(["run", str(config)])

        assert result.exit_code == 2
        assert "not a kyzo-dialer checkpoint" in result.stderr
        assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == before
    assert kyzo.calls() == []


def test_changed_agent_is_refused_unless_new_campaign(kyzo: KyzoServer, tmp_path: Path) -> None:
    """Another agent on an existing checkpoint is a different campaign: refused, or set aside on request."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    assert run_cli(["run", str(write_config(tmp_path, kyzo.base_url, leads))]).exit_code == 0
    changed = write_config(tmp_path, kyzo.base_url, leads, from_phone_number_id="pn_other")

    refused = run_cli(["run", str(changed)])

    assert refused.exit_code == 2
    assert "different campaign" in refused.stderr
    assert "from_phone_number_id was 'pn_demo', now 'pn_other'" in refused.stderr
    assert len(kyzo.calls()) == 3
    aside = run_cli(["run", str(changed), "--new-campaign"])
    assert aside.exit_code == 1  # pn_other is unknown to the server: 400 for each lead
    assert len(list(tmp_path.glob("checkpoint.db.*.old"))) == 1
    sent = kyzo.metrics()["requests"]

    # Left in a crontab, the flag must not start the same campaign afresh at every run.
    again = run_cli(["run", str(changed), "--new-campaign"])
    assert again.exit_code == 1
    assert "new_campaign_ignored" in again.stderr
    assert kyzo.metrics()["requests"] == sent
    assert len(list(tmp_path.glob("checkpoint.db.*.old"))) == 1

    # Two set-asides within one second keep both old checkpoints (and their callIds).
    back = write_config(tmp_path, kyzo.base_url, leads)
    assert run_cli(["run", str(back), "--new-campaign"]).exit_code == 0
    assert len(list(tmp_path.glob("checkpoint.db.*.old"))) == 2


def test_placed_lead_keeps_its_call_id_after_its_row_turns_invalid(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A row edited into a rejection, or added to do-not-call, after its call keeps status and callId."""
    rows = lead_rows(4, seed=8)
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_config(tmp_path, kyzo.base_url, leads)
    assert run_cli(["run", str(config)]).exit_code == 0
    first = read_results(tmp_path / "results.csv")
    call_ids = dict(zip(first["crm_id"], first["dialer_call_id"], strict=True))

    rows[1] = {**rows[1], "email": "not-an-email"}
    write_leads(tmp_path / "leads.csv", rows)
    (tmp_path / "dnc.txt").write_text(rows[2]["phone"] + "\n")
    text = config.read_text().replace(
        'default_region = "US"', f'default_region = "US"\ndo_not_call = "{tmp_path / "dnc.txt"}"'
    )
    config.write_text(text)
    result = run_cli(["run", str(config)])

    assert len(kyzo.calls()) == 4
    after = read_results(tmp_path / "results.csv")
    assert after["dialer_status"].to_list() == ["placed"] * 4
    assert dict(zip(after["crm_id"], after["dialer_call_id"], strict=True)) == call_ids
    assert after["dialer_error"][1] == "called before the row changed (now: invalid email in column 'email')"
    assert after["dialer_error"][2] == "called before the row changed (now: do-not-call)"
    assert result.exit_code == 0


def test_edited_list_keeps_placed_leads_and_dials_new_ones(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A re-exported list (reordered, rows removed and added) dials only the new leads."""
    rows = lead_rows(30, seed=3)
    leads = write_leads(tmp_path / "leads.csv", rows[:20])
    config = write_config(tmp_path, kyzo.base_url, leads)
    assert run_cli(["run", str(config)]).exit_code == 0
    first = read_results(tmp_path / "results.csv")
    call_ids = dict(zip(first["crm_id"], first["dialer_call_id"], strict=True))

    edited = list(reversed(rows[5:20])) + rows[20:30]
    write_leads(tmp_path / "leads.csv", edited)
    assert run_cli(["run", str(config)]).exit_code == 0

    calls = kyzo.calls()
    assert len(calls) == 30
    assert len({c["phoneNumber"] for c in calls}) == 30
    second = read_results(tmp_path / "results.csv")
    assert second["crm_id"].to_list() == [r["crm_id"] for r in edited]
    for reference, call_id in zip(second["crm_id"], second["dialer_call_id"], strict=True):
        if reference in call_ids:
            assert call_id == call_ids[reference]


def test_redial_unknown_needs_confirmation(start_server: Callable[..., KyzoServer], tmp_path: Path) -> None:
    """Unknown leads are re-sent only with --redial-unknown, and without a TTY only with --yes."""
    flaky = start_server(error_rate=1.0, error_statuses=(502,))
    leads = write_leads(tmp_path / "leads.csv", lead_rows(2))
    assert run_cli(["run", str(write_config(tmp_path, flaky.base_url, leads))]).exit_code == 1
    healthy = start_server()
    config = write_config(tmp_path, healthy.base_url, leads)

    assert run_cli(["run", str(config), "--redial-unknown"]).exit_code == 2
    assert healthy.calls() == []
    assert run_cli(["run", str(config), "--redial-unknown", "--yes"]).exit_code == 0
    assert len(healthy.calls()) == 2


def test_status_shows_counts_and_runs(kyzo: KyzoServer, tmp_path: Path) -> None:
    """`dialer status --json` reports counts per status and every run with its exit code."""
    import json

    rows = lead_rows(6)
    rows[0]["phone"] = "nope"
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_config(tmp_path, kyzo.base_url, leads)
    run_cli(["run", str(config), "--limit", "2"])
    run_cli(["run", str(config)])

    result = run_cli(["status", str(config), "--json"])

    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["counts"]["placed"] == 5
    assert report["counts"]["rejected"] == 1
    assert [r["exit_code"] for r in report["runs"]] == [4, 1]
    assert all(len(r["input_fingerprint"]) == 64 for r in report["runs"])
    text = run_cli(["status", str(config)]).stdout
    first = report["runs"][0]
    assert f"config {first['config_fingerprint'][:12]}, input {first['input_fingerprint'][:12]}" in text
    assert "placed 5" in text


def test_unwritable_output_is_refused_before_any_call(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A file in the way of the output folder, or the input as output: exit 2, nothing sent."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(2))
    config = write_config(tmp_path, kyzo.base_url, leads)
    (tmp_path / "blocker").write_text("a file, not a folder")

    blocked = run_cli(["run", str(config), "--output", str(tmp_path / "blocker" / "results.csv")])
    same = run_cli(["run", str(config), "--output", str(leads)])

    assert blocked.exit_code == 2
    assert "blocker" in blocked.stderr
    assert same.exit_code == 2
    assert "overwrite" in same.stderr
    assert kyzo.calls() == []
    assert not (tmp_path / "checkpoint.db").exists()


def test_lock_message_names_holder(tmp_path: Path) -> None:
    """The lock refusal names the other process's pid, host and start time."""
    from dialer.errors import AlreadyRunning

    with RunLock(tmp_path / "c.db"), pytest.raises(AlreadyRunning) as caught:
        RunLock(tmp_path / "c.db").acquire()
    message = str(caught.value)
    assert f"pid {os.getpid()}" in message
    assert "started 20" in message
