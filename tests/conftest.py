"""Fixtures: a real local Kyzo server on a free 127.0.0.1 port, and clean logging per test."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from helpers import API_KEY, read_ledger

from dialer import logs
from dialer.server import ServerSettings, serve_in_thread

# No cloud client may look for credentials beyond loopback: not at the instance-metadata address,
# not in this machine's AWS files. The object-storage tests set their own fake credentials.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent/aws"
for _name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
    os.environ.pop(_name, None)


@dataclass
class KyzoServer:
    base_url: str
    ledger: Path

    def calls(self) -> list[dict[str, Any]]:
        return read_ledger(self.ledger)

    def metrics(self) -> dict[str, Any]:
        return httpx.get(f"{self.base_url}/_mock/metrics", timeout=5).json()


@pytest.fixture(autouse=True)
def _reset_process_state() -> Iterator[None]:
    """Each test starts with default logging, no remembered secrets, PII masked, the umask it had."""
    umask = os.umask(0o022)
    os.umask(umask)
    yield
    structlog.reset_defaults()
    logs._secrets.clear()
    logs.set_log_pii(False)
    os.umask(umask)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., KyzoServer]]:
    """Start as many local Kyzo servers as a test needs; all stop at the end of the test."""
    with contextlib.ExitStack() as stack:
        count = 0

        def start(**overrides: Any) -> KyzoServer:
            nonlocal count
            count += 1
            ledger = tmp_path / f"ledger-{count}.jsonl"
            settings = ServerSettings(port=0, api_key=API_KEY, ledger=ledger, **overrides)
            url = stack.enter_context(serve_in_thread(settings))
            return KyzoServer(url, ledger)

        yield start


@pytest.fixture
def kyzo(start_server: Callable[..., KyzoServer]) -> KyzoServer:
    """A well-behaved local Kyzo server."""
    return start_server()
