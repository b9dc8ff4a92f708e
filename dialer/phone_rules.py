"""What the dialer takes from phonenumbers' own rules as plain values, importable without polars
(the config and the calling-hours zones need them; `dialer --help` must not load a dataframe library)."""

from __future__ import annotations

import re

# A longer value is no phone number: refused before any parsing, by either path.
MAX_PHONE_CHARS = 64
# phonenumbers' own bounds: `_MIN_LENGTH_FOR_NSN` and `_MAX_LENGTH_FOR_NSN`.
MIN_NSN = 2
MAX_NSN = 17

# The only regex syntax found in phonenumbers' metadata. Within it, Python's `re` and Rust's
# `regex` (leftmost-first, greedy) find the same matches, so the fast path can trust polars;
# and none of it changes meaning when wrapped in `(?:...)` inside a bigger regex (`zones`).
SAFE_PATTERN = re.compile(r"(?:\\d|[0-9\[\]()|?:{},$*+\-])*")
