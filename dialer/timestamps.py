"""The one timestamp format of every file the dialer writes: UTC, milliseconds, a Z."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

_FORMAT = "%Y-%m-%dT%H:%M:%S%.3fZ"


def utc_now() -> str:
    return iso_utc(datetime.now(UTC))


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stamp_to_time(column: str) -> pl.Expr:
    """A column of these stamps (`2026-11-30T13:56:43.123Z`) as UTC datetimes."""
    import polars as pl

    return pl.col(column).str.to_datetime(_FORMAT, time_zone="UTC", strict=False)
