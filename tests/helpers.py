"""Builders shared by the integration tests: lead lists, campaign files, the CLI, the ledger."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import phonenumbers
import polars as pl
from campaign_builder import campaign_tables, write_campaign
from typer.testing import CliRunner

from dialer import logs
from dialer.cli import app
from dialer.config import Settings, load_settings

API_KEY = "test-key-7f3a9c2e51"
AREA_CODES = ("415", "212", "312", "617", "206", "512", "303", "305")


def valid_numbers(count: int, seed: int = 1) -> list[str]:
    """Distinct E.164 numbers that phonenumbers accepts as valid US numbers."""
    rng = random.Random(seed)
    found: dict[str, None] = {}
    while len(found) < count:
        candidate = f"+1{rng.choice(AREA_CODES)}{rng.randint(200, 989)}{rng.randint(0, 9999):04d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(candidate)):
            found[candidate] = None
    return list(found)


def lead_rows(count: int, seed: int = 1) -> list[dict[str, str]]:
    return [
        {
            "crm_id": f"CRM-{i:06d}",
            "first_name": f"Name{i}",
            "city": "Springfield",
            "phone": phone,
            "email": f"lead{i}@example.com",
        }
        for i, phone in enumerate(valid_numbers(count, seed))
    ]


def write_leads(path: Path, rows: Sequence[Mapping[str, str]]) -> Path:
    frame = pl.DataFrame(list(rows))
    if path.suffix == ".parquet":
        frame.write_parquet(path)
    else:
        frame.write_csv(path)
    return path


def write_config(
    folder: Path,
    base_url: str,
    leads: Path,
    *,
    limits: Mapping[str, Any] | None = None,
    extra: str = "",
    agent_id: str = "agent_demo",
    from_phone_number_id: str = "pn_demo",
    results_suffix: str = ".csv",
    tools: bool = True,
    transport: str = "aiohttp",
    **tables: Mapping[str, Any],
) -> Path:
    """The standard test campaign (see campaign_builder), outputs in `folder`; `extra` is raw TOML."""
    document = campaign_tables(
        base_url=base_url,
        leads=leads,
        folder=folder,
        agent_id=agent_id,
        from_phone_number_id=from_phone_number_id,
        limits=limits,
        tools=None if tools else [],
        results_suffix=results_suffix,
        api={"transport": transport, **tables.pop("api", {})},
        **tables,
    )
    return write_campaign(folder / "campaign.toml", document, extra)


def run_cli(
    args: Sequence[str], *, api_key: str | None = API_KEY, env: Mapping[str, str] | None = None
) -> Any:
    """Run `dialer ARGS` in-process; returns click's Result (stdout, stderr, exit_code)."""
    environment = {"KYZO_API_KEY": api_key, "KYZO_BASE_URL": None}
    environment.update(env or {})
    return CliRunner().invoke(app, list(args), env=environment, catch_exceptions=False)


def dialer_subprocess(
    args: Sequence[str], *, api_key: str = API_KEY, env: Mapping[str, str] | None = None, **popen: Any
) -> subprocess.Popen[str]:
    """Start `python -m dialer ARGS` as a real process (for signals and crashes)."""
    environment = {k: v for k, v in os.environ.items() if k not in ("KYZO_BASE_URL",)}
    environment["KYZO_API_KEY"] = api_key
    environment.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "dialer", *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """The server's placed calls so far; a line it is still writing (no newline yet) is not one."""
    if not path.exists():
        return []
    complete = path.read_text().rpartition("\n")[0]
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


def read_results(path: Path) -> pl.DataFrame:
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    return pl.read_csv(path, infer_schema=False)


def json_logs(stderr: str) -> list[dict[str, Any]]:
    """Every stderr line must be a JSON object when stderr is not a TTY."""
    return [json.loads(line) for line in stderr.splitlines() if line.strip()]


