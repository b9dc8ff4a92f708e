"""Group commit: every claim and result queued at one moment goes into one transaction.

The event loop never touches SQLite: it queues an operation and awaits a future, and one thread
commits whatever is queued, so one fsync serves many calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dialer.errors import CheckpointWriteFailed
from dialer.lead_state import IllegalMove

if TYPE_CHECKING:
    from dialer.checkpoint import Claim, Result

_MAX_BATCH = 5000

ApplyClaim = Callable[[sqlite3.Connection, "Claim"], None]
ApplyResult = Callable[[sqlite3.Connection, "Result"], None]


@dataclass
class _Op:
    claim: Claim | None
    result: Result | None
    future: asyncio.Future[None]


class GroupCommitWriter:
    """Commits every claim and result queued at that moment in one transaction, off the loop."""

    def __init__(
        self,
        db: sqlite3.Connection,
        loop: asyncio.AbstractEventLoop,
        *,
        apply_claim: ApplyClaim,
        apply_result: ApplyResult,
        where: str,
    ) -> None:
        self._db = db
        self._loop = loop
        self._apply_claim = apply_claim
        self._apply_result = apply_result
        self._where = where  # the checkpoint's path, for messages
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="checkpoint-writer", daemon=True)
        self._thread.start()

    def claim(self, claim: Claim) -> asyncio.Future[None]:
        return self._submit(_Op(claim, None, self._loop.create_future()))

    def record(self, result: Result) -> asyncio.Future[None]:
        return self._submit(_Op(None, result, self._loop.create_future()))

    def _submit(self, op: _Op) -> asyncio.Future[None]:
        self._queue.put(op)
        return op.future

    async def aclose(self) -> None:
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)

    def _work(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < _MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: list[_Op]) -> None:
        outcomes: list[BaseException | None] = []
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for op in batch:
                try:
                    if op.claim is not None:
                        self._apply_claim(self._db, op.claim)
                    elif op.result is not None:
                        self._apply_result(self._db, op.result)
                    outcomes.append(None)
                except IllegalMove as exc:  # nothing was changed by the refused statement
                    outcomes.append(exc)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            error = CheckpointWriteFailed(f"{self._where}: cannot write the checkpoint ({exc})")
            outcomes = [error] * len(batch)
        # one wake-up of the event loop per batch, not one per lead
        self._loop.call_soon_threadsafe(_settle, [op.future for op in batch], outcomes)


def _settle(futures: list[asyncio.Future[None]], outcomes: list[BaseException | None]) -> None:
    for future, outcome in zip(futures, outcomes, strict=True):
        if future.done():
            continue
        if outcome is None:
            future.set_result(None)
        else:
            future.set_exception(outcome)
