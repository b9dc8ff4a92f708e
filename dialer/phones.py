"""Phone numbers to E.164: the clean ones by a precompiled path, the rest one distinct value at a time.

Values that are already clean go through `phone_plans.fast_normalise` (phonenumbers' own
metadata evaluated in polars, exact by construction); only the rest, a few percent of a real
list, take the free-form parser, each distinct value once.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

import phonenumbers
import polars as pl

from dialer.phone_plans import fast_normalise
from dialer.phone_rules import MAX_PHONE_CHARS

__all__ = ["MAX_PHONE_CHARS", "normalise_column"]

_SLICE = 200_000


def normalise_column(raw: pl.Series, default_region: str) -> pl.Series:
    """A struct series (e164, region, reason): each value's number, or why it is not one.

    The fast path runs on every row, a slice at a time (its working frames, several times the
    input, stay a fifth of a million rows high); deduplicating first cost a hash table and a
    join the height of the list, more memory than it saved time. The rest, usually a few
    percent, takes the free-form parser once per distinct value."""
    cleaned = raw.fill_null("").str.strip_chars()
    fast = pl.concat(
        [
            fast_normalise(cleaned.slice(offset, _SLICE), default_region)
            for offset in range(0, cleaned.len(), _SLICE)
        ]
        or [fast_normalise(cleaned, default_region)]
    )
    e164, region = fast["e164"], fast["region"]
    reason = pl.repeat(None, cleaned.len(), dtype=pl.String, eager=True)
    undecided = e164.is_null().arg_true()
    if undecided.len():
        values = cleaned.gather(undecided)
        distinct = values.unique().to_list()
        parsed = [_normalise_phone(value, default_region) for value in distinct]
        slow = pl.DataFrame(
            {
                "raw": distinct,
                "e164": [p[0] for p in parsed],
                "region": [p[1] for p in parsed],
                "reason": [p[2] for p in parsed],
            },
            schema={"raw": pl.String, "e164": pl.String, "region": pl.String, "reason": pl.String},
        )
        found = pl.DataFrame({"raw": values}).join(slow, on="raw", how="left", maintain_order="left")
        e164 = e164.scatter(undecided, found["e164"])
        region = region.scatter(undecided, found["region"])
        reason = reason.scatter(undecided, found["reason"])
    return (
        pl.DataFrame({"e164": e164, "region": region, "reason": reason})
        .select(pl.struct("e164", "region", "reason").alias("phone"))
        .to_series()
    )


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
