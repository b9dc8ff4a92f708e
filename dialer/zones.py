"""Time zones of a lead: from its own tz cell, else from its phone number (phonenumbers' data).

`zones_for_phone` is exactly phonenumbers' `time_zones_for_number(parse(e164))`, but canonical
numbers take a precompiled path about twelve times faster (a million-row list has a million
numbers to place); a test holds the two answers equal on every calling code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache, lru_cache

import phonenumbers
from phonenumbers import timezone as phone_timezone

from dialer.hours import load_zone
from dialer.phone_rules import MAX_NSN, MIN_NSN, SAFE_PATTERN

UNKNOWN_ZONE = "Etc/Unknown"


def zones_for_phone(e164: str, fallback: str) -> tuple[str, ...]:
    """IANA zones for an E.164 number; the fallback when phonenumbers knows none.

    Exactly `time_zones_for_number(parse(e164))`: canonical `+DIGITS` strings take a precompiled
    path (~3 µs instead of ~40 µs, see `_fast_zones`), anything else the library itself. The fast
    path is not cached: a cache big enough for a million-row list costs ~200 MB to save ~3 s.
    The tuples returned are phonenumbers' own, shared by every number of an area.
    """
    zones = _fast_zones(e164)
    if zones is None:
        zones = _library_zones(e164)
    return _checked(zones, fallback)


@lru_cache(maxsize=4096)
def _checked(zones: tuple[str, ...], fallback: str) -> tuple[str, ...]:
    """The fallback for an unknown answer; every zone loadable. Few distinct zone sets: cached."""
    if not zones or UNKNOWN_ZONE in zones:
        load_zone(fallback)
        return (fallback,)
    for zone in zones:
        # A zone this host's tz database lacks must not be skipped: the lead could be rung at night.
        load_zone(zone)
    return zones


@lru_cache(maxsize=65_536)
def _library_zones(e164: str) -> tuple[str, ...]:
    """The reference answer, straight from phonenumbers; cached since it costs ~45 µs."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"cannot find a time zone for {e164!r}: not an E.164 number ({exc})") from exc
    return tuple(phone_timezone.time_zones_for_number(number))


# --- phonenumbers' zone lookup, precompiled -----------------------------------------------------
#
# `time_zones_for_number` spends its time in `parse` (~20 µs) and in `number_type` (~20 µs: for
# +1 it tries region after region, each a handful of separate regex matches). Neither can be
# keyed on a prefix, since the type depends on every digit. So the same decision is compiled
# per calling code, region and length into ONE regex whose named group says which branch of
# `_number_type_helper` matched first. A number the fast path is not sure about returns None and
# goes to the library; every step below names the library code it mirrors.

_UNKNOWN, _COUNTRY, _PLACE = 0, 1, 2  # zones: none; the calling code's; the number's prefix
_MAX_CODE = 3  # `_MAX_LENGTH_COUNTRY_CODE`
_NEVER = "(?!)"
_TZ_DATA: dict[str, tuple[str, ...]] | None = getattr(phone_timezone, "TIMEZONE_DATA", None)
_TZ_LONGEST: int | None = getattr(phone_timezone, "TIMEZONE_LONGEST_PREFIX", None)
_GEO_MOBILE: frozenset[int] | None = getattr(phonenumbers.phonenumberutil, "_GEO_MOBILE_COUNTRIES", None)


def _codes_by_head() -> dict[str, str]:
    """`_extract_country_code` as a dict: the first three digits decide the calling code.

    It takes the shortest leading digits that are a calling code, and never one starting "0".
    """
    codes = {str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}
    found = {}
    for head in map(str, range(100, 1000)):
        code = next((head[:size] for size in range(1, _MAX_CODE + 1) if head[:size] in codes), None)
        if code is not None:
            found[head] = code
    return found


_CODE_OF = _codes_by_head()


class _Unsure(Exception):
    """Metadata the fast path does not mirror exactly; its calling code is left to the library."""


