"""Lead lists: load as text, map columns, normalise and validate, then build request bodies.

Row work is vectorised in polars; only distinct phone values go through `phonenumbers`, and
request bodies are built a slice at a time so a million-row list never becomes a million dicts.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

import phonenumbers
import polars as pl

from dialer.config import LeadsConfig, Settings, ToolConfig
from dialer.errors import ConfigError, LeadsError
from dialer.phones import fast_normalise

ROW = "__dialer_row"
PHONE = "__dialer_phone"
REGION = "__dialer_region"
KEY = "__dialer_key"
LOOKUP = "__dialer_lookup"  # the key a row would have if valid: finds its earlier call
PRE_STATUS = "__dialer_pre_status"
REASON = "__dialer_reason"
INTERNAL = (ROW, PHONE, REGION, KEY, PRE_STATUS, REASON)

MAX_PHONE_CHARS = 64
# A phone cell this long is no typo: the file is broken (an unbalanced quote swallows the rows
# after it into one cell), so the whole list is refused rather than silently shortened.
BROKEN_PHONE_CELL_CHARS = 1000
MAX_HEADER_BYTES = 1 << 20
_SNIFF_BYTES = 64 * 1024
_E164 = re.compile(r"\+[1-9]\d{6,14}")
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_TEMPLATE = re.compile(r"\$\$\{|\$\{([^}]*)\}")


@dataclass(frozen=True)
class LeadTable:
    """The input rows in order, with the dialer's verdict on each one alongside."""

    frame: pl.DataFrame
    input_columns: list[str]
    path: Path

    def dialable(self) -> pl.DataFrame:
        return self.frame.filter(pl.col(PRE_STATUS).is_null())

    @property
    def rows(self) -> int:
        return self.frame.height


@dataclass(frozen=True)
class LeadRequest:
    """One lead ready to send: its checkpoint key, input row and placeCall body."""

    key: str
    row: int
    phone: str
    body: dict[str, Any]
    timezone: str | None = None  # the lead's own IANA zone, when the list has a column for it


# ---------------------------------------------------------------- loading


def load_lead_list(path: Path, *, delimiter: str | None = None, encoding: str = "utf-8") -> pl.DataFrame:
    """Read a CSV or Parquet lead list with every column as text."""
    suffix = path.suffix.lower()
    if not path.exists():
        raise LeadsError(f"{path}: the lead list does not exist (check leads.path or --input)")
    if path.is_dir():
        raise LeadsError(f"{path}: is a folder, not a lead list file")
    if suffix == ".parquet":
        frame = _read_parquet(path)
    elif suffix in (".csv", ".tsv", ".txt"):
        frame = _read_csv(
            path,
            delimiter="\t" if suffix == ".tsv" and not delimiter else delimiter,
            encoding=encoding,
        )
    else:
        raise LeadsError(f"{path}: unsupported file type '{suffix}'; export the list as .csv or .parquet")
    # Trailing blank rows (Excel leaves them) are not leads; blank rows in the middle stay, so
    # row numbers match the spreadsheet, and are rejected for their missing phone number.
    filled = ~pl.all_horizontal(pl.all().is_null() | (pl.all().str.strip_chars() == ""))
    last = frame.select(filled.arg_true().max()).item()
    frame = frame.head(0 if last is None else last + 1)
    if frame.height == 0:
        raise LeadsError(f"{path}: has a header but no data rows")
    return frame


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - polars raises many kinds for a broken file
        raise LeadsError(f"{path}: is not a readable Parquet file ({_first_line(exc)})") from None
    _check_names(path, frame.columns)
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


def _read_csv(path: Path, *, delimiter: str | None, encoding: str) -> pl.DataFrame:
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
    _check_names(path, [name.strip() for name in header])
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
        if "utf-8" in message.lower():
            raise _not_utf8(path) from None
        if "more fields" in message:
            raise LeadsError(
                f"{path}: a row has more fields than the header ({len(header)} columns); "
                "check for an unquoted delimiter in a value"
            ) from None
        raise LeadsError(f"{path}: cannot be read as CSV ({_first_line(exc)})") from None
    # the header as polars read it (a quoted newline can make it differ from the first text line)
    _check_names(path, [name.strip() for name in frame.columns])
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


