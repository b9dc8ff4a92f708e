"""Faults from outside, checked from the local server's ledger: a process that stands still, TLS as
production runs it (a private CA, a wrong name, an expired certificate), a server restarted
mid-run, and a checkpoint whose disk fills mid-run. Each is looped so an intermittent path shows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import trustme
from conftest import KyzoServer
from helpers import (
    API_KEY,
    dialer_subprocess,
    free_port,
    lead_rows,
    read_ledger,
    read_results,
    run_cli,
    write_config,
    write_leads,
)

ROOT = Path(__file__).resolve().parent.parent


def _most_in_one_second(stamps: list[float]) -> int:
    ordered = sorted(stamps)
    best = start = 0
    for end, stamp in enumerate(ordered):
        while stamp - ordered[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


# ---------------------------------------------------------------- a process that stands still


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(2))
def test_a_stopped_and_continued_run_sends_no_catch_up_burst(
    kyzo: KyzoServer, tmp_path: Path, round_: int
) -> None:
    """SIGSTOP for 4 s in a 50 calls/s run with 50 in flight, then SIGCONT: the server never sees
    more than 51 calls in any one second (the slots that passed are booked again, not paid back)."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(400, seed=40 + round_))
    config = write_config(
        tmp_path, kyzo.base_url, leads, limits={"calls_per_second": 50, "max_concurrency": 50}
    )
    process = dialer_subprocess(["run", str(config), "--no-progress"])
    try:
        deadline = time.monotonic() + 20
        while len(kyzo.calls()) < 80 and time.monotonic() < deadline:  # well into the campaign
            time.sleep(0.05)
        process.send_signal(signal.SIGSTOP)
        time.sleep(4.0)
        process.send_signal(signal.SIGCONT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr[-2000:]

    calls = kyzo.calls()
    assert len(calls) == 400
    assert max(Counter(c["phoneNumber"] for c in calls).values()) == 1
    assert kyzo.metrics()["max_accepted_in_any_1s_window"] <= 51
    assert _most_in_one_second([c["ts"] for c in calls]) <= 51


# ---------------------------------------------------------------- TLS as production runs it


@dataclass
class Tls:
    ca: Path  # the private CA's certificate (PEM): what api.ca_bundle points at
    cert: Path
    key: Path


def _tls(folder: Path, *names: str, expired: bool = False) -> Tls:
    """A throwaway CA (trustme) and a server certificate it signed for `names`."""
    authority = trustme.CA()
    if expired:
        past = datetime.now(UTC) - timedelta(days=30)
        issued = authority.issue_cert(*names, not_before=past - timedelta(days=30), not_after=past)
    else:
        issued = authority.issue_cert(*names)
    tls = Tls(folder / "ca.pem", folder / "server-chain.pem", folder / "server-key.pem")
    authority.cert_pem.write_to_path(str(tls.ca))
    for number, blob in enumerate(issued.cert_chain_pems):
        blob.write_to_path(str(tls.cert), append=number > 0)
    issued.private_key_pem.write_to_path(str(tls.key))
    return tls


def _https_config(folder: Path, server: KyzoServer, tls: Tls | None, transport: str) -> Path:
    leads = write_leads(folder / "leads.csv", lead_rows(30, seed=7))
    api = {"transport": transport, **({"ca_bundle": str(tls.ca)} if tls else {})}
    return write_config(folder, server.base_url, leads, limits={"max_concurrency": 4}, api=api)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_a_private_ca_in_api_ca_bundle_is_trusted(
    start_server: Callable[..., KyzoServer], tmp_path: Path, transport: str
) -> None:
    """HTTPS to the local server with a certificate from a private CA: api.ca_bundle makes it work."""
    tls = _tls(tmp_path, "127.0.0.1", "localhost")
    server = start_server(tls_certfile=tls.cert, tls_keyfile=tls.key)
    assert server.base_url.startswith("https://127.0.0.1:")

    result = run_cli(["run", str(_https_config(tmp_path, server, tls, transport))])

    assert result.exit_code == 0, result.stdout + result.stderr
    assert len(server.calls()) == 30


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("unknown authority", "unable to get local issuer certificate"),
        ("another host name", "mismatch, certificate is not valid for '127.0.0.1'"),
        ("expired", "certificate has expired"),
    ],
)
def test_a_refused_certificate_stops_the_run_at_once_with_nothing_sent(
    start_server: Callable[..., KyzoServer], tmp_path: Path, transport: str, case: str, words: str
) -> None:
    """A certificate the dialer must refuse: exit 3 at the first lead, a sentence naming the problem
    and api.ca_bundle, no lead placed or unknown, and no request (so no API key) reached the server."""
    names = ("other.example",) if case == "another host name" else ("127.0.0.1", "localhost")
    tls = _tls(tmp_path, *names, expired=case == "expired")
    server = start_server(tls_certfile=tls.cert, tls_keyfile=tls.key)
    trusted = None if case == "unknown authority" else tls  # the system store knows no private CA

    result = run_cli(["run", str(_https_config(tmp_path, server, trusted, transport))])

    assert result.exit_code == 3, result.stdout + result.stderr
    assert "TLS certificate was refused" in result.stdout and words in result.stdout
    assert "api.ca_bundle" in result.stdout
    # the test's own look at the server's counters: it must not depend on the certificate under test
    seen = httpx.get(f"{server.base_url}/_mock/metrics", verify=False).json()
    assert seen["requests"] == 0  # every handshake failed: no request, so no x-api-key, reached it
    statuses = Counter(read_results(tmp_path / "results.csv")["dialer_status"].to_list())
    assert statuses == {"pending": 30}
    assert API_KEY not in result.stdout + result.stderr


