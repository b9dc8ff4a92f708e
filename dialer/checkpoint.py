"""The checkpoint: a SQLite (WAL) record of every lead the dialer ever tried to call.

A lead is written `in_flight` (durably) before its request is sent, and its outcome after the
answer is read. Writes from the event loop go through one thread that commits everything
queued at that moment in a single transaction (group commit): one fsync serves many calls.
The state machine below is the only place that says which moves are legal.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import queue
import socket
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import polars as pl

from dialer.errors import AlreadyRunning, CheckpointError, OutputError

APPLICATION_ID = 0x4B595A4F  # "KYZO": marks the file as ours
SCHEMA_VERSION = 1
_SQLITE_MAGIC = b"SQLite format 3\x00"
_MAX_BATCH = 5000
_FETCH_ROWS = 100_000  # rows turned into Python tuples at a time when reading states


class Status(StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    PLACED = "placed"
    FAILED = "failed"
    UNKNOWN = "unknown"


# The legal moves of a lead. `failed -> in_flight` needs --retry-failed and
# `unknown -> in_flight` needs --redial-unknown: the caller passes what it may claim from.
LEGAL_MOVES: Mapping[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.IN_FLIGHT}),
    Status.IN_FLIGHT: frozenset({Status.PLACED, Status.FAILED, Status.UNKNOWN, Status.PENDING}),
    Status.FAILED: frozenset({Status.IN_FLIGHT}),
    Status.UNKNOWN: frozenset({Status.IN_FLIGHT}),
    Status.PLACED: frozenset(),
}
DONE = frozenset({Status.PLACED, Status.FAILED, Status.UNKNOWN})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leads (
    key TEXT PRIMARY KEY,
    phone TEXT NOT NULL,
    reference_id TEXT,
    status TEXT NOT NULL,
    call_id TEXT,
    error TEXT,
    http_status INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    run_id INTEGER
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    command TEXT NOT NULL,
    config_fingerprint TEXT NOT NULL,
    input_fingerprint TEXT NOT NULL,
    exit_code INTEGER,
    counts TEXT
);
"""


STATE_SCHEMA: Mapping[str, pl.DataType] = {
    "key": pl.String(),
    "phone": pl.String(),
    "reference_id": pl.String(),
    "status": pl.String(),
    "call_id": pl.String(),
    "error": pl.String(),
    "http_status": pl.Int64(),
    "attempts": pl.Int64(),
    "updated_at": pl.String(),
}


class IllegalMove(CheckpointError):
    """A state change the state machine forbids; refused, nothing written."""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_move(current: Status | None, new: Status) -> None:
    if new not in LEGAL_MOVES[current or Status.PENDING]:
        raise IllegalMove(f"a lead cannot go from {current or Status.PENDING} to {new}")


# ---------------------------------------------------------------- the lock


