"""Secrets, personal data, file permissions, transport safety and purging (README "Security and data")."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import json
import os
import re
import stat
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from conftest import KyzoServer
from helpers import (
    API_KEY,
    ForwardingTransport,
    json_logs,
    lead_rows,
    read_results,
    run_cli,
    settings_for,
    write_config,
    write_leads,
)
from pydantic import SecretStr

from dialer import logs
from dialer.campaign import RunOptions, run_campaign
from dialer.client import Action, Answer, KyzoClient, classify
from dialer.config import load_settings
from dialer.run_lock import RunLock

HOOK_TOKEN = "hook-tok-5e9b2d71c4a8f03"
WEBHOOK_TOOL = """
[[tools]]
tool_type = "webhook"
execution_order = 2
[tools.args]
url = "https://hooks.example.com/kyzo"
[tools.args.headers]
Authorization = "Bearer ${env:HOOK_TOKEN}"
"""


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """Start from the common 022 umask, so modes prove what the dialer does, not the test runner."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture
def no_log_pii() -> Iterator[None]:
    """--log-pii is a process-wide switch: whatever a test sets, the next test starts without it."""
    logs.set_log_pii(False)
    yield
    logs.set_log_pii(False)


def _set_api(config: Path, lines: str) -> Path:
    """Add lines to the [api] table of a campaign file written by write_config."""
    text = config.read_text().replace(
        'organization_id = "org_demo"', f'organization_id = "org_demo"\n{lines}'
    )
    config.write_text(text)
    return config


def _move_outputs(config: Path, folder: Path) -> Path:
    """Point every output of a write_config campaign file into another folder."""
    text = config.read_text()
    for name in ("results.csv", "errors.csv", "checkpoint.db"):
        text = text.replace(str(config.parent / name), str(folder / name))
    config.write_text(text)
    return config


def _leaked_handles(path: Path) -> list[io.TextIOWrapper]:
    """Open file objects on `path` still alive in this process."""
    return [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, io.TextIOWrapper) and not obj.closed and obj.name == str(path)
    ]


def _masked(phone: str) -> str:
    return phone[:5] + "*" * (len(phone) - 7) + phone[-2:]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------- secrets


