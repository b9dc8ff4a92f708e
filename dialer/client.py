"""The Kyzo API client and the one table that says what every answer means.

httpx exceptions are translated here, once, into a `Failure` kind; `classify` then maps
(status, body, failure) to an `Outcome` whose `Action` the dispatcher obeys. The only
question that matters for a phone call: could the request have reached the server?
"""

from __future__ import annotations

import enum
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
from pydantic import SecretStr

if TYPE_CHECKING:
    from dialer.config import Settings


KEY_REJECTED = "the API key was rejected (401): check KYZO_API_KEY"


def place_call_path(organization_id: str, agent_id: str) -> str:
    return f"/organizations/{organization_id}/agents/{agent_id}/placeCall"


class Action(enum.Enum):
    PLACED = "placed"
    FAILED = "failed"  # a clear refusal: not placed, not retried automatically
    UNKNOWN = "unknown"  # may have been placed: never retried automatically
    RETRY = "retry"  # certainly not placed: safe to send again
    STOP = "stop"  # the whole run must stop (wrong key, agent, organization)


class Failure(enum.Enum):
    """Transport failures, by whether the request could have reached the server."""

    NOT_SENT = "not sent"  # connect error/timeout, pool timeout: the body never left
    CERTIFICATE = "certificate refused"  # TLS verification failed: nothing (not even the key) was sent
    AMBIGUOUS = "no answer"  # write/read error or timeout, dropped connection, bad response


@dataclass(frozen=True)
class Outcome:
    action: Action
    message: str = ""
    http_status: int | None = None
    call_id: str | None = None
    retry_after: float | None = None  # seconds the server asked us to pause
    cut_rate: bool = False  # a 429: the limiter should slow down, not only pause
    maybe_placed: bool = False  # retried under api.retry_ambiguous although it may have rung

    @property
    def paces(self) -> bool:
        """The server asked everyone to slow down or wait: the limiter pauses, not this lead."""
        return self.retry_after is not None or self.cut_rate


@dataclass(frozen=True)
class Answer:
    """What came back for one request, free of httpx types."""

    status: int | None = None
    body: bytes = b""
    headers: Mapping[str, str] | None = None
    failure: Failure | None = None
    detail: str = ""


