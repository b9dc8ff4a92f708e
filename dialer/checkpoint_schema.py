"""The checkpoint's file format: its tables, how a new one is made, and how an old one is upgraded.

Version 1 kept one row per lead. Version 2 adds every call of a lead (`calls`, for recycling),
every outcome payload received (`payloads`), the pauses the API imposed (`pauses`, for the
report) and what each run sent; a version-1 file is upgraded in place, in one transaction, the
first time a run or the receiver opens it.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from dialer.errors import CheckpointError

APPLICATION_ID = 0x4B595A4F  # "KYZO": marks the file as ours
SCHEMA_VERSION = 2

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
    run_id INTEGER,
    calls INTEGER NOT NULL DEFAULT 0,
    claimed_at TEXT
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
    counts TEXT,
    sent INTEGER,
    placed INTEGER
);
"""

# What version 2 adds; on its own, so an upgrade runs exactly the same statements.
_CALLS_AND_PAYLOADS = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    call_id TEXT,
    claimed_at TEXT NOT NULL,
    placed_at TEXT NOT NULL,
    run_id INTEGER,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_by_key ON calls(key);
CREATE INDEX IF NOT EXISTS calls_by_call_id ON calls(call_id);
CREATE TABLE IF NOT EXISTS payloads (
    id INTEGER PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    received_at TEXT NOT NULL,
    call_id TEXT,
    reference_id TEXT,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pauses (
    id INTEGER PRIMARY KEY,
    run_id INTEGER,
    at TEXT NOT NULL,
    seconds REAL NOT NULL,
    http_status INTEGER
);
CREATE INDEX IF NOT EXISTS payloads_by_call_id ON payloads(call_id);
CREATE INDEX IF NOT EXISTS payloads_by_reference_id ON payloads(reference_id);
"""

_UPGRADE_FROM_1 = """
ALTER TABLE leads ADD COLUMN calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE leads ADD COLUMN claimed_at TEXT;
ALTER TABLE runs ADD COLUMN sent INTEGER;
ALTER TABLE runs ADD COLUMN placed INTEGER;
INSERT INTO calls(key, call_id, claimed_at, placed_at, run_id, status)
    SELECT key, call_id, updated_at, updated_at, run_id, status FROM leads
    WHERE status IN ('placed', 'unknown');
UPDATE leads SET calls = 1 WHERE status IN ('placed', 'unknown');
"""


def create(path: Path) -> None:
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
            db.executescript(_SCHEMA + _CALLS_AND_PAYLOADS)
        finally:
            db.close()
        with temp.open("rb+") as handle:
            os.fsync(handle.fileno())
        temp.replace(path)
    except (OSError, sqlite3.Error) as exc:
        temp.unlink(missing_ok=True)
        raise CheckpointError(f"{path}: cannot create the checkpoint ({exc})") from None


def verify_ours(path: Path) -> int:
    """The checkpoint's schema version; a foreign, damaged or too new file is refused untouched.

    Only SQLite touches the file: closing a plain Python handle on it would drop every POSIX
    lock this process holds there, letting another process reset the WAL under a live writer
    (a collector's stored outcomes would vanish from everyone else's view).
    """
    try:
        if path.stat().st_size == 0:
            raise CheckpointError(_not_sqlite(path))
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({exc.strerror})") from None
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            application_id = db.execute("PRAGMA application_id").fetchone()[0]
            if application_id != APPLICATION_ID:
                raise CheckpointError(
                    f"{path}: is a SQLite file of another program, not a kyzo-dialer checkpoint. "
                    "It was left untouched; choose another --checkpoint"
                )
            version = db.execute("PRAGMA user_version").fetchone()[0]
            db.execute("SELECT count(*) FROM leads").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
            raise CheckpointError(_not_sqlite(path)) from None
        raise CheckpointError(f"{path}: the checkpoint is damaged ({exc}); it was left untouched") from None
    if version not in (1, SCHEMA_VERSION):
        raise CheckpointError(
            f"{path}: checkpoint schema {version} is not supported (expected {SCHEMA_VERSION}); "
            "it was written by another version of kyzo-dialer"
        )
    return int(version)


def _not_sqlite(path: Path) -> str:
    return (
        f"{path}: is not a kyzo-dialer checkpoint (not a SQLite file). "
        "It was left untouched; choose another --checkpoint or move the file away"
    )


def upgrade(db: sqlite3.Connection, path: Path) -> None:
    """Bring an open, writable checkpoint to SCHEMA_VERSION in one transaction (a crash leaves v1)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 1:
            for statement in _statements(_CALLS_AND_PAYLOADS + _UPGRADE_FROM_1):
                db.execute(statement)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        db.execute("ROLLBACK")
        raise CheckpointError(
            f"{path}: cannot upgrade the checkpoint to version {SCHEMA_VERSION} ({exc})"
        ) from None


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT first; one statement at a time keeps the upgrade atomic
    return [statement.strip() for statement in script.split(";") if statement.strip()]