class RunLock:
    """An OS lock (flock) next to the checkpoint: released by the kernel if its holder dies."""

    def __init__(self, checkpoint: Path) -> None:
        self.path = checkpoint.with_name(checkpoint.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise OutputError(
                f"{self.path}: cannot create the run lock next to the checkpoint "
                f"({exc.strerror or exc}): make the folder writable or choose another --checkpoint"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise AlreadyRunning(
                f"another run holds the checkpoint {self.path.with_suffix('')}: {holder}. "
                "Wait for it to finish (or stop it) and run again"
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": utc_now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {info['pid']} on {info['host']}, started {info['started_at']}"
    except (ValueError, KeyError, OSError):
        return "a process that did not record its details"


# ---------------------------------------------------------------- the store


@dataclass(frozen=True)
class Identity:
    """What makes a checkpoint one campaign: changing any of it is a different campaign."""

    organization_id: str
    agent_id: str
    from_phone_number_id: str
    dedupe: str

    def as_meta(self) -> dict[str, str]:
        return {
            "organization_id": self.organization_id,
            "agent_id": self.agent_id,
            "from_phone_number_id": self.from_phone_number_id,
            "dedupe": self.dedupe,
        }


@dataclass(frozen=True)
class Claim:
    key: str
    phone: str
    reference_id: str | None


@dataclass(frozen=True)
class Result:
    key: str
    status: Status
    attempts: int
    call_id: str | None = None
    error: str | None = None
    http_status: int | None = None


class Checkpoint:
    """Synchronous access; `writer()` hands out the async group-commit writer for a run."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> Checkpoint:
        """Open or create; a foreign or corrupt file is refused and left as it was."""
        if path.exists():
            _verify_ours(path)
        elif not create:
            raise CheckpointError(f"{path}: no checkpoint yet (no run of this campaign so far)")
        else:
            _create(path)
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise CheckpointError(f"{path}: cannot open the checkpoint ({exc})") from None
        return cls(path, db)

    @classmethod
    def open_readonly(cls, path: Path) -> Checkpoint:
        if not path.exists():
            raise CheckpointError(f"{path}: no checkpoint yet (no run of this campaign so far)")
        _verify_ours(path)
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        return cls(path, db)

    def close(self) -> None:
        self._db.close()

    # -- identity and runs

    def meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def belongs_to(self, identity: Identity) -> bool:
        """True for a fresh checkpoint or one of this very campaign."""
        stored = self.meta()
        return all(stored.get(k, v) == v for k, v in identity.as_meta().items())

    def bind_identity(self, identity: Identity) -> None:
        """Record the campaign on first use; refuse a checkpoint of another campaign."""
        stored = self.meta()
        wanted = identity.as_meta()
        if not any(k in stored for k in wanted):
            with self._transaction():
                self._db.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", wanted.items())
            return
        changed = [f"{k} was '{stored.get(k)}', now '{v}'" for k, v in wanted.items() if stored.get(k) != v]
        if changed:
            raise CheckpointError(
                f"{self.path}: this checkpoint belongs to a different campaign ({'; '.join(changed)}). "
                "Use another --checkpoint, or --new-campaign to set this one aside and start afresh"
            )

    def start_run(self, command: str, config_fingerprint: str, input_fingerprint: str) -> int:
        with self._transaction():
            cursor = self._db.execute(
                "INSERT INTO runs(started_at, pid, host, command, config_fingerprint, input_fingerprint)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    utc_now(),
                    os.getpid(),
                    socket.gethostname(),
                    command,
                    config_fingerprint,
                    input_fingerprint,
                ),
            )
        return int(cursor.lastrowid or 0)

    def end_run(self, run_id: int, exit_code: int, counts: Mapping[str, int]) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE runs SET ended_at = ?, exit_code = ?, counts = ? WHERE id = ?",
                (utc_now(), exit_code, json.dumps(dict(counts)), run_id),
            )

    def runs(self) -> list[dict[str, Any]]:
        cursor = self._db.execute(
            "SELECT id, started_at, ended_at, pid, host, command, config_fingerprint, input_fingerprint,"
            " exit_code, counts FROM runs ORDER BY id"
        )
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        for row in rows:
            row["counts"] = json.loads(row["counts"]) if row["counts"] else None
        return rows

    # -- leads

    def recover_interrupted(self, note: str) -> int:
        """Leads left in flight by a run that died may have been called: mark them unknown."""
        with self._transaction():
            cursor = self._db.execute(
                "UPDATE leads SET status = ?, error = ?, updated_at = ? WHERE status = ?",
                (Status.UNKNOWN, note, utc_now(), Status.IN_FLIGHT),
            )
        return cursor.rowcount

    def states(self) -> pl.DataFrame:
        """Every lead the checkpoint knows, as a frame (one query, no per-row objects kept)."""
        cursor = self._db.execute(f"SELECT {', '.join(STATE_SCHEMA)} FROM leads")
        chunks = [self.empty_states()]
        while rows := cursor.fetchmany(_FETCH_ROWS):
            chunks.append(pl.DataFrame(rows, schema=STATE_SCHEMA, orient="row"))
        return pl.concat(chunks, rechunk=True)

    @staticmethod
    def empty_states() -> pl.DataFrame:
        return pl.DataFrame(schema=STATE_SCHEMA)

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT status, count(*) FROM leads GROUP BY status").fetchall())

    def claim_now(self, claims: Iterable[Claim], run_id: int, claimable: frozenset[Status]) -> None:
        """Synchronous claim, for tests and tools; the dispatcher uses the writer."""
        with self._transaction():
            for claim in claims:
                _apply_claim(self._db, claim, run_id, claimable)

    def record_now(self, results: Iterable[Result]) -> None:
        with self._transaction():
            for result in results:
                _apply_result(self._db, result)

    def writer(
        self, loop: asyncio.AbstractEventLoop, run_id: int, claimable: frozenset[Status]
    ) -> GroupCommitWriter:
        return GroupCommitWriter(self._db, loop, run_id, claimable)

    @contextlib.contextmanager
    def _transaction(self) -> Any:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise CheckpointError(f"{self.path}: cannot write the checkpoint ({exc})") from None
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._db.execute("ROLLBACK")
            raise CheckpointError(f"{self.path}: cannot write the checkpoint ({exc})") from None


def _create(path: Path) -> None:
    """Build the empty checkpoint beside its final name, then rename: a crash leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.{os.getpid()}.new")
    temp.unlink(missing_ok=True)
    os.close(os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        db = sqlite3.connect(temp, isolation_level=None)
        try:
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.executescript(_SCHEMA)
        finally:
            db.close()
        with temp.open("rb+") as handle:
            os.fsync(handle.fileno())
        temp.replace(path)
    except (OSError, sqlite3.Error) as exc:
        temp.unlink(missing_ok=True)
        raise CheckpointError(f"{path}: cannot create the checkpoint ({exc})") from None


def _verify_ours(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            head = handle.read(100)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({exc.strerror})") from None
    if not head.startswith(_SQLITE_MAGIC):
        raise CheckpointError(
            f"{path}: is not a kyzo-dialer checkpoint (not a SQLite file). "
            "It was left untouched; choose another --checkpoint or move the file away"
        )
    application_id = int.from_bytes(head[68:72], "big")
    if application_id != APPLICATION_ID:
        raise CheckpointError(
            f"{path}: is a SQLite file of another program, not a kyzo-dialer checkpoint. "
            "It was left untouched; choose another --checkpoint"
        )
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            db.execute("SELECT count(*) FROM leads").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise CheckpointError(f"{path}: the checkpoint is damaged ({exc}); it was left untouched") from None
    if version != SCHEMA_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint schema {version} is not supported (expected {SCHEMA_VERSION})"
        )


_CLAIM_SQL = (
    "INSERT INTO leads(key, phone, reference_id, status, attempts, updated_at, run_id)"
    " VALUES (?, ?, ?, 'in_flight', 0, ?, ?)"
    " ON CONFLICT(key) DO UPDATE SET status = 'in_flight', error = NULL, http_status = NULL,"
    " updated_at = excluded.updated_at, run_id = excluded.run_id"
    " WHERE leads.status IN (?, ?, ?)"
)
_RESULT_SQL = (
    "UPDATE leads SET status = ?, call_id = coalesce(?, call_id), error = ?, http_status = ?,"
    " attempts = attempts + ?, updated_at = ? WHERE key = ? AND status = 'in_flight'"
)


def _claimable_params(claimable: frozenset[Status]) -> tuple[str, str, str]:
    """The three IN (...) slots of _CLAIM_SQL; unused ones repeat 'pending', which is always claimable."""
    allowed = sorted({Status.PENDING.value, *(s.value for s in claimable)})
    padded = [*allowed, *[Status.PENDING.value] * 3][:3]
    return padded[0], padded[1], padded[2]


def _apply_claim(db: sqlite3.Connection, claim: Claim, run_id: int, claimable: frozenset[Status]) -> None:
    """A statement whose WHERE fails changes nothing, so a refused claim needs no rollback."""
    cursor = db.execute(
        _CLAIM_SQL,
        (claim.key, claim.phone, claim.reference_id, utc_now(), run_id, *_claimable_params(claimable)),
    )
    if cursor.rowcount != 1:
        current = db.execute("SELECT status FROM leads WHERE key = ?", (claim.key,)).fetchone()
        raise IllegalMove(
            f"lead {claim.key!r} is {current[0] if current else 'absent'}; it may not be claimed"
        )


def _apply_result(db: sqlite3.Connection, result: Result) -> None:
    check_move(Status.IN_FLIGHT, result.status)
    cursor = db.execute(
        _RESULT_SQL,
        (
            result.status,
            result.call_id,
            result.error,
            result.http_status,
            result.attempts,
            utc_now(),
            result.key,
        ),
    )
    if cursor.rowcount != 1:
        raise IllegalMove(f"lead {result.key!r} is not in flight; its outcome was refused")


# ---------------------------------------------------------------- group commit


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
        run_id: int,
        claimable: frozenset[Status],
    ) -> None:
        self._db = db
        self._loop = loop
        self._run_id = run_id
        self._claimable = claimable
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="checkpoint-writer", daemon=True)
        self._thread.start()
        self.commits = 0

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

    def close_sync(self) -> None:
        self._queue.put(None)
        self._thread.join()

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
                        _apply_claim(self._db, op.claim, self._run_id, self._claimable)
                    elif op.result is not None:
                        _apply_result(self._db, op.result)
                    outcomes.append(None)
                except IllegalMove as exc:  # nothing was changed by the refused statement
                    outcomes.append(exc)
            self._db.execute("COMMIT")
            self.commits += 1
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            error = CheckpointError(f"cannot write the checkpoint: {exc}")
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
