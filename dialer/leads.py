"""The dialer's verdict on every row of a lead list: its E.164 number, its key, or why not.

Row work is vectorised in polars; only distinct phone values go through `phonenumbers`.
A row is `rejected` when it is wrong (fix it and re-upload), `skipped` when it is valid but
must not be called (a duplicate, a do-not-call number), and dialable otherwise.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from dialer.config_schema import LeadsConfig
from dialer.errors import LeadsError
from dialer.lead_state import RowStatus
from dialer.phones import normalise_column

ROW = "__dialer_row"
PHONE = "__dialer_phone"
REGION = "__dialer_region"
KEY = "__dialer_key"
LOOKUP = "__dialer_lookup"  # the key a row would have if valid: finds its earlier call
PRE_STATUS = "__dialer_pre_status"
REASON = "__dialer_reason"
DUPLICATE_OF = "__dialer_duplicate_of"  # the first row with the same key, for a duplicate
RECYCLE_OF_CALLS = "__dialer_recycle_of_calls"  # set on a lead due to be called again
INTERNAL = (ROW, PHONE, REGION, KEY, LOOKUP, PRE_STATUS, REASON, DUPLICATE_OF, RECYCLE_OF_CALLS)

# A phone cell this long is no typo: the file is broken (an unbalanced quote swallows the rows
# after it into one cell), so the whole list is refused rather than silently shortened.
BROKEN_PHONE_CELL_CHARS = 1000
# Matched with the cell's surrounding blanks allowed, instead of stripping a copy of the column.
EMAIL_PATTERN = r"^\s*[^@\s]+@[^@\s]+\.[^@\s]+\s*$"


@dataclass(frozen=True)
class LeadTable:
    """The input rows in order, with the dialer's verdict on each one alongside."""

    frame: pl.DataFrame
    input_columns: list[str]
    path: Path

    def dialable(self, *columns: str) -> pl.DataFrame:
        """The rows a run may call; only `columns` of them when given (a copy of all would cost
        the whole list's memory again)."""
        rows = self.frame.lazy().filter(pl.col(PRE_STATUS).is_null())
        return (rows.select(list(dict.fromkeys(columns))) if columns else rows).collect()

    def count_dialable(self) -> int:
        return int(self.frame.select(pl.col(PRE_STATUS).is_null().sum()).item())

    @property
    def rows(self) -> int:
        return self.frame.height

    def verdicts_only(self, *keep: str | None) -> LeadTable:
        """The dialer's columns (and `keep`) without the list's own: for work on counts, where
        copying a million rows of names and addresses would only cost memory."""
        wanted = [*INTERNAL, *(c for c in keep if c)]
        return replace(
            self, frame=self.frame.select(c for c in wanted if c in self.frame.columns), input_columns=[]
        )


# ---------------------------------------------------------------- mapping and validation


def mapped_columns(config: LeadsConfig) -> dict[str, str]:
    """Each column the config reads, with the config key that names it."""
    cols = config.columns
    found = {cols.phone: "leads.columns.phone"}
    if cols.email:
        found.setdefault(cols.email, "leads.columns.email")
    if cols.reference_id:
        found.setdefault(cols.reference_id, "leads.columns.reference_id")
    if cols.timezone:
        found.setdefault(cols.timezone, "leads.columns.timezone")
    for param, column in config.agent_params.items():
        found.setdefault(column, f"leads.agent_params.{param}")
    return found


def check_columns(path: Path, frame: pl.DataFrame, wanted: Mapping[str, str]) -> None:
    """Stop before any call when a mapped column is missing, with a did-you-mean hint."""
    problems = []
    for column, key in wanted.items():
        if column in frame.columns:
            continue
        lowered = {c.lower().replace(" ", "").replace("_", ""): c for c in frame.columns}
        near = lowered.get(column.lower().replace(" ", "").replace("_", ""))
        near = near or next(iter(difflib.get_close_matches(column, frame.columns, n=1)), None)
        hint = f" (did you mean '{near}'?)" if near else ""
        problems.append(f"column '{column}' named by {key} is not in the file{hint}")
    if problems:
        listing = ", ".join(frame.columns)
        raise LeadsError(f"{path}: " + "; ".join(problems) + f". The file's columns are: {listing}")


