"""Vectorised E.164 normalisation for lead phone numbers that are already written cleanly.

`phonenumbers` costs ~25 µs per value in Python, so a list of a million distinct numbers takes
about 30 s. Most lead lists hold plain numbers (`+14155550132`, `(415) 555-0132`), and for those
the library's decision is a handful of regex matches against its own metadata. This module runs
the same steps as polars expressions, so the work happens in Rust over whole columns:

1. keep values made only of digits, spaces, `-`, `.`, `(`, `)` and one leading `+`;
2. find the country code and national significant number as `phonenumbers.parse` does
   (leading `+` and country code; otherwise the default region, with its rule for a national
   number that starts with the country code, and its national prefix stripping);
3. check `is_possible_number`, pick the region as `region_code_for_number` does (region order,
   leading digits) and check `is_valid_number`, all from the library's metadata patterns.

Whatever the fast path is not sure about it declines (null), and the caller sends those values
through the exact slow path; a declined value is never a verdict.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum, auto
from functools import lru_cache

import phonenumbers
import polars as pl
from phonenumbers import PhoneMetadata, PhoneNumberDesc

from dialer.phone_rules import MAX_NSN, MAX_PHONE_CHARS, MIN_NSN, SAFE_PATTERN

_ROW = "row"
_DIGITS = "digits"
_CODE = "code"
_LOCAL = "local"  # no country code in the value: `parse` strips with the default region's rules
_NSN = "nsn"
_REST = "rest"
_STRIPPED = "stripped"
_LEN = "length"
_SCHEMA = {_ROW: pl.UInt32, _CODE: pl.String, _LOCAL: pl.Boolean, _NSN: pl.String}
_RESULT = {_ROW: pl.UInt32, "e164": pl.String, "region": pl.String}

# Only ASCII digits and the separators people type; anything else (letters, `#`, `,`, `;`, `x`,
# unicode digits) can mean an extension, a vanity number or a second number, which the slow path
# handles and the fast path does not try to.
_SYNTAX = r"^\+?[0-9 ().\-]+$"
# `_undo_excel_float` in phones turns `4155550132.0` into `4155550132`; joining digits would not.
_EXCEL_FLOAT = r"^\+?[0-9]+\.0+$"

_SAFE_TEMPLATE = re.compile(r"(?:[0-9]|\\[1-9])*")
_DIGIT_IN_CLASS = re.compile(r"\[[^\]]*\\d")

_NON_GEO = "001"


def fast_normalise(raw: pl.Series, default_region: str) -> pl.DataFrame:
    """Vectorised E.164 normalisation for the numbers that are already clean enough.

    Returns a frame with as many rows as `raw` (same order) and String columns
    `e164` and `region`: both set where the fast path ACCEPTS the value as a valid number,
    both null where it does not decide (the caller then runs the exact slow path on those values).
    """
    frame = pl.DataFrame({"raw": raw.cast(pl.String)}).with_row_index(_ROW)
    text = pl.col("raw")
    tidy = frame.filter(
        text.str.contains(_SYNTAX)
        & ~text.str.contains(_EXCEL_FLOAT)
        & (text.str.len_chars() <= MAX_PHONE_CHARS)
    ).select(
        _ROW,
        text.str.starts_with("+").alias("plus"),
        text.str.replace_all(r"[^0-9]", "").alias(_DIGITS),
    )
    candidates = pl.concat(
        [
            _international(tidy.filter(pl.col("plus"))),
            _national(tidy.filter(~pl.col("plus")), default_region),
        ]
    )
    accepted = [pl.DataFrame(schema=_RESULT)]
    for (code, local), part in candidates.partition_by(_CODE, _LOCAL, as_dict=True).items():
        plan = _plan(int(code))
        parse_rules = _rules(default_region) if local else (plan.main if plan else None)
        if plan is None or parse_rules is None:
            continue
        accepted.append(_validate(_strip_for_parse(part, parse_rules), plan))
    found = pl.concat(accepted)
    return (
        frame.select(_ROW)
        .join(found, on=_ROW, how="left", maintain_order="left")
        .select(pl.col("e164"), pl.col("region"))
    )


# ---------------------------------------------------------------- metadata as polars patterns


class _Length(Enum):
    """The verdicts of phonenumbers' `_test_number_length` (ValidationResult)."""

    POSSIBLE = auto()
    LOCAL_ONLY = auto()
    TOO_SHORT = auto()
    TOO_LONG = auto()
    INVALID = auto()


@dataclass(frozen=True)
class _Desc:
    """A number description: possible lengths (empty: any) and an anchored Rust pattern."""

    lengths: tuple[int, ...]
    pattern: str


