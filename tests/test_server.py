"""The local Kyzo-compatible server, exercised over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from dialer.server import ServerSettings, serve_in_thread

KEY = "kyzo-demo-key"
PLACE = "/organizations/org_demo/agents/agent_demo/placeCall"
BODY: dict[str, Any] = {
    "fromPhoneNumberId": "pn_demo",
    "phoneNumber": "+19999999999",
    "email": "david@example.com",
    "agentParams": {"first_name": "David"},
    "referenceId": "lead-1",
    "tools": [{"tool_type": "sentiment", "execution_order": 1, "args": {"language": "en"}}],
}


@contextmanager
def running(tmp_path: Path, **overrides: Any) -> Iterator[tuple[httpx.Client, Path]]:
    """A server on a free port with a ledger in tmp_path, and a client already authenticated."""
    ledger = tmp_path / "ledger.jsonl"
    settings = ServerSettings(port=0, ledger=ledger, **overrides)
    with (
        serve_in_thread(settings) as url,
        httpx.Client(base_url=url, headers={"x-api-key": KEY}, timeout=5.0) as client,
    ):
        yield client, ledger


def ledger_lines(ledger: Path) -> list[dict[str, Any]]:
    if not ledger.exists():
        return []
    return [json.loads(line) for line in ledger.read_text().splitlines()]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path]]:
    """One default server for the tests that need no special settings (keeps the file fast)."""
    with running(tmp_path_factory.mktemp("shared")) as pair:
        yield pair


@pytest.fixture
def client(shared: tuple[httpx.Client, Path]) -> httpx.Client:
    return shared[0]


def test_serve_in_thread_yields_base_url_with_real_port() -> None:
    """port=0 yields 'http://127.0.0.1:<real port>' without a trailing slash."""
    with serve_in_thread(ServerSettings(port=0)) as url:
        assert re.fullmatch(r"http://127\.0\.0\.1:[1-9][0-9]*", url)


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}], ids=["missing", "wrong"])
def test_place_call_needs_the_api_key(client: httpx.Client, headers: dict[str, str]) -> None:
    """A missing or wrong x-api-key gets 401 with the JSON error shape."""
    response = httpx.post(client.base_url.join(PLACE), json=BODY, headers=headers)
    assert response.status_code == 401
    assert response.json()["success"] is False


def test_unknown_organization_is_404(client: httpx.Client) -> None:
    """An unknown organizationId gets 404 naming the organization."""
    response = client.post("/organizations/org_x/agents/agent_demo/placeCall", json=BODY)
    assert response.status_code == 404
    assert "organizationId" in response.json()["message"]


def test_unknown_agent_is_404(client: httpx.Client) -> None:
    """An unknown agentId gets 404 naming the agent."""
    response = client.post("/organizations/org_demo/agents/agent_x/placeCall", json=BODY)
    assert response.status_code == 404
    assert "agentId" in response.json()["message"]


def tool(**changes: Any) -> dict[str, Any]:
    """A tools list of one valid tool with some keys changed (None removes the key)."""
    base = {"tool_type": "email", "execution_order": 1, "args": {"subject": "Hi {{ name }}"}}
    return {"tools": [{k: v for k, v in {**base, **changes}.items() if v is not None}]}


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("bad_e164", {"phoneNumber": "19999999999"}, "phoneNumber"),
    ("e164_too_short", {"phoneNumber": "+12345"}, "phoneNumber"),
    ("e164_non_ascii_digit", {"phoneNumber": "+1999999999\u0663"}, "phoneNumber"),
    ("unknown_from_number", {"fromPhoneNumberId": "pn_other"}, "fromPhoneNumberId"),
    ("missing_phone", {"phoneNumber": ...}, "phoneNumber"),
    ("email_not_string", {"email": 3}, "email"),
    ("null_reference", {"referenceId": None}, "referenceId"),
    ("agent_params_not_object", {"agentParams": ["David"]}, "agentParams"),
    ("agent_params_value_not_string", {"agentParams": {"age": 42}}, "agentParams.age"),
    ("tools_not_array", {"tools": {}}, "tools"),
    ("unknown_tool_type", tool(tool_type="sms"), "tool_type"),
    ("order_not_int", tool(execution_order="1"), "execution_order"),
    ("order_bool", tool(execution_order=True), "execution_order"),
    ("args_not_object", tool(args=[]), "args"),
    ("tool_missing_args", tool(args=None), "args"),
    ("unknown_key", {"callerName": "x"}, "callerName"),
]


@pytest.mark.parametrize(("change", "field"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_body_is_400_naming_the_field(
    client: httpx.Client, change: dict[str, Any], field: str
) -> None:
    """Each validation rule answers 400 with a message that names the offending field."""
    body = {k: v for k, v in {**BODY, **change}.items() if v is not ...}  # ... removes the key
    response = client.post(PLACE, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["success"] is False
    assert field in response.json()["message"]


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]", b"\xff\xfe"], ids=["text", "array", "binary"])
def test_body_that_is_not_a_json_object_is_400(client: httpx.Client, content: bytes) -> None:
    """A body that is not JSON, or JSON but not an object, gets 400."""
    response = client.post(PLACE, content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["success"] is False


def test_minimal_body_is_accepted(client: httpx.Client) -> None:
    """Only fromPhoneNumberId and phoneNumber are required."""
    body = {"fromPhoneNumberId": "pn_demo", "phoneNumber": "+4915112345678"}
    assert client.post(PLACE, json=body).status_code == 200


def test_placed_call_returns_call_id_and_appends_one_ledger_line(tmp_path: Path) -> None:
    """200 carries a 24-hex callId and appends one ledger line with the lead's number and id."""
    with running(tmp_path) as (client, ledger):
        response = client.post(PLACE, json=BODY)
        assert response.status_code == 200
        payload = response.json()
        assert payload["success"] is True
        assert re.fullmatch(r"[0-9a-f]{24}", payload["callId"])
        lines = ledger_lines(ledger)  # readable while the server still runs
    assert len(lines) == 1
    line = lines[0]
    assert line["callId"] == payload["callId"]
    assert (line["phoneNumber"], line["referenceId"]) == ("+19999999999", "lead-1")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert abs(line["ts"] - time.time()) < 60
    assert "dropped" not in line


