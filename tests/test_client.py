"""The Kyzo client and its outcome table, over `httpx.MockTransport`: no network, no waiting."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from dialer.client import Action, Answer, KyzoClient, Outcome, classify, parse_retry_after

API_KEY = "kz-secret-4b1d9e77c0"
BASE_URL = "https://api.kyzo.test/v1/"
ORG = "org-42"
AGENT = "agent-7"
CALL_ID = "665f1c2e9a3b4d0012ab34cd"
NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
TEN_SECONDS_AHEAD = format_datetime(NOW + timedelta(seconds=10), usegmt=True)
LEAD_BODY: dict[str, Any] = {
    "fromPhoneNumberId": "pn-1",
    "phoneNumber": "+14155550123",
    "email": "zoë@example.com",
    "agentParams": {"first_name": "Zoë", "city": "São Paulo"},
    "referenceId": "CRM-000001",
    "tools": [
        {
            "tool_type": "email",
            "execution_order": 1,
            "args": {"subject": "Hi {{ first_name }}", "body": "Budget: {{ budget }}"},
        }
    ],
}

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Row:
    """One line of the outcome table: what the server does, and what the dialer must do."""

    action: Action
    status: int | None = None
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    raises: type[httpx.TransportError] | None = None
    message: str | None = None  # a fragment the Outcome message must contain
    call_id: str | None = None
    retry_after: float | None = None
    cut_rate: bool = False


def _json(payload: object) -> bytes:
    return json.dumps(payload).encode()


def _row(row_id: str, row: Row) -> Any:
    return pytest.param(row, id=row_id)


TABLE = [
    _row("200-placed", Row(Action.PLACED, 200, _json({"success": True, "callId": CALL_ID}), call_id=CALL_ID)),
    _row(
        "200-success-false",
        Row(Action.UNKNOWN, 200, _json({"success": False, "callId": CALL_ID}), call_id=CALL_ID),
    ),
    _row(
        "200-success-string",
        Row(Action.UNKNOWN, 200, _json({"success": "true", "callId": CALL_ID}), call_id=CALL_ID),
    ),
    _row("200-no-callId", Row(Action.UNKNOWN, 200, _json({"success": True}))),
    _row("200-empty-callId", Row(Action.UNKNOWN, 200, _json({"success": True, "callId": ""}))),
    _row("200-non-json", Row(Action.UNKNOWN, 200, b"<html>OK</html>")),
    _row("200-json-list", Row(Action.UNKNOWN, 200, _json([{"success": True, "callId": CALL_ID}]))),
    _row("200-empty", Row(Action.UNKNOWN, 200)),
    _row(
        "400-json-message",
        Row(
            Action.FAILED,
            400,
            _json({"success": False, "message": "invalid phoneNumber"}),
            message="invalid phoneNumber",
        ),
    ),
    _row("400-non-json", Row(Action.FAILED, 400, b"<html>Bad gateway filter</html>")),
    _row("400-empty", Row(Action.FAILED, 400)),
    _row("401", Row(Action.STOP, 401, _json({"message": "Unauthorized"}), message="API key")),
    _row("401-empty", Row(Action.STOP, 401, message="API key")),
    _row("403", Row(Action.STOP, 403, _json({"success": False, "message": "Forbidden"}))),
    _row("404", Row(Action.STOP, 404, _json({"success": False, "message": "agent not found"}))),
    _row("408", Row(Action.FAILED, 408)),
    _row("409", Row(Action.FAILED, 409, _json({"success": False, "message": "conflict"}))),
    _row("422", Row(Action.FAILED, 422, _json({"success": False, "message": "unprocessable"}))),
    _row("418", Row(Action.FAILED, 418, b"I'm a teapot")),
    _row(
        "429-retry-after-seconds",
        Row(Action.RETRY, 429, headers={"Retry-After": "3"}, retry_after=3.0, cut_rate=True),
    ),
    _row(
        "429-retry-after-date",
        Row(Action.RETRY, 429, headers={"Retry-After": TEN_SECONDS_AHEAD}, retry_after=10.0, cut_rate=True),
    ),
    _row("429-no-retry-after", Row(Action.RETRY, 429, cut_rate=True)),
    _row("503-retry-after", Row(Action.RETRY, 503, headers={"Retry-After": "5"}, retry_after=5.0)),
    _row("503-no-retry-after", Row(Action.UNKNOWN, 503)),
    _row("500", Row(Action.UNKNOWN, 500, _json({"success": False, "message": "boom"}))),
    _row("502", Row(Action.UNKNOWN, 502, b"<html>Bad Gateway</html>")),
    _row("504", Row(Action.UNKNOWN, 504)),
    _row("599", Row(Action.UNKNOWN, 599)),
    *(
        _row(
            f"{status}-redirect",
            Row(
                Action.UNKNOWN,
                status,
                headers={"Location": "https://elsewhere.test/placeCall"},
                message="https://elsewhere.test/placeCall",
            ),
        )
        for status in (301, 302, 307, 308)
    ),
    *(
        _row(exc.__name__, Row(Action.RETRY, raises=exc))
        for exc in (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
    ),
    *(
        _row(exc.__name__, Row(Action.UNKNOWN, raises=exc))
        for exc in (
            httpx.WriteError,
            httpx.WriteTimeout,
            httpx.ReadTimeout,
            httpx.ReadError,
            httpx.RemoteProtocolError,
        )
    ),
]


def _handler_for(row: Row, seen: list[httpx.Request]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if row.raises is not None:
            raise row.raises(f"simulated {row.raises.__name__}", request=request)
        assert row.status is not None
        return httpx.Response(row.status, headers=dict(row.headers), content=row.body)

    return handler


def _client(handler: Handler) -> KyzoClient:
    return KyzoClient(BASE_URL, SecretStr(API_KEY), ORG, AGENT, transport=httpx.MockTransport(handler))


def _place(handler: Handler, body: Mapping[str, Any] = LEAD_BODY) -> Answer:
    async def run() -> Answer:
        async with _client(handler) as client:
            return await client.place_call(body)

    return asyncio.run(run())


def _outcome(row: Row, *, retry_ambiguous: bool = False) -> tuple[Outcome, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    answer = _place(_handler_for(row, seen))
    return classify(answer, retry_ambiguous=retry_ambiguous, now=NOW), seen


@pytest.mark.parametrize("row", TABLE)
def test_outcome_table(row: Row) -> None:
    """Every server answer or transport failure maps to the action in the table, sent exactly once."""
    outcome, seen = _outcome(row)

    assert outcome.action is row.action
    assert len(seen) == 1  # no redirect followed, no retry inside the client
    assert outcome.http_status == row.status
    assert outcome.call_id == row.call_id
    assert outcome.cut_rate is row.cut_rate
    if row.retry_after is None:
        assert outcome.retry_after is None
    else:
        assert outcome.retry_after == pytest.approx(row.retry_after)
    if row.message is not None:
        assert row.message in outcome.message
    if row.action is not Action.PLACED:
        assert outcome.message  # every non-success explains itself
    assert API_KEY not in outcome.message


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        pytest.param(Row(Action.UNKNOWN, 500), Action.RETRY, id="500"),
        pytest.param(Row(Action.UNKNOWN, 502), Action.RETRY, id="502"),
        pytest.param(Row(Action.UNKNOWN, 504), Action.RETRY, id="504"),
        pytest.param(Row(Action.UNKNOWN, raises=httpx.ReadTimeout), Action.RETRY, id="ReadTimeout"),
        pytest.param(
            Row(Action.UNKNOWN, raises=httpx.RemoteProtocolError), Action.RETRY, id="RemoteProtocolError"
        ),
        pytest.param(Row(Action.FAILED, 400, _json({"message": "bad phone"})), Action.FAILED, id="400"),
        pytest.param(
            Row(Action.PLACED, 200, _json({"success": True, "callId": CALL_ID})), Action.PLACED, id="200"
        ),
    ],
)
def test_retry_ambiguous_retries_only_maybe_sent_answers(row: Row, expected: Action) -> None:
    """With retry_ambiguous, 5xx and dropped answers become RETRY; clear answers keep their action."""
    assert _outcome(row, retry_ambiguous=True)[0].action is expected
    assert _outcome(row)[0].action is row.action  # the default stays conservative


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("-4", 0.0),
        (TEN_SECONDS_AHEAD, 10.0),
        (format_datetime(NOW - timedelta(minutes=5), usegmt=True), 0.0),
        ("garbage", None),
        ("", None),
        ("Wed, 99 Foo 2025 25:61:00 GMT", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Retry-After is read as seconds or an HTTP date; past dates give 0 and garbage gives None."""
    result = parse_retry_after(value, NOW)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_place_call_request_shape() -> None:
    """placeCall POSTs the JSON body under the base URL with the API key and a JSON content type."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"success": True, "callId": CALL_ID})

    answer = _place(handler)

    assert answer.status == 200
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == f"https://api.kyzo.test/v1/organizations/{ORG}/agents/{AGENT}/placeCall"
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == LEAD_BODY


@pytest.mark.parametrize(
    ("method_name", "path"),
    [
        ("list_agents", f"/v1/organizations/{ORG}/agents"),
        ("list_campaigns", f"/v1/organizations/{ORG}/campaigns"),
    ],
)
def test_listing_requests(method_name: str, path: str) -> None:
    """list_agents and list_campaigns GET the organization's collection with the API key."""
    seen: list[httpx.Request] = []
    listing = [{"id": AGENT, "name": "Sales"}]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=listing)

    async def run() -> Answer:
        async with _client(handler) as client:
            answer: Answer = await getattr(client, method_name)()
            return answer

    answer = asyncio.run(run())

    (request,) = seen
    assert request.method == "GET"
    assert request.url.host == "api.kyzo.test"
    assert request.url.path == path
    assert request.headers["x-api-key"] == API_KEY
    assert request.content == b""
    assert answer.status == 200
    assert json.loads(answer.body) == listing
