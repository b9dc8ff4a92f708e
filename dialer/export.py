"""Results and errors files: every input row in order, with the dialer's columns, written atomically."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from dialer.checkpoint import Status, utc_now
from dialer.errors import OutputError
from dialer.leads import KEY, LOOKUP, PRE_STATUS, REASON, ROW, LeadTable

STATUS = "dialer_status"
CALL_ID = "dialer_call_id"
ERROR = "dialer_error"
HTTP_STATUS = "dialer_http_status"
ATTEMPTS = "dialer_attempts"
UPDATED_AT = "dialer_updated_at"
OUTPUT_COLUMNS = (STATUS, CALL_ID, ERROR, HTTP_STATUS, ATTEMPTS, UPDATED_AT)
STATUSES = ("placed", "failed", "rejected", "skipped", "unknown", "pending")
ERROR_STATUSES = ("failed", "rejected", "unknown")
_MIN_FREE_BYTES = 16 * 1024 * 1024


def build_results(table: LeadTable, states: pl.DataFrame) -> pl.DataFrame:
    """Join the input rows with the checkpoint; the verdict of this run's validation wins,
    except over a call already made: a row edited into a rejection or added to the
    do-not-call list after its call keeps its status and callId (nothing is lost)."""
    checkpoint = states.select(
        pl.col("key").alias("__ck_key"),
        pl.col("status").alias("__ck_status"),
        pl.col("call_id").alias("__ck_call_id"),
        pl.col("error").alias("__ck_error"),
        pl.col("http_status").alias("__ck_http"),
        pl.col("attempts").alias("__ck_attempts"),
        pl.col("updated_at").alias("__ck_updated"),
    )
    joined = table.frame.join(
        checkpoint, left_on=LOOKUP, right_on="__ck_key", how="left", maintain_order="left"
    )
    pre = pl.col(PRE_STATUS).is_not_null()
    called = pl.col("__ck_status").is_in([Status.PLACED.value, Status.UNKNOWN.value, Status.IN_FLIGHT.value])
    # One row carries an earlier call: the valid row with that key if there is one, else the
    # first row that now has a verdict of its own.
    held = (pl.col(KEY).is_not_null() & ~pre).any().over(LOOKUP)
    first = pl.col(ROW) == pl.col(ROW).min().over(LOOKUP)
    revived = pre & called & ~held & first & pl.col(LOOKUP).is_not_null()
    joined = joined.with_columns(revived.fill_null(False).alias("__revived"))
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
    keep = [c for c in table.input_columns if c not in OUTPUT_COLUMNS]
    return joined.select(
        *keep,
        status.alias(STATUS),
        pl.when(in_checkpoint).then(pl.col("__ck_call_id")).alias(CALL_ID),
        _inert(error).alias(ERROR),
        pl.when(in_checkpoint).then(pl.col("__ck_http")).alias(HTTP_STATUS),
        pl.when(in_checkpoint).then(pl.col("__ck_attempts")).otherwise(0).alias(ATTEMPTS),
        pl.when(in_checkpoint).then(pl.col("__ck_updated")).otherwise(pl.lit(utc_now())).alias(UPDATED_AT),
    )


def _inert(text: pl.Expr) -> pl.Expr:
    """A server message starting with = + - @ would run as a formula in Excel: quote it."""
    return pl.when(text.str.contains(r"^[=+\-@\t\r]")).then(pl.lit("'") + text).otherwise(text)


def errors_only(results: pl.DataFrame) -> pl.DataFrame:
    return results.filter(pl.col(STATUS).is_in(ERROR_STATUSES))


def status_counts(results: pl.DataFrame) -> dict[str, int]:
    counted = dict(results[STATUS].value_counts().iter_rows())
    return {status: int(counted.get(status, 0)) for status in STATUSES}


def write_atomic(frame: pl.DataFrame, path: Path) -> None:
    """Write to a temp file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temp = Path(temp_name)
    try:
        if path.suffix.lower() == ".parquet":
            frame.write_parquet(temp)
        else:
            frame.write_csv(temp)
        with temp.open("rb+") as flushed:
            os.fsync(flushed.fileno())
        temp.chmod(0o600)
        temp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise OutputError(f"{path}: cannot write the file ({exc.strerror or exc})") from None


def check_outputs(
    input_path: Path, outputs: Iterable[Path], *, checkpoint: Path | None = None, need_bytes: int = 0
) -> None:
    """Before any call: every output folder can be created and written, and none is the input."""
    seen: dict[Path, Path] = {}
    source = input_path.resolve()
    for path in [*outputs, *([checkpoint] if checkpoint is not None else [])]:
        resolved = path.resolve()
        if resolved == source:
            raise OutputError(f"{path}: is the lead list itself; writing there would overwrite it")
        if resolved in seen:
            raise OutputError(f"{path}: is used for two outputs; give each its own path")
        seen[resolved] = path
        if path == checkpoint and path.suffix.lower() in (".csv", ".parquet"):
            raise OutputError(
                f"{path}: the checkpoint is a SQLite database, not a {path.suffix} file; "
                "name it .db (e.g. out/campaign.checkpoint.db)"
            )
        if path != checkpoint and path.suffix.lower() not in (".csv", ".parquet"):
            raise OutputError(f"{path}: unsupported output type '{path.suffix}'; use .csv or .parquet")
        folder = path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except FileExistsError:
            raise OutputError(f"{folder}: a file is in the way of the output folder") from None
        except OSError as exc:
            raise OutputError(f"{folder}: cannot create the output folder ({exc.strerror or exc})") from None
        if path.is_dir():
            raise OutputError(f"{path}: is a folder; give a file path")
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise OutputError(
                f"{folder}: cannot write in the output folder ({exc.strerror or exc})"
            ) from None
        free = shutil.disk_usage(folder).free
        if free < max(_MIN_FREE_BYTES, need_bytes):
            raise OutputError(
                f"{folder}: only {free // (1024 * 1024)} MiB free; the results need about "
                f"{max(_MIN_FREE_BYTES, need_bytes) // (1024 * 1024)} MiB. Free some space first"
            )
