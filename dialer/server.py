"""A local Kyzo-compatible server for the demo, the tests and the benchmarks.

It implements the API contract (docs/local-server.md) on its own: it imports nothing from the
rest of `dialer`, so a client bug cannot hide behind shared validation code. On top of the
contract it counts what it saw, writes every placed call to a JSON-lines ledger and injects the
faults a real API has: latency, rate limiting, error statuses and connections dropped after the
call was placed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import random
import secrets
import signal
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from dialer.mock_contract import validate_body
from dialer.mock_outcomes import OutcomeSender, OutcomeSettings

_DROP_MESSAGE = "kyzo.mock.drop"  # private ASGI message: Starlette's middleware passes it through
_WINDOW = 1.0  # seconds of the sliding rate-limit window
_OnReady = Callable[[str], None] | None


@dataclass(frozen=True)
class ServerSettings:
    """Everything the server does differently from a perfect API; the defaults are a perfect API."""

    host: str = "127.0.0.1"
    port: int = 8787  # 0 = pick a free port
    api_key: str = "kyzo-demo-key"
    organization_id: str = "org_demo"
    agent_id: str = "agent_demo"
    phone_number_ids: tuple[str, ...] = ("pn_demo",)
    rate_limit: float | None = None  # accepted placeCall per second; None = unlimited
    retry_after: float = 1.0  # value of Retry-After on 429 (and on injected 429/503)
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0  # uniform extra 0..J ms
    ledger: Path | None = None  # JSON-lines file of placed calls
    ledger_bodies: bool = False  # also write each placed call's whole request body (tests)
    drop_rate: float = 0.0  # probability to drop the connection after placing the call
    error_rate: float = 0.0  # probability to answer an injected error status
    error_statuses: tuple[int, ...] = (500,)
    error_after_place: bool = False  # injected 5xx (not 429/503) comes after the call was placed
    seed: int | None = None
    outcomes: OutcomeSettings | None = None  # post each call's outcome to its webhook tool
    tls_certfile: Path | None = None  # serve HTTPS with this certificate chain (PEM) ...
    tls_keyfile: Path | None = None  # ... and its private key: production's path, tested

    def __post_init__(self) -> None:
        """Fail at construction rather than with a confusing answer in the middle of a run."""
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.rate_limit is not None and not self.rate_limit > 0:
            raise ValueError(f"rate_limit must be > 0 or None, got {self.rate_limit}")
        for name in ("retry_after", "latency_ms", "latency_jitter_ms"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("drop_rate", "error_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be within 0..1, got {getattr(self, name)}")
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together")
        if not self.error_statuses or any(not 400 <= s <= 599 for s in self.error_statuses):
            raise ValueError(f"error_statuses must be 4xx/5xx codes, got {self.error_statuses}")


def max_in_window(stamps: Sequence[float], width: float) -> int:
    """Most stamps inside any half-open window [t, t + width): what the rate limiter enforces."""
    ordered = sorted(stamps)
    best = start = 0
    for end, stamp in enumerate(ordered):
        while stamp - ordered[start] >= width:
            start += 1
        best = max(best, end - start + 1)
    return best


def _format_seconds(value: float) -> str:
    """Retry-After text: an integer when whole (what HTTP expects), else a short decimal."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")


class _DropConnection(Response):
    """Answer that asks `_MockApp` to cut the TCP connection instead of responding."""

    def __init__(self) -> None:
        super().__init__(status_code=200)  # never sent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": _DROP_MESSAGE})


def _abort_transport(send: Send) -> None:
    """Abort the socket behind uvicorn's `send` (a bound method of its request/response cycle).

    ASGI has no way to drop a connection, so this reaches into the server; uvicorn's h11,
    httptools and zttp cycles all keep the asyncio transport as `.transport`.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    abort = getattr(transport, "abort", None)
    if not callable(abort):
        raise RuntimeError("dropping connections needs uvicorn's HTTP/1.1 protocol")
    abort()


class _MockApp(Starlette):
    """Starlette app whose outermost layer sees uvicorn's own `send`, so it can drop connections.

    Starlette's middleware wraps `send`, so the route cannot reach the transport itself: it sends
    the private `_DROP_MESSAGE`, which travels through the middleware untouched to this layer.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        dropped = False

        async def guarded_send(message: Message) -> None:
            nonlocal dropped
            if message["type"] == _DROP_MESSAGE:
                _abort_transport(send)
                dropped = True
            elif not dropped:
                await send(message)

        await super().__call__(scope, receive, guarded_send)
        if dropped:
            # Return only once uvicorn has seen the disconnect, else it would log an error and
            # try to send a 500 on the dead connection.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    while (await receive())["type"] != "http.disconnect":
                        pass


