"""phonenumbers' metadata as polars patterns: what the fast path (`phone_plans`) runs per region.

Each region's patterns are checked to be in a subset of regular-expression syntax that Python's
and Rust's engines read alike, and to compile in polars; a region with any other pattern is
left whole to the slow path (`rules_for`/`plan_for` give None), so the fast path never decides
on a pattern it would read differently.
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

from dialer.phone_rules import MAX_PHONE_CHARS, SAFE_PATTERN

_SAFE_TEMPLATE = re.compile(r"(?:[0-9]|\\[1-9])*")
_DIGIT_IN_CLASS = re.compile(r"\[[^\]]*\\d")

_NON_GEO = "001"


class _Length(Enum):
    """The verdicts of phonenumbers' `_test_number_length` (ValidationResult)."""

    POSSIBLE = auto()
    LOCAL_ONLY = auto()
    TOO_SHORT = auto()
    TOO_LONG = auto()
    INVALID = auto()


@dataclass(frozen=True)
class Desc:
    """A number description: possible lengths (empty: any) and an anchored Rust pattern."""

    lengths: tuple[int, ...]
    pattern: str


@dataclass(frozen=True)
class Rules:
    """What parsing and validating need from one region's metadata, checked safe for Rust."""

    region: str
    country_code: int
    general: Desc | None
    kinds: tuple[Desc, ...]
    leading: str | None
    idd: str | None
    prefix: str | None
    prefix_groups: int
    transform: str | None
    possible: tuple[int, ...]
    keeps_stripped: tuple[int, ...]
    too_long: tuple[int, ...]


@dataclass(frozen=True)
class Plan:
    """Everything needed to validate the numbers of one country calling code."""

    code: int
    main: Rules
    regions: tuple[Rules, ...]
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


def _merged_kinds(metadata: PhoneMetadata) -> tuple[Desc, ...]:
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
        merged.append(Desc(lengths, pattern))
    return tuple(merged)


@lru_cache(maxsize=512)
def rules_for(region: str) -> Rules | None:
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
        return Rules(
            region=region,
            country_code=metadata.country_code,
            general=None if pattern is None else Desc(tuple(general.possible_length), pattern),
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
def plan_for(code: int) -> Plan | None:
    """Validation plan for a calling code; None for non-geographic codes or unsafe metadata."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code)
    if not regions or _NON_GEO in regions:
        return None
    main = rules_for(regions[0])
    if main is None or main.country_code != code:
        return None
    listed = []
    for region in regions:
        if PhoneMetadata.metadata_for_region(region, None) is None:
            continue  # `_region_code_for_number_from_list` skips regions without metadata
        rules = rules_for(region)
        if rules is None:
            return None
        listed.append(rules)
    return Plan(code=code, main=main, regions=tuple(listed), single=len(regions) == 1)
