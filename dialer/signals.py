"""SIGINT and SIGTERM during a run: the first finishes the calls in flight, the second aborts."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from dialer import logs


class Stoppable(Protocol):
    @property
    def stopping(self) -> bool: ...

    def interrupt(self, message: str) -> None: ...

    def abort(self) -> None: ...


@contextmanager
def stop_on_signals(loop: asyncio.AbstractEventLoop, target: Stoppable) -> Iterator[None]:
    """While inside, SIGINT/SIGTERM stop `target`; afterwards the previous handlers are back.

    asyncio resets a removed handler to the default (death by SIGTERM), so the old one is
    put back by hand: the CLI's handler turns a later SIGTERM into a clean exit 4.
    """

    def handle(signum: int) -> None:
        name = signal.Signals(signum).name
        if target.stopping:
            logs.get_logger().warning("second_signal", signal=name, action="stopping immediately")
            target.abort()
        else:
            logs.get_logger().warning("signal", signal=name, action="finishing calls in flight")
            target.interrupt(f"stopped by {name}")

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        loop.add_signal_handler(sig, handle, sig)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            if handler is not None:
                signal.signal(sig, handler)