def test_no_artefact_holds_the_api_key_or_an_env_secret(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """After run, validate, status and export at debug level, no output, log or file holds a secret."""
    server = start_server(error_rate=0.3, error_statuses=(400, 500), seed=11, ledger_bodies=True)
    rows = lead_rows(24)
    rows[2]["phone"] = "12345"
    rows[5]["phone"] = ""
    rows[7]["email"] = "not-an-email"
    leads = write_leads(tmp_path / "leads.csv", rows)
    out = tmp_path / "out"
    out.mkdir()
    config = write_config(out, server.base_url, leads, extra=WEBHOOK_TOOL)
    log_file = tmp_path / "dialer.jsonl"
    env = {"HOOK_TOKEN": HOOK_TOKEN}
    debug = ["--log-level", "debug", "--log-file", str(log_file)]
    on_stderr = ["--log-level", "debug"]
    commands = [
        [*on_stderr, "validate", str(config)],
        [*debug, "validate", str(config)],
        [*debug, "validate", str(config), "--json"],
        [*debug, "run", str(config)],
        [*on_stderr, "run", str(config), "--retry-failed"],  # lead_outcome lines on stderr
        [*debug, "status", str(config), "--json"],
        [*debug, "status", str(config)],
        [*debug, "export", str(config)],
        [*on_stderr, "export", str(config)],
    ]
    results = [run_cli(command, env=env) for command in commands]

    assert [r.exit_code for r in results] == [0, 0, 0, 1, 1, 0, 0, 0, 0]
    first_run = dict(re.findall(r"(\w+) (\d+)", results[3].stdout.splitlines()[1]))
    assert all(int(first_run[s]) > 0 for s in ("placed", "failed", "unknown", "rejected")), first_run
    assert "lead_outcome" in results[4].stderr
    # the secret was resolved and sent where it belongs: in the body of every request
    sent = [call["body"] for call in server.calls()]
    assert sent and all(
        b["tools"][2]["args"]["headers"]["Authorization"] == f"Bearer {HOOK_TOKEN}" for b in sent
    )
    assert '"Authorization": "Bearer ***"' in results[0].stdout
    assert log_file.stat().st_size > 0
    files = [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.startswith("ledger-")]
    assert {out / "results.csv", out / "errors.csv", out / "checkpoint.db", log_file} <= set(files)
    artefacts: dict[str, bytes] = {str(p): p.read_bytes() for p in files}
    for i, result in enumerate(results):
        artefacts[f"stdout {i}"] = result.stdout_bytes
        artefacts[f"stderr {i}"] = result.stderr_bytes
    for secret in (API_KEY, HOOK_TOKEN):
        leaking = [name for name, data in artefacts.items() if secret.encode() in data]
        assert leaking == [], f"{secret} found in {leaking}"


def test_checkpoint_wal_holds_no_secret_during_a_run(kyzo: KyzoServer, tmp_path: Path) -> None:
    """While a run is writing, neither the checkpoint nor its -wal holds the key or an env secret."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(5))
    config = write_config(tmp_path, kyzo.base_url, leads, extra=WEBHOOK_TOOL)
    seen: dict[str, bytes] = {}

    def snapshot(request: httpx.Request) -> None:
        for suffix in ("", "-wal"):
            path = tmp_path / f"checkpoint.db{suffix}"
            if path.exists():
                seen[path.name] = seen.get(path.name, b"") + path.read_bytes()

    settings = settings_for(config, {"HOOK_TOKEN": HOOK_TOKEN})
    assert run_campaign(settings, RunOptions(), transport=ForwardingTransport(snapshot)).exit_code == 0
    assert set(seen) == {"checkpoint.db", "checkpoint.db-wal"}
    for data in seen.values():
        assert API_KEY.encode() not in data
        assert HOOK_TOKEN.encode() not in data


def test_checkpoint_fingerprints_the_config_as_written_not_its_secrets(
    kyzo: KyzoServer, tmp_path: Path
) -> None:
    """Runs with different ${env:...} values record one config fingerprint: no secret is hashed in."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(2))
    config = write_config(tmp_path, kyzo.base_url, leads, extra=WEBHOOK_TOOL)

    assert run_cli(["run", str(config)], env={"HOOK_TOKEN": HOOK_TOKEN}).exit_code == 0
    assert run_cli(["run", str(config)], env={"HOOK_TOKEN": "another-token-value"}).exit_code == 0
    report = json.loads(run_cli(["status", str(config), "--json"], env={"HOOK_TOKEN": "x"}).stdout)

    [first, second] = [run["config_fingerprint"] for run in report["runs"]]
    assert first == second
    assert re.fullmatch(r"[0-9a-f]{64}", first)


def test_missing_env_reference_is_a_config_error_naming_it(kyzo: KyzoServer, tmp_path: Path) -> None:
    """An unset ${env:X} is exit 2 naming X and its key; the message holds no other secret."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    extra = WEBHOOK_TOOL + 'X-Other = "${env:HOOK_SECOND_TOKEN}"\n'
    config = write_config(tmp_path, kyzo.base_url, leads, extra=extra)

    result = run_cli(["run", str(config)], env={"HOOK_TOKEN": HOOK_TOKEN})

    assert result.exit_code == 2
    [event] = json_logs(result.stderr)
    assert "HOOK_SECOND_TOKEN" in event["message"]
    assert "tools[2].args.headers.X-Other" in event["message"]
    assert str(config) in event["message"]
    output = result.stdout + result.stderr
    assert HOOK_TOKEN not in output
    assert API_KEY not in output
    assert "Traceback" not in output
    assert kyzo.metrics()["requests"] == 0
    assert not (tmp_path / "checkpoint.db").exists()


def test_config_error_that_quotes_a_value_redacts_its_env_secret(tmp_path: Path) -> None:
    """A config error quoting a value built from ${env:...} shows *** instead of the secret."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    config = write_config(tmp_path, "http://${env:HOOK_TOKEN}.example.com", leads)

    result = run_cli(["validate", str(config), "--offline"], env={"HOOK_TOKEN": HOOK_TOKEN})

    assert result.exit_code == 2
    [event] = json_logs(result.stderr)
    assert "http://***.example.com" in event["message"]
    assert HOOK_TOKEN not in result.stdout + result.stderr


def test_validate_output_redacts_env_secrets_in_the_endpoint(tmp_path: Path) -> None:
    """A ${env:...} value inside base_url is shown as *** in validate's text and JSON output."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(2))
    config = write_config(tmp_path, "http://127.0.0.1:9/kyzo?token=${env:HOOK_TOKEN}", leads)

    for extra in ([], ["--json"]):
        result = run_cli(["validate", str(config), "--offline", *extra], env={"HOOK_TOKEN": HOOK_TOKEN})
        assert result.exit_code == 0
        assert HOOK_TOKEN not in result.stdout + result.stderr


def test_validate_redacts_a_secret_that_json_would_escape(tmp_path: Path) -> None:
    """A token with a quote, a backslash and a non-ASCII letter is hidden in text and --json output."""
    token = 'tök"en\\SECRET-99'
    leads = write_leads(tmp_path / "leads.csv", lead_rows(2))
    config = write_config(tmp_path, "http://127.0.0.1:9", leads, extra=WEBHOOK_TOOL)

    for extra in ([], ["--json"]):
        result = run_cli(["validate", str(config), "--offline", *extra], env={"HOOK_TOKEN": token})
        assert result.exit_code == 0
        shown = result.stdout + result.stderr
        assert "SECRET-99" not in shown
        assert "Bearer ***" in shown


def test_a_secret_echoed_by_the_api_reaches_no_file(kyzo: KyzoServer, tmp_path: Path) -> None:
    """The server's 400 quotes a fromPhoneNumberId taken from ${env:}: checkpoint and outputs hide it."""
    secret = "pn-SECRET-777"
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    config = write_config(tmp_path, kyzo.base_url, leads, from_phone_number_id="${env:PN_SECRET}")

    result = run_cli(["run", str(config)], env={"PN_SECRET": secret})

    assert result.exit_code == 1
    errors = read_results(tmp_path / "errors.csv")
    assert errors["dialer_status"].to_list() == ["failed"] * 3
    assert "***" in errors["dialer_error"][0]
    for path in tmp_path.iterdir():
        if path.is_file() and path.name != "campaign.toml":
            assert secret.encode() not in path.read_bytes(), path
    assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "base_url",
    ["http://example.com", "http://10.0.0.5:8787", "http://localhost.example.com", "http://127.0.0.1.nip.io"],
)
def test_plain_http_to_a_remote_host_is_refused(tmp_path: Path, base_url: str) -> None:
    """Plain http:// to a non-loopback host is a config error (exit 2) naming the option that allows it."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    config = write_config(tmp_path, base_url, leads)

    result = run_cli(["validate", str(config), "--offline"])

    assert result.exit_code == 2
    [event] = json_logs(result.stderr)
    assert f"base_url {base_url} is plain http://" in event["message"]
    assert "api.allow_insecure_http = true" in event["message"]


def test_plain_http_from_the_environment_is_refused_too(tmp_path: Path) -> None:
    """KYZO_BASE_URL overriding the file with a remote http:// URL is refused the same way."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    config = write_config(tmp_path, "http://127.0.0.1:9", leads)

    result = run_cli(["validate", str(config), "--offline"], env={"KYZO_BASE_URL": "http://example.com"})

    assert result.exit_code == 2
    assert "allow_insecure_http" in json_logs(result.stderr)[0]["message"]


