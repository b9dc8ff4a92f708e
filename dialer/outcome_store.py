"""The checkpoint's record of calls, outcome payloads and API pauses: reads as frames, small writes.

`dialer collect` and `dialer run` write the same checkpoint from two processes; SQLite (WAL)
serialises their transactions, and each write here is one short statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

import polars as pl

from dialer.outcomes import Delivery
from dialer.timestamps import utc_now

CALLS_SCHEMA: Mapping[str, pl.DataType] = {
    "id": pl.Int64(),
    "key": pl.String(),
    "call_id": pl.String(),
    "placed_at": pl.String(),
    "status": pl.String(),
}
PAUSES_SCHEMA: Mapping[str, pl.DataType] = {
    "run_id": pl.Int64(),
    "at": pl.String(),
    "seconds": pl.Float64(),
    "http_status": pl.Int64(),
}
PAYLOADS_SCHEMA: Mapping[str, pl.DataType] = {
    "id": pl.Int64(),
    "received_at": pl.String(),
    "body": pl.String(),
}
_FETCH_ROWS = 100_000


def read_calls(db: sqlite3.Connection) -> pl.DataFrame:
    return _frame(db, "SELECT id, key, call_id, placed_at, status FROM calls ORDER BY id", CALLS_SCHEMA)


def read_payloads(db: sqlite3.Connection) -> pl.DataFrame:
    return _frame(db, "SELECT id, received_at, body FROM payloads ORDER BY id", PAYLOADS_SCHEMA)


def read_pauses(db: sqlite3.Connection) -> pl.DataFrame:
    return _frame(db, "SELECT run_id, at, seconds, http_status FROM pauses ORDER BY id", PAUSES_SCHEMA)


def store_pause(db: sqlite3.Connection, *, run_id: int, seconds: float, http_status: int | None) -> None:
    db.execute(
        "INSERT INTO pauses(run_id, at, seconds, http_status) VALUES (?, ?, ?, ?)",
        (run_id, utc_now(), seconds, http_status),
    )


def payload_count(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM payloads").fetchone()[0])


def awaiting(db: sqlite3.Connection) -> int:
    """Placed leads whose latest call has no payload yet, by the ids read at receipt.

    Cheap enough to ask every second while `run --wait-outcomes` waits; the results file
    reads every payload again through the configured paths.
    """
    row = db.execute(
        "SELECT count(*) FROM leads l WHERE l.status = 'placed' AND NOT EXISTS ("
        " SELECT 1 FROM payloads p WHERE p.call_id = l.call_id"
        "  OR (p.reference_id = l.reference_id"
        "      AND p.received_at >= (SELECT max(placed_at) FROM calls c WHERE c.key = l.key)))"
    ).fetchone()
    return int(row[0])


def store(db: sqlite3.Connection, *, delivery: Delivery) -> None:
    """Keep a payload once: the same one again (its digest) changes nothing."""
    db.execute(
        "INSERT INTO payloads(digest, received_at, call_id, reference_id, body) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT(digest) DO NOTHING",
        (delivery.digest, utc_now(), delivery.call_id, delivery.reference_id, delivery.body),
    )


def matches_a_lead(db: sqlite3.Connection, delivery: Delivery) -> bool:
    """Does the payload name a call (or a lead's referenceId) this checkpoint knows?"""
    if (
        delivery.call_id is not None
        and db.execute("SELECT 1 FROM calls WHERE call_id = ? LIMIT 1", (delivery.call_id,)).fetchone()
    ):
        return True
    return delivery.reference_id is not None and bool(
        db.execute("SELECT 1 FROM leads WHERE reference_id = ? LIMIT 1", (delivery.reference_id,)).fetchone()
    )


def _frame(db: sqlite3.Connection, sql: str, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    cursor = db.execute(sql)
    chunks = [pl.DataFrame(schema=schema)]
    while rows := cursor.fetchmany(_FETCH_ROWS):
        chunks.append(pl.DataFrame(rows, schema=schema, orient="row"))
    return pl.concat(chunks, rechunk=True)
