"""What identifies an input file across runs: a digest of its bytes. The run log keeps it, so
`status` can tell which list each run dialed, and whether the counts it kept still hold."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_fingerprint(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