def test_allow_insecure_http_accepts_a_remote_http_url(tmp_path: Path) -> None:
    """api.allow_insecure_http = true lets a plain http:// remote base_url through validation."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    config = _set_api(write_config(tmp_path, "http://example.com", leads), "allow_insecure_http = true")

    result = run_cli(["validate", str(config), "--offline", "--json"])

    assert result.exit_code == 0, result.stderr
    assert "http://example.com/organizations/org_demo" in result.stdout


@pytest.mark.parametrize(
    "base_url", ["http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9", "http://127.5.6.7:9"]
)
def test_plain_http_to_loopback_is_fine(tmp_path: Path, base_url: str) -> None:
    """Plain http:// to a loopback address needs no opt-in."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    config = write_config(tmp_path, base_url, leads)

    result = run_cli(["validate", str(config), "--offline"])

    assert result.exit_code == 0, result.stderr


def test_redirects_are_never_followed() -> None:
    """A 307 to another host is not followed: one request only, recorded unknown with its Location."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(307, headers={"Location": "https://evil.example.net/steal"})

    async def place() -> Answer:
        async with KyzoClient(
            "https://api.kyzo.test",
            SecretStr(API_KEY),
            "org_demo",
            "agent_demo",
            transport=httpx.MockTransport(handler),
        ) as client:
            return await client.place_call({"fromPhoneNumberId": "pn_demo", "phoneNumber": "+14155550132"})

    answer = asyncio.run(place())

    assert len(seen) == 1
    assert seen[0].url.host == "api.kyzo.test"
    assert answer.status == 307
    outcome = classify(answer)
    assert outcome.action is Action.UNKNOWN
    assert "https://evil.example.net/steal" in outcome.message


@contextlib.contextmanager
def _loopback_server(
    answer: Callable[[BaseHTTPRequestHandler], None],
) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """A throwaway HTTP server on 127.0.0.1 that records (method, path) and lets `answer` reply."""
    seen: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            seen.append((self.command, self.path))
            answer(self)

        do_GET = do_POST = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _ok(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "2")
    handler.end_headers()
    handler.wfile.write(b"{}")


def _redirect_to(target: str) -> Callable[[BaseHTTPRequestHandler], None]:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(307)
        handler.send_header("Location", target)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


@pytest.mark.parametrize("transport_kind", ["aiohttp", "httpx"])
def test_real_transports_do_not_follow_redirects(transport_kind: str) -> None:
    """Over real loopback HTTP, neither transport follows a 307: the target never sees the request."""
    with (
        _loopback_server(_ok) as (target, stolen),
        _loopback_server(_redirect_to(target.replace("127.0.0.1", "localhost") + "/steal")) as (
            base_url,
            seen,
        ),
    ):

        async def place() -> Answer:
            async with KyzoClient(
                base_url, SecretStr(API_KEY), "org_demo", "agent_demo", transport_kind=transport_kind
            ) as client:
                return await client.place_call(
                    {"fromPhoneNumberId": "pn_demo", "phoneNumber": "+14155550132"}
                )

        answer = asyncio.run(place())

    assert seen == [("POST", "/organizations/org_demo/agents/agent_demo/placeCall")]
    assert stolen == []
    outcome = classify(answer)
    assert outcome.action is Action.UNKNOWN
    assert "/steal" in outcome.message


def test_a_redirecting_api_leaves_leads_unknown_and_sends_nothing_elsewhere(tmp_path: Path) -> None:
    """An API answering 307: each lead ends unknown with the Location, and the target gets nothing."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    with (
        _loopback_server(_ok) as (target, stolen),
        _loopback_server(_redirect_to(target.replace("127.0.0.1", "localhost") + "/steal")) as (
            base_url,
            seen,
        ),
    ):
        config = write_config(tmp_path, base_url, leads)
        result = run_cli(["run", str(config)])

    assert result.exit_code == 1, result.stdout + result.stderr
    assert len(seen) == 3
    assert stolen == []
    results = read_results(tmp_path / "results.csv")
    assert set(results["dialer_status"]) == {"unknown"}
    assert all(e.startswith("redirect 307 to http://localhost:") for e in results["dialer_error"])