def prepare(
    frame: pl.DataFrame,
    config: LeadsConfig,
    path: Path,
    *,
    do_not_call: frozenset[str] = frozenset(),
) -> LeadTable:
    """Attach to every row its E.164 phone, checkpoint key, and rejection or skip reason."""
    check_columns(path, frame, mapped_columns(config))
    input_columns = list(frame.columns)
    cols = config.columns
    lengths = frame[cols.phone].str.len_chars()
    broken = lengths > BROKEN_PHONE_CELL_CHARS
    if broken.any():
        row = int(broken.arg_true()[0]) + 1
        raise LeadsError(
            f"{path}: row {row}, column '{cols.phone}': the phone cell is {lengths[row - 1]:,} characters "
            "long, so the file is probably broken (an unbalanced quote merges the rows after it into "
            "one cell). Check the export around that row and run again; nothing was sent"
        )
    phones = normalise_column(frame[cols.phone], config.default_region)
    work = frame.with_columns(
        pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias(ROW),
        phones.struct.field("e164").alias(PHONE),
        phones.struct.field("region").alias(REGION),
        phones.struct.field("reason").alias("__phone_reason"),
    )

    def empty(column: str) -> pl.Expr:  # null or blank, without a stripped copy of the column
        return pl.col(column).is_null() | ~pl.col(column).str.contains(r"\S")

    reasons: list[pl.Expr] = [pl.col("__phone_reason")]
    if config.allowed_regions:
        allowed = sorted(set(config.allowed_regions))
        reasons.append(
            pl.when(pl.col(REGION).is_not_null() & ~pl.col(REGION).is_in(allowed)).then(
                pl.format(
                    "phone number region {} is not allowed (allowed: {})",
                    pl.col(REGION),
                    pl.lit(", ".join(allowed)),
                )
            )
        )
    for param in config.required:
        column = config.agent_params[param]
        reasons.append(pl.when(empty(column)).then(pl.lit(f"missing required value in column '{column}'")))
    if cols.reference_id:
        reasons.append(
            pl.when(empty(cols.reference_id)).then(
                pl.lit(f"missing referenceId in column '{cols.reference_id}'")
            )
        )
    if cols.timezone:
        unknown = _unknown_zones(frame[cols.timezone])
        reasons.append(
            pl.when(pl.col(cols.timezone).str.strip_chars().is_in(unknown)).then(
                pl.format(
                    "unknown time zone '{}' in column '{}'", pl.col(cols.timezone), pl.lit(cols.timezone)
                )
            )
        )
    if cols.email:
        reasons.append(
            pl.when(~empty(cols.email) & ~pl.col(cols.email).str.contains(EMAIL_PATTERN)).then(
                pl.lit(f"invalid email in column '{cols.email}'")
            )
        )
    work = work.with_columns(pl.coalesce(reasons).alias("__reject"))

    ref = pl.col(cols.reference_id).str.strip_chars().fill_null("") if cols.reference_id else pl.lit("")
    if config.dedupe == "phone":
        key = pl.col(PHONE)
    elif config.dedupe == "reference_id":
        key = pl.lit("ref:") + ref
    else:
        # Counted over valid rows only: deleting a rejected row must not renumber (and
        # so re-dial) a placed lead that shares its phone and referenceId.
        occurrence = (pl.col("__reject").is_null().cast(pl.Int64).cum_sum() - 1).over(PHONE, ref)
        key = pl.format("{}|{}|{}", pl.col(PHONE), ref, occurrence)
    lookup = key if config.dedupe != "none" else pl.when(pl.col("__reject").is_null()).then(key)
    work = work.with_columns(pl.when(pl.col("__reject").is_null()).then(key).alias(KEY), lookup.alias(LOOKUP))
    valid = pl.col("__reject").is_null()
    blocked = valid & pl.col(PHONE).is_in(sorted(do_not_call))
    work = work.with_columns(_duplicate_of(work, valid, blocked).alias(DUPLICATE_OF))
    skip = (
        pl.when(blocked)
        .then(pl.lit("do-not-call"))
        .when(pl.col(DUPLICATE_OF).is_not_null())
        .then(pl.format("duplicate of row {}", pl.col(DUPLICATE_OF)))
    )
    work = work.with_columns(skip.alias("__skip"))
    work = work.with_columns(
        pl.when(pl.col("__reject").is_not_null())
        .then(pl.lit(RowStatus.REJECTED.value))
        .when(pl.col("__skip").is_not_null())
        .then(pl.lit(RowStatus.SKIPPED.value))
        .alias(PRE_STATUS),
        pl.coalesce("__reject", "__skip").alias(REASON),
    ).drop("__phone_reason", "__reject", "__skip")
    return LeadTable(frame=work, input_columns=input_columns, path=path)


def _duplicate_of(work: pl.DataFrame, valid: pl.Expr, blocked: pl.Expr) -> pl.Series:
    """For each valid row not on the do-not-call list whose key an earlier row has, that row.

    A window (`min().over(KEY)`) would group the whole list by key; only the duplicates, a few
    percent, need their first row, so they are looked up among the first occurrences instead."""
    marked = work.select(
        ROW, KEY, pl.col(KEY).is_first_distinct().alias("first"), (valid & ~blocked).alias("dialable")
    )
    repeats = marked.filter(pl.col("dialable") & ~pl.col("first")).select(ROW, KEY)
    result = pl.repeat(None, work.height, dtype=pl.Int64, eager=True)
    if repeats.height == 0:
        return result
    firsts = marked.filter(pl.col("first") & pl.col(KEY).is_in(repeats[KEY].unique().implode())).select(
        KEY, pl.col(ROW).alias("first_row")
    )
    found = repeats.join(firsts, on=KEY, how="left", maintain_order="left")
    return result.scatter(found[ROW] - 1, found["first_row"])


def _unknown_zones(cells: pl.Series) -> list[str]:
    """Distinct non-empty values of a time-zone column that are not IANA zone names."""
    from dialer.hours import load_zone

    unknown = []
    for value in cells.drop_nulls().str.strip_chars().unique().to_list():
        if not value:
            continue
        try:
            load_zone(value)
        except ValueError:
            unknown.append(value)
    return unknown