class _MockState:
    """Counters, rate-limit window, random source and ledger of one app (single asyncio thread)."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.rng = random.Random(settings.seed)
        # At most floor(rate_limit) per sliding second (at least 1): calls are whole, and rounding
        # down keeps the server from ever accepting more than the configured rate.
        self.limit = None if settings.rate_limit is None else max(1, math.floor(settings.rate_limit))
        self.retry_after = _format_seconds(settings.retry_after)
        self.window: deque[float] = deque()  # monotonic admission times within the last second
        self.requests = 0
        self.status_counts: dict[str, int] = {}
        self.placed_mono: list[float] = []
        self.placed_wall: list[float] = []
        self.sender = OutcomeSender(settings.outcomes, self.rng) if settings.outcomes else None
        self.ledger: IO[str] | None = None
        if settings.ledger is not None:
            settings.ledger.parent.mkdir(parents=True, exist_ok=True)
            # Line-buffered: each call is on disk at once, readable while running or after a kill.
            self.ledger = settings.ledger.open("a", buffering=1, encoding="utf-8")

    def close(self) -> None:
        if self.ledger is not None:
            self.ledger.close()
            self.ledger = None

    def _error(self, status: int, message: str, retry: bool = False) -> JSONResponse:
        headers = {"Retry-After": self.retry_after} if retry else None
        return JSONResponse({"success": False, "message": message}, status, headers=headers)

    def _check_access(self, request: Request, agent: bool) -> JSONResponse | None:
        """401 for a bad key, then 404 for an unknown organization or agent; None when allowed."""
        s = self.settings
        if request.headers.get("x-api-key") != s.api_key:
            return self._error(401, "missing or invalid x-api-key")
        org = request.path_params["organizationId"]
        if org != s.organization_id:
            return self._error(404, f"unknown organizationId {org!r}")
        if agent and request.path_params["agentId"] != s.agent_id:
            return self._error(404, f"unknown agentId {request.path_params['agentId']!r}")
        return None

    def _admit(self) -> tuple[float, float] | None:
        """Take a rate-limit slot; (monotonic, wall) admission time, or None when over the limit.

        The slot is taken before latency and validation so concurrent requests cannot overshoot;
        a 400 after admission still used its slot, like a gateway-level limit would.
        """
        now = time.monotonic()
        if self.limit is not None:
            while self.window and self.window[0] <= now - _WINDOW:
                self.window.popleft()
            if len(self.window) >= self.limit:
                return None
            self.window.append(now)
        return now, time.time()

    def _place(self, body: dict[str, Any], admitted: tuple[float, float], **flags: Any) -> str:
        """Record a placed call; its time is the admission time, the one the limiter counted."""
        call_id = secrets.token_hex(12)
        if self.sender is not None:
            # placed means it rings: its outcome follows, whatever the client hears of it
            status = self.sender.draw_status()
            flags["outcome"] = status if self.sender.schedule(body, call_id, status) else None
        mono, wall = admitted
        self.placed_mono.append(mono)
        self.placed_wall.append(wall)
        if self.ledger is not None:
            stamp = datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")
            record = {
                "callId": call_id,
                "phoneNumber": body["phoneNumber"],
                "referenceId": body.get("referenceId"),
                "time": stamp.replace("+00:00", "Z"),
                "ts": wall,
                **flags,
            }
            if self.settings.ledger_bodies:
                record["body"] = body
            self.ledger.write(json.dumps(record) + "\n")
        return call_id

    async def place_call(self, request: Request) -> Response:
        self.requests += 1
        response = await self._place_call(request)
        key = "dropped" if isinstance(response, _DropConnection) else str(response.status_code)
        self.status_counts[key] = self.status_counts.get(key, 0) + 1
        return response

    async def _place_call(self, request: Request) -> Response:
        s = self.settings
        raw = await request.body()  # read first so every answer leaves the connection reusable
        if (denied := self._check_access(request, agent=True)) is not None:
            return denied
        if (admitted := self._admit()) is None:
            return self._error(429, f"rate limit exceeded: {self.limit} calls per second", True)
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            return self._error(400, "body is not valid JSON")
        if (problem := validate_body(body, s.phone_number_ids)) is not None:
            return self._error(400, problem)
        delay = s.latency_ms + (self.rng.uniform(0, s.latency_jitter_ms) if s.latency_jitter_ms else 0)
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        if s.drop_rate > 0 and self.rng.random() < s.drop_rate:
            self._place(body, admitted, dropped=True)
            return _DropConnection()
        if s.error_rate > 0 and self.rng.random() < s.error_rate:
            status = self.rng.choice(s.error_statuses)
            # A 429 or 503 with Retry-After says "not processed, come back" (RFC 9110): the
            # dialer retries those, so the server never places a call it answers that way.
            if s.error_after_place and status not in (429, 503):
                self._place(body, admitted, error_status=status)
            return self._error(status, "injected error", retry=status in (429, 503))
        return JSONResponse({"success": True, "callId": self._place(body, admitted)})

    async def agents(self, request: Request) -> Response:
        s = self.settings
        if (denied := self._check_access(request, agent=False)) is not None:
            return denied
        agent = {"id": s.agent_id, "name": "Demo agent", "phoneNumberIds": list(s.phone_number_ids)}
        return JSONResponse([agent])

    async def campaigns(self, request: Request) -> Response:
        if (denied := self._check_access(request, agent=False)) is not None:
            return denied
        return JSONResponse([{"id": "camp_demo", "name": "Demo campaign"}])

    async def metrics(self, request: Request) -> Response:
        per_second: dict[str, int] = {}
        for wall in self.placed_wall:
            per_second[str(int(wall))] = per_second.get(str(int(wall)), 0) + 1
        return JSONResponse(
            {
                "requests": self.requests,
                "placed": len(self.placed_mono),
                "status_counts": self.status_counts,
                "accepted_per_second": per_second,
                "max_accepted_in_any_1s_window": max_in_window(self.placed_mono, _WINDOW),
                "outcomes": self.sender.counters.as_dict() if self.sender is not None else None,
            }
        )


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes and methods answer in the contract's error shape too."""
    assert isinstance(exc, HTTPException)
    body = {"success": False, "message": exc.detail}
    return JSONResponse(body, exc.status_code, headers=exc.headers)