class _Region:
    """One region's `_number_type_helper`, reduced to the kind of zones it leads to."""

    def __init__(self, metadata: phonenumbers.PhoneMetadata, geo_mobile: bool) -> None:
        self._metadata = metadata
        self._mobile = _PLACE if geo_mobile else _COUNTRY  # `is_number_type_geographical`
        leading = metadata.leading_digits
        self.leading = None if leading is None else re.compile(_safe(leading))
        self._by_length: dict[int, re.Pattern[str] | None] = {}

    def kind(self, nsn: str) -> int:
        """_UNKNOWN, _COUNTRY or _PLACE, as `time_zones_for_number` branches on `number_type`."""
        size = len(nsn)
        try:
            matcher = self._by_length[size]
        except KeyError:
            matcher = self._by_length[size] = self._matcher(size)
        found = None if matcher is None else matcher.fullmatch(nsn)
        if found is None:
            return _UNKNOWN
        if found["other"] is not None:
            return _COUNTRY
        return _PLACE if found["fixed"] is not None else self._mobile

    def _matcher(self, size: int) -> re.Pattern[str] | None:
        """One regex for every type a number of this length can be, in the helper's order.

        Python's `re` tries alternatives left to right and backtracks into the next one until
        the whole string matches, so the group that matched is the first type that fullmatches.
        """
        meta = self._metadata
        general = _pattern(meta.general_desc, size)
        if general is None:
            return None
        other = [
            _pattern(desc, size)
            for desc in (
                meta.premium_rate,
                meta.toll_free,
                meta.shared_cost,
                meta.voip,
                meta.personal_number,
                meta.pager,
                meta.uan,
                meta.voicemail,
            )
        ]
        fixed = _pattern(meta.fixed_line, size)
        # A fixed-line match is FIXED_LINE(_OR_MOBILE) either way; mobile is tried only after it,
        # and not at all when the two share a pattern.
        mobile = None if meta.same_mobile_and_fixed_line_pattern else _pattern(meta.mobile, size)
        others = "|".join(f"(?:{body})" for body in other if body is not None) or _NEVER
        kinds = f"(?P<other>{others})|(?P<fixed>{fixed or _NEVER})|(?P<mobile>{mobile or _NEVER})"
        # The look-ahead is the general desc's full match, which every type needs first.
        return re.compile(rf"(?=(?:{general})\Z)(?:{kinds})")


def _safe(pattern: str) -> str:
    # `(?` other than `(?:` could be a conditional on a group number, which wrapping would shift.
    if not SAFE_PATTERN.fullmatch(pattern) or "(?" in pattern.replace("(?:", ""):
        raise _Unsure(pattern)
    return pattern


def _pattern(desc: phonenumbers.PhoneNumberDesc | None, size: int) -> str | None:
    """The desc's pattern if `_is_number_matching_desc` can accept this length, else None."""
    if desc is None or not desc.national_number_pattern:
        return None  # `_match_national_number`: no pattern matches nothing
    if desc.possible_length and size not in desc.possible_length:
        return None
    return _safe(desc.national_number_pattern)


