"""Call outcomes: what Kyzo's webhook tool posted about each call, read through configured paths.

The payload's shape is not documented, so nothing here knows one: `[outcomes]` names dot paths
(`data.call.id`), with defaults that try the common spellings. Everything is derived from the
raw payloads kept in the checkpoint, so a changed path re-derives every column on `export`.

Delivery is at least once and in any order: the same payload twice is one payload (its digest),
several payloads for one call merge (a value keeps the latest one received), and a payload that
matches no call is kept and counted, never dropped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from dialer import logs
from dialer.config_schema import (
    DEFAULT_CALL_ID_PATHS,
    DEFAULT_REFERENCE_ID_PATHS,
    DEFAULT_STATUS_PATHS,
    OutcomesConfig,
    normalise_status,
)
from dialer.timestamps import stamp_to_time

STATUS = "outcome_status"
RECEIVED_AT = "outcome_received_at"
FIELD_PREFIX = "outcome_"
MAX_TEXT = 2000  # a field longer than this is cut: a results cell, not a transcript store


@dataclass(frozen=True)
class Reading:
    """Where to find each value in a payload (the alternatives of each, in order)."""

    call_id: tuple[str, ...] = DEFAULT_CALL_ID_PATHS
    reference_id: tuple[str, ...] = DEFAULT_REFERENCE_ID_PATHS
    status: tuple[str, ...] = DEFAULT_STATUS_PATHS
    fields: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, config: OutcomesConfig) -> Reading:
        return cls(config.call_id, config.reference_id, config.status, dict(config.fields))

    @property
    def columns(self) -> list[str]:
        """The outcome columns of the results file, in order."""
        return [STATUS, RECEIVED_AT, *(FIELD_PREFIX + name for name in self.fields)]


def lookup(payload: Any, path: str) -> Any:
    """The value at a dot path (`call.id`, `items.0.name`), or None when any step is missing."""
    value = payload
    for step in path.split("."):
        if isinstance(value, dict):
            value = value.get(step)
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return None
        if value is None:
            return None
    return value


def first_found(payload: Any, paths: Iterable[str]) -> Any:
    for path in paths:
        value = lookup(payload, path)
        if value is not None and value != "":
            return value
    return None


def as_text(value: Any) -> str | None:
    """A cell's text: strings and numbers as they are, objects as compact JSON; stored as sent."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value
    elif isinstance(value, int | float):
        text = json.dumps(value)
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return text[:MAX_TEXT]