def _build(settings: ServerSettings) -> tuple[Starlette, _MockState]:
    state = _MockState(settings)
    org = "/organizations/{organizationId}"
    routes = [
        Route(f"{org}/agents/{{agentId}}/placeCall", state.place_call, methods=["POST"]),
        Route(f"{org}/agents", state.agents, methods=["GET"]),
        Route(f"{org}/campaigns", state.campaigns, methods=["GET"]),
        Route("/_mock/metrics", state.metrics, methods=["GET"]),
    ]
    app = _MockApp(routes=routes, exception_handlers={HTTPException: _http_error})
    weakref.finalize(app, state.close)  # closes the ledger for callers that only hold the app
    return app, state


class _Server(uvicorn.Server):
    """uvicorn that announces its base URL, with the real port, as soon as it listens."""

    def __init__(self, app: Starlette, state: _MockState, on_ready: _OnReady) -> None:
        settings = state.settings
        # h11 is forced so the connection drop always runs on the protocol it was verified with.
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            http="h11",
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_keep_alive=30,  # above httpx's 5 s pool expiry: the client closes idle first
            timeout_graceful_shutdown=5,
            ssl_certfile=settings.tls_certfile,
            ssl_keyfile=settings.tls_keyfile,
        )
        super().__init__(config)
        self.on_ready = on_ready
        self.state = state

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        if self.state.sender is not None:  # outcomes not yet posted die with the server
            await self.state.sender.aclose()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.on_ready is not None:
            host = self.config.host
            port = int(self.servers[0].sockets[0].getsockname()[1])
            scheme = "https" if self.config.ssl_certfile else "http"
            self.on_ready(f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}")


def serve(settings: ServerSettings, on_ready: Callable[[str], None] | None = None) -> None:
    """Blocking: run uvicorn until SIGINT/SIGTERM; call on_ready(base_url) once listening.

    Returns normally after a graceful shutdown. uvicorn re-raises the signal it caught once it has
    stopped; the placeholder handlers installed here receive it instead of the defaults, so the
    caller is not killed or interrupted and can report what happened.
    """
    app, state = _build(settings)
    # A full collection that walks every object of the imported libraries stalls the event loop
    # for tens of milliseconds, which bunches arrivals and spoils the server's pacing figures.
    gc.collect()
    gc.freeze()
    server = _Server(app, state, on_ready)
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: setattr(server, "should_exit", True))
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        state.close()


@contextlib.contextmanager
def serve_in_thread(settings: ServerSettings) -> Iterator[str]:
    """Run the server in a background thread; yield its base URL; stop it cleanly on exit."""
    app, state = _build(settings)
    urls: list[str] = []
    ready = threading.Event()

    def announce(url: str) -> None:
        urls.append(url)
        ready.set()

    server = _Server(app, state, announce)
    thread = threading.Thread(target=server.run, name="kyzo-mock-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10.0
        while not ready.wait(0.01):
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"mock server did not start on {settings.host}:{settings.port}")
        yield urls[0]
    finally:
        server.should_exit = True
        thread.join(timeout=10.0)
        state.close()