# ---------------------------------------------------------------- personal data in logs


@pytest.mark.usefixtures("no_log_pii")
def test_lead_outcome_logs_mask_phones_and_omit_names_and_emails(kyzo: KyzoServer, tmp_path: Path) -> None:
    """Debug lead_outcome events carry the row and a +1415*****32 phone; no full number, name or email."""
    rows = lead_rows(6)
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_config(tmp_path, kyzo.base_url, leads)

    result = run_cli(["--log-format", "json", "--log-level", "debug", "run", str(config)])

    assert result.exit_code == 0
    outcomes = [e for e in json_logs(result.stderr) if e["event"] == "lead_outcome"]
    assert sorted(e["row"] for e in outcomes) == [1, 2, 3, 4, 5, 6]
    for event in outcomes:
        phone = rows[event["row"] - 1]["phone"]
        assert event["phone"] == _masked(phone)
        assert re.fullmatch(r"\+1\d{3}\*{5}\d{2}", event["phone"])
    for row in rows:
        for value in (row["phone"], row["phone"][1:], row["first_name"], row["email"]):
            assert value not in result.stderr
            assert value not in result.stdout


@pytest.mark.usefixtures("no_log_pii")
def test_phone_echoed_by_the_api_is_masked_in_logs(tmp_path: Path) -> None:
    """An API error message quoting the phone number is logged with the number masked."""
    rows = lead_rows(2)
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_config(tmp_path, "http://127.0.0.1:9", leads)

    def refuse(request: httpx.Request) -> httpx.Response:
        message = f"phoneNumber {json.loads(request.content)['phoneNumber']} is on the carrier block list"
        return httpx.Response(400, json={"success": False, "message": message})

    stderr = io.StringIO()
    logs.configure("json", "debug", stderr)
    summary = run_campaign(settings_for(config), RunOptions(), transport=httpx.MockTransport(refuse))

    assert summary.exit_code == 1
    errors = [e["error"] for e in json_logs(stderr.getvalue()) if e["event"] == "lead_outcome"]
    assert sorted(errors) == sorted(
        f"phoneNumber {_masked(r['phone'])} is on the carrier block list" for r in rows
    )
    assert all(row["phone"] not in stderr.getvalue() for row in rows)
    # the results file is the user's own data: it keeps the server's words as they were
    assert set(read_results(tmp_path / "results.csv")["dialer_error"]) == {
        f"phoneNumber {r['phone']} is on the carrier block list" for r in rows
    }