class _Plan:
    """What `parse` and `time_zones_for_number` need for one calling code."""

    def __init__(self, code: str) -> None:
        if _TZ_DATA is None or _TZ_LONGEST is None or _GEO_MOBILE is None:
            raise _Unsure("phonenumbers internals moved")
        number = int(code)
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[number]
        main = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
            number, phonenumbers.region_code_for_country_code(number)
        )
        if main is None:
            raise _Unsure(code)
        # `parse` strips a national prefix even after `+CC`, if what is left has a possible length.
        prefix = main.national_prefix_for_parsing
        self._prefix = re.compile(prefix) if prefix else None
        self._transform = bool(main.national_prefix_transform_rule)
        # `_test_number_length` for UNKNOWN reads only the length and the general desc.
        test_length = getattr(phonenumbers.phonenumberutil, "_test_number_length", None)
        if test_length is None:
            raise _Unsure("phonenumbers internals moved")
        result = phonenumbers.ValidationResult
        refused = (result.TOO_SHORT, result.IS_POSSIBLE_LOCAL_ONLY, result.INVALID_LENGTH)
        self._strip_kept = frozenset(
            size for size in range(MAX_NSN + 1) if test_length("0" * size, main) not in refused
        )
        geo_mobile = number in _GEO_MOBILE
        self.single = len(regions) == 1
        listed: list[_Region] = []
        for region in regions:
            # `_region_code_for_number_from_list` reads this; `number_type` the other: same object.
            metadata = phonenumbers.PhoneMetadata.metadata_for_region(region.upper(), None)
            typed = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(number, region)
            if self.single:
                metadata = typed
            elif metadata is not typed:
                raise _Unsure(region)
            if metadata is not None:
                listed.append(_Region(metadata, geo_mobile))
            elif self.single:
                raise _Unsure(region)  # no metadata: UNKNOWN, rare enough for the library
        self.regions = tuple(listed)
        self.country = tuple(
            phone_timezone._country_level_time_zones_for_number(phonenumbers.PhoneNumber(country_code=number))
        )
        # `time_zones_for_geographical_number` takes the longest tz-data key that starts the
        # digits; only keys of these lengths can.
        self.sizes = tuple(
            sorted(
                {
                    len(key)
                    for key in _TZ_DATA
                    if len(key) <= _TZ_LONGEST and (key.startswith(code) or code.startswith(key))
                },
                reverse=True,
            )
        )

    def keeps(self, nsn: str) -> bool:
        """True if `parse` leaves the digits after the calling code as they are; False if unsure."""
        if self._prefix is None:
            return True
        found = self._prefix.match(nsn)
        if found is None:
            return True
        if self._transform:
            groups = found.groups()
            if not groups or groups[-1] is not None:
                return False  # the prefix is rewritten (`national_prefix_transform_rule`)
        # Stripped only if the rest has a length `parse` accepts (else it may still be refused).
        return found.end() == 0 or len(nsn) - found.end() not in self._strip_kept

    def kind(self, nsn: str) -> int:
        """`number_type` via `region_code_for_number`; None region means UNKNOWN."""
        if self.single:
            return self.regions[0].kind(nsn)
        for region in self.regions:
            if region.leading is not None:
                if region.leading.match(nsn):
                    return region.kind(nsn)
            else:
                found = region.kind(nsn)
                if found != _UNKNOWN:
                    return found
        return _UNKNOWN

    def zones(self, digits: str, nsn: str) -> tuple[str, ...]:
        kind = self.kind(nsn)
        if kind == _PLACE:
            assert _TZ_DATA is not None  # checked when the plan was built
            for size in self.sizes:
                zones = _TZ_DATA.get(digits[:size])
                if zones is not None:
                    return zones
        elif kind == _COUNTRY:
            return self.country
        return phone_timezone._UNKNOWN_TIME_ZONE_LIST


@cache
def _plan(code: str) -> _Plan | None:
    """The calling code's plan, or None if any of its metadata is outside what `_Plan` mirrors.

    Each plan is checked against the library on the metadata's own example numbers.
    """
    try:
        plan = _Plan(code)
    except (_Unsure, re.error):
        return None
    for example in _examples(int(code)):
        digits = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)[1:]
        nsn = digits[len(code) :]
        expected = tuple(phone_timezone.time_zones_for_number(phonenumbers.parse("+" + digits, None)))
        if plan.keeps(nsn) and plan.zones(digits, nsn) != expected:
            return None
    return plan


def _examples(code: int) -> Iterator[phonenumbers.PhoneNumber]:
    """The metadata's example number of every type in every region of the calling code."""
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]:
        if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
            examples = [phonenumbers.example_number_for_non_geo_entity(code)]
        else:
            # PhoneNumberType values FIXED_LINE (0) to VOICEMAIL (10)
            examples = [phonenumbers.example_number_for_type(region, kind) for kind in range(11)]
        yield from (example for example in examples if example is not None)


def _fast_zones(e164: str) -> tuple[str, ...] | None:
    """`time_zones_for_number(parse(e164))` for a canonical `+DIGITS` string; None when unsure."""
    digits = e164[1:]
    if e164[:1] != "+" or not (digits.isascii() and digits.isdigit()):
        return None
    code = _CODE_OF.get(digits[:_MAX_CODE])
    if code is None:
        return None  # too short, or no calling code: the library raises
    nsn = digits[len(code) :]
    plan = _plan(code)
    if plan is None or not MIN_NSN <= len(nsn) <= MAX_NSN:
        return None  # the library raises, or has metadata this path does not mirror
    if not plan.keeps(nsn):
        return None  # `parse` might strip a national prefix: let it decide
    # No prefix stripped, so the number is `code` + `nsn` and `national_significant_number`
    # gives `nsn` back (leading zeros are kept as `italian_leading_zero`).
    return plan.zones(digits, nsn)


def zones_for_lead(e164: str, tz_cell: str | None, fallback: str) -> tuple[str, ...]:
    """The lead's tz cell if it names a zone, the phone's zones if empty; ValueError for a bad name."""
    name = (tz_cell or "").strip()
    if not name:
        return zones_for_phone(e164, fallback)
    load_zone(name)
    return (name,)
