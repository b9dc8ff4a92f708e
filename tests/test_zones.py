"""Time zones of a phone number: the precompiled path gives phonenumbers' answers, exactly."""

from __future__ import annotations

import random
from collections import Counter

import phonenumbers.tzdata
import pytest
from phonenumbers import timezone as phone_timezone

from dialer import zones
from dialer.zones import zones_for_phone

NY = "America/New_York"
LA = "America/Los_Angeles"
CHICAGO = "America/Chicago"


def _reference(e164: str) -> tuple[str, ...] | None:
    """What `zones_for_phone` must return before the fallback rule: None where parse refuses."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    return tuple(phone_timezone.time_zones_for_number(number))


def _examples() -> list[phonenumbers.PhoneNumber]:
    """The example number of every type in every region, and of every non-geographic code."""
    found = [
        example
        for region in sorted(phonenumbers.SUPPORTED_REGIONS)
        for kind in range(11)  # PhoneNumberType FIXED_LINE (0) to VOICEMAIL (10)
        if (example := phonenumbers.example_number_for_type(region, kind)) is not None
    ]
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            found.append(example)
    return found


def _varied(rng: random.Random, examples: list[phonenumbers.PhoneNumber]) -> str:
    """An example number with 1-4 digits changed, sometimes one digit shorter or longer."""
    example = rng.choice(examples)
    digits = list(phonenumbers.national_significant_number(example))
    for _ in range(rng.randint(1, 4)):
        digits[rng.randrange(len(digits))] = str(rng.randrange(10))
    roll = rng.random()
    if roll < 0.05:
        digits.pop()
    elif roll < 0.1:
        digits.append(str(rng.randrange(10)))
    return f"+{example.country_code}{''.join(digits)}"


def test_fast_zones_equal_phonenumbers_on_20000_valid_numbers_of_every_region() -> None:
    """Every number the fast path answers gets `time_zones_for_number(parse(x))`, exactly."""
    rng = random.Random(20_240_601)
    examples = _examples()
    numbers: set[str] = set()
    while len(numbers) < 36_000:
        numbers.add(_varied(rng, examples))
    valid = declined = 0
    types: Counter[int] = Counter()
    codes: set[int] = set()
    # Sorted, so a calling code's numbers come together: phonenumbers compiles its patterns
    # through `re`'s 512-entry cache, which a random walk over all regions keeps evicting.
    for e164 in sorted(numbers):
        expected = _reference(e164)
        fast = zones._fast_zones(e164)
        if fast is None:
            declined += 1
        else:
            assert fast == expected, e164
        if expected is None:
            with pytest.raises(ValueError, match="not an E") as refused:
                zones_for_phone(e164, CHICAGO)
            assert e164 in str(refused.value)
            continue
        unknown = not expected or "Etc/Unknown" in expected
        assert zones_for_phone(e164, CHICAGO) == ((CHICAGO,) if unknown else expected), e164
        number = phonenumbers.parse(e164, None)
        if fast is not None:
            # The shortcut around `parse`: the digits after the calling code are the NSN.
            assert f"+{number.country_code}{phonenumbers.national_significant_number(number)}" == e164
        if phonenumbers.is_valid_number(number):
            valid += 1
            types[phonenumbers.number_type(number)] += 1
            codes.add(number.country_code)
    assert valid >= 20_000
    # Not vacuous: nearly every number took the fast path, and every kind of answer came up.
    assert declined < 0.02 * len(numbers), declined
    kinds = phonenumbers.PhoneNumberType
    assert {kinds.FIXED_LINE, kinds.MOBILE, kinds.FIXED_LINE_OR_MOBILE, kinds.TOLL_FREE} <= set(types)
    assert {kinds.PREMIUM_RATE, kinds.SHARED_COST, kinds.VOIP, kinds.PERSONAL_NUMBER, kinds.UAN} <= set(types)
    assert len(codes) > 200


@pytest.mark.parametrize(
    "e164",
    [
        "+12125550123",  # US, New York
        "+16135550123",  # Canada: +1 but not US, found by trying NANP regions in order
        "+15062345678",  # Canada, Atlantic
        "+17875550123",  # Puerto Rico
        "+18762345678",  # Jamaica mobile: not geographic under +1, every NANP zone
        "+18005550123",  # US toll free
        "+18885550123",
        "+12120550123",  # possible but invalid: exchange starting with 0
        "+15555550123",  # possible but invalid: area code 555
        "+11234567890",  # starts with the US national prefix "1"
        "+447911123456",  # UK mobile: the calling code's four zones
        "+442079460000",  # London fixed line
        "+447797712345",  # Jersey mobile
        "+4420794600",  # too short
        "+79123456789",  # Russia mobile: every Russian and Kazakh zone
        "+74951234567",  # Moscow
        "+78122345678",  # St Petersburg: starts with Russia's national prefix 8
        "+78005553535",  # Russian toll free, also starting with 8
        "+77172123456",  # Kazakhstan fixed line under +7
        "+390612345678",  # Rome: an NSN with a leading zero
        "+390669812345",  # Vatican under +39
        "+393123456789",  # Italian mobile
        "+5491123456789",  # Argentina mobile (mobile is geographic in AR, BR, CN, ID, MX)
        "+541123456789",  # Buenos Aires
        "+525512345678",
        "+5511961234567",
        "+8613912345678",
        "+628123456789",
        "+61412345678",  # Australian mobile: every Australian zone
        "+80012345678",  # international freephone: Etc/Unknown
        "+882393000000",  # international networks
        "+999123456",  # no such calling code
        "+0123456",
        "+1",
        "+12",
        "+1212555012345678901234",  # too long
        "+1 212 555 0123",  # not canonical: the library reads it
        "+12125550123;ext=5",
        "tel:+1-212-555-0123",
        "+١٢١٢٥٥٥٠١٢٣",  # Arabic-Indic digits
        "2125550123",
        "",
    ],
)
def test_zones_for_phone_edge_cases_equal_phonenumbers(e164: str) -> None:
    """Hand-picked numbers: the fast path agrees with phonenumbers or leaves it to it."""
    expected = _reference(e164)
    fast = zones._fast_zones(e164)
    assert fast is None or fast == expected
    if expected is None:
        with pytest.raises(ValueError, match=r"not an E\.164 number"):
            zones_for_phone(e164, CHICAGO)
    else:
        unknown = not expected or "Etc/Unknown" in expected
        assert zones_for_phone(e164, CHICAGO) == ((CHICAGO,) if unknown else expected)


@pytest.mark.parametrize(
    ("e164", "expected"),
    [
        ("+16135550123", ("America/Toronto",)),
        ("+78122345678", ("Europe/Moscow",)),
        ("+77172123456", ("Asia/Almaty",)),
        ("+390612345678", ("Europe/Rome",)),
        ("+390669812345", ("Europe/Vatican",)),
        ("+525512345678", ("America/Mexico_City",)),
    ],
)
def test_fast_path_answers_the_common_shapes(e164: str, expected: tuple[str, ...]) -> None:
    """Prefix-looking and leading-zero numbers are answered without falling back to the library."""
    assert zones._fast_zones(e164) == expected


def test_every_calling_code_has_a_checked_fast_plan() -> None:
    """No calling code is left to the slow library path (a failure here costs speed, not accuracy)."""
    missing = [code for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE if zones._plan(str(code)) is None]
    assert missing == []


def test_zone_tuples_are_shared_not_built_per_number() -> None:
    """A million leads in one area hold one tuple of zone names, not a million."""
    assert zones_for_phone("+12125550123", NY) is zones_for_phone("+12125550199", NY)
    assert zones_for_phone("+15555550123", NY) is zones_for_phone("+15555550199", NY)


@pytest.mark.parametrize("pattern", [r"(\d)\1", "(?i)1", "(?(1)2|3)", "(?P<x>1)", "(?=1)1", "^1", "[^1]"])
def test_metadata_syntax_that_wrapping_could_change_is_refused(pattern: str) -> None:
    """A pattern whose meaning could change inside the combined regex sends its code to the library."""
    with pytest.raises(zones._Unsure):
        zones._safe(pattern)
