"""The checkpoint: a SQLite (WAL) record of every lead the dialer ever tried to call.

A lead is written `in_flight` (durably) before its request is sent, and its outcome after the
answer is read. Every change goes through the state machine of `lead_state`; during a run the
changes are queued to the group-commit writer (`group_commit`), one transaction per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from dialer.errors import CheckpointError, CheckpointWriteFailed
from dialer.group_commit import GroupCommitWriter
from dialer.lead_state import ClaimRefused, IllegalMove, Status, check_move, claimable_from
from dialer.timestamps import utc_now

APPLICATION_ID = 0x4B595A4F  # "KYZO": marks the file as ours
SCHEMA_VERSION = 1
_SQLITE_MAGIC = b"SQLite format 3\x00"
_FETCH_ROWS = 100_000  # rows turned into Python tuples at a time when reading states

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
        check_move(Status.IN_FLIGHT, Status.UNKNOWN)
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

    def claim_now(self, claims: Iterable[Claim], run_id: int, claimable: Iterable[Status] = ()) -> None:
        """Synchronous claim, for tests and tools; the dispatcher uses the writer."""
        apply = self._claimer(run_id, claimable)
        with self._transaction():
            for claim in claims:
                apply(self._db, claim)

    def record_now(self, results: Iterable[Result]) -> None:
        with self._transaction():
            for result in results:
                _apply_result(self._db, result)

    def writer(
        self, loop: asyncio.AbstractEventLoop, run_id: int, claimable: Iterable[Status] = ()
    ) -> GroupCommitWriter:
        """The run's writer: it may claim leads that are pending or in one of `claimable`."""
        return GroupCommitWriter(
            self._db,
            loop,
            apply_claim=self._claimer(run_id, claimable),
            apply_result=_apply_result,
            where=str(self.path),
        )

    @staticmethod
    def _claimer(run_id: int, claimable: Iterable[Status]) -> Any:
        return partial(_apply_claim, run_id=run_id, sources=claimable_from(claimable))

    @contextlib.contextmanager
    def _transaction(self) -> Any:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise CheckpointWriteFailed(f"{self.path}: cannot write the checkpoint ({exc})") from None
        try:
            yield
        except BaseException:
            self._rollback()
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise CheckpointWriteFailed(f"{self.path}: cannot write the checkpoint ({exc})") from None

    def _rollback(self) -> None:
        """SQLite may already have rolled back (a full disk): there is then nothing left to undo."""
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")


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
    " WHERE leads.status IN ({sources})"
)
_RESULT_SQL = (
    "UPDATE leads SET status = ?, call_id = coalesce(?, call_id), error = ?, http_status = ?,"
    " attempts = attempts + ?, updated_at = ? WHERE key = ? AND status = 'in_flight'"
)


def _apply_claim(db: sqlite3.Connection, claim: Claim, *, run_id: int, sources: frozenset[Status]) -> None:
    """Claim a lead new or in one of `sources` (checked legal by `claimable_from`).

    The database enforces the move in the same statement, so two runs can never both claim
    a lead; a statement whose WHERE fails changes nothing, so a refused claim needs no rollback.
    """
    ordered = sorted(sources)
    sql = _CLAIM_SQL.format(sources=", ".join("?" * len(ordered)))
    cursor = db.execute(sql, (claim.key, claim.phone, claim.reference_id, utc_now(), run_id, *ordered))
    if cursor.rowcount != 1:
        row = db.execute("SELECT status FROM leads WHERE key = ?", (claim.key,)).fetchone()
        raise ClaimRefused(f"lead {claim.key!r} is {row[0] if row else 'absent'}; it may not be claimed")


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
