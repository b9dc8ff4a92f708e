"""The files that make up a campaign's checkpoint on disk, and what to do with them as a set.

SQLite keeps a checkpoint in up to three files (`x.db`, `x.db-wal`, `x.db-shm`); the run lock
sits beside them (`x.db.lock`) and `--new-campaign` renames a set aside as `x.db.<stamp>.old`.
Whatever moves or deletes a checkpoint takes these names from here.
"""

from __future__ import annotations

import glob
import time
from pathlib import Path

# The database file and SQLite's write-ahead log and shared-memory index, which belong to it.
DATABASE_SUFFIXES = ("", "-wal", "-shm")
LOCK_SUFFIX = ".lock"


def with_suffix(path: Path, suffix: str) -> Path:
    """`x.db` + `-wal` -> `x.db-wal` (not Path.with_suffix, which replaces `.db`)."""
    return path.with_name(path.name + suffix)


def lock_path(checkpoint: Path) -> Path:
    return with_suffix(checkpoint, LOCK_SUFFIX)


def set_aside(path: Path) -> Path:
    """Rename a checkpoint (and its WAL files) to a name no earlier set-aside uses."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = path.with_name(f"{path.name}.{stamp}.old")
    n = 1
    while any(with_suffix(aside, suffix).exists() for suffix in DATABASE_SUFFIXES):
        n += 1
        aside = path.with_name(f"{path.name}.{stamp}-{n}.old")
    for suffix in DATABASE_SUFFIXES:
        old = with_suffix(path, suffix)
        if old.exists():
            old.replace(with_suffix(aside, suffix))
    return aside


def checkpoint_files(checkpoint: Path) -> list[Path]:
    """The checkpoint, its SQLite side files, its lock and every set-aside copy, existing or not."""
    names = [with_suffix(checkpoint, suffix) for suffix in (*DATABASE_SUFFIXES, LOCK_SUFFIX)]
    if checkpoint.parent.exists():
        names += sorted(checkpoint.parent.glob(f"{glob.escape(checkpoint.name)}.*.old*"))
    return names


def purge_targets(checkpoint: Path, outputs: list[Path], inputs: list[Path]) -> list[Path]:
    """Every existing file the dialer wrote for a campaign: checkpoint files, then the outputs.

    Never one of `inputs` (the lead list, the do-not-call list), even when a config points an
    output at one of them.
    """
    protected = {path.resolve() for path in inputs}
    names = [*checkpoint_files(checkpoint), *outputs]
    return [path for path in dict.fromkeys(names) if path.exists() and path.resolve() not in protected]


def purge(targets: list[Path], lock: Path) -> list[Path]:
    """Delete the targets, the lock file last; the caller holds the lock, so no run writes them."""
    for path in targets:
        if path != lock:
            path.unlink(missing_ok=True)
    lock.unlink(missing_ok=True)
    return [*(p for p in targets if p != lock), lock]