def _id_text(value: Any) -> str | None:
    """An id is a string or an integer; anything else (an object, a list) is no id."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


@dataclass(frozen=True)
class Delivery:
    """One received payload as the checkpoint keeps it: canonical, secrets out, with its ids."""

    digest: str
    body: str
    call_id: str | None
    reference_id: str | None


def delivery(payload: dict[str, Any], reading: Reading) -> Delivery:
    """Canonical JSON (so the same payload re-sent with other spacing is the same payload);
    a secret the sender echoes (the bearer token in its own config, say) is redacted first."""
    clean = logs.redact_tree(payload, keys=True)
    body = json.dumps(clean, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return Delivery(
        digest=hashlib.sha256(body.encode()).hexdigest(),
        body=body,
        call_id=_id_text(first_found(clean, reading.call_id)),
        reference_id=_id_text(first_found(clean, reading.reference_id)),
    )


def key_paths(payload: Any, prefix: str = "") -> Iterator[str]:
    """Every key path of a payload, never a value: what a debug line may show of it."""
    if isinstance(payload, dict):
        for key, value in payload.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict | list) and value:
                yield from key_paths(value, path)
            else:
                yield path
    elif isinstance(payload, list):
        if payload and isinstance(payload[0], dict | list):
            yield from key_paths(payload[0], f"{prefix}.0")
        else:
            yield f"{prefix}.0" if payload else prefix  # its first value's path, as a field would name it


def extract(payloads: pl.DataFrame, reading: Reading) -> pl.DataFrame:
    """One row per payload (id, received_at, call_id, reference_id, status, each field).

    Paths are applied now, not at receipt, so a corrected path reads every payload anew.
    """
    names = list(reading.fields)
    rows = []
    for payload_id, received_at, body in payloads.select("id", "received_at", "body").iter_rows():
        data = json.loads(body)
        status = as_text(first_found(data, reading.status))
        rows.append(
            (
                payload_id,
                received_at,
                _id_text(first_found(data, reading.call_id)),
                _id_text(first_found(data, reading.reference_id)),
                normalise_status(status) if status else None,
                *(as_text(lookup(data, reading.fields[name])) for name in names),
            )
        )
    schema = {
        "payload_id": pl.Int64,
        "received_at": pl.String,
        "call_id": pl.String,
        "reference_id": pl.String,
        "status": pl.String,
        **{FIELD_PREFIX + name: pl.String for name in names},
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def attach(extracted: pl.DataFrame, calls: pl.DataFrame, leads: pl.DataFrame) -> pl.DataFrame:
    """Each payload with the call it is about (`call_row`), or null when it matches none.

    By callId first; a payload with only a referenceId goes to the latest call of the one lead
    that has it (a referenceId shared by several leads matches none of them: never guess).
    """
    by_call = (
        calls.filter(pl.col("call_id").is_not_null())
        .group_by("call_id")
        .agg(pl.col("id").max().alias("by_id"))
    )
    unique_refs = (
        leads.filter(pl.col("reference_id").is_not_null())
        .group_by("reference_id")
        .agg(pl.col("key").first(), pl.len().alias("n"))
        .filter(pl.col("n") == 1)
        .drop("n")
    )
    # by referenceId: that lead's last call made (claimed) before the payload arrived, never a
    # later one: an outcome for an earlier call must not settle a call made since; and a call
    # rings from its claim on, so an outcome posted before its answer was recorded is still its
    made = calls.select("key", pl.col("id").alias("by_ref"), stamp_to_time("claimed_at").alias("at")).sort(
        "at"
    )
    by_ref = (
        extracted.filter(pl.col("reference_id").is_not_null())
        .join(unique_refs, on="reference_id", how="inner")
        .select("payload_id", "key", stamp_to_time("received_at").alias("at"))
        .sort("at")
        .join_asof(made, on="at", by="key", strategy="backward", check_sortedness=False)  # sorted above
        .select("payload_id", "by_ref")
    )
    return (
        extracted.join(by_call, on="call_id", how="left")
        .join(by_ref, on="payload_id", how="left")
        .with_columns(pl.coalesce("by_id", "by_ref").alias("call_row"))
        .drop("by_id", "by_ref")
    )


def merge(attached: pl.DataFrame, reading: Reading) -> pl.DataFrame:
    """One row per call with an outcome: each value the latest one received (arrival order)."""
    values = ["status", *(FIELD_PREFIX + name for name in reading.fields)]
    return (
        attached.filter(pl.col("call_row").is_not_null())
        .sort("payload_id")
        .group_by("call_row")
        .agg(
            *(pl.col(name).drop_nulls().last() for name in values),
            pl.col("received_at").max().alias(RECEIVED_AT),
        )
        .rename({"status": STATUS})
    )


@dataclass(frozen=True)
class CallOutcomes:
    """Every call with its merged outcome (null when none came yet), and the orphans."""

    calls: pl.DataFrame  # id, key, call_id, placed_at, status, outcome columns...
    unmatched: int


def outcomes_of_calls(
    payloads: pl.DataFrame, calls: pl.DataFrame, leads: pl.DataFrame, reading: Reading
) -> CallOutcomes:
    attached = attach(extract(payloads, reading), calls, leads)
    merged = merge(attached, reading)
    joined = calls.join(merged, left_on="id", right_on="call_row", how="left")
    missing = [c for c in reading.columns if c not in joined.columns]
    joined = joined.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in missing)
    return CallOutcomes(joined, int(attached["call_row"].is_null().sum()))


def latest_calls(call_outcomes: pl.DataFrame) -> pl.DataFrame:
    """Per lead, its latest call with that call's outcome: what the results file shows."""
    return call_outcomes.sort("id").group_by("key").last()
