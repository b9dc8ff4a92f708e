"""Unattended runs: JSON logs without a TTY, the run-end notification, listings and export."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import KyzoServer
from helpers import (
    API_KEY,
    dialer_subprocess,
    json_logs,
    lead_rows,
    read_results,
    run_cli,
    write_config,
    write_leads,
)


class _Receiver:
    """A local webhook receiver that records every POSTed JSON body."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    hook = _Receiver()
    yield hook
    hook.close()


def test_run_end_is_posted_once_without_personal_data(
    kyzo: KyzoServer, receiver: _Receiver, tmp_path: Path
) -> None:
    """[notify] posts one summary with a Slack `text`, counts, exit code and the report's path; no phone,
    name or key."""
    rows = lead_rows(4)
    rows[0]["phone"] = "bad"
    leads = write_leads(tmp_path / "leads.csv", rows)
    config = write_config(tmp_path, kyzo.base_url, leads, extra='[notify]\nurl = "${env:SLACK_WEBHOOK}"\n')

    result = run_cli(["run", str(config)], env={"SLACK_WEBHOOK": receiver.url})

    assert result.exit_code == 1
    assert len(receiver.posts) == 1
    post = receiver.posts[0]
    assert post["exit_code"] == 1
    assert post["counts"]["placed"] == 3
    assert post["counts"]["rejected"] == 1
    assert "test-campaign" in post["text"]
    assert str(tmp_path / "results.csv") in post["text"]
    assert f"report: {tmp_path / 'report.html'}" in post["text"]  # the page people open
    assert post["report_path"] == str(tmp_path / "report.html")
    assert (tmp_path / "report.html").exists()
    body = json.dumps(post)
    for row in rows:
        assert row["phone"] not in body
        assert row["first_name"] not in body
        assert row["email"] not in body
    assert API_KEY not in body
    assert receiver.url not in result.stdout + result.stderr  # the webhook URL is a secret too


def test_a_run_that_fails_to_start_is_posted_too(
    kyzo: KyzoServer, receiver: _Receiver, tmp_path: Path
) -> None:
    """A broken lead list (exit 2) under cron is news: one post with the exit code and the reason."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(2))
    config = write_config(tmp_path, kyzo.base_url, leads, extra='[notify]\nurl = "${env:SLACK_WEBHOOK}"\n')
    leads.write_text("crm_id,first_name\nX,Y\n")  # the phone column is gone

    result = run_cli(["run", str(config)], env={"SLACK_WEBHOOK": receiver.url})

    assert result.exit_code == 2
    assert len(receiver.posts) == 1
    assert receiver.posts[0]["exit_code"] == 2
    assert "exit 2 (usage, config or input error)" in receiver.posts[0]["text"]
    assert "phone" in receiver.posts[0]["text"]


def test_stop_message_posted_is_scrubbed(
    start_server: Callable[..., KyzoServer], receiver: _Receiver, tmp_path: Path
) -> None:
    """The API's stop message can quote a number or an ${env:} id: the webhook gets neither."""
    server = start_server()
    leads = write_leads(tmp_path / "leads.csv", lead_rows(60))
    extra = '[notify]\nurl = "${env:SLACK_WEBHOOK}"\n'
    config = write_config(
        tmp_path,
        server.base_url,
        leads,
        extra=extra,
        from_phone_number_id="${env:PN}",
        limits={"max_concurrency": 1},
    )

    result = run_cli(["run", str(config)], env={"SLACK_WEBHOOK": receiver.url, "PN": "pn-secret-42"})

    assert result.exit_code == 3  # the breaker: every lead refused with the same message
    post = receiver.posts[0]
    assert "circuit breaker" in post["stop_message"]
    assert "pn-secret-42" not in json.dumps(post)