@dataclass(frozen=True)
class _Rules:
    """What parsing and validating need from one region's metadata, checked safe for Rust."""

    region: str
    country_code: int
    general: _Desc | None
    kinds: tuple[_Desc, ...]
    leading: str | None
    idd: str | None
    prefix: str | None
    prefix_groups: int
    transform: str | None
    possible: tuple[int, ...]
    keeps_stripped: tuple[int, ...]
    too_long: tuple[int, ...]


@dataclass(frozen=True)
class _Plan:
    """Everything needed to validate the numbers of one country calling code."""

    code: int
    main: _Rules
    regions: tuple[_Rules, ...]
    single: bool


@lru_cache(maxsize=4096)
def _rust_compatible(pattern: str) -> bool:
    """True when polars compiles the pattern (its Rust engine has no look-around, for one)."""
    try:
        pl.Series([""], dtype=pl.String).str.contains(pattern)
    except pl.exceptions.ComputeError:
        return False
    return True


def _translate(pattern: str) -> str | None:
    """The phonenumbers pattern for Rust, or None when its syntax is outside the known-safe subset."""
    if not SAFE_PATTERN.fullmatch(pattern) or "{," in pattern or _DIGIT_IN_CLASS.search(pattern):
        return None
    # Inputs are ASCII digits, and an ASCII class is much smaller than Rust's unicode `\d`.
    return pattern.replace(r"\d", "[0-9]")


def _anchored(pattern: str | None, *, whole: bool) -> str | None:
    """`^(?:P)$` for a full match, `^(?:P)` for a match at the start; None if unusable."""
    if pattern is None:
        return None
    body = _translate(pattern)
    if body is None:
        raise _Unsupported(pattern)
    anchored = f"^(?:{body})$" if whole else f"^(?:{body})"
    if not _rust_compatible(anchored):
        raise _Unsupported(pattern)
    return anchored


class _Unsupported(Exception):
    """A metadata pattern the fast path cannot run exactly; its region is left to the slow path."""


def _length_verdict(desc: PhoneNumberDesc, length: int) -> _Length:
    """phonenumbers' `_test_number_length` for an unknown number type, which reads only lengths."""
    possible = desc.possible_length
    if length in desc.possible_length_local_only:
        return _Length.LOCAL_ONLY
    if possible[0] == length:
        return _Length.POSSIBLE
    if possible[0] > length:
        return _Length.TOO_SHORT
    if possible[-1] < length:
        return _Length.TOO_LONG
    return _Length.POSSIBLE if length in possible[1:] else _Length.INVALID


def _lengths(desc: PhoneNumberDesc, verdicts: Iterable[_Length]) -> tuple[int, ...]:
    wanted = set(verdicts)
    return tuple(n for n in range(MAX_PHONE_CHARS + 1) if _length_verdict(desc, n) in wanted)


def _descs(metadata: PhoneMetadata) -> list[PhoneNumberDesc | None]:
    """The types `_number_type_helper` accepts as valid; mobile only if it differs from fixed line."""
    kinds = [
        metadata.premium_rate,
        metadata.toll_free,
        metadata.shared_cost,
        metadata.voip,
        metadata.personal_number,
        metadata.pager,
        metadata.uan,
        metadata.voicemail,
        metadata.fixed_line,
    ]
    if not metadata.same_mobile_and_fixed_line_pattern:
        kinds.append(metadata.mobile)
    return kinds


def _merged_kinds(metadata: PhoneMetadata) -> tuple[_Desc, ...]:
    """One alternation per set of possible lengths: a number is valid if any type matches."""
    by_lengths: dict[tuple[int, ...], list[str]] = {}
    for desc in _descs(metadata):
        # An empty pattern matches nothing (`_match_national_number`), so the type drops out.
        if desc is None or not desc.national_number_pattern:
            continue
        body = _translate(desc.national_number_pattern)
        if body is None:
            raise _Unsupported(desc.national_number_pattern)
        by_lengths.setdefault(tuple(desc.possible_length), []).append(body)
    merged = []
    for lengths, bodies in by_lengths.items():
        pattern = "^(?:" + "|".join(f"(?:{body})" for body in bodies) + ")$"
        if not _rust_compatible(pattern):
            raise _Unsupported(pattern)
        merged.append(_Desc(lengths, pattern))
    return tuple(merged)