def test_same_lead_twice_gives_two_distinct_calls(client: httpx.Client) -> None:
    """No idempotency: the same body twice places two calls with distinct callIds."""
    first = client.post(PLACE, json=BODY).json()["callId"]
    second = client.post(PLACE, json=BODY).json()["callId"]
    assert first != second


def test_rate_limit_answers_429_with_retry_after_and_does_not_ledger(tmp_path: Path) -> None:
    """Above rate_limit per sliding second the answer is 429 + Retry-After and nothing is placed."""
    with running(tmp_path, rate_limit=2, retry_after=0.5) as (client, ledger):
        statuses = [client.post(PLACE, json=BODY) for _ in range(3)]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        assert statuses[2].headers["retry-after"] == "0.5"
        assert statuses[2].json()["success"] is False
        metrics = client.get("/_mock/metrics").json()
    assert len(ledger_lines(ledger)) == 2
    assert metrics["requests"] == 3
    assert metrics["placed"] == 2
    assert metrics["status_counts"] == {"200": 2, "429": 1}
    assert metrics["max_accepted_in_any_1s_window"] == 2


def test_drop_gives_transport_error_but_the_call_is_ledgered(tmp_path: Path) -> None:
    """drop_rate=1 cuts the connection without a response after placing (ledgered, dropped true)."""
    with running(tmp_path, drop_rate=1.0) as (client, ledger):
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.post(PLACE, json=BODY)
        metrics = client.get("/_mock/metrics").json()  # the server survives the drop
    lines = ledger_lines(ledger)
    assert len(lines) == 1
    assert lines[0]["dropped"] is True
    assert metrics["status_counts"] == {"dropped": 1}
    assert metrics["placed"] == 1


