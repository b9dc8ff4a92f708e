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

import phonenumbers
import polars as pl

from dialer.phone_metadata import Desc, Plan, Rules, plan_for, rules_for
from dialer.phone_rules import MAX_NSN, MAX_PHONE_CHARS, MIN_NSN

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
        plan = plan_for(int(code))
        parse_rules = rules_for(default_region) if local else (plan.main if plan else None)
        if plan is None or parse_rules is None:
            continue
        accepted.append(_validate(_strip_for_parse(part, parse_rules), plan))
    found = pl.concat(accepted)
    return (
        frame.select(_ROW)
        .join(found, on=_ROW, how="left", maintain_order="left")
        .select(pl.col("e164"), pl.col("region"))
    )


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
    rules = rules_for(default_region)
    if rules is None or plan_for(rules.country_code) is None:
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


def _viable(number: pl.Expr, rules: Rules) -> pl.Expr:
    """`_match_national_number(number, general_desc)`: the general pattern only, no lengths."""
    return number.str.contains(rules.general.pattern) if rules.general else pl.lit(False)


def _with_prefix_stripped(frame: pl.DataFrame, column: str, rules: Rules) -> pl.DataFrame:
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


def _strip_for_parse(part: pl.DataFrame, rules: Rules) -> pl.DataFrame:
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


def _matches(desc: Desc) -> pl.Expr:
    """`_is_number_matching_desc`: length among the possible ones (if listed) and a full match."""
    found = pl.col(_NSN).str.contains(desc.pattern)
    return pl.col(_LEN).is_in(desc.lengths) & found if desc.lengths else found


def _valid_for(rules: Rules) -> pl.Expr:
    """`_number_type_helper(...) != UNKNOWN`: matches the general desc and at least one type."""
    if rules.general is None or not rules.kinds:
        return pl.lit(False)
    return _matches(rules.general) & pl.any_horizontal([_matches(kind) for kind in rules.kinds])


def _validate(part: pl.DataFrame, plan: Plan) -> pl.DataFrame:
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
