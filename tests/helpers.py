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
        api={"transport": transport},
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
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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
