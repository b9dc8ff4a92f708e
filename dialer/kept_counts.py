"""The results' counts kept in the checkpoint, and whether the files written with them still hold.

Counting a campaign means reading its whole list; a finished campaign's counts only move when
the checkpoint does. So every run and export keeps, beside the counts, what they were computed
from (the `basis`: the config, the list and the do-not-call list, as digests), the checkpoint's
own counts then, its latest run and outcome, and the size and mtime of each file it wrote.
`status` carries the counts forward from there; a run that finds nothing to dial and nothing
changed leaves the files as they are (see `files_current`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dialer.lead_state import RowStatus, Status
from dialer.staging import identity

if TYPE_CHECKING:
    from dialer.checkpoint import Checkpoint
    from dialer.config import Settings


@dataclass(frozen=True)
class Kept:
    counts: dict[str, int]  # the results' counts (RowStatus values)
    checkpoint: dict[str, int]  # the checkpoint's own counts (Status values) at the time
    basis: str  # counts_basis() at the time
    run_id: int = 0  # the latest run then: a run since (even one that died) may have changed leads
    payload_id: int = 0  # the latest outcome payload then: outcomes change the files
    files: dict[str, list[int]] = field(default_factory=dict)  # path -> [size, mtime_ns] as written

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Kept | None:
        """None for anything else (an older kept record): the counts are then taken again."""
        try:
            data = json.loads(text)
            return cls(
                counts={str(k): int(v) for k, v in data["counts"].items()},
                checkpoint={str(k): int(v) for k, v in data["checkpoint"].items()},
                basis=str(data["basis"]),
                run_id=int(data.get("run_id", 0)),
                payload_id=int(data.get("payload_id", 0)),
                files={str(k): [int(n) for n in v] for k, v in data.get("files", {}).items()},
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def counts_basis(settings: Settings, list_digest: str | None = None) -> str:
    """A digest of everything a lead's row status depends on besides the checkpoint.

    The config as written, the [leads] table as resolved (an `${env:...}` value may differ
    between runs; secrets are left out) and what the list and the do-not-call list are."""
    leads = settings.leads.model_dump(mode="json")
    leads["path"] = leads["do_not_call"] = None  # where they are, and their bytes, come next
    params = leads["agent_params"]
    leads["agent_params"] = {name: "<secret>" if v in settings.secrets else v for name, v in params.items()}
    do_not_call = settings.leads.do_not_call
    document = {
        "config": settings.fingerprint,
        "leads": leads,
        # what each list is: the object in storage (URL, ETag, size), or its path and bytes
        "list": identity(settings, "leads", settings.leads_path, list_digest),
        "do_not_call": None if do_not_call is None else identity(settings, "do_not_call", do_not_call),
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def keep(checkpoint: Checkpoint, counts: Mapping[str, int], basis: str, files: list[Path]) -> None:
    """Keep the counts just written, with what makes them (and the files) current."""
    kept = Kept(
        counts=dict(counts),
        checkpoint=checkpoint.counts(),
        basis=basis,
        run_id=checkpoint.latest_run_id(),
        payload_id=checkpoint.latest_payload_id(),
        files={str(path): _stamp(path) for path in files},
    )
    checkpoint.save_kept(kept.to_json())


def carried(
    checkpoint: Checkpoint, settings: Settings, list_digest: str | None = None
) -> tuple[Kept, dict[str, int]] | None:
    """The kept counts moved by what the checkpoint recorded since; None when they do not hold.
    `list_digest`: the list's `staging.input_fingerprint`, when the caller has it already."""
    text = checkpoint.kept()
    kept = Kept.from_json(text) if text else None
    if kept is None:
        return None
    try:
        if counts_basis(settings, list_digest) != kept.basis:
            return None
    except OSError:
        return None  # the list is gone or unreadable: counting again says so
    return kept, carried_forward(kept.counts, kept.checkpoint, checkpoint.counts())


def files_current(checkpoint: Checkpoint, kept: Kept, counts: Mapping[str, int]) -> bool:
    """Nothing happened since the files were written: no run started (not even one that died),
    no outcome arrived, no file was touched, and nothing waits to be dialed."""
    return (
        kept.files != {}
        and kept.run_id == checkpoint.latest_run_id()
        and kept.payload_id == checkpoint.latest_payload_id()
        and counts.get(RowStatus.PENDING.value, 0) == 0
        and all(_stamp(Path(path)) == stamp for path, stamp in kept.files.items())
    )


def carried_forward(
    kept: Mapping[str, int], then: Mapping[str, int], now: Mapping[str, int]
) -> dict[str, int]:
    """The results' counts kept at `then` (the checkpoint's own counts then), moved by what the
    checkpoint recorded since. The list and config are unchanged, so only leads' checkpoint
    statuses can have moved: between pending, in flight (shown unknown), placed, failed, unknown."""

    def shown(counts: Mapping[str, int], status: RowStatus) -> int:
        if status is RowStatus.UNKNOWN:
            return counts.get(Status.UNKNOWN, 0) + counts.get(Status.IN_FLIGHT, 0)
        return counts.get(status.value, 0)

    result = {status.value: int(kept.get(status.value, 0)) for status in RowStatus}
    moved = 0
    for status in (RowStatus.PLACED, RowStatus.FAILED, RowStatus.UNKNOWN):
        delta = shown(now, status) - shown(then, status)
        result[status.value] += delta
        moved += delta
    result[RowStatus.PENDING.value] -= moved
    return result


def _stamp(path: Path) -> list[int]:
    try:
        stat = path.stat()
    except OSError:
        return [-1, -1]
    return [stat.st_size, stat.st_mtime_ns]