# ---------------------------------------------------------------- a server restarted mid-run


def _serve(port: int, ledger: Path) -> subprocess.Popen[str]:
    """The local server as a process of its own, on a fixed port, so it can die and come back."""
    env = {**os.environ, "KYZO_API_KEY": API_KEY}
    args = [sys.executable, "-m", "dialer", "mock-server", "--port", str(port), "--ledger", str(ledger)]
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    process.stdout.close()
    assert "listening on" in line, line
    return process


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_server_restarted_mid_run_rings_nobody_twice(tmp_path: Path, how: signal.Signals) -> None:
    """The API goes away mid-run and comes back a second later: the run carries on, nobody is
    called twice, every placed call is in the results, and only calls cut off in flight are unknown."""
    port, ledger = free_port(), tmp_path / "ledger.jsonl"
    leads = write_leads(tmp_path / "leads.csv", lead_rows(300, seed=9))
    config = write_config(
        tmp_path,
        f"http://127.0.0.1:{port}",
        leads,
        limits={"calls_per_second": 60, "max_concurrency": 4, "max_attempts": 8},
    )
    server = _serve(port, ledger)
    run = dialer_subprocess(["run", str(config), "--no-progress"])
    try:
        deadline = time.monotonic() + 20
        while len(read_ledger(ledger)) < 60 and time.monotonic() < deadline:
            time.sleep(0.02)
        server.send_signal(how)
        server.wait(timeout=20)
        time.sleep(1.0)
        server = _serve(port, ledger)
        _, stderr = run.communicate(timeout=90)
    finally:
        for process in (run, server):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=20)

    assert run.returncode in (0, 1), stderr[-2000:]
    calls = read_ledger(ledger)
    assert max(Counter(c["phoneNumber"] for c in calls).values()) == 1
    results = read_results(tmp_path / "results.csv")
    placed = set(results.filter(results["dialer_status"] == "placed")["dialer_call_id"].to_list())
    unknown = results.filter(results["dialer_status"] == "unknown").height
    assert placed <= {c["callId"] for c in calls}
    assert len(placed) + unknown >= len(calls) - 4  # at most the calls in flight lost their answer
    assert set(results["dialer_status"].to_list()) <= {"placed", "unknown"}
    assert unknown <= 4


