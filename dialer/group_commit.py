"""Group commit: every write queued at one moment goes into one transaction, off the event loop.

The event loop never touches SQLite: it queues an operation and awaits a future, and one thread
commits whatever is queued, so one fsync serves many calls (or many received outcomes). A
future resolves only after its transaction is committed: what the caller then says ("placed",
a 200 to a webhook sender) is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass

from dialer.errors import CheckpointWriteFailed
from dialer.lead_state import IllegalMove

_MAX_BATCH = 5000

Apply = Callable[[sqlite3.Connection], None]


@dataclass
class _Op:
    apply: Apply
    future: asyncio.Future[None]


class GroupCommitWriter:
    def __init__(
        self,
        db: sqlite3.Connection,
        loop: asyncio.AbstractEventLoop,
        *,
        where: str,
        before_commit: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._loop = loop
        self._where = where  # the checkpoint's path, for messages
        self._before_commit = before_commit  # the seam tests fail commits through (a full disk)
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="checkpoint-writer", daemon=True)
        self._thread.start()

    def submit(self, apply: Apply) -> asyncio.Future[None]:
        """Queue one change; the future fails with IllegalMove (that change refused, the rest
        committed) or CheckpointWriteFailed (nothing of its batch was written)."""
        op = _Op(apply, self._loop.create_future())
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
                    op.apply(self._db)
                    outcomes.append(None)
                except IllegalMove as exc:  # nothing was changed by the refused statement
                    outcomes.append(exc)
            if self._before_commit is not None:
                self._before_commit()
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            error = CheckpointWriteFailed.at(self._where, exc)
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
