"""Reading a lead list file (CSV, TSV or Parquet) with every column as text.

Phone numbers must stay text: a number read as an integer loses its `+` and leading zeros.
Everything that makes a file unreadable is a LeadsError naming the file and what to do.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from dialer.errors import LeadsError, first_line

MAX_HEADER_BYTES = 1 << 20
# polars says what went wrong only in its message text; tests/test_leads.py pins these words.
POLARS_NOT_UTF8 = "utf-8"  # "invalid utf-8 sequence"
POLARS_RAGGED_ROW = "more fields"  # "found more fields than defined in 'Schema'"
_SNIFF_BYTES = 64 * 1024


def load_lead_list(path: Path, *, delimiter: str | None = None, encoding: str = "utf-8") -> pl.DataFrame:
    """Read a CSV or Parquet lead list with every column as text."""
    suffix = path.suffix.lower()
    if not path.exists():
        raise LeadsError(f"{path}: the lead list does not exist (check leads.path or --input)")
    if path.is_dir():
        raise LeadsError(f"{path}: is a folder, not a lead list file")
    if suffix == ".parquet":
        frame = read_parquet_as_text(path)
    elif suffix in (".csv", ".tsv", ".txt"):
        frame = read_csv_as_text(
            path,
            delimiter="\t" if suffix == ".tsv" and not delimiter else delimiter,
            encoding=encoding,
        )
    else:
        raise LeadsError(f"{path}: unsupported file type '{suffix}'; export the list as .csv or .parquet")
    # Trailing blank rows (Excel leaves them) are not leads; blank rows in the middle stay, so
    # row numbers match the spreadsheet, and are rejected for their missing phone number.
    filled = pl.any_horizontal(pl.all().str.contains(r"\S").fill_null(False))  # no stripped copies
    last = frame.select(filled.arg_true().max()).item()
    frame = frame.head(0 if last is None else last + 1)
    if frame.height == 0:
        raise LeadsError(f"{path}: has a header but no data rows")
    # One chunk per column: the reader's dozens would otherwise be realigned (copied, the whole
    # table) the first time a computed column meets them, and again on later selections.
    return frame.rechunk()


def read_parquet_as_text(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - polars raises many kinds for a broken file
        raise LeadsError(f"{path}: is not a readable Parquet file ({first_line(exc)})") from None
    check_names(path, frame.columns)
    return _as_text(path, frame)


def _as_text(path: Path, frame: pl.DataFrame) -> pl.DataFrame:
    """Every column as text, or a LeadsError naming the columns that have no text form.

    Cells are sent and written back as text. A list or array column cannot be cast, and a struct
    casts to a lossy `{a,b}`, so nested columns are refused along with whatever else fails the
    cast (binary that is not UTF-8, Python objects, durations) instead of crashing mid-load.
    """
    kept: list[pl.Series] = []
    refused: list[str] = []
    for name, dtype in frame.schema.items():
        try:
            text = None if dtype.is_nested() else frame[name].cast(pl.String)
        except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError):
            text = None
        if text is None:
            refused.append(f"'{name}' ({str(dtype.base_type()).lower()})")
        else:
            kept.append(text)
    if refused:
        which = f"column {refused[0]}" if len(refused) == 1 else f"columns {', '.join(refused)}"
        raise LeadsError(
            f"{path}: {which} cannot be read as text; lead lists need flat columns (text, numbers, "
            "dates): flatten or drop them and export the list again"
        )
    return pl.DataFrame(kept, schema=dict.fromkeys(frame.columns, pl.String))


def read_csv_as_text(path: Path, *, delimiter: str | None, encoding: str) -> pl.DataFrame:
    try:
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError as exc:
        raise LeadsError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not head.strip():
        raise LeadsError(f"{path}: the file is empty")
    if b"\x00" in head:
        raise LeadsError(f"{path}: is binary, not a CSV text file; export the list as CSV (UTF-8) or Parquet")
    if b"\r" in head.split(b"\n", 1)[0].rstrip(b"\r"):
        # polars ends lines at LF only: a CR-only file would be one giant header row
        raise LeadsError(
            f"{path}: lines end with a lone carriage return (an old Mac format); "
            "save it as CSV with LF or CRLF line endings"
        )
    if b"\n" not in head and path.stat().st_size > MAX_HEADER_BYTES:
        raise LeadsError(
            f"{path}: the first line is longer than {MAX_HEADER_BYTES // 1024} KiB; "
            "this is not a lead list with a header row"
        )
    codec = encoding.lower().replace("_", "-")
    if codec in ("utf-8", "utf8", "utf-8-sig"):
        source: Path | bytes = path
        try:
            head_text = head.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # a cut multi-byte character at the end is fine
                raise _not_utf8(path) from None
            head_text = head[: exc.start].decode("utf-8-sig")
    else:
        try:
            text = path.read_bytes().decode(encoding)
        except LookupError:
            raise LeadsError(f"{path}: unknown encoding '{encoding}' in leads.encoding") from None
        except UnicodeDecodeError as exc:
            raise LeadsError(
                f"{path}: is not valid {encoding} (byte {exc.start}); check leads.encoding"
            ) from None
        source = text.encode("utf-8")
        head_text = text[:_SNIFF_BYTES]
    separator = delimiter or _sniff_delimiter(head_text)
    # the whole head, not its first line: a quoted header name may hold a newline
    header = next(csv.reader(io.StringIO(head_text), delimiter=separator), [])
    check_names(path, [name.strip() for name in header])
    try:
        frame = pl.read_csv(
            source,
            infer_schema=False,
            separator=separator,
            raise_if_empty=True,
        )
    except pl.exceptions.NoDataError:
        raise LeadsError(f"{path}: the file is empty") from None
    except pl.exceptions.ComputeError as exc:
        message = str(exc)
        if POLARS_NOT_UTF8 in message.lower():
            raise _not_utf8(path) from None
        if POLARS_RAGGED_ROW in message:
            raise LeadsError(
                f"{path}: a row has more fields than the header ({len(header)} columns); "
                "check for an unquoted delimiter in a value"
            ) from None
        raise LeadsError(f"{path}: cannot be read as CSV ({first_line(exc)})") from None
    # the header as polars read it (a quoted newline can make it differ from the first text line)
    check_names(path, [name.strip() for name in frame.columns])
    return frame.rename({name: name.strip() for name in frame.columns})


def _not_utf8(path: Path) -> LeadsError:
    return LeadsError(
        f'{path}: is not UTF-8 text; set leads.encoding (for example "latin-1" or "cp1252") '
        "or save the file as CSV UTF-8"
    )


def _sniff_delimiter(head: str) -> str:
    first = head.splitlines()[0] if head else ""
    counts = {sep: first.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def check_names(path: Path, names: Sequence[str]) -> None:
    for index, name in enumerate(names, start=1):
        if not name:
            raise LeadsError(f"{path}: column {index} of the header has an empty name; name it")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise LeadsError(f"{path}: the column name '{name}' appears twice in the header")
        seen.add(name)
