"""Which config keys (and flags) may name an object-storage URL, and the local stand-ins they get.

Everything past the config works on local paths. A URL is taken out of the document before
validation (pydantic's `Path` would fold `s3://` into `s3:/`), remembered by its role, and
replaced by a stand-in path under `REMOTE`, which `staging.staged` swaps for a private local
copy (inputs) or a file that is uploaded once written (outputs). The checkpoint cannot be a URL.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialer.storage import ObjectUrl, is_url

REMOTE = Path("(object-storage)")  # never a real folder: a stand-in used unstaged fails loudly

INPUT_ROLES = ("leads", "do_not_call")
OUTPUT_ROLES = ("results", "errors", "report")
# config key (table, key) -> role; the roles are the keys of Remote.urls
KEYS = {
    ("leads", "path"): "leads",
    ("leads", "do_not_call"): "do_not_call",
    ("output", "path"): "results",
    ("output", "errors_path"): "errors",
    ("output", "report"): "report",
}


@dataclass(frozen=True)
class Remote:
    """The URLs of a campaign by role ("leads", "results", ...); empty for a local campaign."""

    urls: Mapping[str, str] = field(default_factory=dict)

    def stand_in(self, role: str) -> Path:
        return REMOTE / file_name(role, ObjectUrl.parse(self.urls[role]))


def file_name(role: str, url: ObjectUrl) -> str:
    """A role's local file name: the role and the object's suffix, which says CSV or Parquet."""
    return f"{role}{url.suffix}"


def take_urls(
    document: MutableMapping[str, Any], overrides: Mapping[str, str | Path | None]
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Move every URL out of `document` (and of the `--input`/`--output` overrides, by role):
    returns the URLs by role and the problems as (key, message)."""
    urls: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for (table, key), role in KEYS.items():
        section = document.get(table)
        value = overrides.get(role)
        if value is None and isinstance(section, dict):
            value = section.get(key)
        if not isinstance(value, str) or not is_url(value):
            continue
        try:
            parsed = ObjectUrl.parse(value, writing=role not in INPUT_ROLES)
        except ValueError as exc:
            problems.append((f"{table}.{key}", str(exc)))
            continue
        urls[role] = value
        if isinstance(section, dict) and key in section:
            section[key] = str(REMOTE / file_name(role, parsed))
    output = document.get("output")
    checkpoint = output.get("checkpoint") if isinstance(output, dict) else None
    if isinstance(checkpoint, str) and is_url(checkpoint):
        problems.append(
            (
                "output.checkpoint",
                "the checkpoint stays on local disk (SQLite on object storage is not safe): give a "
                "local path, and back it up instead (docs/operations.md#object-storage)",
            )
        )
    outputs = [urls[role] for role in OUTPUT_ROLES if role in urls]
    if "leads" in urls and urls["leads"] in outputs:
        problems.append(
            ("output", f"{urls['leads']}: is the lead list itself; writing there would overwrite it")
        )
    return urls, problems