def _check_names(path: Path, names: Sequence[str]) -> None:
    for index, name in enumerate(names, start=1):
        if not name:
            raise LeadsError(f"{path}: column {index} of the header has an empty name; name it")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise LeadsError(f"{path}: the column name '{name}' appears twice in the header")
        seen.add(name)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def file_fingerprint(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


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
    phones = _normalise_column(frame[cols.phone], config.default_region)
    work = frame.with_columns(
        pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias(ROW),
        phones.struct.field("e164").alias(PHONE),
        phones.struct.field("region").alias(REGION),
        phones.struct.field("reason").alias("__phone_reason"),
    )

    def empty(column: str) -> pl.Expr:
        return pl.col(column).is_null() | (pl.col(column).str.strip_chars() == "")

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
        email = pl.col(cols.email).str.strip_chars()
        reasons.append(
            pl.when(~empty(cols.email) & ~email.str.contains(_EMAIL)).then(
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
    first_row = pl.col(ROW).min().over(KEY)
    skip = (
        pl.when(pl.col("__reject").is_not_null())
        .then(None)
        .when(pl.col(PHONE).is_in(sorted(do_not_call)))
        .then(pl.lit("do-not-call"))
        .when(first_row != pl.col(ROW))
        .then(pl.format("duplicate of row {}", first_row))
    )
    work = work.with_columns(skip.alias("__skip"))
    work = work.with_columns(
        pl.when(pl.col("__reject").is_not_null())
        .then(pl.lit("rejected"))
        .when(pl.col("__skip").is_not_null())
        .then(pl.lit("skipped"))
        .alias(PRE_STATUS),
        pl.coalesce("__reject", "__skip").alias(REASON),
    ).drop("__phone_reason", "__reject", "__skip")
    return LeadTable(frame=work, input_columns=input_columns, path=path)


def _normalise_column(raw: pl.Series, default_region: str) -> pl.Series:
    """Normalise each distinct raw value once.

    Values that are already clean go through `phones.fast_normalise` (phonenumbers' own
    metadata evaluated in polars, exact by construction); only the rest, a few percent of a
    real list, take the free-form parser one by one.
    """
    cleaned = raw.fill_null("").str.strip_chars()
    distinct = cleaned.unique()
    fast = fast_normalise(distinct, default_region).with_columns(
        distinct.alias("raw"), pl.lit(None, dtype=pl.String).alias("reason")
    )
    rest = fast.filter(pl.col("e164").is_null())["raw"].to_list()
    parsed = [_normalise_phone(value, default_region) for value in rest]
    slow = pl.DataFrame(
        {
            "raw": rest,
            "e164": [p[0] for p in parsed],
            "region": [p[1] for p in parsed],
            "reason": [p[2] for p in parsed],
        },
        schema={"raw": pl.String, "e164": pl.String, "region": pl.String, "reason": pl.String},
    )
    lookup = pl.concat([fast.filter(pl.col("e164").is_not_null()).select(slow.columns), slow])
    joined = pl.DataFrame({"raw": cleaned}).join(lookup, on="raw", how="left", maintain_order="left")
    return joined.select(pl.struct("e164", "region", "reason").alias("phone")).to_series()


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


@lru_cache(maxsize=1 << 16)
def _normalise_phone(text: str, default_region: str) -> tuple[str | None, str | None, str | None]:
    """Return (E.164, region, None) or (None, None, reason)."""
    if not text:
        return None, None, "missing phone number"
    if len(text) > MAX_PHONE_CHARS:
        return None, None, f"phone number is too long ({len(text)} characters)"
    digits = _undo_excel_float(text)
    if digits is None:
        return None, None, "phone number was rounded by a spreadsheet (scientific notation)"
    try:
        number = phonenumbers.parse(digits, default_region)
    except phonenumbers.NumberParseException as exc:
        return None, None, f"invalid phone number: {_parse_reason(exc)}"
    if not phonenumbers.is_possible_number(number):
        return None, None, "impossible phone number (wrong number of digits)"
    if not phonenumbers.is_valid_number(number):
        return None, None, "invalid phone number (not a number in use in its country)"
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164, phonenumbers.region_code_for_number(number), None


def _undo_excel_float(text: str) -> str | None:
    """Turn `4155550132.0` and exact `4.155550132E9` back into digits; None when rounded."""
    if re.fullmatch(r"\+?\d+\.0+", text):
        return text.split(".", 1)[0]
    match = re.fullmatch(r"(\d)\.(\d+)[eE]\+?(\d+)", text)
    if not match:
        return text
    decimals, exponent = len(match.group(2)), int(match.group(3))
    if decimals > exponent:
        return text
    if decimals < exponent:
        return None
    try:
        return str(int(Decimal(text)))
    except InvalidOperation:
        return text


def _parse_reason(exc: phonenumbers.NumberParseException) -> str:
    reasons = {
        phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
        phonenumbers.NumberParseException.NOT_A_NUMBER: "not a phone number",
        phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
        phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
        phonenumbers.NumberParseException.TOO_LONG: "too long",
    }
    return reasons.get(exc.error_type, "not a phone number")


def normalise_many(values: Sequence[str], default_region: str) -> frozenset[str]:
    """E.164 forms of the valid numbers among `values` (for do-not-call lists)."""
    found = {_normalise_phone(v.strip(), default_region)[0] for v in values}
    return frozenset(v for v in found if v)


def load_do_not_call(path: Path, default_region: str) -> frozenset[str]:
    """Numbers never to call, from a CSV/Parquet list or a plain one-number-per-line file.

    Dialing a number that asked not to be called is worse than not dialing at all, so a list the
    dialer cannot read stops the run (LeadsError) instead of silently blocking nothing: the
    phone column is found by header or content, and it must hold mostly valid numbers.
    """
    _check_do_not_call_file(path)
    if path.suffix.lower() == ".parquet":
        frame = _read_parquet(path)
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
            if _header_key(lines[0]) in _PHONE_HEADERS:
                lines = lines[1:]  # a one-column CSV: its header is not a number to block
                if not lines:
                    return frozenset()
            cells = pl.Series("number", lines, dtype=pl.String)
            return _do_not_call_numbers(path, cells, "its lines (one number per line)", default_region)
        frame = _read_csv(path, delimiter=None, encoding="utf-8")
    if frame.height == 0:
        return frozenset()  # a header with no rows: an empty list
    column, why = _do_not_call_column(frame, default_region)
    cells = _filled(frame[column])
    if _normalise_column(pl.Series([column]), default_region).struct.field("e164")[0] is not None:
        cells = pl.concat([pl.Series([column]), cells])  # no header row: the first line is a number
    return _do_not_call_numbers(path, cells, f"column '{column}' ({why})", default_region)


# Header names (lower case, without spaces, `_` or `-`) that mark the phone column, best first.
_PHONE_HEADERS = (
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


def _header_key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.lower())


def _filled(cells: pl.Series) -> pl.Series:
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
        by_key.setdefault(_header_key(name), name)
    for key in _PHONE_HEADERS:
        if key in by_key:
            return by_key[key], "picked by its header"
    best, best_share = frame.columns[0], -1.0
    for name in frame.columns:
        sample = _filled(frame[name]).head(_COLUMN_SAMPLE)
        if sample.is_empty():
            continue
        hits = int(_normalise_column(sample, default_region).struct.field("e164").is_not_null().sum())
        if hits / sample.len() > best_share:
            best, best_share = name, hits / sample.len()
    return best, "no header is a phone column name such as 'phone' or 'mobile', so picked by content"


def _do_not_call_numbers(path: Path, cells: pl.Series, where: str, default_region: str) -> frozenset[str]:
    """E.164 numbers of the list; a list that is mostly not phone numbers is an error, not a no-op."""
    numbers = _normalise_column(cells, default_region).struct.field("e164").drop_nulls()
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


# ---------------------------------------------------------------- request bodies


@dataclass(frozen=True)
class Template:
    """A tool-arg string split into literal text and `${column}` references."""

    parts: tuple[tuple[bool, str], ...]  # (is_column, text)

    def render(self, row: Mapping[str, str]) -> str:
        return "".join(row[text] if is_column else text for is_column, text in self.parts)

    @property
    def columns(self) -> list[str]:
        return [text for is_column, text in self.parts if is_column]


def parse_template(text: str) -> Template | str:
    """Split `${column}` references out; `$${` is a literal `${`; `{{ x }}` is Kyzo's."""
    parts: list[tuple[bool, str]] = []
    position = 0
    literal = ""
    for match in _TEMPLATE.finditer(text):
        literal += text[position : match.start()]
        if match.group(0) == "$${":
            literal += "${"
        else:
            if literal:
                parts.append((False, literal))
                literal = ""
            parts.append((True, match.group(1).strip()))
        position = match.end()
    literal += text[position:]
    if not any(is_column for is_column, _ in parts):
        return literal
    if literal:
        parts.append((False, literal))
    return Template(tuple(parts))


def compile_args(value: Any) -> Any:
    if isinstance(value, str):
        return parse_template(value)
    if isinstance(value, dict):
        return {k: compile_args(v) for k, v in value.items()}
    if isinstance(value, list):
        return [compile_args(v) for v in value]
    return value


def _template_columns(value: Any) -> Iterator[str]:
    if isinstance(value, Template):
        yield from value.columns
    elif isinstance(value, dict):
        for item in value.values():
            yield from _template_columns(item)
    elif isinstance(value, list):
        for item in value:
            yield from _template_columns(item)


def _render(value: Any, row: Mapping[str, str]) -> Any:
    if isinstance(value, Template):
        return value.render(row)
    if isinstance(value, dict):
        return {k: _render(v, row) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, row) for v in value]
    return value


@dataclass(frozen=True)
class RequestSpec:
    """How a lead row becomes a placeCall body; compiled once per run."""

    from_phone_number_id: str
    email_column: str | None
    reference_column: str | None
    timezone_column: str | None
    agent_params: Mapping[str, str]
    tools: list[dict[str, Any]]
    template_columns: tuple[str, ...]

    @classmethod
    def build(cls, settings: Settings, columns: Sequence[str]) -> RequestSpec:
        tools = [
            {
                "tool_type": t.tool_type,
                "execution_order": t.execution_order,
                "args": compile_args(t.args),
            }
            for t in sorted(settings.file.tools, key=_tool_order)
        ]
        used = list(dict.fromkeys(c for tool in tools for c in _template_columns(tool["args"])))
        missing = [c for c in used if c not in columns]
        if missing:
            raise ConfigError(
                str(settings.source),
                [
                    f"tools: '${{{c}}}' names a column that is not in {settings.leads_path} "
                    f"(columns: {', '.join(columns)}); write $${{ for a literal ${{"
                    for c in missing
                ],
            )
        cols = settings.leads.columns
        return cls(
            from_phone_number_id=settings.campaign.from_phone_number_id,
            email_column=cols.email,
            reference_column=cols.reference_id,
            timezone_column=cols.timezone,
            agent_params=dict(settings.leads.agent_params),
            tools=tools,
            template_columns=tuple(used),
        )

    def needed_columns(self) -> list[str]:
        names = [KEY, ROW, PHONE, *self.agent_params.values(), *self.template_columns]
        names += [c for c in (self.email_column, self.reference_column, self.timezone_column) if c]
        return list(dict.fromkeys(names))

    def body(self, row: Mapping[str, Any]) -> dict[str, Any]:
        text = {k: ("" if v is None else str(v)) for k, v in row.items()}
        body: dict[str, Any] = {
            "fromPhoneNumberId": self.from_phone_number_id,
            "phoneNumber": text[PHONE],
        }
        if self.email_column and text[self.email_column].strip():
            body["email"] = text[self.email_column].strip()
        body["agentParams"] = {param: text[column] for param, column in self.agent_params.items()}
        if self.reference_column:
            body["referenceId"] = text[self.reference_column].strip()
        if self.tools:
            body["tools"] = [{**tool, "args": _render(tool["args"], text)} for tool in self.tools]
        return body


def _tool_order(tool: ToolConfig) -> int:
    return tool.execution_order


def iter_requests(frame: pl.DataFrame, spec: RequestSpec, slice_size: int = 2000) -> Iterator[LeadRequest]:
    """Yield request bodies a slice at a time, in input order."""
    columns = spec.needed_columns()
    for offset in range(0, frame.height, slice_size):
        chunk = frame.slice(offset, slice_size).select(columns)
        for row in chunk.iter_rows(named=True):
            zone = row[spec.timezone_column] if spec.timezone_column else None
            yield LeadRequest(row[KEY], row[ROW], row[PHONE], spec.body(row), zone)