@lru_cache(maxsize=512)
def _rules(region: str) -> _Rules | None:
    """The region's rules, or None when its metadata is missing or not safe to run in Rust."""
    metadata = PhoneMetadata.metadata_for_region(region, None)
    if metadata is None or metadata.country_code is None:
        return None
    general = metadata.general_desc
    if general is None or not general.possible_length:
        return None  # the slow path itself would fail on this metadata
    prefix = metadata.national_prefix_for_parsing or None
    groups = re.compile(prefix).groups if prefix else 0
    transform = metadata.national_prefix_transform_rule or None
    if transform is not None:
        if groups == 0 or not _SAFE_TEMPLATE.fullmatch(transform):
            return None
        transform = re.sub(r"\\([1-9])", r"${\1}", transform)  # Python `\1` is Rust `${1}`
    try:
        pattern = _anchored(general.national_number_pattern or None, whole=True)
        return _Rules(
            region=region,
            country_code=metadata.country_code,
            general=None if pattern is None else _Desc(tuple(general.possible_length), pattern),
            kinds=_merged_kinds(metadata),
            leading=_anchored(metadata.leading_digits, whole=False),
            idd=_anchored(metadata.international_prefix, whole=False),
            prefix=_anchored(prefix, whole=False),
            prefix_groups=groups,
            transform=transform,
            possible=_lengths(general, (_Length.POSSIBLE, _Length.LOCAL_ONLY)),
            keeps_stripped=_lengths(general, (_Length.POSSIBLE, _Length.TOO_LONG)),
            too_long=_lengths(general, (_Length.TOO_LONG,)),
        )
    except _Unsupported:
        return None