def test_failed_notification_is_logged_not_fatal(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A dead webhook does not change the run's exit code; a warning is logged."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(2))
    config = write_config(tmp_path, kyzo.base_url, leads, extra='[notify]\nurl = "http://127.0.0.1:9/hook"\n')

    result = run_cli(["run", str(config)])

    assert result.exit_code == 0
    assert "notify_failed" in [e["event"] for e in json_logs(result.stderr)]


def test_no_tty_means_json_logs_and_plain_stdout(kyzo: KyzoServer, tmp_path: Path) -> None:
    """Under cron (no TTY) every stderr line is JSON; stdout carries only the human summary."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(5))
    config = write_config(tmp_path, kyzo.base_url, leads)

    process = dialer_subprocess(["--log-level", "debug", "run", str(config)])
    out, err = process.communicate(timeout=60)

    assert process.returncode == 0
    events = json_logs(err)  # raises if any line is not JSON
    names = [e["event"] for e in events]
    assert names.count("lead_outcome") == 5
    assert names[0] == "run_start"
    assert names[-1] == "run_end"
    assert all("timestamp" in e and "level" in e for e in events)
    assert out.startswith("Campaign test-campaign: finished")
    assert "\x1b[" not in out + err  # no colours, no progress bar


def test_agents_and_campaigns_listings(kyzo: KyzoServer, tmp_path: Path) -> None:
    """`dialer agents` and `dialer campaigns` print what the account has."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(1))
    config = write_config(tmp_path, kyzo.base_url, leads)

    agents = run_cli(["agents", str(config)])
    listed = json.loads(run_cli(["campaigns", str(config), "--json"]).stdout)

    assert agents.exit_code == 0
    assert "agent_demo" in agents.stdout
    assert listed[0]["id"] == "camp_demo"
    refused = run_cli(["agents", str(config)], api_key="wrong-key-1")
    assert refused.exit_code == 2
    assert "the API key was rejected (401)" in json_logs(refused.stderr)[-1]["message"]
    assert "b'" not in refused.stderr


def test_export_rewrites_results_from_checkpoint(kyzo: KyzoServer, tmp_path: Path) -> None:
    """`dialer export` rebuilds the results file, identical, after it was deleted."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(6))
    config = write_config(tmp_path, kyzo.base_url, leads)
    run_cli(["run", str(config)])
    before = read_results(tmp_path / "results.csv")
    (tmp_path / "results.csv").unlink()

    result = run_cli(["export", str(config)])

    assert result.exit_code == 0
    after = read_results(tmp_path / "results.csv")
    assert after.drop("dialer_updated_at").equals(before.drop("dialer_updated_at"))
    assert len(kyzo.calls()) == 6


# ---------------------------------------------------------------- exits that schedulers rely on


def test_sigterm_outside_the_dial_loop_exits_4_not_143() -> None:
    """A cron timeout while the list loads or files are written ends like Ctrl-C: exit 4, resumable."""
    import os
    import signal

    import typer

    from dialer.cli_common import guarded

    def body() -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM should have interrupted the body")

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(typer.Exit) as stopped:
        guarded(body)
    assert stopped.value.exit_code == 4
    assert signal.getsignal(signal.SIGTERM) == before


def test_the_dial_loop_gives_sigterm_back_to_the_cli_handler(kyzo: KyzoServer, tmp_path: Path) -> None:
    """asyncio resets a removed signal handler to the default: the run must restore the CLI's."""
    import signal

    from dialer.campaign import RunOptions, run_campaign
    from dialer.cli_common import terminate_as_interrupt
    from dialer.config import load_settings

    leads = write_leads(tmp_path / "leads.csv", lead_rows(2))
    settings = load_settings(write_config(tmp_path, kyzo.base_url, leads), env={"KYZO_API_KEY": API_KEY})
    previous = signal.signal(signal.SIGTERM, terminate_as_interrupt)
    try:
        assert run_campaign(settings, RunOptions(progress=False)).exit_code == 0
        assert signal.getsignal(signal.SIGTERM) is terminate_as_interrupt
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_an_unexpected_exception_is_exit_70_not_1(
    kyzo: KyzoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug must not look like "finished, send the errors file" (exit 1) to a scheduler."""
    import dialer.full_run as full_run

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(full_run, "load_table", broken)
    leads = write_leads(tmp_path / "leads.csv", lead_rows(2))
    result = run_cli(["run", str(write_config(tmp_path, kyzo.base_url, leads))])

    assert result.exit_code == 70
    events = json_logs(result.stderr)
    assert events[0]["event"] == "internal_error"
    assert "ZeroDivisionError: boom" in events[0]["error"]
    assert "internal error" in events[-1]["message"]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--log-file", "/nonexistent-dir/x.log", "status", "c.toml"], "cannot open /nonexistent-dir/x.log"),
        (["--log-file", "leads.csv", "status", "c.toml"], "looks like a data file"),
        (["mock-server", "--port", "99999"], "65535"),
    ],
)
def test_bad_global_options_are_usage_errors(args: list[str], expected: str) -> None:
    """Exit 2 with a message, never a traceback."""
    result = run_cli(args)
    assert result.exit_code == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_checkpoint_named_like_a_results_file_is_refused(kyzo: KyzoServer, tmp_path: Path) -> None:
    """--checkpoint out.csv would be a SQLite file with a .csv name: refused before any call."""
    leads = write_leads(tmp_path / "leads.csv", lead_rows(2))
    config = write_config(tmp_path, kyzo.base_url, leads)

    result = run_cli(["run", str(config), "--checkpoint", str(tmp_path / "state.csv")])

    assert result.exit_code == 2
    assert "the checkpoint is a SQLite database" in json_logs(result.stderr)[-1]["message"]
    assert kyzo.calls() == []


def test_console_lines_on_a_tty_json_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    """--log-format auto: a human line on a terminal (no JSON), a JSON object per line on a pipe."""
    import io

    from dialer import logs

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        logs.configure("auto", "info", stream)
        logs.get_logger().info("run_start", campaign="c1", to_dial=3)

    line = terminal.getvalue().strip()
    assert "run_start" in line and "campaign" in line and "c1" in line
    with pytest.raises(ValueError):
        json.loads(line)
    assert json.loads(pipe.getvalue())["event"] == "run_start"


def test_retries_log_at_info_and_lead_outcomes_only_at_debug(
    start_server: Callable[..., KyzoServer], tmp_path: Path
) -> None:
    """At the default level a cron log holds run start/end, retries and pace, not a line per lead."""
    server = start_server(error_rate=0.5, error_statuses=(503,), retry_after=0.01, seed=4)
    leads = write_leads(tmp_path / "leads.csv", lead_rows(12))
    config = write_config(tmp_path, server.base_url, leads, limits={"max_attempts": 20})

    info = json_logs(run_cli(["run", str(config)]).stderr)

    names = [e["event"] for e in info]
    assert names[0] == "run_start" and names[-1] == "run_end"
    assert "retry" in names
    assert all(e["level"] == "info" for e in info if e["event"] in ("retry", "run_start", "run_end"))
    assert "lead_outcome" not in names
