"""The checkpoint: a SQLite (WAL) record of every lead the dialer ever tried to call.

A lead is written `in_flight` (durably) before its request is sent, and its outcome after the
answer is read. Those moves are `lead_writes`' statements, checked by the state machine of
`lead_state`; during a run they are queued to the group-commit writer, one transaction per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import socket
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dialer import checkpoint_schema, outcome_store
from dialer.checkpoint_schema import SCHEMA_VERSION, upgrade, verify_ours
from dialer.errors import CheckpointError, CheckpointWriteFailed
from dialer.group_commit import GroupCommitWriter
from dialer.lead_state import Status, check_move, claimable_from
from dialer.lead_writes import ApplyClaim, Claim, Result, RunWriter, apply_claim, apply_result
from dialer.timestamps import utc_now

_TAG_SALT = "_lead_tag_salt"
_KEPT = "_counts"  # the results' counts at the end of the last run or export (kept_counts)

if TYPE_CHECKING:
    import polars as pl

    from dialer.outcomes import Delivery

STATE_SCHEMA: outcome_store.Columns = {
    "key": "String",
    "phone": "String",
    "reference_id": "String",
    "status": "String",
    "call_id": "String",
    "error": "String",
    "http_status": "Int64",
    "attempts": "Int64",
    "updated_at": "String",
    "calls": "Int64",
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


class Checkpoint:
    """Synchronous access; `writer()` hands out the async group-commit writer for a run."""

    def __init__(
        self, path: Path, connection: sqlite3.Connection, before_commit: Callable[[], None] | None = None
    ) -> None:
        self.path = path
        self._db = connection
        # Called before every COMMIT of a change: how tests make writes fail from the Nth on (a disk
        # filling) without touching sqlite3 itself. None in production.
        self._before_commit = before_commit

    @classmethod
    def open(
        cls, path: Path, *, create: bool = True, before_commit: Callable[[], None] | None = None
    ) -> Checkpoint:
        """Open or create; a foreign or corrupt file is refused and left as it was."""
        if path.exists():
            version = verify_ours(path)
        elif not create:
            raise CheckpointError(f"{path}: no checkpoint yet (no run of this campaign so far)")
        else:
            checkpoint_schema.create(path)
            version = SCHEMA_VERSION
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise CheckpointError(f"{path}: cannot open the checkpoint ({exc})") from None
        if version != SCHEMA_VERSION:
            upgrade(db, path)
        return cls(path, db, before_commit)

    @classmethod
    def open_readonly(cls, path: Path) -> Checkpoint:
        if not path.exists():
            raise CheckpointError(f"{path}: no checkpoint yet (no run of this campaign so far)")
        if verify_ours(path) != SCHEMA_VERSION:
            Checkpoint.open(path).close()  # an older file is upgraded once, by whoever reads it first
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        return cls(path, db)

    def close(self) -> None:
        self._db.close()

    # -- identity and runs

    def meta(self) -> dict[str, str]:
        """The campaign's identity (keys starting with _ are the checkpoint's own, not shown)."""
        return {
            k: v
            for k, v in self._db.execute("SELECT key, value FROM meta").fetchall()
            if not k.startswith("_")
        }

    def lead_tag(self, key: str) -> str:
        return self.tagger()(key)

    def tagger(self) -> Callable[[str], str]:
        """A lead's name in the log: the same in every run of this checkpoint, useless without it
        (keyed with a secret salt kept here, so a phone number cannot be found from its tag).
        Read once: the function works with no further access to the file (a full disk, a thread)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (_TAG_SALT,)).fetchone()
        salt = bytes.fromhex(row[0]) if row else b""
        return lambda key: hmac.new(salt, key.encode(), hashlib.sha256).hexdigest()[:16]

    def save_kept(self, text: str) -> None:
        """Keep the results' counts and what they hold for (`kept_counts.keep`), as one value."""
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (_KEPT, text))

    def kept(self) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (_KEPT,)).fetchone()
        return str(row[0]) if row else None

    def latest_run_id(self) -> int:
        return int(self._db.execute("SELECT coalesce(max(id), 0) FROM runs").fetchone()[0])

    def latest_payload_id(self) -> int:
        return int(self._db.execute("SELECT coalesce(max(id), 0) FROM payloads").fetchone()[0])

    def top_errors(self, limit: int = 10) -> list[tuple[str | None, int]]:
        """The most common errors of failed and unknown leads."""
        return [
            (error, int(count))
            for error, count in self._db.execute(
                "SELECT error, count(*) AS n FROM leads WHERE status IN (?, ?)"
                " GROUP BY error ORDER BY n DESC, error LIMIT ?",
                (Status.FAILED, Status.UNKNOWN, limit),
            )
        ]

    def in_flight_keys(self) -> list[str]:
        """Leads a run claimed and never settled: it died, or could not write their answer."""
        return [
            key for (key,) in self._db.execute("SELECT key FROM leads WHERE status = ?", (Status.IN_FLIGHT,))
        ]

    def belongs_to(self, identity: Identity) -> bool:
        """True for a fresh checkpoint or one of this very campaign."""
        stored = self.meta()
        return all(stored.get(k, v) == v for k, v in identity.as_meta().items())

    def bind_identity(self, identity: Identity) -> None:
        """Record the campaign on first use; refuse a checkpoint of another campaign."""
        stored = self.meta()
        wanted = identity.as_meta()
        if not self._db.execute("SELECT 1 FROM meta WHERE key = ?", (_TAG_SALT,)).fetchone():
            with self._transaction():  # made now, while the disk has room: the tags need it later
                self._db.execute(
                    "INSERT INTO meta(key, value) VALUES (?, ?)", (_TAG_SALT, os.urandom(16).hex())
                )
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

    def end_run(
        self, run_id: int, exit_code: int, counts: Mapping[str, int], *, sent: int = 0, placed: int = 0
    ) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE runs SET ended_at = ?, exit_code = ?, counts = ?, sent = ?, placed = ? WHERE id = ?",
                (utc_now(), exit_code, json.dumps(dict(counts)), sent, placed, run_id),
            )

    def runs(self) -> list[dict[str, Any]]:
        cursor = self._db.execute(
            "SELECT id, started_at, ended_at, pid, host, command, config_fingerprint, input_fingerprint,"
            " exit_code, counts, sent, placed FROM runs ORDER BY id"
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
        now = utc_now()
        with self._transaction():
            # each may have rung: it counts as a call (and is never recycled, being unknown)
            self._db.execute(
                "INSERT INTO calls(key, call_id, claimed_at, placed_at, run_id, status)"
                " SELECT key, NULL, coalesce(claimed_at, ?), ?, run_id, ? FROM leads WHERE status = ?",
                (now, now, Status.UNKNOWN, Status.IN_FLIGHT),
            )
            cursor = self._db.execute(
                "UPDATE leads SET status = ?, error = ?, updated_at = ?, calls = calls + 1 WHERE status = ?",
                (Status.UNKNOWN, note, now, Status.IN_FLIGHT),
            )
        return cursor.rowcount

    def states(self, without: Iterable[str] = ()) -> pl.DataFrame:
        """Every lead the checkpoint knows, as a frame (no per-row objects kept); `without`:
        columns the caller has no use for (a million leads' phone numbers are not free to read)."""
        columns = {name: kind for name, kind in STATE_SCHEMA.items() if name not in set(without)}
        return outcome_store.read_frame(self._db, f"SELECT {', '.join(columns)} FROM leads", columns)

    @staticmethod
    def empty_states() -> pl.DataFrame:
        return outcome_store.empty_frame(STATE_SCHEMA)

    def calls(self) -> pl.DataFrame:
        """Every call of every lead (a lead called again has several), oldest first."""
        return outcome_store.read_calls(self._db)

    def payloads(self) -> pl.DataFrame:
        """Every outcome payload received, as kept (canonical JSON), in arrival order."""
        return outcome_store.read_payloads(self._db)

    def awaiting_outcomes(self) -> int:
        return outcome_store.awaiting(self._db)

    def knows(self, delivery: Delivery) -> bool:
        """Does an outcome payload name one of this campaign's calls or referenceIds?"""
        return outcome_store.matches_a_lead(self._db, delivery)

    @staticmethod
    def empty_timeline() -> tuple[pl.DataFrame, str, int]:
        return outcome_store.empty_timeline()

    def calls_timeline(self) -> tuple[pl.DataFrame, str, int]:
        """Calls placed per second, minute or hour (by the campaign's length), for the report."""
        return outcome_store.calls_timeline(self._db)

    def pauses(self) -> pl.DataFrame:
        """Every pause the API imposed (429, 503 with Retry-After): when, how long, which run."""
        return outcome_store.read_pauses(self._db)

    def commits(self, loop: asyncio.AbstractEventLoop) -> GroupCommitWriter:
        """A group-commit writer on this checkpoint, for changes other than a run's (outcomes)."""
        return GroupCommitWriter(self._db, loop, where=str(self.path), before_commit=self._before_commit)

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT status, count(*) FROM leads GROUP BY status").fetchall())

    def claim_now(self, claims: Iterable[Claim], run_id: int, claimable: Iterable[Status] = ()) -> None:
        """Synchronous claim, for tests and tools; the dispatcher uses the writer."""
        apply = self._claimer(run_id, claimable)
        with self._transaction():
            for claim in claims:
                apply(self._db, claim=claim)

    def record_now(self, results: Iterable[Result]) -> None:
        with self._transaction():
            for result in results:
                apply_result(self._db, result=result)

    def writer(
        self, loop: asyncio.AbstractEventLoop, run_id: int, claimable: Iterable[Status] = ()
    ) -> RunWriter:
        """The run's writer: it may claim leads that are pending or in one of `claimable`."""
        commits = GroupCommitWriter(self._db, loop, where=str(self.path), before_commit=self._before_commit)
        return RunWriter(commits, self._claimer(run_id, claimable))

    @staticmethod
    def _claimer(run_id: int, claimable: Iterable[Status]) -> ApplyClaim:
        return partial(apply_claim, run_id=run_id, sources=claimable_from(claimable))

    @contextlib.contextmanager
    def _transaction(self) -> Any:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise CheckpointWriteFailed.at(self.path, exc) from None
        try:
            yield
        except BaseException:
            self._rollback()
            raise
        try:
            if self._before_commit is not None:
                self._before_commit()
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise CheckpointWriteFailed.at(self.path, exc) from None

    def _rollback(self) -> None:
        """SQLite may already have rolled back (a full disk): there is then nothing left to undo."""
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")