# ---------------------------------------------------------------- a disk that fills mid-run


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs of its own, where the machine lets the tests mount one (root, no sandbox)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(disk)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a small tmpfs here ({mounted.stderr.decode().strip()}): disk-full run not tested"
        )
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path) -> None:
    with (disk / "filler").open("wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass  # ENOSPC: the disk is full, which was the point


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(3))
def test_a_disk_that_fills_mid_run_ends_in_exit_4_and_loses_nothing(
    kyzo: KyzoServer, small_disk: Path, tmp_path: Path, round_: int
) -> None:
    """The checkpoint's disk fills while calls go out: exit 4 with one sentence naming the checkpoint
    and the cause (never 70 or 2); after room is made, a rerun with the same --log-file finishes,
    nobody twice, and every call the server placed is `placed` with its callId."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(1500, seed=60 + round_))
    config = write_config(
        small_disk, kyzo.base_url, leads, limits={"calls_per_second": 300, "max_concurrency": 8}
    )
    log = tmp_path / "dialer.jsonl"  # on another disk, as production keeps logs
    run = dialer_subprocess(["--log-file", str(log), "run", str(config), "--no-progress"])
    try:
        deadline = time.monotonic() + 30
        while len(kyzo.calls()) < 200 + 100 * round_ and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        _fill(small_disk)
        run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert run.returncode == 4, events[-3:]
    [error] = [e for e in events if e["event"] == "error"]
    assert str(small_disk / "checkpoint.db") in error["message"]
    assert "database or disk is full" in error["message"] and "Free some space" in error["message"]
    assert not [e for e in events if e["event"] == "internal_error"]

    (small_disk / "filler").unlink()
    again = run_cli(["--log-file", str(log), "run", str(config)])

    assert again.exit_code == 0, again.stdout + again.stderr
    calls = kyzo.calls()
    assert len(calls) == 1500 and max(Counter(c["phoneNumber"] for c in calls).values()) == 1
    results = read_results(small_disk / "results.csv")
    assert Counter(results["dialer_status"].to_list()) == {"placed": 1500}
    assert set(results["dialer_call_id"].to_list()) == {c["callId"] for c in calls}


def test_an_answer_the_checkpoint_could_not_take_is_taken_back_from_the_log(
    kyzo: KyzoServer, tmp_path: Path
) -> None:
    """A lead left in flight whose answer the last run logged as record_failed (its disk was full)
    is recorded placed with that callId from the --log-file by the next run: not unknown, not called."""
    from helpers import settings_for

    from dialer.checkpoint import Checkpoint
    from dialer.lead_writes import Claim
    from dialer.leads import KEY, PHONE
    from dialer.run_checkpoint import identity_of
    from dialer.selection import load_table

    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    config = write_config(tmp_path, kyzo.base_url, leads)
    settings = settings_for(config)
    first, second = load_table(settings).dialable(KEY, PHONE).head(2).iter_rows()
    checkpoint = Checkpoint.open(settings.checkpoint_path)
    checkpoint.bind_identity(identity_of(settings))
    run = checkpoint.start_run("dialer run", settings.fingerprint, "input")
    checkpoint.claim_now([Claim(first[0], first[1], None), Claim(second[0], second[1], None)], run)
    logged = {"event": "record_failed", "lead": checkpoint.lead_tag(first[0]), "status": "placed",
              "call_id": "call-from-the-log", "attempts": 1, "http_status": 200}  # fmt: skip
    checkpoint.close()
    log = tmp_path / "dialer.jsonl"
    log.write_text("not json\n" + json.dumps({"event": "run_start"}) + "\n" + json.dumps(logged) + "\n")

    result = run_cli(["--log-file", str(log), "run", str(config)])

    assert result.exit_code == 1, result.stdout  # the second lead, with nothing logged, is unknown
    rows = read_results(tmp_path / "results.csv").select("dialer_status", "dialer_call_id").rows()
    assert rows[0] == ("placed", "call-from-the-log")
    assert rows[1] == ("unknown", None)
    assert [c["phoneNumber"] for c in kyzo.calls()] == [load_table(settings).dialable(PHONE)[PHONE][2]]
    assert "taken_back_from_log" in log.read_text()


@pytest.mark.parametrize("failing_from", [3, 12, 40])
def test_checkpoint_writes_failing_from_the_nth_commit_end_in_exit_4_and_lose_nothing(
    kyzo: KyzoServer, tmp_path: Path, failing_from: int
) -> None:
    """Wherever the checkpoint's writes start failing (through its own before-commit seam, as a full
    disk fails them): exit 4 with the path and the cause, never 2 or 70; then a rerun with the same
    --log-file loses nothing and rings nobody twice."""
    import sqlite3

    from helpers import ForwardingTransport, settings_for

    from dialer import logs
    from dialer.campaign import RunOptions, run_campaign
    from dialer.errors import CheckpointUnwritable, CheckpointWriteFailed

    leads = write_leads(tmp_path / "leads.csv", lead_rows(120, seed=70 + failing_from))
    config = write_config(
        tmp_path, kyzo.base_url, leads, limits={"calls_per_second": 400, "max_concurrency": 6}
    )
    log = tmp_path / "dialer.jsonl"
    commits = 0

    def full_disk() -> None:
        nonlocal commits
        commits += 1
        if commits >= failing_from:
            raise sqlite3.OperationalError("database or disk is full")

    with log.open("a", encoding="utf-8") as stream:
        logs.configure("json", "info", stream, log)
        with pytest.raises((CheckpointUnwritable, CheckpointWriteFailed)) as caught:  # mid-run, or before
            run_campaign(
                settings_for(config),
                RunOptions(log_file=log),
                transport=ForwardingTransport(lambda request: None),
                before_commit=full_disk,
            )
    assert caught.value.exit_code == 4
    assert str(tmp_path / "checkpoint.db") in str(caught.value)
    assert "database or disk is full" in str(caught.value)
    sent_before = len(kyzo.calls())

    again = run_cli(["--log-file", str(log), "run", str(config)])

    assert again.exit_code == 0, again.stdout + again.stderr
    calls = kyzo.calls()
    assert len(calls) == 120 and max(Counter(c["phoneNumber"] for c in calls).values()) == 1
    assert sent_before < 120  # the fault did stop the first run
    results = read_results(tmp_path / "results.csv")
    assert Counter(results["dialer_status"].to_list()) == {"placed": 120}
    assert set(results["dialer_call_id"].to_list()) == {c["callId"] for c in calls}