def settings_for(config: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Settings as `dialer` loads them, with the test API key, secrets known to the logs."""
    settings = load_settings(config, env={"KYZO_API_KEY": API_KEY, **(env or {})})
    logs.add_secrets(settings.secrets)
    return settings


class ForwardingTransport(httpx.AsyncBaseTransport):
    """The real HTTP transport to the local server, with a look at each request first.

    The seam `run_campaign(transport=...)` offers tests: see (or disturb) what happens at the
    moment a request leaves, while the request still travels over 127.0.0.1 to the real server.
    """

    def __init__(self, before: Callable[[httpx.Request], None]) -> None:
        self._before = before
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._before(request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


# -- outcomes and recycling: the receiver as a real process, the config that brings outcomes back
# (imports inside the functions: this section is appended to a module others edit at the top)

OUTCOMES_TOKEN = "outcomes-token-4d7e1a90c3b2f865"
OUTCOMES_ENV = {"KYZO_OUTCOMES_TOKEN": OUTCOMES_TOKEN}
OUTCOMES_PATH = "/kyzo/outcomes"
OUTCOME_FIELDS = {"duration_s": "duration", "sentiment": "analysis.sentiment", "budget": "extracted.budget"}
OUTCOME_TOOLS: list[dict[str, Any]] = [
    {"tool_type": "sentiment", "execution_order": 0, "args": {"language": "English"}},
    {
        "tool_type": "custom_field_extraction",
        "execution_order": 1,
        "args": {"fields": [{"fieldName": "budget", "fieldDescription": "Budget", "fieldType": "number"}]},
    },
]


def free_port() -> int:
    """A port nobody listens on right now (127.0.0.1 only)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_outcomes_config(
    folder: Path,
    base_url: str,
    leads: Path,
    port: int,
    *,
    outcomes: Mapping[str, Any] | None = None,
    leads_table: Mapping[str, Any] | None = None,
    **tables: Any,
) -> Path:
    """The standard campaign with [outcomes] on 127.0.0.1:`port` (token from the environment),
    the sentiment and budget tools, and OUTCOME_FIELDS; `outcomes` is merged over that table,
    `leads_table` over [leads] (`leads` itself is the lead list's path)."""
    table = {
        "public_url": f"http://127.0.0.1:{port}{OUTCOMES_PATH}",
        "listen": f"127.0.0.1:{port}",
        "token": "${env:KYZO_OUTCOMES_TOKEN}",
        "fields": dict(OUTCOME_FIELDS),
        **(outcomes or {}),
    }
    document = campaign_tables(
        base_url=base_url, leads=leads, folder=folder, tools=OUTCOME_TOOLS, outcomes=table, **tables
    )
    document["leads"].update(leads_table or {})
    document["output"]["report"] = str(folder / "report.html")  # not ./out of whoever runs the tests
    return write_campaign(folder / "campaign.toml", document)


def stored_payloads(checkpoint: Path) -> list[dict[str, Any]]:
    """The outcome payloads the checkpoint holds, as stored, in arrival order (read-only)."""
    import sqlite3

    if not checkpoint.exists():
        return []
    db = sqlite3.connect(f"{checkpoint.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return [json.loads(body) for (body,) in db.execute("SELECT body FROM payloads ORDER BY id")]
    finally:
        db.close()


def post_outcome(
    port: int, payload: Any = None, *, token: str | None = OUTCOMES_TOKEN, content: bytes | None = None
) -> httpx.Response:
    """POST to the receiver as Kyzo's webhook tool would: `payload` as JSON (or raw `content`)."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(payload).encode() if content is None else content
    url = f"http://127.0.0.1:{port}{OUTCOMES_PATH}"
    return httpx.post(url, content=body, headers=headers, timeout=10, trust_env=False)


class Collector:
    """`dialer collect CONFIG --listen 127.0.0.1:PORT` as a real process, its output read as it comes."""

    def __init__(
        self, config: Path, port: int, *, log_level: str = "info", env: Mapping[str, str] | None = None
    ) -> None:
        import threading
        import time

        self.port = port
        args = ["--log-level", log_level, "collect", str(config), "--listen", f"127.0.0.1:{port}"]
        self.process = dialer_subprocess(args, env={**OUTCOMES_ENV, **(env or {})})
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=_read_lines, args=(self.process.stdout, self.stdout), daemon=True),
            threading.Thread(target=_read_lines, args=(self.process.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        deadline = time.monotonic() + 20
        while not any(line.startswith("collecting outcomes on") for line in self.stdout):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"dialer collect did not start: {self.stdout} {self.stderr}")
            time.sleep(0.01)

    def stop(self, sig: int | None = None) -> int:
        """Signal it (SIGTERM by default: a clean stop; SIGKILL: a crash), wait; its exit code."""
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM if sig is None else sig)
        code = self.process.wait(timeout=20)
        for reader in self._readers:
            reader.join(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return code

    def kill(self) -> int:
        import signal

        return self.stop(signal.SIGKILL)

    def logs(self) -> list[dict[str, Any]]:
        return json_logs("\n".join(self.stderr))

    def __enter__(self) -> Collector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _read_lines(stream: Any, lines: list[str]) -> None:
    for line in iter(stream.readline, ""):
        lines.append(line.rstrip("\n"))


def wait_until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll `condition` until it returns something truthy (returned); AssertionError after `timeout`."""
    import time

    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)
    return value
