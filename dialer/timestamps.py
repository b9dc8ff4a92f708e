"""The one timestamp format of every file the dialer writes: UTC, milliseconds, a Z."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> str:
    return iso_utc(datetime.now(UTC))


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
