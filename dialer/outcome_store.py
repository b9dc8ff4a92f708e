"""The checkpoint's record of calls, outcome payloads and API pauses: reads as frames, small writes.

`dialer collect` and `dialer run` write the same checkpoint from two processes; SQLite (WAL)
serialises their transactions, and each write here is one short statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from dialer.timestamps import utc_now

if TYPE_CHECKING:
    import polars as pl

    from dialer.outcomes import Delivery

# Column -> polars type name: the frames are built on demand, so a command that only counts
# (`dialer status`) never loads polars.
Columns = Mapping[str, str]
CALLS_SCHEMA: Columns = {
    "id": "Int64",
    "key": "String",
    "call_id": "String",
    "claimed_at": "String",
    "placed_at": "String",
    "status": "String",
}
PAUSES_SCHEMA: Columns = {"run_id": "Int64", "at": "String", "seconds": "Float64", "http_status": "Int64"}
PAYLOADS_SCHEMA: Columns = {"id": "Int64", "received_at": "String", "body": "String"}


def polars_schema(columns: Columns) -> dict[str, pl.DataType]:
    import polars as pl

    return {name: getattr(pl, kind)() for name, kind in columns.items()}


def empty_frame(columns: Columns) -> pl.DataFrame:
    import polars as pl

    return pl.DataFrame(schema=polars_schema(columns))


# Rows turned into Python tuples at a time: each batch is ~1 KB of objects per row while it lives.
_FETCH_ROWS = 20_000


def read_calls(db: sqlite3.Connection) -> pl.DataFrame:
    return read_frame(
        db, "SELECT id, key, call_id, claimed_at, placed_at, status FROM calls ORDER BY id", CALLS_SCHEMA
    )


def read_payloads(db: sqlite3.Connection) -> pl.DataFrame:
    return read_frame(db, "SELECT id, received_at, body FROM payloads ORDER BY id", PAYLOADS_SCHEMA)


# A campaign is charted per second, minute or hour, whichever shows its calls as bars: up to
# this span, (name, seconds, characters of the timestamp that name the bucket, their format).
TIMELINE_BUCKETS = (
    (timedelta(minutes=5), "second", 1, 19, "%Y-%m-%dT%H:%M:%S"),
    (timedelta(hours=6), "minute", 60, 16, "%Y-%m-%dT%H:%M"),
    (timedelta.max, "hour", 3600, 13, "%Y-%m-%dT%H"),
)


def calls_timeline(db: sqlite3.Connection) -> tuple[pl.DataFrame, str, int]:
    """Calls placed per bucket (counted by SQLite: a million calls never become Python rows)."""
    import polars as pl

    first, last = db.execute("SELECT min(placed_at), max(placed_at) FROM calls").fetchone()
    if first is None:
        return empty_timeline()
    span = datetime.fromisoformat(last.replace("Z", "+00:00")) - datetime.fromisoformat(
        first.replace("Z", "+00:00")
    )
    _, name, seconds, width, fmt = next(bucket for bucket in TIMELINE_BUCKETS if span <= bucket[0])
    rows = db.execute(
        f"SELECT substr(placed_at, 1, {width}) AS bucket, count(*) FROM calls GROUP BY bucket ORDER BY bucket"
    ).fetchall()
    frame = pl.DataFrame(rows, schema={"bucket": pl.String, "calls": pl.Int64}, orient="row")
    return frame.with_columns(pl.col("bucket").str.to_datetime(fmt, time_zone="UTC")), name, seconds


def empty_timeline() -> tuple[pl.DataFrame, str, int]:
    import polars as pl

    return pl.DataFrame(schema={"bucket": pl.Datetime("us", "UTC"), "calls": pl.Int64}), "minute", 60


def read_pauses(db: sqlite3.Connection) -> pl.DataFrame:
    return read_frame(db, "SELECT run_id, at, seconds, http_status FROM pauses ORDER BY id", PAUSES_SCHEMA)


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
        "      AND p.received_at >= (SELECT max(claimed_at) FROM calls c WHERE c.key = l.key)))"
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


def read_frame(db: sqlite3.Connection, sql: str, columns: Columns) -> pl.DataFrame:
    import polars as pl

    schema = polars_schema(columns)
    cursor = db.execute(sql)
    chunks = [pl.DataFrame(schema=schema)]
    while rows := cursor.fetchmany(_FETCH_ROWS):
        chunks.append(pl.DataFrame(rows, schema=schema, orient="row"))
    return pl.concat(chunks, rechunk=True)