@pytest.mark.usefixtures("no_log_pii")
def test_log_pii_writes_full_numbers_and_warns(kyzo: KyzoServer, tmp_path: Path) -> None:
    """--log-pii logs a log_pii_enabled warning first, then full phone numbers in lead_outcome."""
    rows = lead_rows(3)
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_config(tmp_path, kyzo.base_url, leads)

    result = run_cli(["--log-pii", "--log-format", "json", "--log-level", "debug", "run", str(config)])

    assert result.exit_code == 0
    events = json_logs(result.stderr)
    assert events[0]["event"] == "log_pii_enabled"
    assert events[0]["level"] == "warning"
    phones = {e["phone"] for e in events if e["event"] == "lead_outcome"}
    assert phones == {row["phone"] for row in rows}


@pytest.mark.usefixtures("no_log_pii")
def test_log_pii_does_not_outlive_its_invocation(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A run without --log-pii after one with it masks numbers again."""
    rows = lead_rows(2)
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_config(tmp_path, kyzo.base_url, leads)
    assert run_cli(["--log-pii", "run", str(config)]).exit_code == 0
    (tmp_path / "checkpoint.db").unlink()

    result = run_cli(["--log-format", "json", "--log-level", "debug", "run", str(config)])

    assert result.exit_code == 0
    assert "log_pii_enabled" not in result.stderr
    assert all(row["phone"] not in result.stderr for row in rows)


# ---------------------------------------------------------------- file modes


def test_log_file_is_closed_when_the_command_returns(tmp_path: Path) -> None:
    """An in-process invocation with --log-file leaves no open handle on the log file."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(2))
    config = write_config(tmp_path, "http://127.0.0.1:9", leads)
    log_file = tmp_path / "dialer.log"

    assert run_cli(["--log-file", str(log_file), "validate", str(config), "--offline"]).exit_code == 0
    leaked = _leaked_handles(log_file)
    for handle in leaked:
        handle.close()
    assert leaked == []


@pytest.mark.usefixtures("loose_umask")
def test_files_and_folders_the_dialer_creates_are_private(kyzo: KyzoServer, tmp_path: Path) -> None:
    """Checkpoint, lock, results, errors and log file are 0600; output folders it creates are 0700."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(4))
    nested = tmp_path / "new" / "deeper" / "out"
    config = _move_outputs(write_config(tmp_path, kyzo.base_url, leads), nested)
    log_file = tmp_path / "dialer.log"

    result = run_cli(["--log-file", str(log_file), "run", str(config)])

    assert result.exit_code == 0, log_file.read_text()
    for path in (
        nested / "checkpoint.db",
        nested / "checkpoint.db.lock",
        nested / "results.csv",
        nested / "errors.csv",
        log_file,
    ):
        assert _mode(path) == 0o600, path
    for folder in (tmp_path / "new", tmp_path / "new" / "deeper", nested):
        assert _mode(folder) == 0o700, folder
    assert not [p for p in nested.iterdir() if p.name.startswith(".")]  # no temp file left behind


@pytest.mark.usefixtures("loose_umask")
def test_rewritten_results_file_becomes_private(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A results file that was world-readable before the run is replaced by a 0600 one."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(2))
    config = write_config(tmp_path, kyzo.base_url, leads)
    for name in ("results.csv", "errors.csv"):
        (tmp_path / name).write_text("old\n")
        (tmp_path / name).chmod(0o644)

    assert run_cli(["run", str(config)]).exit_code == 0
    assert _mode(tmp_path / "results.csv") == _mode(tmp_path / "errors.csv") == 0o600
    assert _mode(tmp_path / "checkpoint.db") == 0o600


@pytest.mark.usefixtures("loose_umask")
def test_dry_run_and_export_write_private_files(kyzo: KyzoServer, tmp_path: Path) -> None:
    """Results written by --dry-run and by export are 0600 too."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(2))
    nested = tmp_path / "dry"
    config = _move_outputs(write_config(tmp_path, kyzo.base_url, leads), nested)

    assert run_cli(["run", str(config), "--dry-run"], api_key=None).exit_code == 4
    assert _mode(nested) == 0o700
    assert _mode(nested / "results.csv") == _mode(nested / "errors.csv") == 0o600
    (nested / "results.csv").chmod(0o644)

    assert run_cli(["export", str(config)]).exit_code == 0
    assert _mode(nested / "results.csv") == 0o600


# ---------------------------------------------------------------- purge


def _campaign_with_files(kyzo: KyzoServer, tmp_path: Path) -> tuple[Path, list[Path]]:
    """A finished campaign plus the -wal/-shm/set-aside files a crashed or reset one leaves."""
    rows = lead_rows(4)
    rows[0]["phone"] = "bad"
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_config(tmp_path, kyzo.base_url, leads)
    assert run_cli(["run", str(config)]).exit_code == 1
    leftovers = [
        tmp_path / "checkpoint.db-wal",
        tmp_path / "checkpoint.db-shm",
        tmp_path / "checkpoint.db.20250101T000000.old",
    ]
    for path in leftovers:
        path.write_bytes(b"x")
    files = [
        tmp_path / "checkpoint.db",
        tmp_path / "checkpoint.db.lock",
        tmp_path / "results.csv",
        tmp_path / "errors.csv",
        *leftovers,
    ]
    assert all(path.exists() for path in files)
    return config, files


def test_purge_yes_deletes_every_campaign_file_and_lists_them(kyzo: KyzoServer, tmp_path: Path) -> None:
    """purge --yes deletes checkpoint, -wal, -shm, lock, set-aside copies, results and errors, naming each."""
    config, files = _campaign_with_files(kyzo, tmp_path)

    result = run_cli(["purge", str(config), "--yes"])

    assert result.exit_code == 0, result.stderr
    assert [p for p in files if p.exists()] == []
    for path in files:
        assert str(path) in result.stdout
    assert f"deleted {len(files)} files" in result.stdout
    assert (tmp_path / "leads.csv").exists()
    assert config.exists()
    again = run_cli(["purge", str(config), "--yes"])
    assert again.exit_code == 0
    assert "nothing to delete" in again.stdout


def test_purge_without_yes_and_without_tty_refuses(kyzo: KyzoServer, tmp_path: Path) -> None:
    """purge without --yes and without a TTY exits 2 and deletes nothing."""
    config, files = _campaign_with_files(kyzo, tmp_path)
    before = {path: path.read_bytes() for path in files}

    result = run_cli(["purge", str(config)])

    assert result.exit_code == 2
    assert "--yes" in json_logs(result.stderr)[0]["message"]
    # (the lock file records who last took the lock; SQLite's -shm index is rebuilt by a read)
    kept = [path for path in files if not path.name.endswith((".lock", "-shm"))]
    assert len(kept) >= 3
    assert {path: path.read_bytes() for path in kept} == {path: before[path] for path in kept}


def test_purge_refuses_an_unfinished_campaign_without_force(kyzo: KyzoServer, tmp_path: Path) -> None:
    """Leads still pending: purge would make a later run dial everyone again, so it needs --force."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(6))
    config = write_config(tmp_path, kyzo.base_url, leads)
    assert run_cli(["run", str(config), "--limit", "2"]).exit_code == 4

    refused = run_cli(["purge", str(config), "--yes"])

    assert refused.exit_code == 2
    assert "not finished: 4 leads" in json_logs(refused.stderr)[0]["message"]
    assert (tmp_path / "checkpoint.db").exists()
    assert run_cli(["purge", str(config), "--yes", "--force"]).exit_code == 0
    assert not (tmp_path / "checkpoint.db").exists()


def test_purge_while_a_run_holds_the_lock_exits_5(kyzo: KyzoServer, tmp_path: Path) -> None:
    """purge --yes under a held checkpoint lock exits 5 and deletes nothing."""
    config, files = _campaign_with_files(kyzo, tmp_path)
    before = {path: path.read_bytes() for path in files if path.name != "checkpoint.db.lock"}

    with RunLock(tmp_path / "checkpoint.db"):
        result = run_cli(["purge", str(config), "--yes"])

    assert result.exit_code == 5
    assert "another run holds the checkpoint" in json_logs(result.stderr)[0]["message"]
    assert all(path.exists() for path in files)
    assert {path: path.read_bytes() for path in before} == before


def test_purge_never_deletes_the_lead_list(tmp_path: Path) -> None:
    """A config whose output.path is the lead list (which run refuses) does not make purge delete the list."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    config = write_config(tmp_path, "http://127.0.0.1:9", leads)
    config.write_text(config.read_text().replace(f'path = "{tmp_path / "results.csv"}"', f'path = "{leads}"'))

    run_cli(["purge", str(config), "--yes"])

    assert leads.exists()


def test_purge_leaves_other_checkpoints_set_aside_copies(tmp_path: Path) -> None:
    """A checkpoint path with glob characters ([12]) does not make purge delete other set-aside copies."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(3))
    config = write_config(tmp_path, "http://127.0.0.1:9", leads)
    other = tmp_path / "ck1.db.20250101T000000.old"
    other.write_text("another campaign's set-aside checkpoint")

    run_cli(["purge", str(config), "--yes", "--checkpoint", str(tmp_path / "ck[12].db")])

    assert other.exists()


def test_server_message_cannot_become_a_spreadsheet_formula(tmp_path: Path) -> None:
    """A 400 message starting with '=' is written to dialer_error quoted, so Excel shows it as text."""
    from dialer.checkpoint import Checkpoint
    from dialer.export import build_results
    from dialer.lead_state import Status
    from dialer.lead_writes import Claim, Result
    from dialer.leads import KEY, prepare

    rows = lead_rows(1)
    leads = write_leads(tmp_path / "leads.csv", rows)
    settings = load_settings(write_config(tmp_path, "http://127.0.0.1:9", leads), env={})
    table = prepare(pl.read_csv(leads, infer_schema=False), settings.leads, leads)
    checkpoint = Checkpoint.open(tmp_path / "c.db")
    key = table.frame[KEY][0]
    checkpoint.claim_now([Claim(key, rows[0]["phone"], None)], 1, frozenset({Status.PENDING}))
    checkpoint.record_now([Result(key, Status.FAILED, 1, error='=HYPERLINK("http://evil")', http_status=400)])

    results = build_results(table, checkpoint.states())
    checkpoint.close()

    assert results["dialer_error"][0] == '\'=HYPERLINK("http://evil")'
