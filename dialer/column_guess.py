"""Which column of a lead list is the phone, the e-mail and the reference id, and which region
its national numbers belong to: what `dialer init` proposes, each choice with its reason.

Headers decide first (`PHONE_HEADER`, `EMAIL_HEADER`, `REFERENCE_HEADERS`, as plain data that
a table test pins); the values decide when no header does, or between two that do. Everything
here reads a sample of the list; nothing is written.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import phonenumbers
import polars as pl

from dialer.do_not_call import filled, header_key
from dialer.leads import EMAIL_PATTERN
from dialer.phones import normalise_column

SAMPLE = 2000  # values per column judged
# A header naming a phone column: the words in any case and spacing ("Mobile Phone", "TEL_2").
PHONE_HEADER = re.compile(r"phone|mobile|cell|^tel|telephone|msisdn|e164|^number|^gsm|^handy|^portable")
EMAIL_HEADER = re.compile(r"e?mail")
# Reference-id headers, best first (header_key form: lower case, no spaces, `_` or `-`).
REFERENCE_HEADERS = ("crmid", "leadid", "contactid", "recordid", "customerid", "externalid", "id", "uid")
# Regions tried when the numbers are written without a country code: the ones whose national
# forms a CRM export most often holds. A list from elsewhere has its numbers in + form, or
# gets leads.default_region by hand (the file's comment says so).
NATIONAL_CANDIDATES = (
    "US", "GB", "DE", "FR", "ES", "IT", "NL", "BE", "AT", "CH", "IE", "PT", "SE", "NO", "DK", "FI",
    "PL", "CZ", "CA", "AU", "NZ", "MX", "BR", "AR", "IN", "ZA", "SG", "AE",
)  # fmt: skip


@dataclass(frozen=True)
class Choice:
    column: str | None
    why: str
    others: list[str] = field(default_factory=list)  # columns that qualified too, not taken


@dataclass(frozen=True)
class Mapping:
    phone: Choice
    email: Choice
    reference_id: Choice
    region: str
    region_why: str


def guess(frame: pl.DataFrame) -> Mapping:
    """The proposed mapping of `frame`'s columns (all text, as the list reader gives them)."""
    sample = frame.head(SAMPLE)
    region, region_why = _region(sample, _phone_named(sample) or list(sample.columns))
    phone = _phone(sample, region)
    taken = {phone.column}
    email = _email(sample, taken)
    taken.add(email.column)
    reference = _reference(frame, taken)
    return Mapping(phone, email, reference, region, region_why)


def snake_case(name: str) -> str:
    """`"First Name"` -> `first_name`: an agentParams key from a column name."""
    split = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)  # camelCase -> camel_Case
    key = re.sub(r"[^0-9a-zA-Z]+", "_", split).strip("_").lower()
    return key if key and not key[0].isdigit() else f"col_{key}"


def _phone_named(sample: pl.DataFrame) -> list[str]:
    return [name for name in sample.columns if PHONE_HEADER.search(header_key(name))]


def _valid_share(cells: pl.Series, region: str) -> float:
    """The share of rows with a valid number: a column filled on every row beats a sparse one."""
    values = filled(cells)
    if values.is_empty():
        return 0.0
    valid = int(normalise_column(values, region).struct.field("e164").is_not_null().sum())
    return valid / cells.len()


def _phone(sample: pl.DataFrame, region: str) -> Choice:
    named = _phone_named(sample)
    pool = named or list(sample.columns)
    shares = {name: _valid_share(sample[name], region) for name in pool}
    ranked = sorted(pool, key=lambda name: -shares[name])  # stable: header order breaks ties
    best = ranked[0] if ranked and shares[ranked[0]] > 0 else None
    if best is None and named:  # headers say phone, no value is a number in this region
        return Choice(named[0], "its header names a phone column, but no value is a valid number")
    if best is None:
        return Choice(None, "no column holds phone numbers")
    how = "its header names a phone column" if named else "no header names a phone column; by content"
    others = [name for name in ranked[1:] if shares[name] > 0] if named else []
    return Choice(best, f"{how}; {shares[best]:.0%} valid {region} numbers", others)


def _email(sample: pl.DataFrame, taken: set[str | None]) -> Choice:
    columns = [name for name in sample.columns if name not in taken]

    def share(name: str) -> float:
        values = filled(sample[name])
        return int(values.str.contains(EMAIL_PATTERN).sum()) / values.len() if values.len() else 0.0

    shares = {name: share(name) for name in columns}
    named = [name for name in columns if EMAIL_HEADER.search(header_key(name)) and shares[name] > 0]
    pool = named or [name for name in columns if shares[name] >= 0.5]
    if not pool:
        return Choice(None, "no column holds e-mail addresses")
    ranked = sorted(pool, key=lambda name: -shares[name])
    how = "its header names an e-mail column" if named else "by content"
    return Choice(ranked[0], f"{how}; {shares[ranked[0]]:.0%} look like addresses", ranked[1:])


def _reference(frame: pl.DataFrame, taken: set[str | None]) -> Choice:
    by_key: dict[str, list[str]] = {}
    for name in frame.columns:
        if name not in taken:
            by_key.setdefault(header_key(name), []).append(name)
    found = [name for key in REFERENCE_HEADERS for name in by_key.get(key, [])]
    if not found:
        return Choice(None, "no column header is an id (id, crm_id, contact id, lead id, record id...)")
    unique = [name for name in found if _unique(frame[name])]
    best = (unique or found)[0]
    why = "an id header with unique values" if best in unique else "an id header (its values repeat)"
    return Choice(best, why, [name for name in found if name != best])


def _unique(cells: pl.Series) -> bool:
    values = filled(cells)
    return values.len() > 0 and values.n_unique() == values.len()


def _region(sample: pl.DataFrame, candidates: list[str]) -> tuple[str, str]:
    """The country of most numbers written with +, else the region most national numbers parse
    in; US when nothing decides."""
    values = pl.concat([filled(sample[name]) for name in candidates]).head(SAMPLE) if candidates else None
    if values is None or values.is_empty():
        return "US", "no phone numbers to judge by: US"
    texts = values.to_list()
    plus = [v for v in texts if v.startswith(("+", "00"))]
    national = [v for v in texts if not v.startswith(("+", "00"))]
    if len(plus) >= len(national):
        regions = Counter(_international_region(v) for v in plus)
        regions.pop(None, None)
        if regions:
            region, count = regions.most_common(1)[0]
            return str(region), f"the country of most numbers written with + ({count} of {len(plus)})"
        return "US", "no number written with + is valid: US"
    votes = {region: sum(_valid_in(v, region) for v in national[:300]) for region in NATIONAL_CANDIDATES}
    region = max(votes, key=lambda r: (votes[r], r == "US"))
    if votes[region] == 0:
        return "US", "no number parses as a national number of a common region: US"
    share = votes[region] / min(len(national), 300)
    return region, f"{share:.0%} of the numbers are valid national numbers there"


def _international_region(text: str) -> str | None:
    try:
        number = phonenumbers.parse("+" + text[2:] if text.startswith("00") else text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.region_code_for_number(number)


def _valid_in(text: str, region: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(text, region))
    except phonenumbers.NumberParseException:
        return False
