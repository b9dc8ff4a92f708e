"""The results and errors files' content: every input row in order, with the dialer's columns."""

from __future__ import annotations

import polars as pl

from dialer.lead_state import ERROR_ROW_STATUSES, ROW_STATUSES, Status
from dialer.leads import KEY, LOOKUP, PRE_STATUS, REASON, ROW, LeadTable
from dialer.timestamps import utc_now

STATUS = "dialer_status"
CALL_ID = "dialer_call_id"
ERROR = "dialer_error"
HTTP_STATUS = "dialer_http_status"
ATTEMPTS = "dialer_attempts"
UPDATED_AT = "dialer_updated_at"
CALLS = "dialer_calls"
OUTPUT_COLUMNS = (STATUS, CALL_ID, ERROR, HTTP_STATUS, ATTEMPTS, UPDATED_AT, CALLS)


def build_results(
    table: LeadTable, states: pl.DataFrame, outcomes: pl.DataFrame | None = None
) -> pl.DataFrame:
    return results_plan(table, states, outcomes).collect()


def count_statuses(
    table: LeadTable, states: pl.DataFrame, outcomes: pl.DataFrame | None = None
) -> dict[str, int]:
    """The counts per status of the results, without building the rest of them (polars reads only
    the columns the status needs)."""
    return status_counts(results_plan(table, states, outcomes).select(STATUS).collect())


def results_plan(
    table: LeadTable, states: pl.DataFrame, outcomes: pl.DataFrame | None = None
) -> pl.LazyFrame:
    """Join the input rows with the checkpoint; the verdict of this run's validation wins,
    except over a call already made: a row edited into a rejection or added to the
    do-not-call list after its call keeps its status and callId (nothing is lost).

    `outcomes` (with [outcomes]): per lead `key`, the outcome columns of its latest call.
    """
    checkpoint = states.select(
        pl.col("key"),
        pl.col("status").alias("__ck_status"),
        pl.col("call_id").alias("__ck_call_id"),
        pl.col("error").alias("__ck_error"),
        pl.col("http_status").alias("__ck_http"),
        pl.col("attempts").alias("__ck_attempts"),
        pl.col("updated_at").alias("__ck_updated"),
        pl.col("calls").alias("__ck_calls"),
    )
    outcome_columns = [c for c in outcomes.columns if c != "key"] if outcomes is not None else []
    frame = table.frame.hstack(_matched(table.frame[LOOKUP], checkpoint))
    if outcomes is not None:
        frame = frame.hstack(_matched(table.frame[LOOKUP], outcomes))
    joined = frame.lazy()
    pre = pl.col(PRE_STATUS).is_not_null()
    # One row carries an earlier call: the valid row with that key if there is one, else the
    # first row that now has a verdict of its own.
    revived = pl.col(ROW).is_in(_revived_rows(table.frame, states).implode())
    joined = joined.with_columns(revived.alias("__revived"))
    in_checkpoint = pl.col("__ck_status").is_not_null() & (~pre | pl.col("__revived"))
    status = (
        pl.when(pre & ~pl.col("__revived"))
        .then(pl.col(PRE_STATUS))
        .when(pl.col("__ck_status") == Status.IN_FLIGHT.value)
        .then(pl.lit(Status.UNKNOWN.value))
        .otherwise(pl.col("__ck_status").fill_null(Status.PENDING.value))
    )
    error = (
        pl.when(pl.col("__revived"))
        .then(
            pl.format(
                "called before the row changed (now: {}){}",
                pl.col(REASON),
                pl.when(pl.col("__ck_error").is_not_null())
                .then(pl.lit("; ") + pl.col("__ck_error"))
                .otherwise(pl.lit("")),
            )
        )
        .when(pre)
        .then(pl.col(REASON))
        .otherwise(pl.col("__ck_error"))
    )
    keep = [c for c in table.input_columns if c not in (*OUTPUT_COLUMNS, *outcome_columns)]
    return joined.select(
        *keep,
        status.alias(STATUS),
        pl.when(in_checkpoint).then(pl.col("__ck_call_id")).alias(CALL_ID),
        _inert(error).alias(ERROR),
        pl.when(in_checkpoint).then(pl.col("__ck_http")).alias(HTTP_STATUS),
        pl.when(in_checkpoint).then(pl.col("__ck_attempts")).otherwise(0).alias(ATTEMPTS),
        pl.when(in_checkpoint).then(pl.col("__ck_updated")).otherwise(pl.lit(utc_now())).alias(UPDATED_AT),
        pl.when(in_checkpoint).then(pl.col("__ck_calls")).otherwise(0).alias(CALLS),
        *(_inert(pl.when(in_checkpoint).then(pl.col(c))).alias(c) for c in outcome_columns),
    )


def _matched(lookup: pl.Series, by_key: pl.DataFrame) -> pl.DataFrame:
    """`by_key`'s other columns for each lookup value, in the list's order (null where none).

    `by_key` has one row per `key`. Only the lookup column goes through the join; the rows are
    then gathered by position, so the list's own columns are never copied (a join of the whole
    table would copy every one of them)."""
    position = "__position"
    at = (
        lookup.to_frame(LOOKUP)
        .join(
            by_key.select(pl.col("key").alias(LOOKUP)).with_row_index(position),
            on=LOOKUP,
            how="left",
            maintain_order="left",
        )
        .get_column(position)
    )
    return by_key.drop("key").select(pl.all().gather(at))


def _revived_rows(frame: pl.DataFrame, states: pl.DataFrame) -> pl.Series:
    """Rows with a verdict of their own whose lead was called anyway (the row changed after its
    call): the one row that carries that call, when no valid row with its key does, and it is
    the first with its lookup. Usually none; found among the few rows with a verdict and a
    call, not by grouping the whole list."""
    called = states.filter(pl.col("status").is_in(_CALLED)).select(pl.col("key").alias(LOOKUP))
    candidates = (
        frame.filter(pl.col(PRE_STATUS).is_not_null() & pl.col(LOOKUP).is_not_null())
        .select(LOOKUP)
        .join(called, on=LOOKUP, how="semi")
        .unique()
    )
    if candidates.height == 0:
        return pl.Series(ROW, [], dtype=pl.Int64)
    group = frame.filter(pl.col(LOOKUP).is_in(candidates[LOOKUP].implode())).select(
        ROW, KEY, LOOKUP, PRE_STATUS
    )
    pre = pl.col(PRE_STATUS).is_not_null()
    held = (pl.col(KEY).is_not_null() & ~pre).any().over(LOOKUP)
    first = pl.col(ROW) == pl.col(ROW).min().over(LOOKUP)
    return group.filter(pre & ~held & first)[ROW]


_CALLED = [Status.PLACED.value, Status.UNKNOWN.value, Status.IN_FLIGHT.value]


def _inert(text: pl.Expr) -> pl.Expr:
    """A server message starting with = + - @ would run as a formula in Excel: quote it."""
    return pl.when(text.str.contains(r"^[=+\-@\t\r]")).then(pl.lit("'") + text).otherwise(text)


def errors_only(results: pl.DataFrame) -> pl.DataFrame:
    return results.filter(pl.col(STATUS).is_in([status.value for status in ERROR_ROW_STATUSES]))


def status_counts(results: pl.DataFrame) -> dict[str, int]:
    counted = dict(results[STATUS].value_counts().iter_rows())
    return {status.value: int(counted.get(status.value, 0)) for status in ROW_STATUSES}