@pytest.mark.parametrize("after_place", [False, True])
def test_injected_error_is_ledgered_only_after_place(tmp_path: Path, after_place: bool) -> None:
    """error_rate=1 answers the injected status; ledgered only with error_after_place."""
    settings = {"error_rate": 1.0, "error_statuses": (502,), "error_after_place": after_place}
    with running(tmp_path, **settings) as (client, ledger):
        response = client.post(PLACE, json=BODY)
    assert response.status_code == 502
    assert response.json() == {"success": False, "message": "injected error"}
    assert "retry-after" not in response.headers
    lines = ledger_lines(ledger)
    if after_place:
        assert [line["error_status"] for line in lines] == [502]
    else:
        assert lines == []


def test_injected_503_carries_retry_after(tmp_path: Path) -> None:
    """An injected 503 carries Retry-After, formatted as an integer when whole."""
    with running(tmp_path, error_rate=1.0, error_statuses=(503,), retry_after=2.0) as (client, _):
        response = client.post(PLACE, json=BODY)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"


def test_latency_delays_the_answer(tmp_path: Path) -> None:
    """latency_ms delays each placeCall answer by at least that long."""
    with running(tmp_path, latency_ms=150) as (client, _):
        start = time.monotonic()
        assert client.post(PLACE, json=BODY).status_code == 200
        assert time.monotonic() - start >= 0.14  # asyncio may wake a clock tick early


def test_metrics_count_requests_and_max_one_second_window(tmp_path: Path) -> None:
    """Metrics count every placeCall by status and the most placed calls in any sliding second."""
    with running(tmp_path) as (client, _):
        for _ in range(3):
            client.post(PLACE, json=BODY)
        client.post(PLACE, json={**BODY, "phoneNumber": "bad"})
        time.sleep(1.05)
        for _ in range(2):
            client.post(PLACE, json=BODY)
        metrics = httpx.get(client.base_url.join("/_mock/metrics")).json()  # no key needed
    assert metrics["requests"] == 6
    assert metrics["placed"] == 5
    assert metrics["status_counts"] == {"200": 5, "400": 1}
    assert metrics["max_accepted_in_any_1s_window"] == 3
    assert sum(metrics["accepted_per_second"].values()) == 5
    assert all(re.fullmatch(r"\d{10}", second) for second in metrics["accepted_per_second"])


def test_agents_lists_the_configured_agent(client: httpx.Client) -> None:
    """GET agents lists the agent with its phone number ids."""
    response = client.get("/organizations/org_demo/agents")
    assert response.status_code == 200
    assert response.json() == [{"id": "agent_demo", "name": "Demo agent", "phoneNumberIds": ["pn_demo"]}]


def test_campaigns_lists_the_demo_campaign(client: httpx.Client) -> None:
    """GET campaigns lists the demo campaign."""
    response = client.get("/organizations/org_demo/campaigns")
    assert response.status_code == 200
    assert response.json() == [{"id": "camp_demo", "name": "Demo campaign"}]


@pytest.mark.parametrize("path", ["agents", "campaigns"])
def test_listing_endpoints_check_key_and_organization(client: httpx.Client, path: str) -> None:
    """The listing endpoints answer 401 without the key and 404 for another organization."""
    assert httpx.get(client.base_url.join(f"/organizations/org_demo/{path}")).status_code == 401
    assert client.get(f"/organizations/org_x/{path}").status_code == 404


def test_unknown_route_answers_json_404(client: httpx.Client) -> None:
    """Routes outside the contract answer 404 in the contract's JSON error shape."""
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.json()["success"] is False


def test_invalid_settings_are_refused() -> None:
    """Settings that cannot describe an API fail at construction."""
    with pytest.raises(ValueError, match="drop_rate"):
        ServerSettings(drop_rate=1.5)
    with pytest.raises(ValueError, match="error_statuses"):
        ServerSettings(error_statuses=(200,))
