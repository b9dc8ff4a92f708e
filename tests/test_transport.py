"""Both transports behind KyzoClient put every real network failure in the right row of the table."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from conftest import KyzoServer
from helpers import API_KEY
from pydantic import SecretStr

from dialer.client import Action, Answer, Failure, KyzoClient, classify

BODY = {"fromPhoneNumberId": "pn_demo", "phoneNumber": "+14155550132", "referenceId": "CRM-1"}
TRANSPORTS = ["aiohttp", "httpx"]


def _call(base_url: str, transport: str, *, timeout_s: float = 5.0, key: str = API_KEY) -> Answer:
    async def go() -> Answer:
        async with KyzoClient(
            base_url, SecretStr(key), "org_demo", "agent_demo", timeout_s=timeout_s, transport_kind=transport
        ) as client:
            return await client.place_call(BODY)

    return asyncio.run(go())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_placed_call_round_trips(kyzo: KyzoServer, transport: str) -> None:
    """A 200 comes back with its body, and the server saw the key and the JSON body."""
    answer = _call(kyzo.base_url, transport)

    outcome = classify(answer)
    assert outcome.action is Action.PLACED
    assert kyzo.calls()[0]["callId"] == outcome.call_id
    assert kyzo.calls()[0]["referenceId"] == "CRM-1"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_refused_connection_is_never_sent(transport: str) -> None:
    """Nothing listening: the request was never sent, a safe retry."""
    answer = _call("http://127.0.0.1:9", transport)

    assert answer.failure is Failure.NOT_SENT
    assert classify(answer).action is Action.RETRY


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_dropped_connection_is_ambiguous(start_server: Callable[..., KyzoServer], transport: str) -> None:
    """The server read the request, placed the call and hung up: unknown, never a retry."""
    server = start_server(drop_rate=1.0)

    answer = _call(server.base_url, transport)

    assert answer.failure is Failure.AMBIGUOUS
    assert classify(answer).action is Action.UNKNOWN
    assert len(server.calls()) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_read_timeout_is_ambiguous(start_server: Callable[..., KyzoServer], transport: str) -> None:
    """No answer within the timeout after sending: unknown, the call may exist."""
    server = start_server(latency_ms=1500)

    answer = _call(server.base_url, transport, timeout_s=0.3)

    assert answer.failure is Failure.AMBIGUOUS
    assert classify(answer).action is Action.UNKNOWN


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rate_limit_headers_reach_the_classifier(
    start_server: Callable[..., KyzoServer], transport: str
) -> None:
    """A 429's Retry-After survives the transport."""
    server = start_server(error_rate=1.0, error_statuses=(429,), retry_after=7)

    outcome = classify(_call(server.base_url, transport))

    assert outcome.http_status == 429
    assert outcome.retry_after == 7.0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wrong_key_stops(kyzo: KyzoServer, transport: str) -> None:
    """A 401 through either transport stops the run."""
    assert classify(_call(kyzo.base_url, transport, key="nope-nope")).action is Action.STOP
