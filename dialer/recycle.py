"""Recycling: which placed leads are due to be called again, and when the others will be.

A lead is called again only on a received outcome that `[recycle] statuses` names (or, with
`silent_after`, on none at all for that long), once `after` has passed since its last call,
while it has had fewer than `max_calls` calls. A lead with no outcome yet may still be ringing:
it is never due. Nor is one whose last call ended `unknown`: only `placed` leads recycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from dialer.config_schema import NO_OUTCOME, RecycleConfig
from dialer.lead_state import Status
from dialer.outcomes import STATUS
from dialer.timestamps import stamp_to_time


def with_silence(latest: pl.DataFrame, config: RecycleConfig | None, now: datetime) -> pl.DataFrame:
    """A placed call with no outcome `silent_after` after it counts as status `no-outcome`."""
    if config is None or config.silent_after is None:
        return latest
    silent = (
        pl.col(STATUS).is_null()
        & (pl.col("status") == Status.PLACED.value)
        & (stamp_to_time("placed_at") + timedelta(seconds=config.silent_after) <= now)
    )
    return latest.with_columns(
        pl.when(silent).then(pl.lit(NO_OUTCOME)).otherwise(pl.col(STATUS)).alias(STATUS)
    )


@dataclass(frozen=True)
class RecyclePlan:
    due_now: pl.DataFrame  # key, calls: the call count each decision was made on
    due_later: int
    next_due: datetime | None
    exhausted: int  # named by `statuses` but out of calls


def plan(
    latest: pl.DataFrame,
    states: pl.DataFrame,
    config: RecycleConfig,
    now: datetime,
    callable_keys: pl.DataFrame | None = None,
) -> RecyclePlan:
    """`latest`: each lead's last call with its outcome (after `with_silence`); `states`: the leads;
    `callable_keys` (key): the leads the list lets be called now, when known."""
    leads = states.filter(pl.col("status") == Status.PLACED.value).select("key", "calls")
    if callable_keys is not None:
        leads = leads.join(callable_keys, on="key", how="semi")
    candidates = leads.join(latest.select("key", "placed_at", STATUS), on="key", how="inner")
    wanted = candidates.filter(pl.col(STATUS).is_in(config.statuses))
    left = wanted.filter(pl.col("calls") < config.max_calls)
    due_at = stamp_to_time("placed_at") + timedelta(seconds=config.after)
    timed = left.with_columns(due_at.alias("due_at"))
    due_now = timed.filter(pl.col("due_at") <= now).select("key", "calls")
    later = timed.filter(pl.col("due_at") > now)
    waiting = _becoming_silent(latest, leads, config, now)
    next_due = min(
        (moment for moment in (later["due_at"].min(), waiting["due_at"].min()) if moment is not None),
        default=None,
    )
    return RecyclePlan(
        due_now=due_now,
        due_later=later.height + waiting.height,
        next_due=next_due,  # type: ignore[arg-type]
        exhausted=wanted.height - left.height,
    )


def _becoming_silent(
    latest: pl.DataFrame, leads: pl.DataFrame, config: RecycleConfig, now: datetime
) -> pl.DataFrame:
    """Placed leads still without an outcome that will count as `no-outcome`, and when."""
    if config.silent_after is None or NO_OUTCOME not in config.statuses:
        return pl.DataFrame(schema={"due_at": pl.Datetime("us", "UTC")})
    wait = timedelta(seconds=max(config.silent_after, config.after))
    return (
        leads.filter(pl.col("calls") < config.max_calls)
        .join(latest.filter(pl.col(STATUS).is_null()), on="key", how="inner")
        .select((stamp_to_time("placed_at") + wait).alias("due_at"))
        .filter(pl.col("due_at") > now)
    )