def classify(
    answer: Answer, *, retry_ambiguous: bool = False, now: datetime | None = None, account: str = ""
) -> Outcome:
    """Map one answer to an action; the README reproduces this table.

    `account` names the organization and agent a 404 is about, since the server may not say.
    """
    unknown_or_retry = Action.RETRY if retry_ambiguous else Action.UNKNOWN
    status = answer.status
    if answer.failure is Failure.CERTIFICATE:
        # Never retried: the same certificate fails the same way, and the whole list with it.
        return Outcome(
            Action.STOP,
            f"the API's TLS certificate was refused ({answer.detail}); nothing was sent. If the API uses "
            "a private certificate authority, point api.ca_bundle at its PEM file; else check api.base_url",
        )
    if answer.failure is Failure.NOT_SENT:
        return Outcome(Action.RETRY, f"request not sent: {answer.detail}")
    if answer.failure is Failure.AMBIGUOUS or status is None:
        return Outcome(
            unknown_or_retry,
            f"no answer, the call may have been placed: {answer.detail}",
            maybe_placed=retry_ambiguous,
        )
    headers = {k.lower(): v for k, v in (answer.headers or {}).items()}
    message = _server_message(answer.body)
    if status == 200:
        payload = _json(answer.body)
        call_id = payload.get("callId") if isinstance(payload, dict) else None
        if (
            isinstance(payload, dict)
            and payload.get("success") is True
            and isinstance(call_id, str)
            and call_id
        ):
            return Outcome(Action.PLACED, "", status, call_id)
        # Whatever callId came back is kept: it is the only handle on a call that may be ringing.
        return Outcome(
            Action.UNKNOWN,
            "200 without success and callId: the call may have been placed",
            status,
            call_id if isinstance(call_id, str) and call_id else None,
        )
    if 300 <= status < 400:
        where = headers.get("location", "no Location")
        return Outcome(Action.UNKNOWN, f"redirect {status} to {where} not followed", status)
    if status == 400:
        return Outcome(Action.FAILED, message or "bad request", status)
    if status == 401:
        return Outcome(Action.STOP, KEY_REJECTED, status)
    if status == 403:
        return Outcome(Action.STOP, f"the API key is not allowed to place calls (403): {message}", status)
    if status == 404:
        which = f" (this campaign uses {account})" if account else ""
        return Outcome(Action.STOP, f"organization or agent not found (404){_said(message)}{which}", status)
    if status == 429:
        pause = parse_retry_after(headers.get("retry-after"), now)
        return Outcome(
            Action.RETRY, f"rate limited (429){_said(message)}", status, None, pause, cut_rate=True
        )
    if status == 503 and "retry-after" in headers:
        pause = parse_retry_after(headers.get("retry-after"), now)
        return Outcome(Action.RETRY, f"service unavailable (503){_said(message)}", status, None, pause)
    if 400 <= status < 500:
        return Outcome(Action.FAILED, f"refused ({status}){_said(message)}", status)
    return Outcome(
        unknown_or_retry,
        f"server error ({status}), the call may have been placed{_said(message)}",
        status,
        maybe_placed=retry_ambiguous,
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _server_message(body: bytes) -> str:
    payload = _json(body)
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        return str(payload["message"])[:500]
    text = body.decode("utf-8", errors="replace").strip()
    return text[:200]


def _said(message: str) -> str:
    return f": {message}" if message else ""


class Listing(enum.Enum):
    """What a Get Agents / Get Campaigns answer means."""

    OK = "ok"
    UNREACHABLE = "unreachable"
    KEY_REJECTED = "key rejected"
    NOT_FOUND = "not found"  # the organization
    REFUSED = "refused"  # any other status
    NOT_JSON = "not json"
    NOT_A_LIST = "not a list"


@dataclass(frozen=True)
class ListingAnswer:
    kind: Listing
    items: tuple[dict[str, Any], ...] = ()
    status: int | None = None
    detail: str = ""  # the transport failure, or the server's own words


def classify_listing(answer: Answer) -> ListingAnswer:
    """The table for Get answers, as `classify` is for placeCall: one place reads status codes."""
    status = answer.status
    if status is None:
        return ListingAnswer(Listing.UNREACHABLE, detail=answer.detail)
    if status == 401:
        return ListingAnswer(Listing.KEY_REJECTED, status=status, detail=KEY_REJECTED)
    if status != 200:
        said = answer.body[:200].decode("utf-8", "replace").strip()
        kind = Listing.NOT_FOUND if status == 404 else Listing.REFUSED
        return ListingAnswer(kind, status=status, detail=said)
    payload = _json(answer.body)
    if payload is None:
        return ListingAnswer(Listing.NOT_JSON, status=status)
    if not isinstance(payload, list):
        return ListingAnswer(Listing.NOT_A_LIST, status=status)
    return ListingAnswer(Listing.OK, tuple(item for item in payload if isinstance(item, dict)), status)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx's API over aiohttp's connection pool: about twice the calls per CPU second here.

    The exception mapping is ours, not a generic one, because it decides whether a phone may
    ring twice: only a failure to establish the connection (`ClientConnectorError`, a connect
    timeout) becomes `httpx.ConnectError`/`ConnectTimeout` (never sent, safe to retry);
    everything after that (a dropped connection, a read timeout, a malformed answer) becomes a
    read-side error, which `classify` treats as "may have been placed". aiohttp never resends
    a POST by itself (it retries only idempotent methods), and redirects are not followed.
    """

    def __init__(self, *, max_connections: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self._max_connections = max_connections
        self._ssl_context = ssl_context
        self._session: Any = None

    def _open(self) -> Any:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=self._max_connections,
            ssl=self._ssl_context if self._ssl_context is not None else True,
            keepalive_timeout=15,
        )
        return aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # httpx decodes the body, as with its own transport
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = self._open()
        limits = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=_sum_or_none(limits.get("pool"), limits.get("connect")),
            sock_connect=limits.get("connect"),
            sock_read=limits.get("read"),
        )
        try:
            async with self._session.request(
                request.method,
                str(request.url),
                headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
                data=request.content,
                allow_redirects=False,
                timeout=timeout,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
            ) as response:
                body = await response.read()
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timeout", request=request) from exc
        except aiohttp.ClientConnectorCertificateError as exc:
            # as httpx's own transport does: a ConnectError caused by the ssl verification error
            raise httpx.ConnectError(str(exc), request=request) from exc.certificate_error
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc) or "connection failed", request=request) from exc
        except (aiohttp.SocketTimeoutError, TimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "read timeout", request=request) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise httpx.RemoteProtocolError(str(exc) or "server disconnected", request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request) from exc
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            content=body,
            request=request,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _sum_or_none(*parts: float | None) -> float | None:
    values = [p for p in parts if p is not None]
    return sum(values) if values else None


class KyzoClient:
    """One connection pool for the run; `place_call` never raises for an API answer."""

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr,
        organization_id: str,
        agent_id: str,
        *,
        timeout_s: float = 30.0,
        max_connections: int = 10,
        ca_bundle: Path | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        transport_kind: str = "aiohttp",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.organization_id = organization_id
        self.agent_id = agent_id
        verify: ssl.SSLContext | bool = True
        if ca_bundle is not None:
            verify = ssl.create_default_context(cafile=str(ca_bundle))
        if transport is None and transport_kind == "aiohttp":
            # the one seam where the transport is chosen; see AiohttpTransport for why
            context = verify if isinstance(verify, ssl.SSLContext) else None
            transport = AiohttpTransport(max_connections=max_connections, ssl_context=context)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"x-api-key": api_key.get_secret_value(), "content-type": "application/json"},
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
            verify=verify,
            transport=transport,
            trust_env=False,
        )
        self._place_path = place_call_path(organization_id, agent_id)

    @classmethod
    def for_settings(
        cls,
        settings: Settings,
        api_key: SecretStr,
        *,
        timeout_s: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> KyzoClient:
        """The client a campaign's config describes; `transport` replaces the network (tests)."""
        return cls(
            settings.api.base_url,
            api_key,
            settings.api.organization_id,
            settings.campaign.agent_id,
            timeout_s=timeout_s or settings.limits.request_timeout_s,
            max_connections=settings.limits.max_concurrency,
            ca_bundle=settings.api.ca_bundle,
            transport=transport,
            transport_kind=settings.api.transport,
        )

    async def __aenter__(self) -> KyzoClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def place_call(self, body: Mapping[str, Any]) -> Answer:
        return await self._send("POST", self._place_path, json.dumps(body).encode())

    async def list_agents(self) -> Answer:
        return await self._send("GET", f"/organizations/{self.organization_id}/agents", None)

    async def list_campaigns(self) -> Answer:
        return await self._send("GET", f"/organizations/{self.organization_id}/campaigns", None)

    async def _send(self, method: str, path: str, content: bytes | None) -> Answer:
        try:
            response = await self._http.request(method, path, content=content)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            refused = _certificate_problem(exc)
            if refused is not None:
                return Answer(failure=Failure.CERTIFICATE, detail=refused)
            return Answer(failure=Failure.NOT_SENT, detail=_describe(exc))
        except httpx.TransportError as exc:
            return Answer(failure=Failure.AMBIGUOUS, detail=_describe(exc))
        except httpx.DecodingError as exc:
            return Answer(failure=Failure.AMBIGUOUS, detail=_describe(exc))
        return Answer(status=response.status_code, body=response.content, headers=dict(response.headers))


def _certificate_problem(exc: BaseException) -> str | None:
    """What the TLS verification said, when that is why the connection failed (either transport)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return str(seen.verify_message or seen.reason or seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _describe(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
