"""Time-zone lookup per phone number: the old path (phonenumbers per number) vs `zones_for_phone`.

    .venv/bin/python benchmarks/zones_speed.py [--count 200000] [--seed 1]

Generates COUNT distinct US numbers (real area codes, random exchange and line) and COUNT distinct
mixed numbers (half US, half variations of the example numbers of every region), times both
paths over each list, and checks that they agree on every number. Single process, no server.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence
from functools import lru_cache

import phonenumbers
from phonenumbers import timezone as phone_timezone
from phonenumbers.tzdata import TIMEZONE_DATA

from dialer import hours

FALLBACK = "America/Chicago"


@lru_cache(maxsize=65_536)
def before(e164: str, fallback: str) -> tuple[str, ...]:
    """`dialer.hours._zones_for_phone` as it was: parse and look up every distinct number."""
    number = phonenumbers.parse(e164, None)
    zones = tuple(phone_timezone.time_zones_for_number(number))
    if not zones or hours.UNKNOWN_ZONE in zones:
        hours.load_zone(fallback)
        return (fallback,)
    for zone in zones:
        hours.load_zone(zone)
    return zones


def us_numbers(count: int, rng: random.Random) -> list[str]:
    area_codes = sorted(key[1:] for key in TIMEZONE_DATA if len(key) == 4 and key[0] == "1")
    found: set[str] = set()
    while len(found) < count:
        found.add(f"+1{rng.choice(area_codes)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}")
    return sorted(found, key=lambda _: rng.random())


def world_numbers(count: int, rng: random.Random) -> list[str]:
    """Example numbers of every region and type with 1-4 digits changed: valid and invalid ones."""
    examples = [
        example
        for region in sorted(phonenumbers.SUPPORTED_REGIONS)
        for kind in range(11)
        if (example := phonenumbers.example_number_for_type(region, kind)) is not None
    ]
    found: set[str] = set()
    while len(found) < count:
        example = rng.choice(examples)
        digits = list(phonenumbers.national_significant_number(example))
        for _ in range(rng.randint(1, 4)):
            digits[rng.randrange(len(digits))] = str(rng.randrange(10))
        found.add(f"+{example.country_code}{''.join(digits)}")
    return sorted(found, key=lambda _: rng.random())


Lookup = Callable[[str, str], tuple[str, ...]]


def timed(lookup: Lookup, numbers: Sequence[str]) -> tuple[float, list[object]]:
    start = time.perf_counter()
    answers: list[object] = [lookup(number, FALLBACK) for number in numbers]
    return time.perf_counter() - start, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    us = us_numbers(args.count, rng)
    half = args.count // 2
    mixed = list(dict.fromkeys(us[:half] + world_numbers(args.count - half, rng)))
    rng.shuffle(mixed)

    start = time.perf_counter()
    hours._plan("1")
    us_plan = time.perf_counter() - start
    for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
        hours._plan(str(code))
    codes = len(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    print(f"one-off plan compile: +1 {us_plan * 1e3:.0f} ms, all {codes} calling codes ", end="")
    print(f"{time.perf_counter() - start:.2f} s (a run compiles only the codes its list uses)")
    print(
        f"{'list':<14} {'numbers':>8} {'before µs/no':>13} {'after µs/no':>12} {'speed-up':>9} {'library':>8}"
    )
    # Sorted: phonenumbers goes through `re`'s 512-pattern cache, which a shuffled list of all
    # regions keeps evicting; sorting shows the old path at its best.
    for name, numbers in (("US", us), ("mixed", mixed), ("mixed, sorted", sorted(mixed))):
        before.cache_clear()
        hours._library_zones.cache_clear()
        old, expected = timed(before, numbers)
        new, answers = timed(hours.zones_for_phone, numbers)
        if answers != expected:
            wrong = next(n for n, a, e in zip(numbers, answers, expected, strict=True) if a != e)
            raise SystemExit(f"{name}: the two paths disagree, first on {wrong}")
        slow = hours._library_zones.cache_info().misses
        per_old, per_new = old / len(numbers) * 1e6, new / len(numbers) * 1e6
        print(f"{name:<14} {len(numbers):>8} {per_old:>13.1f} {per_new:>12.2f} {old / new:>8.0f}x {slow:>8}")
    print("library = numbers the fast path left to phonenumbers (a national prefix `parse` may strip)")


if __name__ == "__main__":
    main()