@lru_cache(maxsize=512)
def _plan(code: int) -> _Plan | None:
    """Validation plan for a calling code; None for non-geographic codes or unsafe metadata."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code)
    if not regions or _NON_GEO in regions:
        return None
    main = _rules(regions[0])
    if main is None or main.country_code != code:
        return None
    listed = []
    for region in regions:
        if PhoneMetadata.metadata_for_region(region, None) is None:
            continue  # `_region_code_for_number_from_list` skips regions without metadata
        rules = _rules(region)
        if rules is None:
            return None
        listed.append(rules)
    return _Plan(code=code, main=main, regions=tuple(listed), single=len(regions) == 1)


# ---------------------------------------------------------------- parsing


def _international(frame: pl.DataFrame) -> pl.DataFrame:
    """`+DIGITS`: the shortest leading 1-3 digits that are a calling code, as `parse` takes them."""
    digits = pl.col(_DIGITS)
    codes = [str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE]
    head = [digits.str.slice(0, size) for size in (1, 2, 3)]
    code = (
        pl.when(head[0].is_in(codes))
        .then(head[0])
        .when(head[1].is_in(codes))
        .then(head[1])
        .when(head[2].is_in(codes))
        .then(head[2])
    )
    return (
        # Up to two digits after the plus is TOO_SHORT_AFTER_IDD; a leading 0 or an unknown code
        # makes `parse` retry the digits as a national number, which is left to the slow path.
        frame.filter((digits.str.len_chars() > MIN_NSN) & ~digits.str.starts_with("0"))
        .with_columns(code.alias(_CODE))
        .filter(pl.col(_CODE).is_not_null())
        .select(
            _ROW,
            _CODE,
            pl.lit(False).alias(_LOCAL),
            digits.str.slice(pl.col(_CODE).str.len_chars()).alias(_NSN),
        )
    )


def _national(frame: pl.DataFrame, default_region: str) -> pl.DataFrame:
    """Digits without `+`: `_maybe_extract_country_code` for the default region, IDD declined."""
    empty = pl.DataFrame(schema=_SCHEMA)
    # `parse` refuses a number without `+` unless the region is supported, spelled exactly.
    if default_region not in phonenumbers.SUPPORTED_REGIONS or frame.is_empty():
        return empty
    rules = _rules(default_region)
    if rules is None or _plan(rules.country_code) is None:
        return empty
    code = str(rules.country_code)
    digits = pl.col(_DIGITS)
    # A number that starts with the region's international prefix (US `011`) would be read as
    # dialled abroad; those are declined rather than re-derived.
    international = digits.str.contains(rules.idd) if rules.idd else pl.lit(False)
    staged = frame.filter((digits.str.len_chars() > 0) & ~international).with_columns(
        digits.str.slice(len(code)).alias(_REST)
    )
    staged = _with_prefix_stripped(staged, _REST, rules)
    rest = pl.col(_STRIPPED)
    # The country code is taken off when the number was not viable before and is after, or was
    # too long for the region before.
    extracted = digits.str.starts_with(code) & (
        (~_viable(digits, rules) & _viable(rest, rules)) | digits.str.len_chars().is_in(rules.too_long)
    )
    return staged.select(
        _ROW,
        pl.lit(code).alias(_CODE),
        (~extracted).alias(_LOCAL),
        pl.when(extracted).then(rest).otherwise(digits).alias(_NSN),
    )


def _viable(number: pl.Expr, rules: _Rules) -> pl.Expr:
    """`_match_national_number(number, general_desc)`: the general pattern only, no lengths."""
    return number.str.contains(rules.general.pattern) if rules.general else pl.lit(False)


def _with_prefix_stripped(frame: pl.DataFrame, column: str, rules: _Rules) -> pl.DataFrame:
    """`_maybe_strip_national_prefix_carrier_code` on a column, written to `_STRIPPED`.

    Built in steps so that each regex runs once per row, not once per use of its result.
    """
    number = pl.col(column)
    if rules.prefix is None:
        return frame.with_columns(number.alias(_STRIPPED))
    plain = number.str.replace(rules.prefix, "")
    if rules.transform is None:
        candidate = plain
    else:
        # The transform applies only when the last group of the prefix pattern took part.
        untouched = number.str.extract(rules.prefix, rules.prefix_groups).is_null()
        transformed = number.str.replace(rules.prefix, rules.transform)
        candidate = pl.when(untouched).then(plain).otherwise(transformed)
    # An empty number is returned as it is, even by a prefix pattern that matches empty text.
    hit = number.str.contains(rules.prefix) & (number.str.len_chars() > 0)
    frame = frame.with_columns(pl.when(hit).then(candidate).alias(_STRIPPED))
    stripped = pl.col(_STRIPPED)
    # Stripping is undone when it turns a viable number into a non-viable one.
    keep = _viable(number, rules) & ~_viable(stripped, rules)
    return frame.with_columns(
        pl.when(stripped.is_not_null() & ~keep).then(stripped).otherwise(number).alias(_STRIPPED)
    )


def _strip_for_parse(part: pl.DataFrame, rules: _Rules) -> pl.DataFrame:
    """The last step of `parse`: strip the national prefix if what is left has a possible length."""
    staged = _with_prefix_stripped(part.filter(pl.col(_NSN).str.len_chars() >= MIN_NSN), _NSN, rules)
    stripped = pl.col(_STRIPPED)
    nsn = pl.when(stripped.str.len_chars().is_in(rules.keeps_stripped)).then(stripped).otherwise(pl.col(_NSN))
    return (
        staged.with_columns(nsn.alias(_NSN))
        .drop(_STRIPPED)
        .with_columns(pl.col(_NSN).str.len_chars().alias(_LEN))
        .filter(pl.col(_LEN).is_between(MIN_NSN, MAX_NSN))
    )


# ---------------------------------------------------------------- validation


def _matches(desc: _Desc) -> pl.Expr:
    """`_is_number_matching_desc`: length among the possible ones (if listed) and a full match."""
    found = pl.col(_NSN).str.contains(desc.pattern)
    return pl.col(_LEN).is_in(desc.lengths) & found if desc.lengths else found


def _valid_for(rules: _Rules) -> pl.Expr:
    """`_number_type_helper(...) != UNKNOWN`: matches the general desc and at least one type."""
    if rules.general is None or not rules.kinds:
        return pl.lit(False)
    return _matches(rules.general) & pl.any_horizontal([_matches(kind) for kind in rules.kinds])


def _validate(part: pl.DataFrame, plan: _Plan) -> pl.DataFrame:
    """Rows that are possible and valid, with `region_code_for_number`'s region."""
    pending = part.filter(pl.col(_LEN).is_in(plan.main.possible))
    if plan.single:
        only = plan.regions[0]
        return _accept(pending.filter(_valid_for(only)), plan.code, only.region)
    accepted = [pl.DataFrame(schema=_RESULT)]
    # The first region whose leading digits match (or, without them, that validates) owns the
    # number even when it is not valid there: `_region_code_for_number_from_list`.
    for rules in plan.regions:
        if pending.is_empty():
            break
        if rules.leading is None:
            pending = pending.with_columns(_valid_for(rules).alias("owned"))
            owned = pending.filter("owned")
        else:
            pending = pending.with_columns(pl.col(_NSN).str.contains(rules.leading).alias("owned"))
            owned = pending.filter("owned").filter(_valid_for(rules))
        accepted.append(_accept(owned, plan.code, rules.region))
        pending = pending.filter(~pl.col("owned")).drop("owned")
    return pl.concat(accepted)


def _accept(rows: pl.DataFrame, code: int, region: str) -> pl.DataFrame:
    """`format_number(..., E164)` is `+`, the calling code and the national significant number."""
    return rows.select(
        _ROW,
        (pl.lit(f"+{code}") + pl.col(_NSN)).alias("e164"),
        pl.lit(region, dtype=pl.String).alias("region"),
    )
