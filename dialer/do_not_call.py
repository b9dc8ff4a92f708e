"""Do-not-call lists: numbers never to dial, from a CSV/Parquet list or one number per line.

Dialing a number that asked not to be called is worse than not dialing at all, so a list the
dialer cannot read stops the run (LeadsError) instead of silently blocking nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from dialer.errors import LeadsError
from dialer.lead_files import read_csv_as_text, read_parquet_as_text
from dialer.phones import normalise_column


def load_do_not_call(path: Path, default_region: str) -> frozenset[str]:
    """E.164 numbers of the list; its phone column found by header or content, mostly valid numbers."""
    _check_do_not_call_file(path)
    if path.suffix.lower() == ".parquet":
        frame = read_parquet_as_text(path)
    else:
        try:
            text = path.read_text(encoding="utf-8-sig", errors="replace")
        except OSError as exc:
            raise _unreadable_do_not_call(path, exc) from None
        lines = [line.strip() for line in text.splitlines()]
        lines = [line for line in lines if line and not line.startswith("#")]
        if not lines:
            return frozenset()
        if not any(sep in lines[0] for sep in ",;\t"):
            if header_key(lines[0]) in PHONE_HEADERS:
                lines = lines[1:]  # a one-column CSV: its header is not a number to block
                if not lines:
                    return frozenset()
            cells = pl.Series("number", lines, dtype=pl.String)
            return _do_not_call_numbers(path, cells, "its lines (one number per line)", default_region)
        frame = read_csv_as_text(path, delimiter=None, encoding="utf-8")
    if frame.height == 0:
        return frozenset()  # a header with no rows: an empty list
    column, why = _do_not_call_column(frame, default_region)
    cells = filled(frame[column])
    if normalise_column(pl.Series([column]), default_region).struct.field("e164")[0] is not None:
        cells = pl.concat([pl.Series([column]), cells])  # no header row: the first line is a number
    return _do_not_call_numbers(path, cells, f"column '{column}' ({why})", default_region)


# Header names (lower case, without spaces, `_` or `-`) that mark the phone column, best first.
PHONE_HEADERS = (
    "phone",
    "phonenumber",
    "mobile",
    "mobilephone",
    "cell",
    "telephone",
    "tel",
    "number",
    "msisdn",
    "e164",
)
_COLUMN_SAMPLE = 2000  # values per column judged when no header names the phone column


def _check_do_not_call_file(path: Path) -> None:
    """A missing, folder or unreadable list is a LeadsError naming the path and config key."""
    if not path.exists():
        raise LeadsError(f"{path}: the do-not-call list does not exist (leads.do_not_call)")
    if path.is_dir():
        raise LeadsError(
            f"{path}: is a folder, not a do-not-call list file; point leads.do_not_call at the file"
        )
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise _unreadable_do_not_call(path, exc) from None


def _unreadable_do_not_call(path: Path, exc: OSError) -> LeadsError:
    return LeadsError(
        f"{path}: the do-not-call list cannot be read ({exc.strerror or exc}); "
        "check the file's permissions or leads.do_not_call"
    )


def header_key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.lower())


def filled(cells: pl.Series) -> pl.Series:
    """The non-empty values of a text column, trimmed."""
    trimmed = cells.str.strip_chars()
    return trimmed.filter(trimmed.is_not_null() & (trimmed != ""))


def _do_not_call_column(frame: pl.DataFrame, default_region: str) -> tuple[str, str]:
    """The phone column and why it was chosen: by header name, else by the most phone numbers.

    A list exported as `Name,Mobile` must not be read from its name column; when no header says
    which column holds numbers, a sample of each column is normalised and the best one wins.
    """
    by_key: dict[str, str] = {}
    for name in frame.columns:
        by_key.setdefault(header_key(name), name)
    for key in PHONE_HEADERS:
        if key in by_key:
            return by_key[key], "picked by its header"
    best, best_share = frame.columns[0], -1.0
    for name in frame.columns:
        sample = filled(frame[name]).head(_COLUMN_SAMPLE)
        if sample.is_empty():
            continue
        hits = int(normalise_column(sample, default_region).struct.field("e164").is_not_null().sum())
        if hits / sample.len() > best_share:
            best, best_share = name, hits / sample.len()
    return best, "no header is a phone column name such as 'phone' or 'mobile', so picked by content"


def _do_not_call_numbers(path: Path, cells: pl.Series, where: str, default_region: str) -> frozenset[str]:
    """E.164 numbers of the list; a list that is mostly not phone numbers is an error, not a no-op."""
    numbers = normalise_column(cells, default_region).struct.field("e164").drop_nulls()
    total, bad = cells.len(), cells.len() - numbers.len()
    if numbers.is_empty():
        raise LeadsError(
            f"{path}: the do-not-call list has no valid phone number: tried {where}, {total} non-empty "
            f"value{'' if total == 1 else 's'}, default region {default_region}. Put the numbers in a column "
            "named 'phone' (or one per line) and check leads.default_region; the run stops rather than "
            "ignore leads.do_not_call"
        )
    if bad * 2 > total:
        raise LeadsError(
            f"{path}: {bad} of {total} values in the do-not-call list are not valid phone numbers: "
            f"tried {where}, default region {default_region}. Fix the list or leads.do_not_call; the run "
            "stops rather than ignore part of the list"
        )
    return frozenset(numbers.unique().to_list())
