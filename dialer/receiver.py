"""The outcomes receiver: where Kyzo's webhook tool posts each call's outcome (`dialer collect`).

It answers 200 only once the payload is committed to the checkpoint, so a delivery lost to a
crash is sent again by the sender, never lost here. 401 (wrong token), 413 (over 1 MiB) and 400
(not a JSON object) store nothing. Nothing about a payload's shape is assumed: it is kept whole,
and read later through the configured paths (`outcomes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dialer import logs, outcome_store
from dialer.checkpoint import Checkpoint
from dialer.config import Settings
from dialer.config_schema import listen_address
from dialer.errors import CheckpointWriteFailed, UserError
from dialer.group_commit import GroupCommitWriter
from dialer.outcomes import Reading, delivery, key_paths

MAX_BODY_BYTES = 1 << 20
RETRY_AFTER_S = "5"  # what a sender is told when the checkpoint cannot be written right now


class Receiver:
    """The ASGI app and its checkpoint connection; `serve` puts uvicorn around it."""

    def __init__(self, settings: Settings) -> None:
        outcomes = settings.outcomes
        if outcomes is None:
            raise UserError(f"{settings.source}: dialer collect needs an [outcomes] table in the config")
        self._expected = f"Bearer {outcomes.token}".encode()
        self._reading = Reading.of(outcomes)
        self._checkpoint_path = settings.checkpoint_path
        self._checkpoint: Checkpoint | None = None
        self._reader: Checkpoint | None = None
        self._writer: GroupCommitWriter | None = None
        self.stored = 0
        self.app = Starlette(
            routes=[
                Route(outcomes.path, self.receive, methods=["POST"]),
                Route("/healthz", self.health, methods=["GET"]),
            ],
        )

    @contextlib.asynccontextmanager
    async def opened(self) -> AsyncIterator[Receiver]:
        """Its own checkpoint connections (a run writes through another), open while serving."""
        self._checkpoint = Checkpoint.open(self._checkpoint_path)  # created if no run came first
        try:
            self._reader = Checkpoint.open_readonly(self._checkpoint_path)
            self._writer = self._checkpoint.commits(asyncio.get_running_loop())
            yield self
        finally:
            if self._writer is not None:
                await self._writer.aclose()
            if self._reader is not None:
                self._reader.close()
            self._checkpoint.close()

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "stored": self.stored})

    async def receive(self, request: Request) -> Response:
        offered = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(offered, self._expected):
            logs.get_logger().warning(
                "outcome_refused", http_status=401, reason="missing or wrong bearer token"
            )
            return _answer(401, "missing or wrong bearer token")
        body = await _read_capped(request, MAX_BODY_BYTES)
        if body is None:
            logs.get_logger().warning("outcome_refused", http_status=413, reason="body over 1 MiB")
            return _answer(413, "body over 1 MiB")
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            payload = None
        if not isinstance(payload, dict):
            logs.get_logger().warning("outcome_refused", http_status=400, reason="body is not a JSON object")
            return _answer(400, "body must be a JSON object")
        received = delivery(payload, self._reading)
        assert self._writer is not None and self._reader is not None
        try:
            await self._writer.submit(partial(outcome_store.store, delivery=received))
        except CheckpointWriteFailed as exc:
            # not stored: the sender must try again (a 200 here would lose the outcome)
            logs.get_logger().error("outcome_not_stored", error=str(exc))
            return _answer(503, "cannot store the outcome right now", {"Retry-After": RETRY_AFTER_S})
        self.stored += 1
        if logs.enabled_for("debug"):
            matched = self._reader.knows(received)
            if matched:
                logs.get_logger().debug("outcome_received", call_id=received.call_id)
            else:  # keys only, never values: enough to write the [outcomes] paths, nothing personal
                logs.get_logger().debug("outcome_unmatched", keys=sorted(set(key_paths(payload))))
        return _answer(200, "stored")


def _answer(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"ok": status == 200, "message": message}, status, headers=headers)


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes `limit` (read no further: a flood costs one MiB)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
    except ClientDisconnect:
        return b""
    return b"".join(chunks)


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling (the dialer decides what a signal means), which
    says when it listens."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_ready()


def bind(listen: str) -> socket.socket:
    """The listening socket, bound now: a taken port is a clear error, not uvicorn's exit."""
    host, port = listen_address(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(
            f"cannot listen on {listen} for outcomes ({exc.strerror or exc}): is `dialer collect` "
            "already running there? Choose another address with --listen or outcomes.listen"
        ) from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def server(receiver: Receiver, on_ready: Callable[[], None] = lambda: None) -> uvicorn.Server:
    config = uvicorn.Config(
        receiver.app,
        http="h11",
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return _Uvicorn(config, on_ready)


def address_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextlib.asynccontextmanager
async def serving(settings: Settings, sock: socket.socket) -> AsyncIterator[Receiver]:
    """The receiver inside another command's event loop (`dialer run --collect`)."""
    receiver = Receiver(settings)
    uv = server(receiver, lambda: logs.get_logger().info("collect_listening", url=address_of(sock)))
    async with receiver.opened():
        task = asyncio.create_task(uv.serve(sockets=[sock]))
        try:
            yield receiver
        finally:
            uv.should_exit = True
            await task
            logs.get_logger().info("collect_stopped", stored=receiver.stored)


def collect(settings: Settings, listen: str | None, on_ready: Callable[[str], None]) -> int:
    """`dialer collect`: serve until SIGTERM/SIGINT; returns how many payloads were stored."""
    receiver = Receiver(settings)
    assert settings.outcomes is not None
    sock = bind(listen or settings.outcomes.listen)
    uv = server(receiver, lambda: on_ready(address_of(sock)))
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: setattr(uv, "should_exit", True))

    async def main() -> None:
        async with receiver.opened():
            await uv.serve(sockets=[sock])

    try:
        asyncio.run(main())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    return receiver.stored
